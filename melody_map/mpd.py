"""Stage 1 for Spotify's Million Playlist Dataset (MPD, RecSys Challenge 2018): JSON slices.

A slice is one JSON object ``{"info": {...}, "playlists": [...]}``; each playlist has a
``pid``, a ``name`` and ``tracks``, each track ``track_uri``, ``track_name`` and
``artist_name`` (the full schema adds ``artist_uri``, ``album_uri``, ``pos`` and more; the
challenge set's playlists have the same fields). ``--data`` names one slice, a folder of
slices, or a quoted glob; slices are read one at a time, in name order.

MPD has no users: a playlist is its own listener. Each playlist is one user node (its
``pid`` the user id, its name kept beside it), so the graph holds playlist-track edges and
track-artist edges and no separate playlist nodes. A track is its ``track_uri`` (else its
artist and title), an artist its ``artist_uri`` (else its name), an album its ``album_uri``
(where the file has one: albums are nodes beside artists).

Every playlist and every track row has one fate, counted in two reports: a playlist is kept,
or dropped (not an object, no whole-number ``pid``, a ``pid`` seen before, no track list); a
track row is kept, merged into an earlier row of the same track in the same playlist, or
dropped (not an object, no track, no artist, or in a dropped playlist).
"""

from __future__ import annotations

import csv
import glob
import json
import os
from array import array

import numpy as np
import pyarrow as pa

from .readers import TRAINING_PAIR, UNPLAYED_TRACK, DataError
from .types import Catalogue, Interactions, LoadReport

__all__ = ["EXPECTED", "is_mpd", "mpd_files", "read_catalogue", "read_mpd", "read_mpd_data", "read_mpd_train_test"]

EXPECTED = ("MPD slices: JSON objects with a 'playlists' list, each playlist with a pid and tracks "
            "(track_uri, track_name, artist_name)")
# Drop reasons, as printed in the reports.
NOT_AN_OBJECT = "not an object"
NO_PID = "no pid"
DUPLICATE_PID = "pid seen before"
NO_TRACK_LIST = "no track list"
NO_TRACK = "no track (no track_uri, no artist and title)"
NO_ARTIST = "no artist"
IN_DROPPED_PLAYLIST = "in a dropped playlist"
# A fixed test's drop reasons (``read_mpd_train_test``).
UNKNOWN_PLAYLIST = "in a playlist whose pid the training slices lack"
UNKNOWN_TRACK = UNPLAYED_TRACK
IN_TRAIN = TRAINING_PAIR


