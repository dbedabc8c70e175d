"""The training-free filters at scale: each one's fit, and its scoring cost per block of users.

    python bench/filter_scale.py spotify100          # the 100 % file (bench/full_scale.py makes it)
    python bench/filter_scale.py mpd --users 256
    python bench/filter_scale.py mpd --against-exact # ChebyCF's leading-eigenpairs path against its exact one
    python bench/filter_scale.py spotify100 --ranking CKPT  # the default's bounded ranking against scoring every track

Loads a `bench/quality.py` dataset exactly as train_gnn.py splits it, fits GF-CF and ChebyCF
at their defaults on the training pairs, scores a block of users, and writes the seconds,
the path the SVD took and the process's peak RSS to bench/results/filter_scale.json (one
entry per dataset). Scoring every user costs about (users / block) x the block's seconds.

``--against-exact`` (a dataset of at most ``filters.GRAM_USERS`` users) instead scores ChebyCF's
grid on validation twice, exactly (every eigenpair of the users' Gram matrix) and as the larger
files are scored (the leading eta eigenpairs and one constant for the rest), and writes both
Recall@20 and NDCG@20 per point under the dataset's ``against_exact`` entry.

``--ranking CKPT`` takes the default model's choices and trained weights from a ``train_gnn.py``
checkpoint of the same file, rebuilds it on the training pairs, ranks the first ``--users`` test
listeners by its bounded ranking (``melody_map/bounded.py``, what the test metrics use; its
construction timed apart) and by scoring every track, and writes both times, how often the
lists agree and the bound's fallbacks under the dataset's ``ranking`` entry.
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
    ap.add_argument("--against-exact", action="store_true",
                    help="ChebyCF's grid on validation, exact and from the leading eigenpairs")
    ap.add_argument("--ranking", metavar="CKPT", help="the bounded ranking against scoring every track")
    args = ap.parse_args(argv)
    if args.against_exact:
        return against_exact(args.dataset, argv)
    if args.ranking:
        return ranking(args.dataset, args.ranking, args.users, argv)
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
    results[args.dataset] = {**results.get(args.dataset, {}), **entry}
    write_json(results, OUT)
    return 0


def ranking(dataset: str, checkpoint: str, n_users: int, argv: list[str] | None) -> int:
    """The default model's bounded ranking of every test listener, and scoring every track for some."""
    import torch

    from melody_map.bounded import BoundedTopK
    from melody_map.hybrid import GCNChebyCF
    from melody_map.ranking import top_k
    from melody_map.types import VALID

    data = load(dataset)
    record = torch.load(checkpoint, weights_only=True)["model"]
    params = {k: v for k, v in record["params"].items() if k != "epochs"}
    start = time.perf_counter()
    model = GCNChebyCF(**params, epochs=0).fit(data)
    model._set_weights(record["state"]["weights"])
    fit = time.perf_counter() - start
    every = np.flatnonzero(data.test_items().heldout_counts() > 0)
    users = every[:n_users]
    known = data.items(TRAIN, VALID)
    start = time.perf_counter()
    model._bounded = BoundedTopK(model)  # what the model's first ranking builds, timed apart
    build = time.perf_counter() - start
    start = time.perf_counter()
    items, scores = model.top_k(users, 20, known)
    bounded = time.perf_counter() - start
    start = time.perf_counter()
    dense_items, dense_scores = top_k(model.scores, users, 20, known)
    dense = time.perf_counter() - start
    entry = {"command": "python bench/filter_scale.py " + " ".join(argv or sys.argv[1:]), "machine": machine(),
             "model": model.params(), "weights": model.weight.tolist(), "fit_untrained_s": round(fit, 1),
             "users": len(users), "bounded_build_s": round(build, 1), "bounded_s": round(bounded, 1),
             "bounded_all_users_s": round(bounded * len(every) / max(len(users), 1)),
             "fallbacks": model._bounded.fallbacks,
             "tail_tracks_scored": model._bounded.gathered, "head_tracks": len(model._bounded.head),
             "tail_degree": model._bounded.tail_degree, f"every_track_{len(users)}_users_s": round(dense, 1),
             "every_track_all_users_s": round(dense * len(every) / max(len(users), 1)),
             "same_lists": float((items == dense_items).mean()),
             "max_score_difference": float(np.abs(scores - dense_scores).max()),
             "peak_rss_gb": peak_gb()}
    print(entry, flush=True)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results.setdefault(dataset, {})["ranking"] = entry
    write_json(results, OUT)
    return 0


def against_exact(dataset: str, argv: list[str] | None) -> int:
    """ChebyCF's grid (``filters.CHEBY_CF_GRID``'s flatness 1.5 points) on validation, both ways."""
    from melody_map.evaluate import evaluate
    from melody_map.types import VALID

    data = load(dataset)
    matrix = data.matrix(TRAIN)
    if not filters.uses_gram(matrix.shape):
        raise SystemExit(f"{dataset}: {matrix.shape[0]:,} users, past the exact path's {filters.GRAM_USERS:,}")
    fitted = {"exact": filters.ChebyCF().fit_matrix(matrix)}
    limits = filters.GRAM_USERS, filters.GRAM_TOP_RATIO
    filters.GRAM_USERS, filters.GRAM_TOP_RATIO = 0, 1  # the larger files' path, forced
    try:
        fitted["leading eigenpairs"] = filters.ChebyCF().fit_matrix(matrix)
    finally:
        filters.GRAM_USERS, filters.GRAM_TOP_RATIO = limits
    rows = []
    for alpha in filters.CHEBY_CF_GRID["alpha"]:
        for beta in filters.CHEBY_CF_GRID["beta"]:
            row = {"flatness": 1.5, "alpha": alpha, "beta": beta}
            for way, model in fitted.items():
                metrics = evaluate(model.with_choice(1.5, alpha, beta).scores, data.items(VALID), data.items(TRAIN),
                                   data.num_items)
                row[way] = {"recall@20": round(metrics["recall@20"], 4), "ndcg@20": round(metrics["ndcg@20"], 4)}
            print(row, flush=True)
            rows.append(row)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results.setdefault(dataset, {})["against_exact"] = {
        "command": "python bench/filter_scale.py " + " ".join(argv or sys.argv[1:]), "eta": fitted["exact"].k,
        "machine": machine(), "grid": rows}
    write_json(results, OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
