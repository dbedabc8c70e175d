"""The same generated playlists written as Million Playlist Dataset slices (the full MPD schema).

Every playlist of ``generate`` becomes one MPD playlist: its name, a ``pid`` in playlist order,
its tracks in file order (``pos``), and the full schema's fields (``collaborative``,
``modified_at``, ``num_*``, ``duration_ms``; per track ``artist_uri``, ``album_uri``,
``album_name``, ``duration_ms``). URIs are seeded hashes, so the same seed writes the same
bytes; an artist's tracks are grouped into albums of up to ``ALBUM_TRACKS``. The planted
structure is the generator's: a playlist draws its tracks from one or two of its owner's
genres, so a playlist's own tracks tell its genre.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .generate import SyntheticData, generate, get_preset

ALBUM_TRACKS = 12  # most tracks an album of the generated catalogue holds


def uri(kind: str, seed: int, index: int) -> str:
    """A seeded, stable Spotify-like URI: ``spotify:<kind>:<22 hex characters>``."""
    digest = hashlib.blake2b(f"{seed}:{kind}:{index}".encode(), digest_size=11).hexdigest()
    return f"spotify:{kind}:{digest}"


def _tracks(data: SyntheticData, seed: int) -> list[dict]:
    """Each generated track as an MPD track object (``pos`` is added per playlist)."""
    rng = np.random.default_rng([seed, 2])
    artist_uris = [uri("artist", seed, a) for a in range(len(data.artist_names))]
    # An artist's tracks, in index order, fill its albums ALBUM_TRACKS at a time.
    order = np.argsort(data.track_artist, kind="stable")
    rank = np.empty(len(order), np.int64)
    starts = np.searchsorted(data.track_artist[order], data.track_artist[order])
    rank[order] = np.arange(len(order)) - starts
    album = rank // ALBUM_TRACKS
    duration = rng.integers(90_000, 420_000, size=len(order))
    out = []
    for t, name in enumerate(data.track_names):
        a = int(data.track_artist[t])
        out.append({"artist_name": data.artist_names[a], "track_uri": uri("track", seed, t),
                    "artist_uri": artist_uris[a], "track_name": name,
                    "album_uri": uri("album", seed, a * 1000 + int(album[t])), "duration_ms": int(duration[t]),
                    "album_name": f"{data.artist_names[a]}, Vol. {int(album[t]) + 1}"})
    return out


def write_mpd(folder: str | os.PathLike, preset: str = "sample", scale: float = 1.0, seed: int = 0,
              per_slice: int = 1000, slices: int | None = None) -> dict:
    """Generate a dataset and write its playlists as MPD slices of ``per_slice`` playlists each.

    Args:
        folder: where the slices go (created); ``mpd.slice.<first pid>-<last pid>.json``.
        preset, scale, seed: as ``write_dataset``'s.
        per_slice: playlists a slice holds.
        slices: write only the first this many slices (None: all).

    Returns:
        What was written: slices, playlists, rows, bytes, seconds.
    """
    t0 = time.perf_counter()
    data = generate(get_preset(preset, scale), seed)
    tracks = _tracks(data, seed)
    rng = np.random.default_rng([seed, 3])
    n_pl = len(data.playlist_names)
    by_playlist = np.argsort(data.row_playlist, kind="stable")  # rows of each playlist, in file order
    bounds = np.searchsorted(data.row_playlist[by_playlist], np.arange(n_pl + 1))
    modified = rng.integers(1_300_000_000, 1_510_000_000, size=n_pl)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"slices": 0, "playlists": 0, "rows": 0, "bytes": 0}
    last = n_pl if slices is None else min(n_pl, slices * per_slice)
    for first in range(0, last, per_slice):
        pids = range(first, min(first + per_slice, last))
        playlists = [_playlist(data, tracks, by_playlist[bounds[p]:bounds[p + 1]], p, int(modified[p]))
                     for p in pids]
        doc = {"info": {"generated_on": "synthetic", "slice": f"{pids[0]}-{pids[-1]}", "version": "v1"},
               "playlists": playlists}
        path = folder / f"mpd.slice.{pids[0]}-{pids[-1]}.json"
        text = json.dumps(doc, ensure_ascii=False)
        path.write_text(text, encoding="utf-8")
        written["slices"] += 1
        written["playlists"] += len(playlists)
        written["rows"] += sum(len(p["tracks"]) for p in playlists)
        written["bytes"] += len(text.encode("utf-8"))
    written["seconds"] = time.perf_counter() - t0
    return written


def _playlist(data: SyntheticData, tracks: list[dict], rows: np.ndarray, pid: int, modified_at: int) -> dict:
    """One playlist in the full MPD schema."""
    items = [dict(tracks[int(data.row_track[r])], pos=pos) for pos, r in enumerate(rows)]
    return {"name": data.playlist_names[pid], "collaborative": "false", "pid": pid, "modified_at": modified_at,
            "num_tracks": len(items), "num_albums": len({t["album_uri"] for t in items}), "num_followers": 1,
            "num_edits": 1 + pid % 7, "duration_ms": sum(t["duration_ms"] for t in items),
            "num_artists": len({t["artist_uri"] for t in items}), "tracks": items}
