"""Text normalisation shared by every understanding component.

``normalize`` is total: it accepts any string (empty, whitespace, emoji-only, mixed scripts,
lone surrogates, very long) and returns a string, never raising.
"""

from __future__ import annotations

import re
import unicodedata

from core.chinese import to_simplified

MAX_LENGTH = 1000

# Full-width ASCII block (U+FF01..U+FF5E) -> ASCII, ideographic space -> space. NFKC already does
# most of this; the table keeps the guarantee explicit and independent of the Unicode version.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20

# Invisible characters that only get in the way of matching. ZERO WIDTH JOINER (U+200D) and
# variation selectors are kept: they are part of emoji sequences.
_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x200B, 0x200C, 0x200E, 0x200F, 0x2060, 0xFEFF] + list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A))
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


def normalize(text: str, max_length: int = MAX_LENGTH) -> str:
    """Canonical form used for training and matching.

    NFKC, full-width -> half-width, traditional -> simplified, lower case, invisible and control
    characters removed, whitespace collapsed, trimmed, at most ``max_length`` characters. Emoji
    are kept.
    """
    if not text:
        return ""
    if not isinstance(text, str):
        text = str(text)
    # Cut early (with slack for NFKC expansion and whitespace collapsing) so huge inputs stay cheap.
    text = text[: max_length * 2]
    # Lone surrogates (possible from broken JSON) cannot be encoded to UTF-8 later; drop them.
    text = text.encode("utf-8", "ignore").decode("utf-8")
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_FULLWIDTH).translate(_INVISIBLE)
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    if not text:
        return ""
    text = to_simplified(text).lower()
    return text[:max_length].rstrip()
