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

import glob
import json
import os
from array import array

import numpy as np
import pyarrow as pa

from .readers import DataError
from .types import Catalogue, Interactions, LoadReport

__all__ = ["EXPECTED", "is_mpd", "mpd_files", "read_mpd"]

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
        self.user, self.item = array("q"), array("q")  # per track row kept
        self.tracks: dict[str, int] = {}  # track key (track_uri, else artist + title) -> code
        self.title: list[str] = []
        self.uri: list[str] = []
        self.item_artist, self.item_album = array("i"), array("i")  # per track; -1: no album
        self.artists: dict[str, int] = {}  # artist_uri, else its name -> code
        self.artist_name: list[str] = []
        self.albums: dict[str, int] = {}  # album_uri -> code
        self.album_name: list[str] = []

    def add(self, playlist: int, key: str, row: dict) -> None:
        """One kept row: ``playlist``'s position and the track ``key`` names (coded at first sight)."""
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
        self.user.append(playlist)
        self.item.append(code)


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
    files = mpd_files(path)
    if not files:
        raise DataError(f"{path}: no JSON slice found; expected {EXPECTED}")
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
    return _code(cols, tracks), playlists


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
        playlists.dropped[reason] += 1
        playlists.examples.setdefault(reason, repr(playlist)[:200])
        if isinstance(rows, list):
            tracks.rows_read += len(rows)
            tracks.dropped[IN_DROPPED_PLAYLIST] += len(rows)
        return
    pid = str(int(playlist["pid"]))
    seen.add(pid)
    playlists.rows_kept += 1
    position, mine = len(cols.pid), set()
    cols.pid.append(pid)
    cols.name.append(str(playlist.get("name") or ""))
    for row in rows:
        tracks.rows_read += 1
        reason, key = _track_problem(row)
        if reason is not None:
            tracks.dropped[reason] += 1
            tracks.examples.setdefault(reason, repr(row)[:200])
        elif key in mine:
            tracks.duplicates_merged += 1
        else:
            mine.add(key)
            tracks.rows_kept += 1
            cols.add(position, key, row)


def _playlist_problem(playlist, seen: set) -> str | None:
    if not isinstance(playlist, dict):
        return NOT_AN_OBJECT
    pid = playlist.get("pid")
    whole = isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0
    if not (whole or isinstance(pid, str) and pid.strip().isdigit()):
        return NO_PID
    if str(int(pid)) in seen:
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
                          item_uris=string(cols.uri), artist_names=string(cols.artist_name),
                          item_artist=np.frombuffer(cols.item_artist, np.int32), noun="track")
    if cols.albums:  # the full schema: albums are nodes
        catalogue.album_names = string(cols.album_name)
        catalogue.item_album = np.frombuffer(cols.item_album, np.int32)
    user = np.frombuffer(cols.user, np.int64)
    return Interactions(user=user, item=np.frombuffer(cols.item, np.int64), weight=np.ones(len(user), np.float32),
                        playlist=None, catalogue=catalogue, report=report)
