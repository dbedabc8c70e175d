"""Shared fixtures: planted-structure playlist files written in the real file's layout."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

HEADER = '"user_id", "artistname", "trackname", "playlistname"\n'

# The iALS and ItemKNN baselines run on the benchmark extra `implicit`, which requirements.txt
# leaves out: their tests skip, with this reason, where it is not installed.
needs_implicit = pytest.mark.skipif(importlib.util.find_spec("implicit") is None,
                                    reason="needs the benchmark extra 'implicit': pip install -r bench/requirements.txt")


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


def train_checkpoint(csv: os.PathLike, out: os.PathLike, **overrides) -> str:
    """Train quietly on ``csv`` (no plot unless given) and write the checkpoint to ``out``."""
    from melody_map.config import TrainConfig
    from melody_map.pipeline import run

    run(TrainConfig(data=str(csv), output=str(out), **{"plot": "", **overrides}), log=lambda line: None,
        progress=False)
    return str(out)


def leaves(record, key: str = ""):
    """Every leaf of a nested dict (tensors, numbers, strings, lists), with its dotted key."""
    if isinstance(record, dict):
        for k in sorted(record, key=str):
            yield from leaves(record[k], f"{key}.{k}")
    else:
        yield key, record


def shared_file(*parts: str) -> Path:
    """A file in ../shared/data, or skip the test where it is absent (a user's machine)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def pairs_dataset(user, item, part=None, num_users: int | None = None, num_items: int | None = None):
    """A plain-table ``Dataset`` of (user, item) pairs, each TRAIN unless ``part`` says otherwise.

    Pairs are sorted by user then item, as readers deliver them; every pair is one input row.
    """
    import pyarrow as pa

    from melody_map.dataset import Dataset
    from melody_map.graph import build_graph
    from melody_map.split import Pairs
    from melody_map.types import TRAIN, Catalogue, Interactions, LoadReport

    user, item = np.asarray(user, np.int64), np.asarray(item, np.int64)
    part = np.full(len(user), TRAIN, np.int8) if part is None else np.asarray(part, np.int8)
    order = np.lexsort((item, user))
    user, item, part = user[order], item[order], part[order]
    num_users = int(user.max() + 1) if num_users is None else num_users
    num_items = int(item.max() + 1) if num_items is None else num_items
    ids = pa.array([f"i{i}" for i in range(num_items)], pa.large_string())
    catalogue = Catalogue(user_ids=pa.array([f"u{u}" for u in range(num_users)], pa.large_string()),
                          item_names=ids, item_ids=ids, noun="item")
    weight = np.ones(len(user), np.float32)
    rows = Interactions(user, item, weight, None, catalogue, LoadReport(path="planted", layout="planted"))
    pairs = Pairs(user=user, item=item, weight=weight, part=part, row_pair=np.arange(len(user)))
    return Dataset(rows=rows, pairs=pairs, graph=build_graph(rows, pairs), reports=[rows.report])


def load(path: os.PathLike, **overrides):
    """``load_dataset`` of a file, as train_gnn.py --data PATH [overrides] loads it."""
    from melody_map.config import TrainConfig
    from melody_map.dataset import load_dataset

    return load_dataset(TrainConfig(data=str(path), **overrides))


def pytest_sessionfinish(session) -> None:
    """With MELODY_SKIPPED_FILE set, write the node ids of the tests that skipped there, one a line
    (``.ci/run`` runs them again once the extras are installed)."""
    path = os.environ.get("MELODY_SKIPPED_FILE")
    if path:
        Path(path).write_text("".join(f"{nodeid}\n" for nodeid in sorted(_SKIPPED)))


_SKIPPED: set[str] = set()


def pytest_runtest_logreport(report) -> None:
    if report.skipped:
        _SKIPPED.add(report.nodeid)


# The serving tests' data: the taste communities, plus a track whose names are markup. Most of
# community 0 has it, so it is recommended to the rest of community 0 (users 00...): a page that
# set names as HTML would run its onerror.
HOSTILE_ARTIST = "<script>alert('artist')</script>"
HOSTILE_TRACK = "<img src=x onerror=alert(1)>"


def serving_rows() -> list[tuple[str, str, str, str]]:
    rows = community_rows()
    users = sorted({r[0] for r in rows if r[0].startswith("00")})
    return rows + [(u, HOSTILE_ARTIST, HOSTILE_TRACK, "Mix 0") for u in users[: 2 * len(users) // 3]]


@pytest.fixture(scope="session")
def serving_checkpoint(tmp_path_factory) -> str:
    """A default-model checkpoint of ``serving_rows``, trained once per test session."""
    folder = tmp_path_factory.mktemp("serving")
    return train_checkpoint(write_original(folder / "serving.csv", serving_rows()), folder / "serving.pth", epochs=2)
