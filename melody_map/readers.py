"""Stage 1, shared part: from a file's bytes to coded rows, every row's fate counted.

Each input format (``playlists.py``, ``tables.py``) reads its file the same way:

1. :func:`read_bytes` and :func:`first_lines`: the bytes, and the header (or first data
   line) with its BOM and line end removed;
2. :func:`parse_columns`: pyarrow's multi-threaded CSV reader splits the body into *binary*
   columns (invalid UTF-8 must not abort the read), counting rows of the wrong shape;
3. :func:`clean_columns`: each column's *distinct* values are decoded, repaired or flagged,
   unquoted and trimmed once, so cleaning costs little even at millions of rows;
4. :func:`count_fates`: each row gets one fate (kept, or dropped for a named reason);
5. :func:`dense_codes`: kept values become codes 0..n-1 in order of first appearance.

Every format returns ``types.Interactions``: coded rows, the ``types.Catalogue`` of names
behind the codes, and the ``types.LoadReport`` of what was read, kept and dropped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from .types import LoadReport

__all__ = [
    "BAD_UTF8", "BAD_WEIGHT", "BLANK_LINE", "EMPTY_FIELD", "HEAD_BYTES", "SEPARATORS", "IN_TRAIN", "TRAINING_PAIR",
    "UNKNOWN_ITEM", "UNKNOWN_USER", "UNPLAYED_TRACK", "WRONG_SHAPE", "Column", "DataError", "Line",
    "blank_rows", "clean_columns", "count_fates", "delimiter_name", "dense_codes", "first_lines", "parse_columns",
    "read_bytes", "rows_where", "separator_name",
]

# Drop reasons, as printed in the report.
BLANK_LINE = "blank line"
WRONG_SHAPE = "wrong shape"
EMPTY_FIELD = "empty field"
BAD_UTF8 = "invalid UTF-8"
BAD_WEIGHT = "bad weight"
UNKNOWN_USER = "unknown user"
UNKNOWN_ITEM = "unknown item"
IN_TRAIN = "in train"
# A fixed test of playlist data (MPD slices, a playlists CSV): its reasons, as printed.
UNPLAYED_TRACK = "a track no training playlist holds (counted as a miss)"
TRAINING_PAIR = "a training pair"

HEAD_BYTES = 1 << 16  # the header, or the lines a layout is sniffed from, must lie within this
SEPARATORS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}  # the delimiters read, by --sep's names


def separator_name(delimiter: str) -> str:
    """--sep's name of a delimiter ("comma"), or the delimiter itself quoted."""
    return next((name for name, d in SEPARATORS.items() if d == delimiter), repr(delimiter))


def delimiter_name(delimiter: str) -> str:
    """How messages name a file's delimiter: "comma-separated"."""
    return f"{separator_name(delimiter)}-separated"


class DataError(ValueError):
    """Input data that cannot be used; the message is one line that says what to do."""


# ----------------------------------------------------------------------------- bytes and lines


def read_bytes(path: str, expected: str, limit: int | None = None) -> np.ndarray:
    """The file's bytes as a writable uint8 array.

    Args:
        path: the file.
        expected: what the file should hold, for the messages ("a CSV with columns ...").
        limit: read only the first ``limit`` bytes; None: the whole file.

    Raises:
        DataError: the file is missing, a directory, or unreadable.
    """
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found (expected {expected})")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected {expected}")
    try:
        return np.fromfile(path, dtype=np.uint8, count=-1 if limit is None else limit)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


class Line(NamedTuple):
    """One line of a file's head."""

    start: int  # byte offset of the line
    end: int  # byte offset just past its "\n" (or the end of the file)
    text: str  # BOM and line end removed; invalid UTF-8 replaced


def first_lines(raw: np.ndarray, path: str, expected: str, want: int = 1) -> list[Line]:
    """Up to ``want`` non-empty lines from the first :data:`HEAD_BYTES` of a file.

    A last line cut off by the end of ``raw`` counts only when ``raw`` holds the whole file
    (it is at most ``HEAD_BYTES`` long).

    Args:
        raw: the file's bytes, or at least its first ``HEAD_BYTES + 1``.
        path: the file, for the messages.
        expected: what the file should hold, for the messages.
        want: how many lines to return at most.

    Raises:
        DataError: no non-empty line: the file is empty, or its first line is too long.
    """
    head = raw[:HEAD_BYTES].tobytes()
    complete = len(raw) <= HEAD_BYTES
    lines: list[Line] = []
    pos = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    while pos < len(head) and len(lines) < want:
        nl = head.find(b"\n", pos)
        if nl < 0 and not complete:
            break
        end = len(head) if nl < 0 else nl + 1
        text = head[pos:end].decode("utf-8", errors="replace").rstrip("\r\n")
        if text.strip():
            lines.append(Line(pos, end, text))
        pos = end
    if not lines:
        if not complete:
            raise DataError(f"{path}: first line is over {HEAD_BYTES // 1024} KiB long; expected {expected}")
        raise DataError(f"{path}: file is empty; expected {expected}")
    return lines


