"""Names from untrusted data, made safe to print and to write.

Track, artist, playlist and user names come from the input file as they are. A name can
hold a terminal escape sequence, a tab or a line break, or begin like a spreadsheet formula;
these helpers neutralise each where it would act: on the terminal and in the TSV output.
The Python API (DataFrames) returns names unchanged.
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL (ESC starts every ANSI sequence), and the bidirectional
# overrides and isolates that can make a line read differently from what it holds.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_TSV_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_TSV_SPECIAL = re.compile(r"[\\\t\n\r]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list for CSV injection


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\u202e``), so that
    nothing from the data can move the cursor, recolour or retitle the terminal, or reorder a line."""
    return _UNPRINTABLE.sub(_escape, str(text))


def tsv_field(text: str) -> str:
    """One cell of the ``--all-users`` TSV.

    Backslash, tab, CR and LF are escaped as ``\\\\``, ``\\t``, ``\\r`` and ``\\n`` (the
    linear-TSV convention), so every row keeps exactly its fields; other control characters
    as in :func:`printable`. A cell that a spreadsheet would run as a formula (one beginning
    with ``=``, ``+``, ``-`` or ``@``) gets a leading apostrophe, as OWASP advises.
    """
    text = str(text)
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    return printable(_TSV_SPECIAL.sub(lambda m: _TSV_ESCAPES[m.group()], text))
