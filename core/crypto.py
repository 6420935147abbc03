"""Field encryption: AES-256-GCM with a key id in every value, keys from settings (the environment).

Stored format: ``kefu1$<kid>$<base64url(nonce || ciphertext+tag)>``. The first key in ``KEFU_FIELD_KEYS``
encrypts; every listed key decrypts, so keys can rotate: put a new key first, keep the old ones, run
``manage.py rotate_keys`` (re-encrypts in batches, resumable), then drop the old keys.

Exact lookups on encrypted values (a phone number) use a keyed blind index: HMAC-SHA256 under
``KEFU_BLIND_INDEX_KEY``, a secret of its own, so rotating the field keys never changes an index.
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


def encrypted_with(token: str) -> str:
    """The key id a stored value was encrypted with ('' for plaintext)."""
    parts = token.split("$", 2)
    return parts[1] if len(parts) == 3 and parts[0] == PREFIX else ""


def reencrypt(token: str) -> str:
    """The same plaintext under the primary key (a fresh nonce)."""
    ring = keyring()
    return ring.encrypt(ring.decrypt(token) if is_encrypted(token) else token)


@functools.cache
def _blind_key(spec: str) -> bytes:
    key = base64.b64decode(spec)
    if len(key) < 32:
        raise ImproperlyConfigured("KEFU_BLIND_INDEX_KEY must be at least 32 bytes (base64)")
    return key


def blind_index(value: str, *, purpose: str) -> str:
    """A keyed, deterministic digest for exact lookups; ``purpose`` separates fields (phone, name...)."""
    import hashlib
    import hmac

    if not settings.KEFU_BLIND_INDEX_KEY:
        raise ImproperlyConfigured("KEFU_BLIND_INDEX_KEY is not set")
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(_blind_key(settings.KEFU_BLIND_INDEX_KEY), message, hashlib.sha256).hexdigest()