def mpd_files(path: str | os.PathLike) -> list[str] | None:
    """The slice files ``path`` names, sorted: a ``.json`` file, a folder's ``.json`` files, or a
    glob's matches; None when ``path`` names no JSON (another format's file)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return sorted(glob.glob(os.path.join(path, "*.json"))) or None
    if glob.has_magic(path) and not os.path.exists(path):
        found = sorted(glob.glob(path))
        return found if found and all(f.endswith(".json") for f in found) else None
    return [path] if path.endswith(".json") else None


def is_mpd(path: str | os.PathLike) -> bool:
    """Whether ``path`` names MPD slices (JSON) rather than a CSV or a table."""
    return mpd_files(path) is not None


class _Coder:
    """Codes the rows as they are read: a kept row is two integers (its playlist's code and its
    track's), and a track's, an artist's and an album's names are kept once, at first sight.
    Codes follow the order of first appearance."""

    def __init__(self) -> None:
        self.pid: list[str] = []  # per playlist kept
        self.name: list[str] = []
        self.modified = array("q")  # per playlist kept: its modified_at (seconds since 1970), -1 where absent
        self.user, self.item = array("q"), array("q")  # per track row kept
        self.position = array("i")  # per track row kept: its pos, else its place in the playlist's list
        self.tracks: dict[str, int] = {}  # track key (track_uri, else artist + title) -> code
        self.title: list[str] = []
        self.uri: list[str] = []
        self.item_artist, self.item_album = array("i"), array("i")  # per track; -1: no album
        self.artists: dict[str, int] = {}  # artist_uri, else its name -> code
        self.artist_name: list[str] = []
        self.albums: dict[str, int] = {}  # album_uri -> code
        self.album_name: list[str] = []

    def add(self, playlist: int, key: str, row: dict, place: int) -> None:
        """One kept row: ``playlist``'s code, the track ``key`` names (coded at first sight) and the
        row's position: its ``pos`` where it has a whole one, else ``place``, its index in the list."""
        self._add_row(playlist, self.track(key, row), row, place)

    def track(self, key: str, row: dict) -> int:
        """The track ``key``'s code, a new one at first sight (its title, URI, artist and album kept)."""
        code = self.tracks.get(key)
        if code is None:
            code = self.tracks[key] = len(self.tracks)
            artist_name = str(row.get("artist_name") or "").strip()
            artist_uri = str(row.get("artist_uri") or "").strip()
            self.title.append(str(row.get("track_name") or "").strip())
            self.uri.append(str(row.get("track_uri") or "").strip())
            self.item_artist.append(_first_sight(self.artists, artist_uri or artist_name, self.artist_name,
                                                 artist_name or artist_uri))
            album = str(row.get("album_uri") or "").strip()
            self.item_album.append(_first_sight(self.albums, album, self.album_name,
                                                str(row.get("album_name") or "").strip()) if album else -1)
        return code

    def _add_row(self, playlist: int, code: int, row: dict, place: int) -> None:
        self.user.append(playlist)
        self.item.append(code)
        pos = row.get("pos")
        self.position.append(pos if isinstance(pos, int) and not isinstance(pos, bool) and 0 <= pos < 1 << 31
                             else place)


def _first_sight(index: dict[str, int], key: str, names: list[str], name: str) -> int:
    """``key``'s code, a new one (its ``name`` kept) at first sight."""
    code = index.get(key)
    if code is None:
        code = index[key] = len(index)
        names.append(name)
    return code


def read_mpd(path: str | os.PathLike) -> tuple[Interactions, LoadReport]:
    """Read MPD slices into coded rows: one per (playlist, track), a playlist its own user.

    Args:
        path: a slice, a folder of slices, or a glob (quoted on the command line).

    Returns:
        (rows, playlists): the coded track rows with their catalogue (users are playlists by
        ``pid``, with their names in ``user_names``; tracks carry ``item_uris``), whose report
        counts the track rows; and the report that counts the playlists.

    Raises:
        DataError: no slice found, a file that is not an MPD slice, or no usable row.
    """
    cols, tracks, playlists = _read(path)
    return _code(cols, tracks), playlists


def read_mpd_train_test(train_path: str | os.PathLike, test_path: str | os.PathLike
                        ) -> tuple[Interactions, LoadReport, Interactions]:
    """Read training slices and a fixed test in the same format: ``read_mpd_data`` without a catalogue.

    Returns:
        (train rows, the training playlists' report, test rows).
    """
    rows, reports, test = read_mpd_data(train_path, test_path)
    return rows, reports[0], test


def read_mpd_data(path: str | os.PathLike, test: str | os.PathLike | None = None,
                  catalogue: str | os.PathLike | None = None
                  ) -> tuple[Interactions, list[LoadReport], Interactions | None]:
    """Read MPD slices, with a fixed test in the same format and a catalogue of unplayed tracks.

    The catalogue (``read_catalogue``) adds tracks that no playlist holds (new releases): they
    may be recommended, and they join the graph through their artist and album. The test
    (``test``) is coded with the training's codes: a test playlist is a training playlist by
    its ``pid`` (the seeds it was given are its training rows; a playlist given no seed is a
    training playlist with an empty track list), and its test rows are the hidden tracks. A
    test row's track that neither a training playlist nor the catalogue holds is not added
    (that would tell the model the answer): its row is dropped and its distinct track counted
    per playlist in ``unseen``, which evaluation counts as a miss. Test rows of a pid the
    training lacks, or of a pair training has, are dropped and counted too.

    Returns:
        (rows, reports, test rows or None): ``reports`` are the playlists' report, then the
        catalogue's where one was read; the test rows share the rows' catalogue, and their
        report balances like the training's.

    Raises:
        DataError: as :func:`read_mpd`, for any of the paths; or no usable test row.
    """
    cols, tracks, playlists = _read(path)
    reports = [playlists]
    played = len(cols.tracks)
    if catalogue:
        reports.append(read_catalogue(catalogue, cols))
    train = _code(cols, tracks)
    if catalogue:  # the tracks the catalogue added, after the playlists' own
        train.catalogue.new_items = np.arange(train.num_items) >= played
    return train, reports, (_read_test(test, cols, train) if test else None)


CATALOGUE_EXPECTED = ("a catalogue of tracks: MPD slices or a JSON list of MPD track rows (track_uri, track_name, "
                      "artist_name[, artist_uri, album_uri, album_name]), or a CSV/TSV with a header naming those "
                      "columns (at least artist_name and track_name)")
IN_TRAINING = "a track training playlists hold already"


def read_catalogue(path: str | os.PathLike, cols: _Coder) -> LoadReport:
    """Add a catalogue's tracks to ``cols`` as items with no playlist row; their report.

    Args:
        path: MPD slices (every track row of their playlists), a JSON list of track rows or
            ``{"tracks": [...]}``, or a CSV/TSV whose header names the MPD track fields.
        cols: the training's coder; a catalogue track it holds already is counted, not added.
    """
    path = os.fspath(path)
    report = LoadReport(path=path, layout="catalogue of tracks", unit="catalogue rows", dropped=dict.fromkeys(
        (NOT_AN_OBJECT, NO_TRACK, NO_ARTIST, IN_TRAINING), 0))
    added: set[str] = set()
    for row in _catalogue_rows(path):
        report.rows_read += 1
        reason, key = _track_problem(row)
        if reason is None and key in cols.tracks and key not in added:
            reason = IN_TRAINING
        if reason is not None:
            _drop(report, reason, row)
        elif key in added:
            report.duplicates_merged += 1
        else:
            added.add(key)
            cols.track(key, row)
            report.rows_kept += 1
    return report


def _catalogue_rows(path: str):
    """The track rows of a catalogue file, whatever its shape (see ``read_catalogue``)."""
    files = mpd_files(path)
    if not os.path.isfile(path) and files is None:
        raise DataError(f"{path}: file not found; expected {CATALOGUE_EXPECTED}")
    if files is not None:
        for file in files:
            try:
                with open(file, "rb") as f:
                    doc = json.load(f)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise DataError(f"{file}: not readable JSON ({type(e).__name__}); expected {CATALOGUE_EXPECTED}") \
                    from None
            if isinstance(doc, dict) and isinstance(doc.get("playlists"), list):
                for playlist in doc["playlists"]:
                    yield from (playlist.get("tracks") or []) if isinstance(playlist, dict) else []
            elif isinstance(doc, dict) and isinstance(doc.get("tracks"), list):
                yield from doc["tracks"]
            elif isinstance(doc, list):
                yield from doc
            else:
                raise DataError(f"{file}: a JSON {type(doc).__name__} that holds no track list; "
                                f"expected {CATALOGUE_EXPECTED}")
        return
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            sample = f.read(4096)
            f.seek(0)
            first = sample.splitlines()[0] if sample else ""
            delimiter = "\t" if "\t" in first else ","
            reader = csv.DictReader(f, delimiter=delimiter)
            fields = [str(n).strip() for n in reader.fieldnames or []]
            if "artist_name" not in fields or not {"track_name", "track_uri"} & set(fields):
                raise DataError(f"{path}: header {fields[:6]} names no artist_name and track_name; "
                                f"expected {CATALOGUE_EXPECTED}")
            for row in reader:
                yield {str(k).strip(): v for k, v in row.items() if k is not None}
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror}); expected {CATALOGUE_EXPECTED}") from None


