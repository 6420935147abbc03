"""Traditional → simplified Chinese for every normaliser (knowledge matching, routing detection, text filters).

One OpenCC converter per process, created on first use. The converter (OpenCC's pure-Python reimplementation) is
not documented as thread-safe, so conversions take a lock; uncontended it costs well under a microsecond. If
OpenCC cannot be loaded the text is returned unchanged (logged once): a message is never failed over it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_converter: Any = None
_failed = False


def to_simplified(text: str) -> str:
    """``text`` with traditional characters written in simplified form (``text`` itself when OpenCC is missing)."""
    global _converter, _failed
    if not text or _failed:
        return text
    with _lock:
        if _converter is None:
            try:
                import opencc

                _converter = opencc.OpenCC("t2s")
            except Exception:  # noqa: BLE001 - degrade to no conversion, never fail a message
                _failed = True
                logger.warning("OpenCC unavailable: traditional characters are not converted", exc_info=True)
                return text
        try:
            return str(_converter.convert(text))
        except Exception:  # noqa: BLE001
            return text
