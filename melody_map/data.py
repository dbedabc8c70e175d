"""Stage 1: load the Spotify Playlists CSV into integer-coded rows, losing nothing silently.

Two layouts are read:

* the original Kaggle file: header ``"user_id", "artistname", "trackname", "playlistname"``
  (a space after each comma), every field double-quoted, inner quotes NOT escaped and
  commas inside names. A standard CSV parser mangles or skips ~11k of its 12.9M rows;
  splitting each line on the three bytes ``","`` recovers them all.
* any standard CSV with the four columns: a pandas re-save of the original (its header
  mangled by doubled quotes, fields quoted only when needed) or a plain four-column file.

Both are parsed by pyarrow's multi-threaded CSV reader. Cleaning (UTF-8 repair, quote
stripping, whitespace trimming, empty-field checks) runs on each column's *distinct*
values only, so it costs little even at 12.9M rows; rows become integer codes at once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

COLUMNS = ("user_id", "artistname", "trackname", "playlistname")
ORIGINAL_HEADER = '"user_id", "artistname", "trackname", "playlistname"'
REAL_DATASET_HINT = (
    "the real dataset is 'Spotify Playlists' (Pichl et al. 2015), spotify_dataset.csv on Kaggle"
)

# Drop reasons, as printed in the report.
WRONG_SHAPE = "wrong shape"
EMPTY_FIELD = "empty field"
BLANK_LINE = "blank line"


class DataError(ValueError):
    """Input data that cannot be used; the message is one line that says what to do."""


@dataclass
class LoadReport:
    """What the loader read, kept and dropped. ``lines_read == rows_kept + sum(dropped.values())
    + duplicates_merged`` always holds."""

    path: str
    layout: str  # "original" (split on '","') or "csv" (standard quoting)
    lines_read: int = 0  # data lines after the header
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    duplicates_merged: int = 0  # identical (user, artist, track, playlist) rows beyond the first
    rows_with_bad_utf8: int = 0  # kept rows whose invalid UTF-8 bytes were replaced by U+FFFD

    def summary(self) -> str:
        drops = ", ".join(f"{n:,} {why}" for why, n in self.dropped.items() if n) or "none"
        return (
            f"{self.path}: {self.lines_read:,} rows read ({self.layout} layout), "
            f"{self.rows_kept:,} kept; dropped: {drops}; {self.duplicates_merged:,} duplicates merged; "
            f"{self.rows_with_bad_utf8:,} rows had invalid UTF-8 replaced"
        )


@dataclass
class Playlists:
    """Cleaned, de-duplicated rows as integer codes, with the names behind every code.

    A track is (artist, title) and a playlist is (user, name): neither is its name alone.
    Codes are dense, in order of first appearance in the file.
    """

    user: np.ndarray  # (rows,) int32 user code
    track: np.ndarray  # (rows,) int32 track code
    playlist: np.ndarray  # (rows,) int32 playlist code
    track_artist: np.ndarray  # (tracks,) int32 artist code of each track
    playlist_user: np.ndarray  # (playlists,) int32 owner of each playlist
    user_ids: pa.Array  # (users,) the dataset's user_id strings
    artist_names: pa.Array  # (artists,)
    track_titles: pa.Array  # (tracks,)
    playlist_names: pa.Array  # (playlists,)

    @property
    def num_rows(self) -> int:
        return len(self.user)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_tracks(self) -> int:
        return len(self.track_titles)

    @property
    def num_artists(self) -> int:
        return len(self.artist_names)

    @property
    def num_playlists(self) -> int:
        return len(self.playlist_names)


def load_playlists(path: str | os.PathLike) -> tuple[Playlists, LoadReport]:
    """Read a playlists CSV, clean it and code it.

    Args:
        path: the original Kaggle ``spotify_dataset.csv``, a pandas re-save of it, or any
            CSV with the header ``user_id, artistname, trackname, playlistname``.

    Returns:
        The coded rows and a report of what was read, kept and dropped (and why).

    Raises:
        DataError: missing or unreadable file, wrong columns, or no usable row.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    header, body_start = _header(raw, path)
    report = LoadReport(path=path, layout="original" if header == ORIGINAL_HEADER else "csv")
    if report.layout == "csv":
        _check_columns(header, path)
    table, wrong_shape = _parse(raw, body_start, report.layout)
    del raw
    report.lines_read = table.num_rows + wrong_shape
    report.dropped = {WRONG_SHAPE: wrong_shape, EMPTY_FIELD: 0, BLANK_LINE: 0}
    playlists = _encode(table, report)
    if playlists.num_rows == 0:
        raise DataError(f"{path}: no usable rows left after cleaning ({report.summary()})")
    return playlists, report