def _read(path: str | os.PathLike) -> tuple[_Coder, LoadReport, LoadReport]:
    """Read every slice: the coded rows, and the track rows' and the playlists' reports."""
    files = _files(path)
    tracks = LoadReport(path=os.fspath(path), layout=f"MPD JSON, {len(files):,} slice"
                        f"{'s' if len(files) != 1 else ''}, track rows", dropped=dict.fromkeys(
                            (NOT_AN_OBJECT, NO_TRACK, NO_ARTIST, IN_DROPPED_PLAYLIST), 0))
    playlists = LoadReport(path=os.fspath(path), layout="MPD JSON", unit="playlists", dropped=dict.fromkeys(
        (NOT_AN_OBJECT, NO_PID, DUPLICATE_PID, NO_TRACK_LIST), 0))
    cols, seen = _Coder(), set()
    for file in files:
        for playlist in _slice(file):
            _read_playlist(playlist, cols, seen, tracks, playlists)
    if not len(cols.user):
        raise DataError(f"{path}: no usable track row; expected {EXPECTED} ({tracks.summary()})")
    return cols, tracks, playlists


def _files(path: str | os.PathLike) -> list[str]:
    files = mpd_files(path)
    if not files:
        raise DataError(f"{path}: no JSON slice found; expected {EXPECTED}")
    return files


