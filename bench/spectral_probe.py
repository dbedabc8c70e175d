"""How well do the spectral start vectors rank on their own? (No GCN, no training.)

    python bench/spectral_probe.py bench/data/spotify_full_x1_seed0.csv --dims 32 128

Builds the pipeline's split and graph, computes ``spectral_embedding`` at each size and
ranks every item for a seeded sample of validation users by the dot product of the user's
and the item's vectors (training items excluded), with the metric code train_gnn.py uses.
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

from melody_map.config import TrainConfig  # noqa: E402
from melody_map.dataset import load_dataset  # noqa: E402
from melody_map.evaluate import evaluate, subsample_users
from melody_map.ranking import embedding_scores
from melody_map.spectral import spectral_embedding  # noqa: E402
from melody_map.types import TRAIN, VALID


class _Dot:
    """Plain dot-product scores, (B, d) x (I, d) -> (B, I)."""

    def score_all(self, z_user, z_items, out=None):
        return torch.matmul(z_user, z_items.T, out=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="train_gnn.py's --data: a playlists CSV (e.g. a bench/data file) or a table")
    ap.add_argument("--dims", type=int, nargs="+", default=[32], help="vector sizes to probe")
    ap.add_argument("--users", type=int, default=1000, help="validation users sampled")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", UserWarning)
    data = load_dataset(TrainConfig(data=args.csv))
    graph, pairs = data.graph, data.pairs
    train = pairs.part == TRAIN
    known = data.items(TRAIN)
    valid = subsample_users(data.items(VALID), args.users, np.random.default_rng(2))
    for dim in args.dims:
        started = time.perf_counter()
        x = spectral_embedding(graph, pairs.user[train], pairs.item[train], pairs.weight[train], dim, seed=0)
        seconds = time.perf_counter() - started
        items = x[graph.item_offset: graph.item_offset + graph.num_items]
        m = evaluate(embedding_scores(_Dot(), x[: graph.num_users], items), valid, known, graph.num_items, 20)
        print(f"dim {dim}: SVD {seconds:.0f} s; spectral vectors alone: validation recall@20 {m['recall@20']:.4f}, "
              f"ndcg@20 {m['ndcg@20']:.4f} ({int(m['users'])} users)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