def _read_bytes(path: str) -> np.ndarray:
    if not os.path.exists(path):
        hint = f"; {REAL_DATASET_HINT}" if os.path.basename(path) == "spotify_dataset.csv" else ""
        raise DataError(f"{path}: file not found (expected a CSV with columns {', '.join(COLUMNS)}{hint})")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a CSV file with columns {', '.join(COLUMNS)}")
    try:
        # A writable array: the original layout's separators are rewritten in place.
        return np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def _header(raw: np.ndarray, path: str) -> tuple[str, int]:
    """The header line (BOM and line end removed) and the offset where data starts."""
    head = raw[: 1 << 16].tobytes()
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    end = head.find(b"\n")
    if end < 0:
        if len(raw) > len(head):
            raise DataError(f"{path}: first line is over 64 KiB long; expected a CSV header {', '.join(COLUMNS)}")
        end = len(head)
    if not head[start:end].strip():
        raise DataError(f"{path}: file is empty; expected a CSV with header {', '.join(COLUMNS)}")
    header = head[start:end].rstrip(b"\r").decode("utf-8", errors="replace")
    return header, end + 1


def _check_columns(header: str, path: str) -> None:
    # The pandas re-save mangles the header to: user_id," ""artistname""",...
    cells = [c.strip(' "').lower() for c in header.split(",")]
    if tuple(cells) != COLUMNS:
        raise DataError(
            f"{path}: wrong columns {cells}; expected a header with {', '.join(COLUMNS)} in that order"
        )


