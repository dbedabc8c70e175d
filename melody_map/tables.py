"""Stage 1: plain interaction tables, one row per (user, item[, weight]), nothing lost silently.

Besides the Spotify playlists CSV (``playlists.py``), the tool reads the tables most public
recommender data sets ship as, for example:

* the Last.fm split of the reference LightGCN code (``data1.txt`` / ``test1.txt``):
  ``user<TAB>item<TAB>weight``, no header, CRLF line ends;
* HetRec 2011 Last.fm 2K ``user_artists.dat``: header ``userID<TAB>artistID<TAB>weight``,
  CRLF; artist names in ``artists.dat`` (``id<TAB>name<TAB>url<TAB>pictureURL``).

Ids are kept as the strings in the file ("007" stays "007") and coded 0..n-1 in order of
first appearance; pairs come sorted by user code, then item code. Every data row has one
fate, counted in the :class:`~melody_map.types.LoadReport`: kept, merged into another row
of the same (user, item) pair (weights summed), or dropped for a named reason. A few
malformed rows are dropped and counted; a file that is mostly unusable raises
:class:`~melody_map.readers.DataError`. The reading machinery is shared with the
playlists CSV (``readers.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from .playlists import COLUMNS as PLAYLIST_COLUMNS
from .readers import (
    BAD_UTF8,
    BAD_WEIGHT,
    BLANK_LINE,
    EMPTY_FIELD,
    HEAD_BYTES,
    IN_TRAIN,
    SEPARATORS,
    UNKNOWN_ITEM,
    UNKNOWN_USER,
    WRONG_SHAPE,
    Column,
    DataError,
    Line,
    blank_rows,
    clean_columns,
    count_fates,
    delimiter_name,
    dense_codes,
    first_lines,
    parse_columns,
    read_bytes,
    rows_where,
)
from .types import Catalogue, Interactions, LoadReport

__all__ = ["is_table", "read_item_names", "read_item_tags", "read_table", "read_train_test",
           "sniff_table"]

# Reasons that say the file itself is malformed (as opposed to ids it does not share with
# a training file): when these take most rows, the file is rejected rather than trimmed.
FORMAT_REASONS = (WRONG_SHAPE, BAD_UTF8, EMPTY_FIELD, BAD_WEIGHT)
COLUMNS = ("user", "item", "weight")
EXPECTED = "rows of user, item[, weight] separated by a tab or a comma"

# A number as a weight column would hold it; "nan"/"inf" count too, so that such a first
# row is read as data (and dropped as a bad weight) rather than mistaken for a header.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)
# Words that column names of an id column end with ("userID", "artist_id", "item", "uid"...).
_NAME_WORDS = ("id", "ids", "user", "users", "item", "items", "artist", "artists", "track", "tracks",
               "song", "songs", "movie", "movies", "book", "books", "product", "products",
               "playlist", "name", "source", "target", "src", "dst")


# ----------------------------------------------------------------------------- sniffing


@dataclass
class _Sniffed:
    delimiter: str
    has_header: bool
    num_columns: int
    line_start: int  # byte offset of the first non-empty line
    line_end: int  # byte offset just past that line's "\n" (or the end of the data)

    @property
    def layout(self) -> str:
        return (f"{delimiter_name(self.delimiter)}, {'header' if self.has_header else 'no header'}, "
                f"{self.num_columns} columns")


def sniff_table(path: str | os.PathLike, sep: str | None = None) -> tuple[str, bool, int]:
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
      pass ``header=True`` to :func:`read_table` for such a file.

    Args:
        path: the table (CSV or TSV, header optional, LF or CRLF line ends).
        sep: the delimiter itself, when it is known (``--sep``); None sniffs it as above.

    Returns:
        (delimiter, has_header, num_columns).

    Raises:
        DataError: missing, empty, binary file, or a column count other than 2 or 3.
    """
    path = os.fspath(path)
    s = _sniff(read_bytes(path, EXPECTED, limit=HEAD_BYTES + 1), path, sep)
    return s.delimiter, s.has_header, s.num_columns