# ----------------------------------------------------------------------------- parsing


def parse_columns(body: np.ndarray, names: list[str], report: LoadReport, expected: str, *, delimiter: str,
                  quoted: bool, newlines_in_values: bool = False, include: list[str] | None = None,
                  block_size: int = 1 << 22) -> pa.Table:
    """Split a file's body into binary columns, counting the rows the parser skips.

    A row with the wrong number of fields is skipped and counted in ``report.dropped`` as a
    blank line (whitespace only) or wrong shape, with an example; an empty line comes
    through as a row of empty fields. Sets ``report.rows_read`` to every row seen.

    Args:
        body: the bytes after the header (a view of :func:`read_bytes`' array).
        names: one name per column.
        report: the report to count into; its ``path`` is used in messages.
        expected: what the file should hold, for the messages.
        delimiter: the field separator.
        quoted: fields may be double-quoted (a doubled quote inside stands for one).
        newlines_in_values: quoted fields may span lines.
        include: the columns to keep; None keeps all.
        block_size: bytes per parse block (larger for very large files).

    Raises:
        DataError: the body holds nothing but whitespace.
    """
    if len(body) <= HEAD_BYTES and not body.tobytes().strip():  # pyarrow refuses an empty body
        raise DataError(f"{report.path}: only a header, no data rows; expected {expected}")
    skipped = 0

    def skip(row: pcsv.InvalidRow) -> str:
        nonlocal skipped
        text = row.text or ""
        reason = WRONG_SHAPE if text.strip() else BLANK_LINE
        report.dropped[reason] = report.dropped.get(reason, 0) + 1
        report.examples.setdefault(reason, text[:200])
        skipped += 1
        return "skip"

    kept = include or names
    before = (dict(report.dropped), dict(report.examples))
    try:
        table = _read_csv(body, names, kept, delimiter, quoted, newlines_in_values, block_size, skip)
    except pa.ArrowInvalid:
        # pyarrow cannot hand a row of the wrong shape holding invalid UTF-8 to the handler and
        # fails the whole file; read it again with each invalid byte as U+FFFD, which
        # clean_column flags as invalid UTF-8 like any other.
        report.dropped, report.examples = dict(before[0]), dict(before[1])
        skipped = 0
        repaired = np.frombuffer(body.tobytes().decode("utf-8", errors="replace").encode("utf-8"), np.uint8)
        table = _read_csv(repaired, names, kept, delimiter, quoted, newlines_in_values, block_size, skip)
    report.rows_read = table.num_rows + skipped
    return table


