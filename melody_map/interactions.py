"""Plain interaction tables: one row per (user, item[, weight]) interaction, losing nothing silently.

Besides the Spotify playlists CSV (``data.py``), the tool reads the tables most public
recommender data sets ship as, for example:

* the Last.fm split of the reference LightGCN code (``data1.txt`` / ``test1.txt``):
  ``user<TAB>item<TAB>weight``, no header, CRLF line ends;
* HetRec 2011 Last.fm 2K ``user_artists.dat``: header ``userID<TAB>artistID<TAB>weight``,
  CRLF; artist names in ``artists.dat`` (``id<TAB>name<TAB>url<TAB>pictureURL``).

Ids are kept as the strings in the file ("007" stays "007") and coded 0..n-1 in order of
first appearance; pairs come sorted by user code, then item code. Every data row has one
fate, counted in an :class:`InteractionReport`: kept, merged into another row of the same
(user, item) pair (weights summed), or dropped for a named reason. A few malformed rows
are dropped and counted; a file that is mostly unusable raises
:class:`~melody_map.data.DataError` with a one-line message.

Parsing is pyarrow's multi-threaded CSV reader; cleaning and id lookup run on each
column's *distinct* values only, so a 1M-row table loads in well under a second.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from .data import BLANK_LINE, EMPTY_FIELD, WRONG_SHAPE, DataError

__all__ = [
    "InteractionReport",
    "Interactions",
    "per_user_test_mask",
    "read_interactions",
    "read_item_names",
    "read_train_test",
    "sniff_table",
    "split_per_user",
]

# Drop reasons, as printed in the report (the first three are shared with data.py).
BAD_UTF8 = "invalid UTF-8"
BAD_WEIGHT = "bad weight"
UNKNOWN_USER = "unknown user"
UNKNOWN_ITEM = "unknown item"
IN_TRAIN = "in train"
# Reasons that say the file itself is malformed (as opposed to ids it does not share with
# a training file): when these take most rows, the file is rejected rather than trimmed.
FORMAT_REASONS = (WRONG_SHAPE, BAD_UTF8, EMPTY_FIELD, BAD_WEIGHT)

COLUMNS = ("user", "item", "weight")
EXPECTED = "rows of user, item[, weight] separated by a tab or a comma"
SNIFF_BYTES = 1 << 16

# A number as a weight column would hold it; "nan"/"inf" count too, so that such a first
# row is read as data (and dropped as a bad weight) rather than mistaken for a header.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)
# Words that column names of an id column end with ("userID", "artist_id", "item", "uid"...).
_NAME_WORDS = ("id", "ids", "user", "users", "item", "items", "artist", "artists", "track", "tracks",
               "song", "songs", "movie", "movies", "book", "books", "product", "products",
               "playlist", "name", "source", "target", "src", "dst")


@dataclass
class InteractionReport:
    """What the reader read, kept and dropped. ``rows_read == rows_kept + sum(dropped.values())
    + duplicates_merged`` always holds."""

    path: str
    delimiter: str = "\t"
    has_header: bool = False
    num_columns: int = 3
    rows_read: int = 0  # data rows after the header, blank lines included
    rows_kept: int = 0  # distinct (user, item) pairs kept
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    duplicates_merged: int = 0  # rows of a pair beyond its first, their weights summed into it
    examples: dict[str, str] = field(default_factory=dict)  # reason -> an offending row (for messages)

    def summary(self) -> str:
        """One line: rows read, layout, kept, dropped by reason, duplicates merged."""
        drops = ", ".join(f"{n:,} {why}" for why, n in self.dropped.items() if n) or "none"
        layout = (f"{_delimiter_name(self.delimiter)}, {'header' if self.has_header else 'no header'}, "
                  f"{self.num_columns} columns")
        return (f"{self.path}: {self.rows_read:,} rows read ({layout}), {self.rows_kept:,} pairs kept; "
                f"dropped: {drops}; {self.duplicates_merged:,} duplicate pairs merged (weights summed)")

    def balanced(self) -> bool:
        """True when every row read is accounted for."""
        return self.rows_read == self.rows_kept + sum(self.dropped.values()) + self.duplicates_merged


@dataclass(eq=False)  # numpy fields: the generated __eq__ would be ambiguous
class Interactions:
    """Distinct (user, item) pairs as integer codes, sorted by user then item, with the ids
    behind every code.

    Codes index ``user_ids`` / ``item_ids``; two tables read with the same vocabularies
    (see :func:`read_train_test`) share their codes, so ``num_users``/``num_items`` are the
    vocabulary sizes, not the counts of ids present in this table.
    """

    user: np.ndarray  # (pairs,) int64 code 0..num_users-1
    item: np.ndarray  # (pairs,) int64 code 0..num_items-1
    weight: np.ndarray  # (pairs,) float32, summed over the pair's rows (1.0 per row without a weight column)
    user_ids: np.ndarray  # (num_users,) str: the dataset's user id of each code
    item_ids: np.ndarray  # (num_items,) str: the dataset's item id of each code
    report: InteractionReport
    item_names: np.ndarray | None = None  # (num_items,) str, "" where unknown; see read_item_names

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    def pair_keys(self) -> np.ndarray:
        """One int64 per pair, equal for equal (user, item) within a shared vocabulary."""
        return self.user * np.int64(self.num_items) + self.item

    def subset(self, mask: np.ndarray, report: InteractionReport | None = None) -> Interactions:
        """The pairs where ``mask`` is true, with the same vocabularies (codes unchanged).

        Args:
            mask: (pairs,) bool.
            report: the subset's report; the parent's report when omitted.
        """
        return Interactions(user=self.user[mask], item=self.item[mask], weight=self.weight[mask],
                            user_ids=self.user_ids, item_ids=self.item_ids,
                            report=self.report if report is None else report, item_names=self.item_names)


# ----------------------------------------------------------------------------- sniffing


@dataclass
class _Sniffed:
    delimiter: str
    has_header: bool
    num_columns: int
    line_start: int  # byte offset of the first non-empty line
    line_end: int  # byte offset just past that line's "\n" (or the end of the data)


def sniff_table(path: str | os.PathLike) -> tuple[str, bool, int]:
    """Guess an interaction table's layout from its first lines.

    The rule, on the first non-empty line (and the second, where the first is ambiguous):

    * delimiter: a tab if the line holds one, else a comma;
    * columns: 2 (user, item; each row weighs 1.0) or 3 (user, item, weight); anything else
      raises DataError;
    * header: present when
      (a) there are 3 columns and the 3rd field is not a number: a weight is always a
          number, so a word there can only be a column name (HetRec ``userID artistID
          weight``); or
      (b) neither id field is a number and either the next line's two ids both are (the
          values change type below the first line) or both fields read like column names
          (they end with a word such as "id", "user", "item", "artist": ``user,item``).
      An all-number first line (the LightGCN ``424<TAB>4076<TAB>993``) is always data.
      A header of other words over non-numeric ids (``listener,band``) is read as data:
      pass ``header=True`` to :func:`read_interactions` for such a file.

    Args:
        path: the table (CSV or TSV, header optional, LF or CRLF line ends).

    Returns:
        (delimiter, has_header, num_columns).

    Raises:
        DataError: missing, empty, binary file, or a column count other than 2 or 3.
    """
    path = os.fspath(path)
    _check_path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES + 1)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    s = _sniff(head[:SNIFF_BYTES], path, complete=len(head) <= SNIFF_BYTES)
    return s.delimiter, s.has_header, s.num_columns


def _sniff(head: bytes, path: str, complete: bool) -> _Sniffed:
    """Sniff the layout from the file's first bytes (``complete``: they are the whole file)."""
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}: is gzip-compressed; decompress it first (expected {EXPECTED})")
    if b"\x00" in head:
        raise DataError(f"{path}: holds NUL bytes, so it is binary, not a text table (expected {EXPECTED})")
    lines = _complete_lines(head, complete)
    if not lines:
        if not complete:
            raise DataError(f"{path}: first line is over 64 KiB long; expected {EXPECTED}")
        raise DataError(f"{path}: file is empty; expected {EXPECTED}")
    (start, end, first), second = lines[0], (lines[1][2] if len(lines) > 1 else None)
    delimiter = "\t" if "\t" in first else ","
    fields = _split_line(first, delimiter)
    if len(fields) not in (2, 3):
        found = f"{len(fields)} {_delimiter_name(delimiter)} column" + ("s" if len(fields) != 1 else "")
        hint = " (space- or ';'-separated files are not read)" if len(fields) == 1 else ""
        raise DataError(f"{path}: first line has {found}{hint}; expected {EXPECTED}: "
                        f"2 columns (user, item) or 3 (user, item, weight)")
    return _Sniffed(delimiter, _is_header(fields, second, delimiter), len(fields), start, end)


