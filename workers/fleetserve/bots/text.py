"""Text rules shared by every bot source: whitespace normalization, duplicate keys, language."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

# Hangul syllables, jamo and compatibility jamo.
_HANGUL: Final = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


def normalize_text(text: str) -> str:
    """Collapse every run of (Unicode) whitespace to one space and strip the ends."""
    # str.split() splits on exactly what str.isspace() calls whitespace, at a third of the
    # cost of a regex; loading a 10,000-bot fleet calls this millions of times.
    return " ".join(text.split())


def match_key(text: str) -> str:
    """The key two texts must share to count as the same utterance.

    Case and compatibility forms are folded because the featurizer sees them the same way;
    two labels on such a pair would teach the model a contradiction.
    """
    return normalize_text(unicodedata.normalize("NFKC", text)).casefold()


def has_hangul(text: str) -> bool:
    return _HANGUL.search(text) is not None


def detect_language(texts: Iterable[str]) -> str:
    """``ko`` when any text contains Hangul, else ``en``: the only two languages bundled."""
    return "ko" if any(has_hangul(text) for text in texts) else "en"