def _read_test(path: str | os.PathLike, cols: _Coder, train: Interactions) -> Interactions:
    """The test slices' rows, coded with the training's playlists and tracks (see ``read_mpd_train_test``)."""
    files = _files(path)
    report = LoadReport(path=os.fspath(path), layout=f"MPD JSON, {len(files):,} slice"
                        f"{'s' if len(files) != 1 else ''}, track rows", dropped=dict.fromkeys(
                            (NOT_AN_OBJECT, NO_TRACK, NO_ARTIST, IN_DROPPED_PLAYLIST, UNKNOWN_PLAYLIST,
                             UNKNOWN_TRACK, IN_TRAIN), 0))
    users = {pid: code for code, pid in enumerate(cols.pid)}
    user, item = array("q"), array("q")
    mine: set[tuple[int, str]] = set()  # (playlist code, track key) of the test rows read so far
    cold: set[tuple[int, str]] = set()  # the same, for tracks training lacks
    for file in files:
        for playlist in _slice(file):
            rows = playlist.get("tracks") if isinstance(playlist, dict) else None
            rows = rows if isinstance(rows, list) else []
            code = users.get(_pid(playlist)) if isinstance(playlist, dict) else None
            for row in rows:
                report.rows_read += 1
                reason, key = _track_problem(row)
                if reason is None and code is None:
                    reason = IN_DROPPED_PLAYLIST if _pid(playlist) is None else UNKNOWN_PLAYLIST
                if reason is None and (code, key) in mine:
                    report.duplicates_merged += 1
                    continue
                if reason is None and key not in cols.tracks:
                    reason = UNKNOWN_TRACK
                    cold.add((code, key))
                if reason is not None:
                    _drop(report, reason, row)
                    continue
                mine.add((code, key))
                user.append(code)
                item.append(cols.tracks[key])
    user_, item_ = np.frombuffer(user, np.int64), np.frombuffer(item, np.int64)
    num_items = max(train.num_items, 1)
    in_train = np.isin(user_ * num_items + item_, train.user * num_items + train.item)
    report.dropped[IN_TRAIN] = int(in_train.sum())
    report.rows_kept = int((~in_train).sum())
    unseen = np.bincount(np.fromiter((u for u, _ in cold), np.int64, len(cold)),
                         minlength=train.num_users).astype(np.int64)
    if report.rows_kept == 0 and not unseen.any():
        raise DataError(f"{path}: no usable test row; expected {EXPECTED} whose pids are training playlists "
                        f"({report.summary()})")
    keep = ~in_train
    return Interactions(user=user_[keep], item=item_[keep], weight=np.ones(int(keep.sum()), np.float32),
                        playlist=None, catalogue=train.catalogue, report=report, unseen=unseen)


def _pid(playlist) -> str | None:
    """A playlist's pid as the reader keys it, or None when it has no whole-number pid."""
    pid = playlist.get("pid") if isinstance(playlist, dict) else None
    whole = isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0
    return str(int(pid)) if whole or isinstance(pid, str) and pid.strip().isdigit() else None