def _read_csv(body: np.ndarray, names: list[str], kept: list[str], delimiter: str, quoted: bool,
              newlines_in_values: bool, block_size: int, skip) -> pa.Table:
    return pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(body)),
        read_options=pcsv.ReadOptions(column_names=names, block_size=block_size),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False,
                                        double_quote=True, escape_char=False,
                                        newlines_in_values=newlines_in_values,
                                        ignore_empty_lines=False, invalid_row_handler=skip),
        # Binary, not string or number: invalid UTF-8 or a bad number must not abort the read;
        # each is judged per distinct value by clean_columns, and its rows counted.
        convert_options=pcsv.ConvertOptions(include_columns=kept, column_types={c: pa.binary() for c in kept},
                                            strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


# ----------------------------------------------------------------------------- cleaning


@dataclass
class Column:
    """One column's cleaned distinct values, and per row its code and flags."""

    codes: np.ndarray  # (rows,) int64 code into values, in order of first appearance in the file
    values: pa.Array  # (distinct,) cleaned values (large_string)
    raw_empty: np.ndarray  # (rows,) bool: the field was empty as read
    malformed: np.ndarray  # (rows,) bool: quotes were to be stripped and the field lacked them
    empty: np.ndarray  # (rows,) bool: empty after cleaning
    bad_utf8: np.ndarray  # (rows,) bool: invalid UTF-8 was replaced by U+FFFD


def clean_column(chunks: pa.ChunkedArray | pa.Array, strip_quotes: bool = False) -> Column:
    """Dictionary-encode one binary column, then clean each distinct raw value once.

    Args:
        chunks: the column as parsed.
        strip_quotes: each field should read '"value"' (the playlists' original layout):
            strip the quotes, and flag a field without them as malformed.
    """
    enc = pc.dictionary_encode(chunks.combine_chunks() if isinstance(chunks, pa.ChunkedArray) else chunks)
    raw, raw_codes = enc.dictionary, enc.indices.to_numpy().astype(np.int64)
    bad_utf8 = np.zeros(len(raw), dtype=bool)
    try:
        values = raw.cast(pa.large_string())
        # U+FFFD: a byte some earlier reading (or parse_columns' fallback) could not decode.
        bad_utf8 = pc.match_substring(values, "\ufffd").to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        fixed = []
        for i, v in enumerate(raw.to_pylist()):
            try:
                fixed.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                fixed.append(v.decode("utf-8", errors="replace"))
                bad_utf8[i] = True
        values = pa.array(fixed, type=pa.large_string())
    raw_empty = pc.equal(pc.binary_length(raw), 0).to_numpy(zero_copy_only=False)
    malformed = np.zeros(len(raw), dtype=bool)
    if strip_quotes:
        quoted = pc.and_(pc.greater_equal(pc.utf8_length(values), 2),
                         pc.and_(pc.starts_with(values, '"'), pc.ends_with(values, '"')))
        malformed = ~quoted.to_numpy(zero_copy_only=False)
        values = pc.if_else(quoted, pc.utf8_slice_codeunits(values, 1, -1), values)
    # Trimming can make distinct raw values equal ("7" and " 7"): code them again. The
    # raw dictionary is in order of first appearance, so the new codes are too.
    merged = pc.dictionary_encode(pc.utf8_trim_whitespace(values))
    remap = merged.indices.to_numpy().astype(np.int64)
    empty = pc.equal(pc.utf8_length(merged.dictionary), 0).to_numpy(zero_copy_only=False)
    codes = remap[raw_codes]
    return Column(codes=codes, values=merged.dictionary, raw_empty=raw_empty[raw_codes],
                  malformed=malformed[raw_codes], empty=empty[codes], bad_utf8=bad_utf8[raw_codes])


def clean_columns(table: pa.Table, strip_quotes: bool = False) -> list[Column]:
    """:func:`clean_column` on every column of ``table``, in parallel (pyarrow releases the GIL)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda col: clean_column(col, strip_quotes), table.columns))


def blank_rows(cols: Sequence[Column]) -> np.ndarray:
    """(rows,) bool: every field empty as read (an empty line)."""
    return np.logical_and.reduce([c.raw_empty for c in cols])


def rows_where(cols: Sequence[Column], flag: str) -> np.ndarray:
    """(rows,) bool: some column's ``flag`` ("malformed", "empty" or "bad_utf8") is set."""
    return np.logical_or.reduce([getattr(c, flag) for c in cols])


# ----------------------------------------------------------------------------- fates and codes


def count_fates(report: LoadReport, cols: Sequence[Column], fates: list[tuple[str, np.ndarray]],
                live: np.ndarray | None = None, sep: str = "\t") -> np.ndarray:
    """Drop each live row for the first reason that applies to it, and count it in the report.

    Args:
        report: counts are added to ``report.dropped`` (the parser may have counted some),
            and each reason's first row is kept in ``report.examples``.
        cols: the cleaned columns, to show an example row.
        fates: (reason, (rows,) bool) in order of precedence.
        live: (rows,) bool, the rows still in play; None: all rows.
        sep: joins an example row's fields.

    Returns:
        (rows,) bool: the rows that survived every reason.
    """
    live = np.ones(len(cols[0].codes), dtype=bool) if live is None else live.copy()
    for reason, mask in fates:
        hit = live & mask
        live &= ~mask
        count = int(hit.sum())
        report.dropped[reason] = report.dropped.get(reason, 0) + count
        if count and reason != BLANK_LINE and reason not in report.examples:
            i = int(np.argmax(hit))
            report.examples[reason] = sep.join(c.values[int(c.codes[i])].as_py() for c in cols)
    return live


def dense_codes(keys: np.ndarray, num_values: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..k-1 for the distinct keys, and the key behind each code.

    Args:
        keys: (rows,) int64 keys.
        num_values: None: codes follow each key's first appearance in ``keys``. Given: the
            keys are a :class:`Column`'s codes (0..num_values-1, already in order of first
            appearance in the whole file) and are renumbered keeping that order, without
            hashing; an id seen first in a dropped row so keeps its place.

    Returns:
        (rows,) int64 codes and (k,) the key of each code.
    """
    if num_values is None:
        codes, uniques = pd.factorize(keys)
        return codes.astype(np.int64), np.asarray(uniques)
    used = np.zeros(num_values, dtype=bool)
    used[keys] = True
    renumber = np.cumsum(used) - 1
    return renumber[keys].astype(np.int64), np.flatnonzero(used)
