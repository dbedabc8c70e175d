"""How well do the spectral start vectors rank on their own? (No GCN, no training.)

    python bench/spectral_probe.py bench/data/spotify_full_x1_seed0.csv --dims 32 128

Builds the pipeline's split and graph, computes ``spectral_embedding`` at each size and
ranks every track for a seeded sample of validation users by the dot product of the user's
and the track's vectors (training tracks excluded), with the metric code train_gnn.py uses.
It separates "the start carries no signal" from "training loses it".
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from melody_map.data import load_playlists  # noqa: E402
from melody_map.evaluate import UserItems, embedding_scores, evaluate  # noqa: E402
from melody_map.graph import build_graph  # noqa: E402
from melody_map.spectral import spectral_embedding  # noqa: E402
from melody_map.split import TRAIN, VALID, make_pairs  # noqa: E402
from melody_map.train import _subsample_users  # noqa: E402


class _Dot:
    """Plain dot-product scores, (B, d) x (T, d) -> (B, T)."""

    def score_all(self, z_user, z_tracks, out=None):
        return torch.matmul(z_user, z_tracks.T, out=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="a playlists CSV (e.g. a bench/data file)")
    ap.add_argument("--dims", type=int, nargs="+", default=[32], help="vector sizes to probe")
    ap.add_argument("--users", type=int, default=1000, help="validation users sampled")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)
    playlists, _ = load_playlists(args.csv)
    pairs = make_pairs(playlists, 0.1, 0.1, 10, 0)
    graph = build_graph(playlists, pairs)
    train = pairs.part == TRAIN
    known = UserItems.from_pairs(pairs.user[train], pairs.track[train], graph.num_users)
    valid = _subsample_users(UserItems.from_pairs(*pairs.select(VALID), graph.num_users), args.users,
                             np.random.default_rng(2))
    for dim in args.dims:
        started = time.perf_counter()
        x = spectral_embedding(graph, pairs.user[train], pairs.track[train], pairs.weight[train], dim, seed=0)
        seconds = time.perf_counter() - started
        tracks = x[graph.track_offset: graph.track_offset + graph.num_tracks]
        m = evaluate(embedding_scores(_Dot(), x[: graph.num_users], tracks), valid, known, graph.num_tracks, 20)
        print(f"dim {dim}: SVD {seconds:.0f} s; spectral vectors alone: validation recall@20 {m['recall@20']:.4f}, "
              f"ndcg@20 {m['ndcg@20']:.4f} ({int(m['users'])} users)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