def _slice(file: str) -> list:
    """The playlists of one slice file (read whole: a full slice is about 33 MB)."""
    try:
        with open(file, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{file}: file not found; expected {EXPECTED}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise DataError(f"{file}: not readable JSON ({type(e).__name__}: {str(e)[:120]}); "
                        f"expected {EXPECTED}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("playlists"), list):
        raise DataError(f"{file}: a JSON {type(doc).__name__} without a 'playlists' list; expected {EXPECTED}")
    return doc["playlists"]


def _read_playlist(playlist, cols: _Coder, seen: set, tracks: LoadReport, playlists: LoadReport) -> None:
    """Give one playlist and each of its track rows a fate; append the kept rows to ``cols``."""
    playlists.rows_read += 1
    rows = playlist.get("tracks") if isinstance(playlist, dict) else None
    reason = _playlist_problem(playlist, seen)
    if reason is not None:
        _drop(playlists, reason, playlist)
        if isinstance(rows, list):
            tracks.rows_read += len(rows)
            tracks.dropped[IN_DROPPED_PLAYLIST] += len(rows)
        return
    pid = _pid(playlist)
    seen.add(pid)
    playlists.rows_kept += 1
    code, mine = len(cols.pid), set()
    cols.pid.append(pid)
    cols.name.append(str(playlist.get("name") or ""))
    modified = playlist.get("modified_at")
    cols.modified.append(modified if isinstance(modified, int) and not isinstance(modified, bool) and modified >= 0
                         else -1)
    for place, row in enumerate(rows):
        tracks.rows_read += 1
        reason, key = _track_problem(row)
        if reason is not None:
            _drop(tracks, reason, row)
        elif key in mine:
            tracks.duplicates_merged += 1
        else:
            mine.add(key)
            tracks.rows_kept += 1
            cols.add(code, key, row, place)


def _drop(report: LoadReport, reason: str, row) -> None:
    """Count a dropped row under its reason, keeping the first as the reason's example."""
    report.dropped[reason] += 1
    report.examples.setdefault(reason, repr(row)[:200])


def _playlist_problem(playlist, seen: set) -> str | None:
    if not isinstance(playlist, dict):
        return NOT_AN_OBJECT
    pid = _pid(playlist)
    if pid is None:
        return NO_PID
    if pid in seen:
        return DUPLICATE_PID
    if not isinstance(playlist.get("tracks"), list):
        return NO_TRACK_LIST
    return None


def _track_problem(row) -> tuple[str | None, str]:
    """(the drop reason or None, the track's key)."""
    if not isinstance(row, dict):
        return NOT_AN_OBJECT, ""
    uri = str(row.get("track_uri") or "").strip()
    artist = str(row.get("artist_name") or "").strip()
    title = str(row.get("track_name") or "").strip()
    if not uri and not (artist and title):
        return NO_TRACK, ""
    if not artist and not str(row.get("artist_uri") or "").strip():
        return NO_ARTIST, ""
    return None, uri or f"{artist}\x1f{title}"


def _code(cols: _Coder, report: LoadReport) -> Interactions:
    """The coded rows and the catalogue of names behind the codes."""
    string = lambda values: pa.array(values, pa.string())  # noqa: E731
    # The arrays' own buffers become the numpy arrays (no copy): nothing appends to them after this.
    catalogue = Catalogue(user_ids=string(cols.pid), user_names=string(cols.name), item_names=string(cols.title),
                          user_modified=np.frombuffer(cols.modified, np.int64),
                          item_uris=string(cols.uri), artist_names=string(cols.artist_name),
                          item_artist=np.frombuffer(cols.item_artist, np.int32), noun="track")
    if cols.albums:  # the full schema: albums are nodes
        catalogue.album_names = string(cols.album_name)
        catalogue.item_album = np.frombuffer(cols.item_album, np.int32)
    user = np.frombuffer(cols.user, np.int64)
    return Interactions(user=user, item=np.frombuffer(cols.item, np.int64), weight=np.ones(len(user), np.float32),
                        playlist=None, catalogue=catalogue, report=report,
                        position=np.frombuffer(cols.position, np.int32))
