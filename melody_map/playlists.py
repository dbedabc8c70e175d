"""The Spotify Playlists CSV, read into coded rows with nothing lost silently.

Two layouts are read:

* the original Kaggle file: header ``"user_id", "artistname", "trackname", "playlistname"``
  (a space after each comma), every field double-quoted, inner quotes NOT escaped and
  commas inside names. A standard CSV parser mangles or skips ~11k of its 12.9M rows;
  splitting each line on the three bytes ``","`` recovers them all.
* any standard CSV with the four columns: a pandas re-save of the original (its header
  mangled by doubled quotes, fields quoted only when needed) or a plain four-column file.

A track is (artist, title) and a playlist is (user, name): neither is its name alone.
The reading machinery is shared with the plain tables (``readers.py``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import readers
from .types import Catalogue, Interactions, LoadReport

__all__ = ["COLUMNS", "CSV_LAYOUT", "ORIGINAL_HEADER", "ORIGINAL_LAYOUT", "REAL_DATASET_HINT", "header_columns",
           "read_playlists", "read_playlists_train_test"]

COLUMNS = ("user_id", "artistname", "trackname", "playlistname")
ORIGINAL_HEADER = '"user_id", "artistname", "trackname", "playlistname"'
ORIGINAL_LAYOUT = "original layout"  # split on '","'
CSV_LAYOUT = "csv layout"  # standard quoting
REAL_DATASET_HINT = (
    "the real dataset is 'Spotify Playlists' (Pichl et al. 2015), spotify_dataset.csv on Kaggle"
)
# A fixed test's drop reasons (``read_playlists_train_test``).
UNKNOWN_USER = "a user training lacks"


def read_playlists(path: str | os.PathLike) -> Interactions:
    """Read a playlists CSV, clean it and code it.

    Codes are dense, in order of first appearance among the rows kept. A row repeating an
    earlier row's track in the same playlist is merged into it (counted, not kept).

    Args:
        path: the original Kaggle ``spotify_dataset.csv``, a pandas re-save of it, or any
            CSV with the header ``user_id, artistname, trackname, playlistname``.

    Returns:
        One row per kept (user, track, playlist), weight 1.0, in file order; the catalogue
        holds track titles, artists and playlists; the report says what was dropped and why.

    Raises:
        readers.DataError: missing or unreadable file, wrong columns, or no usable row.
    """
    path = os.fspath(path)
    expected = f"a CSV with columns {', '.join(COLUMNS)}"
    if os.path.basename(path) == "spotify_dataset.csv":
        expected += f"; {REAL_DATASET_HINT}"
    raw = readers.read_bytes(path, expected)
    header = readers.first_lines(raw, path, expected)[0]
    original = header.text == ORIGINAL_HEADER
    delimiter, names = (",", list(COLUMNS)) if original else header_columns(header.text, path)
    layout = (ORIGINAL_LAYOUT if original else CSV_LAYOUT if delimiter == ","
              else f"{readers.delimiter_name(delimiter)} layout")
    report = LoadReport(path=path, layout=layout, dropped=dict.fromkeys((readers.WRONG_SHAPE, readers.EMPTY_FIELD,
                                                                         readers.BLANK_LINE), 0))
    body = raw[header.end:]
    if original:
        delimiter = _mark_separators(body)
    # Columns are read in the file's order and handed on in COLUMNS' order.
    table = readers.parse_columns(body, names, report, expected, delimiter=delimiter, quoted=not original,
                                  newlines_in_values=not original, include=list(COLUMNS), block_size=1 << 25)
    del raw, body

    cols = readers.clean_columns(table, strip_quotes=original)
    del table
    # Each row has one fate: blank line, wrong shape, empty field, or kept.
    fates = [(readers.BLANK_LINE, readers.blank_rows(cols)),
             (readers.WRONG_SHAPE, readers.rows_where(cols, "malformed")),
             (readers.EMPTY_FIELD, readers.rows_where(cols, "empty"))]
    keep = readers.count_fates(report, cols, fates, sep=", ")
    if not keep.any():
        raise readers.DataError(f"{path}: no usable rows left after cleaning; expected {expected} "
                                f"({report.summary()})")
    return _code(cols, keep, readers.rows_where(cols, "bad_utf8")[keep], report)


def read_playlists_train_test(train_path: str | os.PathLike,
                              test_path: str | os.PathLike) -> tuple[Interactions, Interactions]:
    """Read a fixed train/test split of playlists CSVs into the training's code space.

    Both files are read as :func:`read_playlists` reads one. A test row is a (user, track)
    pair to predict; its playlist plays no part. Each test row has one fate: dropped
    because training lacks its user; dropped because its track is in no training playlist
    (such pairs are not added to the catalogue, which would hint at the answer: each user's
    distinct ones are kept in ``unseen``, for evaluation to count as misses); merged into an
    earlier test row of the same pair; dropped as a training pair (never recommended, so
    never hit); or kept.

    Returns:
        (train, test), sharing the training's catalogue.

    Raises:
        readers.DataError: as :func:`read_playlists`, for either file; or no test row is left.
    """
    train = read_playlists(train_path)
    test = read_playlists(test_path)
    cat, tcat, report = train.catalogue, test.catalogue, test.report
    user = _codes_in(tcat.user_ids, cat.user_ids)[test.user]
    item = _codes_in(_track_keys(tcat), _track_keys(cat))[test.item]
    known_user, known_track = user >= 0, item >= 0
    report.dropped[UNKNOWN_USER] = int((~known_user).sum())
    cold = known_user & ~known_track
    report.dropped[readers.UNPLAYED_TRACK] = int(cold.sum())
    cold_pairs = np.unique(user[cold] * tcat.num_items + test.item[cold])
    unseen = np.bincount(cold_pairs // tcat.num_items, minlength=cat.num_users).astype(np.int64)
    pair = user[known_track & known_user] * cat.num_items + item[known_track & known_user]
    distinct = np.unique(pair)
    in_train = np.isin(distinct, train.user * cat.num_items + train.item)
    report.duplicates_merged += len(pair) - len(distinct)
    report.dropped[readers.TRAINING_PAIR] = int(in_train.sum())
    kept = distinct[~in_train]
    report.rows_kept = len(kept)
    for reason, rows in ((UNKNOWN_USER, ~known_user), (readers.UNPLAYED_TRACK, cold)):
        if rows.any():
            k = int(np.argmax(rows))
            report.examples.setdefault(reason, ", ".join(str(x) for x in (
                tcat.user_ids[int(test.user[k])], tcat.artist_names[int(tcat.item_artist[test.item[k]])],
                tcat.item_names[int(test.item[k])])))
    if report.rows_kept == 0 and not unseen.any():
        raise readers.DataError(f"{report.path}: no usable test row; its users must be training users and its "
                                f"pairs new to them ({report.summary()})")
    return train, Interactions(user=kept // cat.num_items, item=kept % cat.num_items,
                               weight=np.ones(len(kept), np.float32), playlist=None, catalogue=cat, report=report,
                               unseen=unseen)


def _track_keys(catalogue: Catalogue) -> pa.Array:
    """Each track's key across files: its artist and title joined by a byte no name holds."""
    artists = catalogue.artist_names.take(pa.array(catalogue.item_artist))
    return pc.binary_join_element_wise(artists, catalogue.item_names, pa.scalar("\x1f", artists.type))


