"""Field encryption: AES-256-GCM with a key id in every value, keys from settings (the environment).

Stored format: ``kefu1$<kid>$<base64url(nonce || ciphertext+tag)>``. The first key in ``KEFU_FIELD_KEYS``
encrypts; every listed key decrypts, so keys can rotate (re-encryption comes with the compliance work).
"""

from __future__ import annotations

import base64
import functools
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "kefu1"


class Keyring:
    def __init__(self, spec: str) -> None:
        self.keys: dict[str, bytes] = {}
        self.primary = ""
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            kid, sep, b64 = part.partition(":")
            if not sep or not kid or "$" in kid:
                raise ImproperlyConfigured("KEFU_FIELD_KEYS entries look like 'kid:base64key'")
            key = base64.b64decode(b64)
            if len(key) != 32:
                raise ImproperlyConfigured(f"KEFU_FIELD_KEYS key {kid!r} must be 32 bytes (base64)")
            self.keys[kid] = key
            self.primary = self.primary or kid
        if not self.keys:
            raise ImproperlyConfigured("KEFU_FIELD_KEYS is empty: run `make run` once or set it in .env")

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.primary]).encrypt(nonce, plaintext.encode(), self.primary.encode())
        return f"{PREFIX}${self.primary}${base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str) -> str:
        prefix, kid, b64 = token.split("$", 2)
        if prefix != PREFIX or kid not in self.keys:
            raise ValueError(f"cannot decrypt value with key id {kid!r}")
        raw = base64.urlsafe_b64decode(b64)
        return AESGCM(self.keys[kid]).decrypt(raw[:12], raw[12:], kid.encode()).decode()


@functools.cache
def _keyring(spec: str) -> Keyring:
    return Keyring(spec)


def keyring() -> Keyring:
    return _keyring(settings.KEFU_FIELD_KEYS)


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX + "$")


def generate_key_spec(kid: str = "k1") -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"
