"""The training-free filters at scale: each one's fit, and its scoring cost per block of users.

    python bench/filter_scale.py spotify100          # the 100 % file (bench/full_scale.py makes it)
    python bench/filter_scale.py mpd --users 256

Loads a `bench/quality.py` dataset exactly as train_gnn.py splits it, fits GF-CF and ChebyCF
at their defaults on the training pairs, scores a block of users, and writes the seconds,
the path the SVD took and the process's peak RSS to bench/results/filter_scale.json (one
entry per dataset). Scoring every user costs about (users / block) x the block's seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.full_scale import machine, write_json  # noqa: E402
from bench.quality import DATASETS, load  # noqa: E402
from melody_map import filters  # noqa: E402
from melody_map.types import TRAIN  # noqa: E402

OUT = ROOT / "bench" / "results" / "filter_scale.json"


def svd_path(shape: tuple[int, int]) -> str:
    """Which way ``filters.leading_right_singular`` takes for a users x items matrix."""
    if filters.uses_gram(shape):
        return "the Gram matrix, every eigenpair"
    return "the Gram matrix's leading eigenpairs" if filters.uses_gram_top(shape) else "randomised SVD of R"


def peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", choices=sorted(DATASETS), help="a bench/quality.py dataset")
    ap.add_argument("--users", type=int, default=64, help="users in the scored block")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    matrix = load(args.dataset).matrix(TRAIN)
    entry = {"command": "python bench/filter_scale.py " + " ".join(argv or sys.argv[1:]),
             "load_s": round(time.perf_counter() - start, 1), "users": matrix.shape[0], "items": matrix.shape[1],
             "train_pairs": int(matrix.nnz), "svd": svd_path(matrix.shape), "machine": machine(), "models": {}}
    block = np.arange(min(args.users, matrix.shape[0]))
    for model in (filters.GFCF(), filters.ChebyCF()):
        start = time.perf_counter()
        model.fit_matrix(matrix)
        fit = time.perf_counter() - start
        start = time.perf_counter()
        model.scores(block)
        score = time.perf_counter() - start
        entry["models"][model.label] = {"params": model.params(), "fit_s": round(fit, 1),
                                        f"score_{len(block)}_users_s": round(score, 3),
                                        "every_user_s": round(score * matrix.shape[0] / len(block)),
                                        "peak_rss_gb_so_far": peak_gb()}
        print(model.label, entry["models"][model.label], flush=True)
        del model
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results[args.dataset] = entry
    write_json(results, OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