def is_table(path: str | os.PathLike, sep: str | None = None) -> bool:
    """Whether ``path`` is a plain (user, item[, weight]) table rather than a playlists CSV.

    Args:
        path: any file; one that cannot be sniffed is not a table (the playlists reader
            then says what is wrong with it).
    """
    try:
        if sniff_table(path, sep)[2] not in (2, 3):
            return False
        head = first_lines(read_bytes(os.fspath(path), EXPECTED, limit=HEAD_BYTES + 1), os.fspath(path), EXPECTED)
    except (DataError, OSError, UnicodeDecodeError):
        return False
    # A header naming a playlists column is a playlists CSV (one missing a column, say),
    # whose reader then says what is wrong with it.
    words = re.split(r"[,;\t|]", head[0].text.lower())
    return not any(w.strip(' "') in PLAYLIST_COLUMNS for w in words)


def _sniff(raw: np.ndarray, path: str, sep: str | None = None) -> _Sniffed:
    """Sniff the layout from a file's bytes (all of them, or at least HEAD_BYTES + 1); ``sep``
    (``--sep``'s delimiter) is taken as it is."""
    _refuse_binary(raw, path, EXPECTED)
    lines = first_lines(raw, path, EXPECTED, want=2)
    first, second = lines[0], (lines[1].text if len(lines) > 1 else None)
    delimiter = sep or ("\t" if "\t" in first.text else ",")
    fields = _split_line(first.text, delimiter)
    if len(fields) not in (2, 3):
        found = f"{len(fields)} {delimiter_name(delimiter)} column" + ("s" if len(fields) != 1 else "")
        others = [name for name, d in SEPARATORS.items()
                  if d != delimiter and len(_split_line(first.text, d)) in (2, 3)]
        hint = f" (it splits into 2 or 3 columns on a {others[0]}: pass --sep {others[0]})" if others else ""
        if not others and len(first.text.split()) in (2, 3):
            hint = " (space-separated files are not read: replace the spaces by tabs)"
        raise DataError(f"{path}: first line has {found}{hint}; expected {EXPECTED}: "
                        f"2 columns (user, item) or 3 (user, item, weight)")
    return _Sniffed(delimiter, _is_header(fields, second, delimiter), len(fields), first.start, first.end)


def _refuse_binary(raw: np.ndarray, path: str, expected: str) -> None:
    head = raw[:HEAD_BYTES].tobytes()
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"{path}: is gzip-compressed; decompress it first (expected {expected})")
    if b"\x00" in head:
        raise DataError(f"{path}: holds NUL bytes, so it is binary, not a text table (expected {expected})")


def _split_line(line: str, delimiter: str) -> list[str]:
    # Honour quotes like the parser does ("Crosby, Stills & Nash"), except in tab files, which are not quoted.
    cells = line.split("\t") if delimiter == "\t" else next(csv.reader([line], delimiter=delimiter))
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


# ----------------------------------------------------------------------------- reading


def read_table(path: str | os.PathLike, *, user_ids: Sequence[str] | pa.Array | None = None,
               item_ids: Sequence[str] | pa.Array | None = None, header: bool | None = None,
               sep: str | None = None) -> Interactions:
    """Read a (user, item[, weight]) table into coded, de-duplicated pairs.

    Args:
        path: a CSV or TSV table, layout sniffed by :func:`sniff_table`.
        user_ids: a user vocabulary to code with (``train.catalogue.user_ids``): codes follow
            it, and rows whose user is not in it are dropped as "unknown user". None: build
            one from this file, in order of first appearance.
        item_ids: the same for items ("unknown item"; a row with both unknown counts as
            "unknown user").
        header: override the sniffed header guess (True: skip the first non-empty line).
        sep: the delimiter (``--sep``), instead of sniffing it.

    Returns:
        The distinct pairs, sorted by user then item code, rows of the same pair merged and
        their weights summed; ``playlist`` is None. Ids are the file's strings with
        surrounding whitespace trimmed; the catalogue's ``item_names`` are the item ids (see
        :func:`read_item_names`). Weights must be finite numbers >= 0; a 2-column table
        gives every row weight 1.0.

    Raises:
        DataError: missing, empty or binary file, wrong column count, most rows malformed
            (e.g. a non-numeric weight column), or no usable row at all.
    """
    return _read_table(path, user_ids, item_ids, header, sep)[0]