def _codes_in(values: pa.Array, vocabulary: pa.Array) -> np.ndarray:
    """(len(values),) int64: each value's index in ``vocabulary``, -1 where absent."""
    return pc.index_in(values, value_set=vocabulary).fill_null(-1).to_numpy().astype(np.int64)


def header_columns(header: str, path: str) -> tuple[str, list[str]]:
    """The delimiter and the column names, in the file's order, of a playlists CSV's header.

    The four columns may come in any order, separated by commas, semicolons, tabs or pipes;
    names are compared trimmed of spaces and quotes (a pandas re-save wraps them in doubled
    quotes), case-insensitively.

    Raises:
        readers.DataError: the header does not name the four columns; the message says which
            are missing or unknown.
    """
    splits = {d: [c.strip(' "').lower() for c in header.split(d)] for d in readers.SEPARATORS.values()}
    for delimiter, cells in splits.items():
        if sorted(cells) == sorted(COLUMNS):
            return delimiter, cells
    # The split that names the most columns says what is wrong (commas on a tie).
    delimiter = max(splits, key=lambda d: (len(set(splits[d]) & set(COLUMNS)), d == ","))
    cells = splits[delimiter]
    missing = [c for c in COLUMNS if c not in cells]
    unknown = [c for c in cells if c not in COLUMNS]
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"unknown {', '.join(repr(c) for c in unknown[:4])}"] if unknown else []
    seen = f"{readers.delimiter_name(delimiter)} columns {cells}" if len(cells) > 1 else f"one column {cells[0]!r}"
    table = [d for d, split in splits.items() if len(split) in (2, 3) and not set(split) & set(COLUMNS)]
    hint = (f"; or, for a plain table of user, item[, weight], pass --sep {readers.separator_name(table[0])}"
            if table and table[0] != "," else "")
    raise readers.DataError(f"{path}: header has {seen} ({'; '.join(problems)}); expected the columns "
                            f"{', '.join(COLUMNS)}, in any order, separated by commas, semicolons, tabs or "
                            f"pipes{hint}")


