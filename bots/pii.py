"""Customer personal data helpers without database access: phone normalisation and its keyed blind index, and
the 退订 / 订阅 commands a customer may write.

The blind index is ``core.crypto.blind_index`` (HMAC-SHA256 under ``KEFU_BLIND_INDEX_KEY``) of the normalised
digits, so "+86 139-1234-5678", "0086 13912345678" and "13912345678" find the same customer while the database
holds neither the number nor an unkeyed hash of it."""

from __future__ import annotations

import re
import unicodedata

from core import crypto

PHONE_PURPOSE = "customer.phone"
MIN_PHONE_DIGITS = 5  # a search term with fewer digits is not treated as a phone number

_NOT_DIGIT = re.compile(r"\D+")
_SEPARATORS = re.compile(r"[\s\W_]+", re.UNICODE)

UNSUBSCRIBE = "unsubscribe"
SUBSCRIBE = "subscribe"
# whole messages (after normalisation: NFKC, case, spaces and punctuation removed) that change the subscription
COMMANDS = {
    "退订": UNSUBSCRIBE,
    "td": UNSUBSCRIBE,
    "取消订阅": UNSUBSCRIBE,
    "退订消息": UNSUBSCRIBE,
    "订阅": SUBSCRIBE,
    "恢复": SUBSCRIBE,
    "恢复订阅": SUBSCRIBE,
}


def phone_normalize(value: str) -> str:
    """The digits of a phone number, the China country code (+86 / 0086 / 86 before 11 digits) dropped;
    "" when nothing is left."""
    digits = _NOT_DIGIT.sub("", unicodedata.normalize("NFKC", value or ""))
    if digits.startswith("0086") and len(digits) == 15:
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def phone_blind_index(value: str) -> str:
    """The keyed blind index of a phone number ("" for an empty one)."""
    digits = phone_normalize(value)
    return crypto.blind_index(digits, purpose=PHONE_PURPOSE) if digits else ""


def phone_search_index(term: str) -> str:
    """The blind index to look a search term up with, or "" when the term does not look like a phone number."""
    text = unicodedata.normalize("NFKC", term or "").strip()
    if not text or re.search(r"[^\d\s+\-().]", text):
        return ""
    digits = phone_normalize(text)
    return phone_blind_index(digits) if len(digits) >= MIN_PHONE_DIGITS else ""


def subscription_command(text: str) -> str:
    """``UNSUBSCRIBE`` / ``SUBSCRIBE`` when the whole message is one of the commands, else ""."""
    if not text or len(text) > 40:
        return ""
    normalized = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).casefold())
    return COMMANDS.get(normalized, "")