def _read_table(path: str | os.PathLike, user_ids: Sequence[str] | pa.Array | None,
                item_ids: Sequence[str] | pa.Array | None, header: bool | None,
                sep: str | None) -> tuple[Interactions, _Sniffed]:
    path = os.fspath(path)
    raw = read_bytes(path, EXPECTED)
    sniffed = _sniff(raw, path, sep)
    if header is not None:
        sniffed.has_header = header
    report = LoadReport(path=path, layout=sniffed.layout, pairs=True, dropped=dict.fromkeys(
        (BLANK_LINE, WRONG_SHAPE, BAD_UTF8, EMPTY_FIELD, BAD_WEIGHT, UNKNOWN_USER, UNKNOWN_ITEM), 0))
    # Data starts at the first non-empty line, or after it when it is the header.
    start = sniffed.line_end if sniffed.has_header else sniffed.line_start
    # Tab files are not quoted by convention and their names may hold bare quotes; comma
    # files quote fields that hold commas.
    table = parse_columns(raw[start:], list(COLUMNS[:sniffed.num_columns]), report, EXPECTED,
                          delimiter=sniffed.delimiter, quoted=sniffed.delimiter != "\t")
    del raw
    return _code(clean_columns(table), report, sniffed, user_ids, item_ids), sniffed


