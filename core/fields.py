"""Model fields whose values are encrypted at rest (see core.crypto)."""

from django.db import models

from core import crypto


class EncryptedTextField(models.TextField):
    """Text stored as AES-GCM ciphertext. Not searchable with SQL; blind indexes come with compliance."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return crypto.keyring().decrypt(value)

    def to_python(self, value):
        if isinstance(value, str) and crypto.is_encrypted(value):
            return crypto.keyring().decrypt(value)
        return value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.keyring().encrypt(str(value))


class EncryptedCharField(EncryptedTextField):
    """An encrypted short text; the form shows a single-line input."""

    def formfield(self, **kwargs):
        from django import forms

        kwargs.setdefault("widget", forms.TextInput)
        return super().formfield(**kwargs)
