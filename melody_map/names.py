"""Playlist names as words: the normalised name and its word set.

A playlist's name says what it is for ("summer 2015", "workout", "🔥🔥🔥"). Two names are
the same playlist idea when they normalise to the same string, and they share a word when
their word sets meet: "summer 17" and "summer vibes" share "summer"; "🔥🔥" and "🔥 bangers"
share "🔥". The graph gives each word a node (see ``graph.py``), so a name alone reaches the
tracks of the playlists named with its words.
"""

from __future__ import annotations

import re
import string
import unicodedata

# Characters that carry no word of their own: emoji presentation and skin-tone modifiers,
# the zero-width joiner, and ASCII punctuation.
_SILENT = set("\ufe0f\ufe0e\u200d") | {chr(c) for c in range(0x1F3FB, 0x1F400)} | set(string.punctuation)
_TOKEN = re.compile(r"\w+|\S", re.UNICODE)  # a run of letters and digits, or one other visible character


def normalise(name: str) -> str:
    """The name lower-cased, NFKC-folded, its punctuation dropped and its spaces collapsed:
    ``"Summer  Vibes!!"`` and ``"summer vibes"`` are one name."""
    return " ".join(words_in_order(name))


def words_in_order(name: str) -> list[str]:
    """The name's words in order, repeats kept (see :func:`words`)."""
    text = unicodedata.normalize("NFKC", str(name)).lower()
    return [t for t in _TOKEN.findall(text) if t not in _SILENT and t.strip()]


def words(name: str) -> list[str]:
    """The name's distinct words, in order of first appearance: runs of letters and digits,
    and each emoji or other symbol on its own (``"🔥🔥 hits"`` -> ``["🔥", "hits"]``)."""
    return list(dict.fromkeys(words_in_order(name)))