def _mark_separators(body: np.ndarray) -> str:
    """Rewrite each separator '","' of the original layout as '"<byte>"', in place.

    Same length, so a plain (quote-free) CSV pass then splits each line into its four
    still-quoted fields. Returns the delimiter: a control byte absent from the file.
    """
    delimiter = _unused_byte(body)
    commas = np.flatnonzero(body[1:-1] == ord(",")) + 1
    sep = commas[(body[commas - 1] == ord('"')) & (body[commas + 1] == ord('"'))]
    body[sep] = delimiter
    return chr(delimiter)


def _unused_byte(body: np.ndarray) -> int:
    """A control byte absent from the file, to serve as the field delimiter."""
    present = np.bincount(body[: 1 << 24], minlength=256) if len(body) < (1 << 24) else None
    for b in (0x1F, 0x1E, 0x1D, 0x1C, 0x01, 0x02, 0x03, 0x04):
        if present is not None:
            if present[b] == 0:
                return b
        elif not (body == b).any():
            return b
    raise readers.DataError("file holds every candidate control byte; cannot split it safely")


def _code(cols: list[readers.Column], keep: np.ndarray, bad_utf8: np.ndarray,
          report: LoadReport) -> Interactions:
    """Code the kept rows: tracks, playlists, users, artists; merge repeated (track, playlist) rows.

    Args:
        cols: the cleaned user, artist, title and playlist-name columns.
        keep: (rows,) bool, the rows that survived cleaning.
        bad_utf8: (kept rows,) bool, invalid UTF-8 replaced in the row.
        report: gets rows kept, duplicates merged and rows with bad UTF-8.
    """
    user, artist, title, plname = cols
    u, a, t, p = (c.codes[keep] for c in cols)
    # Keys are exact int64 pairs: a track is (artist, title), a playlist is (user, name).
    n_titles, n_plnames = len(title.values), len(plname.values)
    track, track_keys = readers.dense_codes(a * n_titles + t)
    playlist, playlist_keys = readers.dense_codes(u * n_plnames + p)
    # Duplicate rows: the same track in the same playlist (the playlist fixes the user).
    # Dropping them removes no track or playlist: each keeps its first row.
    first = ~pd.Series(track * len(playlist_keys) + playlist).duplicated().to_numpy()
    report.duplicates_merged = int((~first).sum())
    report.rows_kept = int(first.sum())
    report.rows_with_bad_utf8 = int(bad_utf8[first].sum())

    user_codes, user_values = readers.dense_codes(u[first])
    user_of_value = np.full(len(user.values), -1, dtype=np.int64)
    user_of_value[user_values] = np.arange(len(user_values))
    item_artist, artist_values = readers.dense_codes(track_keys // n_titles)
    catalogue = Catalogue(
        user_ids=user.values.take(pa.array(user_values)),
        item_names=title.values.take(pa.array(track_keys % n_titles)),
        artist_names=artist.values.take(pa.array(artist_values)),
        item_artist=item_artist.astype(np.int32),
        playlist_names=plname.values.take(pa.array(playlist_keys % n_plnames)),
        playlist_user=user_of_value[playlist_keys // n_plnames].astype(np.int32),
        noun="track",
    )
    return Interactions(user=user_codes, item=track[first], weight=np.ones(report.rows_kept, np.float32),
                                playlist=playlist[first], catalogue=catalogue, report=report)