def _complete_lines(head: bytes, complete: bool, want: int = 2) -> list[tuple[int, int, str]]:
    """Up to ``want`` non-empty lines as (start, end past newline, text), BOM and CR removed.

    A last line cut off by the end of ``head`` counts only when ``head`` is the whole file.
    """
    out: list[tuple[int, int, str]] = []
    pos = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    while pos < len(head) and len(out) < want:
        nl = head.find(b"\n", pos)
        if nl < 0 and not complete:
            break
        end = len(head) if nl < 0 else nl + 1
        text = head[pos:end].decode("utf-8", errors="replace").rstrip("\r\n")
        if text.strip():
            out.append((pos, end, text))
        pos = end
    return out


def _split_line(line: str, delimiter: str) -> list[str]:
    # Commas: honour quotes like the parser does ("Crosby, Stills & Nash"); tabs: plain split.
    cells = next(csv.reader([line], delimiter=",")) if delimiter == "," else line.split("\t")
    return [c.strip() for c in cells]


def _is_number(s: str) -> bool:
    return _NUMBER.fullmatch(s.strip()) is not None


def _looks_like_name(s: str) -> bool:
    word = re.sub(r"[^a-z]", "", s.lower())
    return bool(word) and word.endswith(_NAME_WORDS)


def _is_header(fields: list[str], second: str | None, delimiter: str) -> bool:
    if len(fields) == 3 and not _is_number(fields[2]):
        return True
    if _is_number(fields[0]) or _is_number(fields[1]):
        return False
    if second is not None:
        below = _split_line(second, delimiter)
        if len(below) >= 2 and _is_number(below[0]) and _is_number(below[1]):
            return True
    return _looks_like_name(fields[0]) and _looks_like_name(fields[1])


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab-separated", ",": "comma-separated"}.get(delimiter, f"{delimiter!r}-separated")