def _code(cols: list[Column], report: LoadReport, sniffed: _Sniffed, user_ids: Sequence[str] | pa.Array | None,
          item_ids: Sequence[str] | pa.Array | None) -> Interactions:
    """Give every row its fate, code the kept rows and merge each pair's rows."""
    user, item = cols[0], cols[1]
    sep = sniffed.delimiter
    # Each row has one fate, in this order: blank, invalid UTF-8, empty field, bad weight,
    # unknown user, unknown item, then kept (merged with the other rows of its pair).
    fates = [(BLANK_LINE, blank_rows(cols)), (BAD_UTF8, rows_where(cols, "bad_utf8")),
             (EMPTY_FIELD, rows_where(cols, "empty"))]
    if len(cols) == 3:
        weight = _weights(cols[2].values)[cols[2].codes]
        fates.append((BAD_WEIGHT, np.isnan(weight)))
    else:
        weight = np.ones(len(user.codes), dtype=np.float64)
    live = count_fates(report, cols, fates, sep=sep)
    _reject_if_garbled(report, sniffed)

    # Codes: a given vocabulary's, or new ones in order of first appearance in the file.
    fates = []
    if user_ids is not None:
        user_vocab, index = _vocabulary(user_ids, "user")
        u = index.get_indexer(user.values.to_numpy(zero_copy_only=False))[user.codes]
        fates.append((UNKNOWN_USER, u < 0))
    if item_ids is not None:
        item_vocab, index = _vocabulary(item_ids, "item")
        i = index.get_indexer(item.values.to_numpy(zero_copy_only=False))[item.codes]
        fates.append((UNKNOWN_ITEM, i < 0))
    unseen = None
    if user_ids is not None and item_ids is not None:
        # Rows of a known user whose item is unknown: their distinct pairs, per user.
        cold = live & (u >= 0) & (i < 0)
        cold_keys = np.unique(u[cold] * np.int64(max(len(item.values), 1)) + item.codes[cold])
        unseen = np.bincount(cold_keys // max(len(item.values), 1), minlength=len(user_vocab)).astype(np.int64)
    live = count_fates(report, cols, fates, live=live, sep=sep)
    if user_ids is not None:
        u = u[live]
    else:
        u, used = dense_codes(user.codes[live], num_values=len(user.values))
        user_vocab = user.values.take(pa.array(used))
    if item_ids is not None:
        i = i[live]
    else:
        i, used = dense_codes(item.codes[live], num_values=len(item.values))
        item_vocab = item.values.take(pa.array(used))

    catalogue = Catalogue(user_ids=user_vocab, item_names=item_vocab, item_ids=item_vocab, noun="item")
    return _merge_pairs(u, i, weight[live], catalogue, report, unseen)


def _merge_pairs(u: np.ndarray, i: np.ndarray, weight: np.ndarray, catalogue: Catalogue, report: LoadReport,
                 unseen: np.ndarray | None) -> Interactions:
    """Rows of the same (user, item) pair merged, weights summed: the table's distinct pairs.

    A sort, not a hash table: it is faster at 1M rows and leaves the pairs ordered by user
    then item (CSR-ready), which the split and every per-user list rely on.
    """
    num_items = max(catalogue.num_items, 1)
    keys = u.astype(np.int64) * np.int64(num_items) + i
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    pair_keys = sorted_keys[starts]
    summed = np.add.reduceat(weight[order], starts) if len(keys) else np.zeros(0)
    report.duplicates_merged = len(keys) - len(pair_keys)
    report.rows_kept = len(pair_keys)
    if report.rows_kept == 0:
        raise DataError(_no_rows_message(report))
    return Interactions(user=(pair_keys // num_items).astype(np.int64), item=(pair_keys % num_items).astype(np.int64),
                        weight=summed.astype(np.float32), playlist=None, catalogue=catalogue, report=report,
                        unseen=unseen)


def _weights(values: pa.Array) -> np.ndarray:
    """Distinct weight strings as float64; NaN where not a finite number >= 0."""
    try:
        nums = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Some value is not a number: parse leniently, the failures become NaN (bad weight).
        nums = pd.to_numeric(pd.Series(values.to_pylist(), dtype=object), errors="coerce").to_numpy(np.float64)
    nums = np.asarray(nums, dtype=np.float64)
    return np.where(np.isfinite(nums) & (nums >= 0), nums, np.nan)


def _strings(ids: Sequence[str] | pa.Array) -> np.ndarray:
    """(n,) object array of str."""
    if isinstance(ids, pa.Array | pa.ChunkedArray):
        return ids.to_numpy(zero_copy_only=False).astype(object)
    return np.asarray(ids).astype(str).astype(object)


def _vocabulary(ids: Sequence[str] | pa.Array, what: str) -> tuple[pa.Array, pd.Index]:
    """The vocabulary as stored in the catalogue (a given pa.Array is shared, not copied), and its index."""
    index = pd.Index(_strings(ids), dtype=object)
    if not index.is_unique:
        raise ValueError(f"{what} vocabulary holds duplicate ids; pass the ids of one Interactions table")
    vocab = ids if isinstance(ids, pa.Array) else pa.array(index.to_numpy(), type=pa.large_string())
    return vocab, index


def _reject_if_garbled(report: LoadReport, sniffed: _Sniffed) -> None:
    """A file whose rows are mostly malformed is the wrong file or the wrong layout, not a
    good file with a few bad rows: say so instead of training on the remainder."""
    data_rows = report.rows_read - report.dropped.get(BLANK_LINE, 0)
    bad = {r: report.dropped.get(r, 0) for r in FORMAT_REASONS}
    if data_rows and sum(bad.values()) * 2 > data_rows:
        reason = max(bad, key=bad.get)
        advice = {
            WRONG_SHAPE: f"every row needs {sniffed.num_columns} {delimiter_name(sniffed.delimiter)} fields, "
                         f"as the first line has",
            BAD_UTF8: "re-save the file as UTF-8",
            EMPTY_FIELD: "every row needs a user and an item (and a weight when there are 3 columns)",
            BAD_WEIGHT: "the 3rd column must be a number >= 0 (a weight); drop the column to weigh each row 1",
        }[reason]
        example = report.examples.get(reason, "")
        raise DataError(f"{report.path}: {sum(bad.values()):,} of {data_rows:,} rows unusable, mostly {reason} "
                        f"(e.g. {example!r}); {advice}")


def _no_rows_message(report: LoadReport) -> str:
    unknown = report.dropped.get(UNKNOWN_USER, 0) + report.dropped.get(UNKNOWN_ITEM, 0)
    if unknown:
        return (f"{report.path}: none of its rows has both a user and an item of the training vocabulary; "
                f"are the files from the same data set? ({report.summary()})")
    return f"{report.path}: no usable rows; expected {EXPECTED} ({report.summary()})"


# ----------------------------------------------------------------------------- train/test and names


def read_train_test(train_path: str | os.PathLike, test_path: str | os.PathLike, *, header: bool | None = None,
                    sep: str | None = None) -> tuple[Interactions, Interactions]:
    """Read a fixed train/test split into one code space.

    The test table is coded with the training vocabularies: its rows with a user or item
    never seen in training are dropped and counted ("unknown user"/"unknown item"; the
    distinct pairs of a known user with an unknown item are kept per user in ``unseen``,
    for evaluation to count as misses), and
    its pairs that are also training pairs are dropped and counted ("in train"), since a
    model never recommends a user's training items, so such a test pair can never be hit.

    Args:
        train_path: the training table.
        test_path: the test table, same layout family (sniffed on its own).
        header, sep: as :func:`read_table`'s, for both files.

    Returns:
        (train, test), sharing one catalogue.

    Raises:
        DataError: as :func:`read_table`, for either file; or every test pair is a training pair.
    """
    train = read_table(train_path, header=header, sep=sep)
    cat = train.catalogue
    test, sniffed = _read_table(test_path, cat.user_ids, cat.item_ids, header, sep)
    overlap = np.isin(test.user * cat.num_items + test.item, train.user * cat.num_items + train.item)
    report = test.report
    report.dropped[IN_TRAIN] = int(overlap.sum())
    if overlap.any():
        k = int(np.argmax(overlap))
        report.examples.setdefault(IN_TRAIN, sniffed.delimiter.join(
            [cat.user_ids[int(test.user[k])].as_py(), cat.item_ids[int(test.item[k])].as_py()]))
        report.rows_kept -= int(overlap.sum())
        if report.rows_kept == 0:
            raise DataError(f"{report.path}: every test pair is also a training pair; "
                            f"is it the training file again? ({report.summary()})")
    keep = ~overlap
    test = dataclasses.replace(test, user=test.user[keep], item=test.item[keep], weight=test.weight[keep],
                               catalogue=cat)
    return train, test


def read_item_names(path: str | os.PathLike, item_ids: Sequence[str] | pa.Array) -> np.ndarray:
    """Names for item codes from a names table such as HetRec's ``artists.dat``.

    The first column is the item id, the second its name; further columns (urls) are
    ignored. Delimiter as in :func:`sniff_table` (a tab if the first line has one, else a
    comma). A header needs no detection: its first cell ("id") is not an item id, so it
    names nothing. Ids are matched as trimmed strings; an id listed twice keeps its first
    name; invalid UTF-8 in a name is replaced by U+FFFD.

    Args:
        path: the names table.
        item_ids: ``catalogue.item_ids``, the id of each item code.

    Returns:
        (len(item_ids),) str array: each item's name, "" where the table has none.

    Raises:
        DataError: missing, empty or binary file, or fewer than 2 columns.
    """
    path = os.fspath(path)
    expected = "a text table of id, name rows separated by a tab or a comma"
    raw, first, delimiter, fields = _side_table(path, expected)
    names = [f"c{k}" for k in range(len(fields))]
    scratch = LoadReport(path=path, layout="names")  # rows of another shape are skipped, not reported
    table = parse_columns(raw[first.start:], names, scratch, expected, delimiter=delimiter,
                          quoted=delimiter == ",", include=names[:2])
    ids, labels = clean_columns(table)  # invalid UTF-8 in a name is kept, replaced
    file_ids = ids.values.to_numpy(zero_copy_only=False)[ids.codes]
    file_names = labels.values.to_numpy(zero_copy_only=False)[labels.codes]
    first_of_id = ~pd.Index(file_ids, dtype=object).duplicated()
    index = pd.Index(file_ids[first_of_id], dtype=object)
    pos = index.get_indexer(_strings(item_ids))
    found = file_names[first_of_id][np.maximum(pos, 0)] if len(index) else np.array([""] * len(pos), dtype=object)
    return np.asarray(np.where(pos >= 0, found, ""), dtype=object).astype(str)


def _side_table(path: str, expected: str) -> tuple[np.ndarray, Line, str, list[str]]:
    """A names or tags table's bytes, first line, delimiter (a tab if the first line has one,
    else a comma) and first-line fields; DataError if it is missing, binary, empty or 1 column."""
    raw = read_bytes(path, expected)
    _refuse_binary(raw, path, expected)
    first = first_lines(raw, path, expected)[0]
    delimiter = "\t" if "\t" in first.text else ","
    fields = _split_line(first.text, delimiter)
    if len(fields) < 2:
        raise DataError(f"{path}: first line has 1 column; expected {expected}")
    return raw, first, delimiter, fields


# ----------------------------------------------------------------------------- item tags

TAG_EXPECTED = "rows of item, tag separated by a tab or a comma (or a header naming an item and a tag column)"
_TAG_ITEM_NAMES = ("artistid", "itemid", "item", "artist", "trackid", "track")
_TAG_NAMES = ("tagid", "tag")


def tag_files(pattern: str) -> list[str]:
    """The files ``--item-tags`` names: the path itself, or the files a glob pattern matches, sorted."""
    if os.path.exists(pattern) or not glob.has_magic(pattern):
        return [pattern]
    found = sorted(glob.glob(pattern))
    if not found:
        raise DataError(f"{pattern}: no file matches; expected {TAG_EXPECTED}")
    return found


def read_item_tags(pattern: str, item_ids: Sequence[str] | pa.Array) -> tuple[sp.csr_matrix, list[LoadReport]]:
    """Item tags such as HetRec's ``user_taggedartists.dat``, as an items x tags count matrix.

    A first line naming an item column (``artistID``, ``itemID``, ``item``...) and a tag
    column (``tagID``, ``tag``) is a header and picks those columns, so HetRec's
    ``userID artistID tagID day month year`` reads as it is; otherwise the first two columns
    are the item and the tag. Every row has one fate, counted in its file's report: dropped
    (blank, wrong shape, invalid UTF-8, empty field, or an item the data does not hold),
    kept, or merged into an earlier row of the same (item, tag) pair, whose count it raises.

    Args:
        pattern: one file, or a glob pattern for several (``user_taggedartists.part*.dat``).
        item_ids: ``catalogue.item_ids``, the id of each item code.

    Returns:
        ((items, tags) float32 CSR of row counts, one report per file).

    Raises:
        DataError: a missing, empty or binary file, one column only, or no row naming a known item.
    """
    index = _vocabulary(item_ids, "item")[1]
    items, tags, reports = [], [], []
    for path in tag_files(pattern):
        raw, first, delimiter, fields = _side_table(path, TAG_EXPECTED)
        fields = [re.sub(r"[^a-z]", "", f.lower()) for f in fields]
        named = [next((k for k, f in enumerate(fields) if f == want), None) for want in _TAG_ITEM_NAMES + _TAG_NAMES]
        item_col = next((k for k in named[: len(_TAG_ITEM_NAMES)] if k is not None), None)
        tag_col = next((k for k in named[len(_TAG_ITEM_NAMES):] if k is not None), None)
        header = item_col is not None and tag_col is not None
        item_col, tag_col = (item_col, tag_col) if header else (0, 1)
        names = [f"c{k}" for k in range(len(fields))]
        report = LoadReport(path=path, layout=f"{delimiter_name(delimiter)}, item tags, "
                                              f"{'header' if header else 'no header'}, {len(fields)} columns")
        table = parse_columns(raw[first.end if header else first.start:], names, report, TAG_EXPECTED,
                              delimiter=delimiter, quoted=delimiter == ",",
                              include=[names[min(item_col, tag_col)], names[max(item_col, tag_col)]])
        cols = clean_columns(table)
        item, tag = cols if item_col < tag_col else cols[::-1]
        code = index.get_indexer(item.values.to_numpy(zero_copy_only=False))[item.codes]
        live = count_fates(report, cols, [(BLANK_LINE, blank_rows(cols)), (BAD_UTF8, rows_where(cols, "bad_utf8")),
                                          (EMPTY_FIELD, rows_where(cols, "empty")), (UNKNOWN_ITEM, code < 0)],
                           sep=delimiter)
        keys = np.unique(code[live] * np.int64(max(len(tag.values), 1)) + tag.codes[live])
        report.rows_kept, report.duplicates_merged = len(keys), int(live.sum()) - len(keys)
        report.pairs = True
        items.append(code[live])
        tags.append(tag.values.to_numpy(zero_copy_only=False)[tag.codes[live]])
        reports.append(report)
    item = np.concatenate(items)
    if not len(item):
        raise DataError(f"{pattern}: no row names an item of the data; is it the tag file of another data set? "
                        f"({'; '.join(r.summary() for r in reports)})")
    tag, _ = pd.factorize(np.concatenate(tags))
    counts = sp.csr_matrix((np.ones(len(item), np.float32), (item, tag)), shape=(len(index), tag.max() + 1))
    counts.sum_duplicates()
    return counts, reports
