"""Shared fixtures: planted-structure playlist files written in the real file's layout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

HEADER = '"user_id", "artistname", "trackname", "playlistname"\n'


def write_original(path: os.PathLike, rows: list[tuple[str, str, str, str]], header: str = HEADER) -> Path:
    """Write rows byte-for-byte in the original layout: all fields quoted, nothing escaped."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(header)
        for row in rows:
            f.write('"' + '","'.join(row) + '"\n')
    return Path(path)


def community_rows(users_per_community: tuple[int, ...] = (30, 60), tracks_per_community: int = 40,
                   tracks_per_user: int = 16, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """Users in taste communities: each listens only to its own community's tracks.

    The larger community's tracks are the most popular overall, so a popularity ranking
    recommends them to everyone, and only a personal model serves the small community.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for c, n_users in enumerate(users_per_community):
        artists = [f"Artist {c}-{a}" for a in range(tracks_per_community // 4)]
        for u in range(n_users):
            user = f"{c:02d}{u:030x}"
            tracks = rng.choice(tracks_per_community, size=tracks_per_user, replace=False)
            for i, t in enumerate(tracks):
                playlist = "Starred" if i % 2 else f"Mix {c}"
                rows.append((user, artists[t % len(artists)], f"Song {t}", playlist))
    return rows


@pytest.fixture
def community_csv(tmp_path: Path) -> Path:
    return write_original(tmp_path / "communities.csv", community_rows())


def shared_file(*parts: str) -> Path:
    """A file in ../shared/data, or skip the test where it is absent (a user's machine)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path