# ----------------------------------------------------------------------------- reading


def read_interactions(path: str | os.PathLike, *, user_ids: np.ndarray | None = None,
                      item_ids: np.ndarray | None = None, header: bool | None = None) -> Interactions:
    """Read a (user, item[, weight]) table into coded, de-duplicated pairs.

    Args:
        path: a CSV or TSV table, layout sniffed by :func:`sniff_table`.
        user_ids: a user vocabulary to code with (``train.user_ids``): codes follow it, and
            rows whose user is not in it are dropped as "unknown user". None: build one from
            this file, in order of first appearance.
        item_ids: the same for items ("unknown item"; a row with both unknown counts as
            "unknown user").
        header: override the sniffed header guess (True: skip the first non-empty line).

    Returns:
        The pairs (rows of the same pair merged, weights summed) with a report of every row's
        fate. Ids are the file's strings with surrounding whitespace trimmed. Weights must be
        finite numbers >= 0; a 2-column table gives every row weight 1.0.

    Raises:
        DataError: missing, empty or binary file, wrong column count, most rows malformed
            (e.g. a non-numeric weight column), or no usable row at all.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    sniffed = _sniff(raw[:SNIFF_BYTES], path, complete=len(raw) <= SNIFF_BYTES)
    if header is not None:
        sniffed.has_header = header
    report = InteractionReport(path=path, delimiter=sniffed.delimiter, has_header=sniffed.has_header,
                               num_columns=sniffed.num_columns)
    # Data starts at the first non-empty line, or after it when it is the header.
    start = sniffed.line_end if sniffed.has_header else sniffed.line_start
    if len(raw) - start <= SNIFF_BYTES and not raw[start:].strip():  # pyarrow refuses an empty body
        raise DataError(f"{path}: only a header, no data rows; expected {EXPECTED}")
    table, shape_drops = _parse(raw, start, sniffed.delimiter, sniffed.num_columns, report)
    del raw
    report.rows_read = table.num_rows + sum(shape_drops.values())
    report.dropped = {BLANK_LINE: shape_drops[BLANK_LINE], WRONG_SHAPE: shape_drops[WRONG_SHAPE],
                      BAD_UTF8: 0, EMPTY_FIELD: 0, BAD_WEIGHT: 0, UNKNOWN_USER: 0, UNKNOWN_ITEM: 0}
    return _encode(table, report, user_ids, item_ids)


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found (expected a table of {EXPECTED})")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a table of {EXPECTED}")


def _read_bytes(path: str) -> bytes:
    _check_path(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def _parse(raw: bytes, start: int, delimiter: str, num_columns: int,
           report: InteractionReport) -> tuple[pa.Table, dict[str, int]]:
    """Split the body into binary columns; returns them and the counts of rows skipped by shape."""
    drops = {BLANK_LINE: 0, WRONG_SHAPE: 0}

    def skip(row: pcsv.InvalidRow) -> str:
        # Rows with the wrong field count; a whitespace-only line is a blank line, not garbage.
        reason = BLANK_LINE if not (row.text or "").strip() else WRONG_SHAPE
        drops[reason] += 1
        report.examples.setdefault(reason, (row.text or "")[:200])
        return "skip"

    names = list(COLUMNS[:num_columns])
    table = pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(raw).slice(start)),
        read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 22),
        # Tab files are not quoted by convention and their names may hold bare quotes; comma
        # files quote fields that hold commas.
        parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if delimiter == "," else False,
                                        double_quote=True, escape_char=False, newlines_in_values=False,
                                        ignore_empty_lines=False, invalid_row_handler=skip),
        # Binary, not string or number: invalid UTF-8 or a bad weight must not abort the read;
        # each is judged per distinct value below, and its rows dropped and counted.
        convert_options=pcsv.ConvertOptions(column_types={c: pa.binary() for c in names},
                                            strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    return table, drops


@dataclass
class _Column:
    """One column's cleaned distinct values, and per row its code and flags."""

    codes: np.ndarray  # (rows,) int64 code into values
    values: pa.Array  # (distinct,) trimmed strings
    raw_empty: np.ndarray  # (rows,) bool: the field was empty as read
    empty: np.ndarray  # (rows,) bool: empty after trimming
    bad_utf8: np.ndarray  # (rows,) bool