def _parse(raw: np.ndarray, body_start: int, layout: str) -> tuple[pa.Table, int]:
    """Split the body into four binary columns; returns them and the count of wrong-shape lines."""
    body = raw[body_start:]
    if layout == "original":
        delimiter = _unused_byte(body)
        # Each separator '","' becomes '"<delimiter>"': same length, rewritten in place, so a
        # plain (quote-free) CSV pass splits the line into its four still-quoted fields.
        commas = np.flatnonzero(body[1:-1] == ord(",")) + 1
        sep = commas[(body[commas - 1] == ord('"')) & (body[commas + 1] == ord('"'))]
        body[sep] = delimiter
        parse = pcsv.ParseOptions(delimiter=chr(delimiter), quote_char=False, escape_char=False)
    else:
        parse = pcsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False)
    wrong_shape = 0

    def skip(row: pcsv.InvalidRow) -> str:
        nonlocal wrong_shape
        wrong_shape += 1
        return "skip"

    parse.newlines_in_values = layout == "csv"
    parse.ignore_empty_lines = False  # blank lines come through as all-empty rows and are counted
    parse.invalid_row_handler = skip
    table = pcsv.read_csv(
        pa.BufferReader(pa.py_buffer(body)),
        read_options=pcsv.ReadOptions(column_names=list(COLUMNS), block_size=1 << 25),
        parse_options=parse,
        # Binary, not string: invalid UTF-8 must not abort the read; it is repaired per value later.
        convert_options=pcsv.ConvertOptions(
            column_types={c: pa.binary() for c in COLUMNS},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table, wrong_shape


def _unused_byte(body: np.ndarray) -> int:
    """A control byte absent from the file, to serve as the field delimiter."""
    present = np.bincount(body[: 1 << 24], minlength=256) if len(body) < (1 << 24) else None
    for b in (0x1F, 0x1E, 0x1D, 0x1C, 0x01, 0x02, 0x03, 0x04):
        if present is not None:
            if present[b] == 0:
                return b
        elif not (body == b).any():
            return b
    raise DataError("file holds every candidate control byte; cannot split it safely")


@dataclass
class _Column:
    """One column's cleaned distinct values, and per row its code and flags."""

    codes: np.ndarray  # (rows,) int64 code into values
    values: pa.Array  # (distinct,) cleaned values (large_string)
    raw_empty: np.ndarray  # (rows,) bool: the field was empty as read
    malformed: np.ndarray  # (rows,) bool: original layout, the field lacked its quotes
    empty: np.ndarray  # (rows,) bool: empty after cleaning
    bad_utf8: np.ndarray  # (rows,) bool: invalid UTF-8 replaced


def _clean_column(chunks: pa.ChunkedArray, strip_quotes: bool) -> _Column:
    """Dictionary-encode one column, then clean each distinct raw value once."""
    enc = pc.dictionary_encode(chunks.combine_chunks())
    raw = enc.dictionary
    raw_codes = enc.indices.to_numpy()
    bad_utf8 = np.zeros(len(raw), dtype=bool)
    try:
        values = raw.cast(pa.large_string())
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
        # Each field of the original layout reads '"name"' (the separator kept its quotes).
        quoted = pc.and_(pc.greater_equal(pc.utf8_length(values), 2),
                         pc.and_(pc.starts_with(values, '"'), pc.ends_with(values, '"')))
        malformed = ~quoted.to_numpy(zero_copy_only=False)
        values = pc.if_else(quoted, pc.utf8_slice_codeunits(values, 1, -1), values)
    # Trimming can make distinct raw values equal ("a" and " a"): code them again.
    merged = pc.dictionary_encode(pc.utf8_trim_whitespace(values))
    remap = merged.indices.to_numpy().astype(np.int64)
    empty = pc.equal(pc.utf8_length(merged.dictionary), 0).to_numpy(zero_copy_only=False)
    return _Column(codes=remap[raw_codes], values=merged.dictionary, raw_empty=raw_empty[raw_codes],
                   malformed=malformed[raw_codes], empty=empty[remap][raw_codes], bad_utf8=bad_utf8[raw_codes])


def _encode(table: pa.Table, report: LoadReport) -> Playlists:
    strip = report.layout == "original"
    with ThreadPoolExecutor(max_workers=4) as pool:  # pyarrow releases the GIL
        user, artist, title, plname = pool.map(lambda col: _clean_column(col, strip), [table[c] for c in COLUMNS])
    del table
    cols = (user, artist, title, plname)

    # Each row has one fate: blank line, wrong shape, empty field, or kept.
    blank = np.logical_and.reduce([c.raw_empty for c in cols])
    wrong = ~blank & np.logical_or.reduce([c.malformed for c in cols])
    empty = ~blank & ~wrong & np.logical_or.reduce([c.empty for c in cols])
    report.dropped[BLANK_LINE] = int(blank.sum())
    report.dropped[WRONG_SHAPE] += int(wrong.sum())
    report.dropped[EMPTY_FIELD] = int(empty.sum())
    keep = ~(blank | wrong | empty)
    bad_utf8 = np.logical_or.reduce([c.bad_utf8 for c in cols])[keep]

    u, a, t, p = (c.codes[keep] for c in cols)

    # Identities: a track is (artist, title); a playlist is (user, name). Keys are exact
    # int64 pairs, factorised in order of first appearance.
    n_titles, n_plnames = len(title.values), len(plname.values)
    track, track_keys = pd.factorize(a * n_titles + t)
    playlist, playlist_keys = pd.factorize(u * n_plnames + p)
    # Duplicate rows: the same track in the same playlist (the playlist fixes the user).
    # Dropping them removes no track or playlist: each keeps its first row.
    first = ~pd.Series(track.astype(np.int64) * len(playlist_keys) + playlist).duplicated().to_numpy()
    report.duplicates_merged = int((~first).sum())
    report.rows_kept = int(first.sum())
    report.rows_with_bad_utf8 = int(bad_utf8[first].sum())

    user_codes, user_values = pd.factorize(u[first])
    user_of_value = np.full(len(user.values), -1, dtype=np.int64)
    user_of_value[user_values] = np.arange(len(user_values))
    track_artist, artist_values = pd.factorize(track_keys // n_titles)
    return Playlists(
        user=user_codes.astype(np.int32),
        track=track[first].astype(np.int32),
        playlist=playlist[first].astype(np.int32),
        track_artist=track_artist.astype(np.int32),
        playlist_user=user_of_value[playlist_keys // n_plnames].astype(np.int32),
        user_ids=user.values.take(pa.array(user_values)),
        artist_names=artist.values.take(pa.array(artist_values)),
        track_titles=title.values.take(pa.array(track_keys % n_titles)),
        playlist_names=plname.values.take(pa.array(playlist_keys % n_plnames)),
    )