def _clean_column(chunks: pa.ChunkedArray, replace_bad_utf8: bool = False) -> _Column:
    """Dictionary-encode one column, then decode and trim each distinct raw value once."""
    enc = pc.dictionary_encode(chunks.combine_chunks() if isinstance(chunks, pa.ChunkedArray) else chunks)
    raw, raw_codes = enc.dictionary, enc.indices.to_numpy().astype(np.int64)
    bad = np.zeros(len(raw), dtype=bool)
    try:
        values = raw.cast(pa.string())
    except pa.ArrowInvalid:
        fixed = []
        for i, v in enumerate(raw.to_pylist()):
            try:
                fixed.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                fixed.append(v.decode("utf-8", errors="replace"))
                bad[i] = not replace_bad_utf8
        values = pa.array(fixed, type=pa.string())
    raw_empty = pc.equal(pc.binary_length(raw), 0).to_numpy(zero_copy_only=False)
    # Trimming can make distinct raw values equal ("7" and " 7"): code them again.
    merged = pc.dictionary_encode(pc.utf8_trim_whitespace(values))
    remap = merged.indices.to_numpy().astype(np.int64)
    empty = pc.equal(pc.utf8_length(merged.dictionary), 0).to_numpy(zero_copy_only=False)
    codes = remap[raw_codes]
    return _Column(codes=codes, values=merged.dictionary, raw_empty=raw_empty[raw_codes], empty=empty[codes],
                   bad_utf8=bad[raw_codes])


def _weights(values: pa.Array) -> np.ndarray:
    """Distinct weight strings as float64; NaN where not a finite number >= 0."""
    try:
        nums = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Some value is not a number: parse leniently, the failures become NaN (bad weight).
        nums = pd.to_numeric(pd.Series(values.to_pylist(), dtype=object), errors="coerce").to_numpy(np.float64)
    nums = np.asarray(nums, dtype=np.float64)
    return np.where(np.isfinite(nums) & (nums >= 0), nums, np.nan)


def _vocab_index(vocab: np.ndarray, what: str) -> pd.Index:
    index = pd.Index(np.asarray(vocab).astype(str), dtype=object)
    if not index.is_unique:
        raise ValueError(f"{what} vocabulary holds duplicate ids; pass the ids of one Interactions table")
    return index


def _encode(table: pa.Table, report: InteractionReport, user_ids: np.ndarray | None,
            item_ids: np.ndarray | None) -> Interactions:
    names = table.column_names
    cols = [_clean_column(table[c]) for c in names]
    user, item = cols[0], cols[1]
    n = table.num_rows
    del table

    # Each row has one fate, in this order: blank, invalid UTF-8, empty field, bad weight,
    # unknown user, unknown item, then kept (merged with the other rows of its pair).
    blank = np.logical_and.reduce([c.raw_empty for c in cols])
    live = ~blank
    fates: list[tuple[str, np.ndarray]] = [(BLANK_LINE, blank)]
    bad_utf8 = live & np.logical_or.reduce([c.bad_utf8 for c in cols])
    live &= ~bad_utf8
    empty = live & np.logical_or.reduce([c.empty for c in cols])
    live &= ~empty
    fates += [(BAD_UTF8, bad_utf8), (EMPTY_FIELD, empty)]
    if len(cols) == 3:
        w_of_value = _weights(cols[2].values)
        weight = w_of_value[cols[2].codes]
        bad_weight = live & np.isnan(weight)
        live &= ~bad_weight
        fates.append((BAD_WEIGHT, bad_weight))
    else:
        weight = np.ones(n, dtype=np.float64)

    def row_text(i: int) -> str:
        return report.delimiter.join(c.values[c.codes[i]].as_py() for c in cols)

    _count(fates, report, row_text)
    _reject_if_garbled(report)

    # Codes: a given vocabulary's, or new ones in order of first appearance in the file.
    if user_ids is not None:
        u_of_value = _vocab_index(user_ids, "user").get_indexer(user.values.to_numpy(zero_copy_only=False))
        u = u_of_value[user.codes]
        unknown_user = live & (u < 0)
        live &= ~unknown_user
        fates2 = [(UNKNOWN_USER, unknown_user)]
    else:
        fates2 = []
    if item_ids is not None:
        i_of_value = _vocab_index(item_ids, "item").get_indexer(item.values.to_numpy(zero_copy_only=False))
        i = i_of_value[item.codes]
        unknown_item = live & (i < 0)
        live &= ~unknown_item
        fates2.append((UNKNOWN_ITEM, unknown_item))
    _count(fates2, report, row_text)

    if user_ids is not None:
        u, user_vocab = u[live], np.asarray(user_ids).astype(str, copy=False)  # shared, not copied
    else:
        u, user_vocab = _dense_codes(user, live)
    if item_ids is not None:
        i, item_vocab = i[live], np.asarray(item_ids).astype(str, copy=False)
    else:
        i, item_vocab = _dense_codes(item, live)

    # Rows of the same pair merge, weights summed. A sort, not a hash table: it is faster at
    # 1M rows and leaves the pairs ordered by user then item (CSR-ready).
    keys = u.astype(np.int64) * np.int64(max(len(item_vocab), 1)) + i
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    pair_keys = sorted_keys[starts]
    summed = np.add.reduceat(weight[live][order], starts) if len(keys) else np.zeros(0)
    report.rows_kept = len(pair_keys)
    report.duplicates_merged = int(live.sum()) - len(pair_keys)
    if report.rows_kept == 0:
        raise DataError(_no_rows_message(report))
    return Interactions(user=(pair_keys // max(len(item_vocab), 1)).astype(np.int64),
                        item=(pair_keys % max(len(item_vocab), 1)).astype(np.int64),
                        weight=summed.astype(np.float32), user_ids=user_vocab, item_ids=item_vocab, report=report)


def _dense_codes(col: _Column, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..k-1 for the ids of usable rows, and those ids.

    The column's codes already follow first appearance in the file (dictionary encoding
    assigns them in row order); dropping the ids that only occur in dropped rows and
    renumbering keeps that order, in O(rows) without hashing.
    """
    used = np.zeros(len(col.values), dtype=bool)
    used[col.codes[live]] = True
    renumber = np.cumsum(used) - 1
    return renumber[col.codes[live]], _to_str_array(col.values.take(pa.array(np.flatnonzero(used))))


def _count(fates: list[tuple[str, np.ndarray]], report: InteractionReport, row_text) -> None:
    for reason, mask in fates:
        count = int(mask.sum())
        # Added, not set: blank lines may already be counted by the parser's row handler.
        report.dropped[reason] = report.dropped.get(reason, 0) + count
        if count and reason not in report.examples and reason != BLANK_LINE:
            report.examples[reason] = row_text(int(np.argmax(mask)))


def _reject_if_garbled(report: InteractionReport) -> None:
    """A file whose rows are mostly malformed is the wrong file or the wrong layout, not a
    good file with a few bad rows: say so instead of training on the remainder."""
    data_rows = report.rows_read - report.dropped.get(BLANK_LINE, 0)
    bad = {r: report.dropped.get(r, 0) for r in FORMAT_REASONS}
    if data_rows and sum(bad.values()) * 2 > data_rows:
        reason = max(bad, key=bad.get)
        advice = {
            WRONG_SHAPE: f"every row needs {report.num_columns} {_delimiter_name(report.delimiter)} fields, "
                         f"as the first line has",
            BAD_UTF8: "re-save the file as UTF-8",
            EMPTY_FIELD: "every row needs a user and an item (and a weight when there are 3 columns)",
            BAD_WEIGHT: "the 3rd column must be a number >= 0 (a weight); drop the column to weigh each row 1",
        }[reason]
        example = report.examples.get(reason, "")
        raise DataError(f"{report.path}: {sum(bad.values()):,} of {data_rows:,} rows unusable, mostly {reason} "
                        f"(e.g. {example!r}); {advice}")


def _no_rows_message(report: InteractionReport) -> str:
    unknown = report.dropped.get(UNKNOWN_USER, 0) + report.dropped.get(UNKNOWN_ITEM, 0)
    if unknown:
        return (f"{report.path}: none of its rows has both a user and an item of the training vocabulary; "
                f"are the files from the same data set? ({report.summary()})")
    return f"{report.path}: no usable rows; expected {EXPECTED} ({report.summary()})"


def _to_str_array(values: pa.Array) -> np.ndarray:
    # Fixed-width str, not object: saves with np.save without pickling.
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object).astype(str)


# ----------------------------------------------------------------------------- train/test


def read_train_test(train_path: str | os.PathLike, test_path: str | os.PathLike) -> tuple[Interactions, Interactions]:
    """Read a fixed train/test split into one code space.

    The test table is coded with the training vocabularies: its rows with a user or item
    never seen in training are dropped and counted ("unknown user"/"unknown item"), and
    its pairs that are also training pairs are dropped and counted ("in train"), since a
    model never recommends a user's training items, so such a test pair can never be hit.

    Args:
        train_path: the training table.
        test_path: the test table, same layout family (sniffed on its own).

    Returns:
        (train, test) sharing ``user_ids``/``item_ids``.

    Raises:
        DataError: as :func:`read_interactions`, for either file.
    """
    train = read_interactions(train_path)
    test = read_interactions(test_path, user_ids=train.user_ids, item_ids=train.item_ids)
    overlap = np.isin(test.pair_keys(), train.pair_keys())
    report = test.report
    report.dropped[IN_TRAIN] = int(overlap.sum())
    if overlap.any():
        k = int(np.argmax(overlap))
        report.examples.setdefault(IN_TRAIN, report.delimiter.join([test.user_ids[test.user[k]],
                                                                    test.item_ids[test.item[k]]]))
        report.rows_kept -= int(overlap.sum())
        test = test.subset(~overlap)
        if report.rows_kept == 0:
            raise DataError(f"{report.path}: every test pair is also a training pair; "
                            f"is it the training file again? ({report.summary()})")
    return train, test


def read_item_names(path: str | os.PathLike, item_ids: np.ndarray) -> np.ndarray:
    """Names for item codes from a names table such as HetRec's ``artists.dat``.

    The first column is the item id, the second its name; further columns (urls) are
    ignored. Delimiter as in :func:`sniff_table` (a tab if the first line has one, else a
    comma). A header needs no detection: its first cell ("id") is not an item id, so it
    names nothing. Ids are matched as trimmed strings; an id listed twice keeps its first
    name; invalid UTF-8 in a name is replaced by U+FFFD.

    Args:
        path: the names table.
        item_ids: ``Interactions.item_ids``, the id of each item code.

    Returns:
        (len(item_ids),) str array: each item's name, "" where the table has none.

    Raises:
        DataError: missing, empty or binary file, or fewer than 2 columns.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    head = raw[:SNIFF_BYTES]
    if b"\x00" in head or head.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}: binary or compressed file; expected a text table of id, name rows")
    lines = _complete_lines(head, complete=len(raw) <= SNIFF_BYTES, want=1)
    if not lines:
        raise DataError(f"{path}: file is empty or its first line is over 64 KiB; expected id, name rows")
    start, _, first = lines[0]
    delimiter = "\t" if "\t" in first else ","
    ncols = len(_split_line(first, delimiter))
    if ncols < 2:
        raise DataError(f"{path}: first line has 1 column; expected id and name separated by a tab or a comma")
    names = [f"c{k}" for k in range(ncols)]
    table = pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(raw).slice(start)),
        read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 22),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if delimiter == "," else False,
                                        escape_char=False, invalid_row_handler=lambda row: "skip"),
        convert_options=pcsv.ConvertOptions(include_columns=names[:2],
                                            column_types={c: pa.binary() for c in names[:2]},
                                            strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    ids, labels = (_clean_column(table[c], replace_bad_utf8=True) for c in names[:2])
    file_ids = ids.values.to_numpy(zero_copy_only=False)[ids.codes]
    file_names = labels.values.to_numpy(zero_copy_only=False)[labels.codes]
    first_of_id = ~pd.Index(file_ids, dtype=object).duplicated()
    index = pd.Index(file_ids[first_of_id], dtype=object)
    pos = index.get_indexer(np.asarray(item_ids).astype(str).astype(object))
    found = file_names[first_of_id][np.maximum(pos, 0)] if len(index) else np.array([""] * len(pos), dtype=object)
    out = np.where(pos >= 0, found, "")
    return np.asarray(out, dtype=object).astype(str)


# ----------------------------------------------------------------------------- split


def per_user_test_mask(user: np.ndarray, test_frac: float = 0.2, seed: int = 0, min_items: int = 2) -> np.ndarray:
    """A seeded per-user random hold-out: which pairs go to the test side.

    Each user with at least ``min_items`` pairs sends ``round(test_frac * n)`` of them,
    clipped to [1, n - 1], to the test side, so both sides hold at least one; users with
    fewer pairs keep all of them in training (nothing to learn from, or test on, otherwise).

    Args:
        user: (pairs,) user code of each pair.
        test_frac: share of each eligible user's pairs held out, in (0, 1).
        seed: the same seed (and pair order) gives the same mask.
        min_items: smallest pair count for a user to be split; at least 2.

    Returns:
        (pairs,) bool, True for a test pair.
    """
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}")
    if min_items < 2:
        raise ValueError(f"min_items must be at least 2 (a user needs a pair on each side), got {min_items}")
    user = np.asarray(user, dtype=np.int64)
    n = len(user)
    if n == 0:
        return np.zeros(0, dtype=bool)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), user))  # by user, random within a user
    counts = np.bincount(user)
    starts = np.cumsum(counts) - counts
    sorted_user = user[order]
    rank = np.arange(n) - starts[sorted_user]
    # floor(x + 0.5), not np.rint: rint rounds halves to even (2.5 -> 2).
    n_test = np.clip(np.floor(test_frac * counts + 0.5), 1, np.maximum(counts - 1, 1))
    n_test = np.where(counts >= min_items, n_test, 0)
    mask = np.zeros(n, dtype=bool)
    mask[order] = rank < n_test[sorted_user]
    return mask


def split_per_user(inter: Interactions, test_frac: float = 0.2, seed: int = 0,
                   min_items: int = 2) -> tuple[Interactions, Interactions]:
    """Split pairs per user into train and test (the HetRec protocol: a random 80/20 per user).

    Args:
        inter: the pairs to split.
        test_frac: share of each eligible user's pairs held out.
        seed: the same seed gives the same split.
        min_items: users with fewer pairs stay wholly in train; at least 2.

    Returns:
        (train, test): disjoint, together all of ``inter``'s pairs, both with ``inter``'s
        vocabularies (same codes) and item names.
    """
    mask = per_user_test_mask(inter.user, test_frac, seed, min_items)
    parts = []
    for side, keep in (("train", ~mask), ("test", mask)):
        n = int(keep.sum())
        report = InteractionReport(path=f"{inter.report.path} [{side} side of per-user split, "
                                        f"test_frac={test_frac}, seed={seed}]",
                                   delimiter=inter.report.delimiter, has_header=inter.report.has_header,
                                   num_columns=inter.report.num_columns, rows_read=n, rows_kept=n)
        parts.append(inter.subset(keep, report))
    return parts[0], parts[1]
