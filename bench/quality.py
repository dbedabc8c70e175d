"""Quality benchmark: our GCNs beside tuned baselines, on the same splits and the same metric code.

    python bench/quality.py                                  # every dataset and model
    python bench/quality.py --datasets lastfm --models EASE GCN

Datasets (the real ones are read from ../shared/data and skipped where it is absent):
    sample   the shipped synthetic spotify_dataset.csv, split 80/10/10 per user as train_gnn.py does
    lastfm   the Last.fm split of the reference LightGCN code: data1.txt (train) / test1.txt (test)
    hetrec   HetRec 2011 Last.fm 2K user_artists.dat, a seeded 80/20 per-user split

Protocol, the same for every model:
    - a validation split is carved from training (10% of each user's training pairs, seeded;
      on the sample it is train_gnn.py's own validation part); the test set is never looked at
      while choosing anything;
    - hyper-parameters (and, for the trained GNNs, the epoch count by early stopping) are
      chosen by validation Recall@20, fitting on training minus validation;
    - the chosen model is refitted on all of training and scored once on test: every item
      ranked, the user's training items excluded, Recall@20 and NDCG@20 averaged over the
      test users (``melody_map.evaluate``, the code train_gnn.py reports with).

Each (dataset, model) runs in a fresh process, so its peak resident memory is its own; the
time is the whole fit: tuning plus the final refit. Results go to --out as JSON, and the
table is printed (``python bench/quality.py --report`` re-prints it from the JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data"
DATASETS = ("sample", "lastfm", "hetrec")
MODELS = ("popularity", "ItemKNN", "EASE", "iALS", "GF-CF", "LightGCN", "GCN-trainable", "GCN-last", "GCN",
          "GCN-tuned")
# How the design-card variants differ from train_gnn.py's defaults (spectral, frozen, concat).
GCN_VARIANTS = {"GCN-trainable": {"fixed_features": False, "init": "normal", "combine": "last"},  # issue 3's card
                "GCN-last": {"combine": "last"}}  # the scorer reads the second layer only
# "GCN-tuned" also reports "GCN+GF-CF": the tuned GCN blended with the tuned GF-CF filter.
K = 20


@dataclass
class Split:
    """One dataset's split as pairs: part TRAIN (fit), VALID (carved from training), TEST."""

    name: str
    pairs: Any  # melody_map.split.Pairs
    num_users: int
    num_items: int
    graph: Callable[[Any], Any]  # pairs -> the GCN's graph over their TRAIN part
    source: str


def load_split(name: str, seed: int = 0) -> Split:
    from melody_map.graph import build_graph, interaction_graph
    from melody_map.interactions import (
        per_user_test_mask,
        read_interactions,
        read_train_test,
        split_per_user,
    )
    from melody_map.split import TEST, TRAIN, VALID, Pairs, make_pairs

    if name == "sample":
        from melody_map.data import load_playlists

        playlists, _ = load_playlists(ROOT / "spotify_dataset.csv")
        pairs = make_pairs(playlists, 0.1, 0.1, 10, seed)
        return Split(name, pairs, playlists.num_users, playlists.num_tracks,
                     lambda p: build_graph(playlists, p), "spotify_dataset.csv (synthetic sample)")
    if name == "lastfm":
        folder = SHARED / "lastfm-lightgcn"
        train, test = read_train_test(folder / "data1.txt", folder / "test1.txt")
        source = "../shared/data/lastfm-lightgcn data1.txt + test1.txt"
    elif name == "hetrec":
        inter = read_interactions(SHARED / "hetrec2011-lastfm-2k" / "user_artists.dat")
        train, test = split_per_user(inter, 0.2, seed)
        source = f"../shared/data/hetrec2011-lastfm-2k/user_artists.dat, 80/20 per user, seed {seed}"
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    valid = per_user_test_mask(train.user, 0.1, seed + 1)
    part = np.concatenate([np.where(valid, VALID, TRAIN), np.full(len(test.user), TEST)]).astype(np.int8)
    user = np.concatenate([train.user, test.user])
    item = np.concatenate([train.item, test.item])
    weight = np.concatenate([train.weight, test.weight]).astype(np.float32)
    pairs = Pairs(user=user, track=item, weight=weight, part=part, row_pair=np.arange(len(user)))
    u_n, i_n = train.num_users, train.num_items
    return Split(name, pairs, u_n, i_n, lambda p: interaction_graph(p, u_n, i_n), source)


def refit_pairs(pairs):
    """The same pairs with validation folded back into training (for the final refit)."""
    from melody_map.split import TRAIN, VALID

    return replace(pairs, part=np.where(pairs.part == VALID, TRAIN, pairs.part).astype(np.int8))


def matrices(split: Split):
    """(fit matrix, valid items, full-train matrix, test items, full-train items) for the baselines."""
    from melody_map.baselines import interaction_matrix, user_items_of
    from melody_map.evaluate import UserItems
    from melody_map.split import TEST, TRAIN, VALID

    p = split.pairs

    def matrix(mask):
        return interaction_matrix(p.user[mask], p.track[mask], None, split.num_users, split.num_items)

    fit = matrix(p.part == TRAIN)
    full = matrix(p.part != TEST)
    valid = UserItems.from_pairs(p.user[p.part == VALID], p.track[p.part == VALID], split.num_users)
    test = UserItems.from_pairs(p.user[p.part == TEST], p.track[p.part == TEST], split.num_users)
    return fit, valid, full, test, user_items_of(full)


def run_model(split: Split, model: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Tune on validation, refit on all training, score on test; returns metrics and choices."""
    from melody_map import baselines as B
    from melody_map.evaluate import evaluate, evaluate_popularity
    from melody_map.split import TEST

    fit, valid, full, test, known = matrices(split)
    out: dict[str, Any] = {}
    if model == "popularity":
        p = split.pairs
        metrics = evaluate_popularity(p.track[p.part != TEST], test, known, split.num_items, K)
        return {"test": metrics, "params": {}}
    if model in ("ItemKNN", "EASE", "iALS", "GF-CF"):
        from melody_map.filters import GF_CF_GRID, GFCF

        tuners = {
            "ItemKNN": (B.ItemKNN, {"neighbors": [50, 100, 400], "shrink": [0.0, 10.0]}),
            "EASE": (B.EASE, {"lam": [50.0, 200.0, 500.0, 2000.0]}),
            "iALS": (B.IALS, {"factors": [64, 128], "regularization": [0.01, 1.0], "alpha": [1.0, 20.0]}),
            "GF-CF": (GFCF, GF_CF_GRID),
        }
        factory, grid = tuners[model]
        best, table = B.tune(factory, grid, fit, valid, K, log=log)
        final = factory(**best).fit(full)
        out = {"params": best, "tuning": table.to_dict(orient="records")}
        return {**out, "test": evaluate(final.score_fn(), test, known, split.num_items, K)}
    if model == "LightGCN":
        tuned = B.LightGCNBaseline(epochs=200, eval_every=5, patience=4, log=log).fit(fit, valid)
        final = B.LightGCNBaseline(epochs=tuned.best_epoch).fit(full)
        out = {"params": {**tuned._params(), "epochs": tuned.best_epoch}, "history": tuned.history}
        return {**out, "test": evaluate(final.score_fn(), test, known, split.num_items, K)}
    if model.startswith("GCN"):
        return _run_gcn(split, model, fit, valid, full, test, known, log)
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


GCN_GRID = {"dim": [64, 128], "combine": ["concat", "last"]}  # dropout stays at 0.1


def _tune_gcn(split: Split, grid: dict[str, list], variant: dict[str, Any], log) -> tuple[Any, list[dict]]:
    """Train the GCN for every grid point on training minus validation (early stopping on
    validation Recall@20, as train_gnn.py does); the best point's config with its best epoch."""
    import itertools

    import torch

    from melody_map.config import TrainConfig
    from melody_map.pipeline import make_model
    from melody_map.train import train

    best, best_recall, table = None, -1.0, []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        cfg = TrainConfig(plot="", output="", **variant, **point)
        graph = split.graph(split.pairs)
        net = make_model(cfg, graph, split.pairs)
        started = time.perf_counter()
        result = train(net, graph, split.pairs, cfg, torch.device("cpu"), progress=False)
        recall = result.best_valid.get(f"recall@{K}", 0.0)
        table.append({**point, "best_epoch": result.best_epoch, f"valid_recall@{K}": recall,
                      "fit_seconds": time.perf_counter() - started})
        log(f"GCN {point}: best epoch {result.best_epoch}, validation recall@{K} {recall:.4f}")
        if recall > best_recall:
            best_recall, best = recall, replace(cfg, epochs=max(result.best_epoch, 1))
    return best, table


def _fit_gcn(split: Split, cfg, refit: bool = True):
    """The chosen config trained for its chosen epochs on all of training (``refit``) or on
    training minus validation; a ScoreFn over items."""
    import torch

    from melody_map.pipeline import make_model
    from melody_map.train import train, user_scores

    cfg = replace(cfg, eval_every=cfg.epochs, patience=1)  # one check, at the end: nothing to select
    pairs = refit_pairs(split.pairs) if refit else split.pairs
    graph = split.graph(pairs)
    net = make_model(cfg, graph, pairs)
    train(net, graph, pairs, cfg, torch.device("cpu"), progress=False)
    net.eval()
    with torch.no_grad():
        z = net(graph.adj)
    return user_scores(net, z, graph)


def _run_gcn(split: Split, model: str, fit, valid, full, test, known, log) -> dict[str, Any]:
    """The design-card GCN through train_gnn.py's own stages (make_model, train)."""
    from melody_map.evaluate import evaluate
    from melody_map.filters import GFCF, blended, choose_blend

    variant = GCN_VARIANTS.get(model, {})
    grid = GCN_GRID if model == "GCN-tuned" else {"dim": [32]}
    started = time.perf_counter()
    cfg, table = _tune_gcn(split, grid, variant, log)
    params = {"dim": cfg.dim, "dropout": cfg.dropout, "epochs": cfg.epochs, "combine": cfg.combine, **variant}
    gcn_full = _fit_gcn(split, cfg)
    result = {"params": params, "tuning": table, "test": evaluate(gcn_full, test, known, split.num_items, K),
              "fit_seconds": time.perf_counter() - started}
    if model != "GCN-tuned":
        return result

    # Also: the tuned GCN plus the tuned GF-CF filter, each standardised per user, the filter
    # and the GCN's weight chosen on validation (filters.choose_blend, as train_gnn.py
    # --model gcn+gf-cf does). Its time is this whole child's (it includes the GCN's).
    from melody_map.baselines import user_items_of

    gcn_fit = _fit_gcn(split, cfg, refit=False)  # the weight is chosen without validation in training
    choice = choose_blend(user_items_of(fit), valid, gcn_fit, split.num_items, K, log=log)
    gf_full = GFCF(k=choice["gf_k"], alpha=choice["gf_alpha"]).fit(full)
    metrics = evaluate(blended(gf_full.scores, gcn_full, choice["weight"]), test, known, split.num_items, K)
    blend = {"model": "GCN+GF-CF", "test": metrics, "params": {**params, **choice}}
    return {**result, "also": [blend]}


def child(dataset: str, model: str) -> dict[str, Any]:
    start = time.perf_counter()
    split = load_split(dataset)
    loaded = time.perf_counter()
    result = run_model(split, model, log=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    total = time.perf_counter() - loaded
    for extra in result.get("also", []):
        extra.setdefault("fit_seconds", total)
    return {"dataset": dataset, "model": model, "source": split.source,
            "users": split.num_users, "items": split.num_items,
            "pairs": {k: int(v) for k, v in zip(("train", "valid", "test"),
                                                np.bincount(split.pairs.part, minlength=3))},
            "load_seconds": loaded - start, "fit_seconds": total,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **result}


def machine() -> dict[str, Any]:
    import torch

    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "git": git.stdout.strip()}


def report(doc: dict[str, Any]) -> str:
    """One Markdown table per dataset, models in run order, best Recall@20 in bold."""
    lines = [f"Measured {doc['machine']['when']} on {doc['machine']['platform']}, {doc['machine']['cpus']} CPUs, "
             f"torch {doc['machine']['torch']}, git {doc['machine']['git']}. Command: `{doc['command']}`.", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in doc["results"]):
        rows = [r for r in doc["results"] if r["dataset"] == dataset]
        ok = [r for r in rows if "test" in r]
        best = max((r["test"][f"recall@{K}"] for r in ok), default=None)
        head = ok[0] if ok else rows[0]
        pairs = head.get("pairs", {})
        lines += [f"**{dataset}** — {head.get('source', '')}: {head.get('users', 0):,} users, "
                  f"{head.get('items', 0):,} items; pairs: train {pairs.get('train', 0) + pairs.get('valid', 0):,} "
                  f"(validation {pairs.get('valid', 0):,} of them, for tuning), test {pairs.get('test', 0):,}", "",
                  f"| model | Recall@{K} | NDCG@{K} | fit time (tuning + refit) | peak RSS | chosen |",
                  "|---|---:|---:|---:|---:|---|"]
        for r in rows:
            if "test" not in r:
                lines.append(f"| {r['model']} | — | — | — | — | {r.get('error', 'failed')} |")
                continue
            recall, ndcg = r["test"][f"recall@{K}"], r["test"][f"ndcg@{K}"]
            cell = f"**{recall:.4f}**" if recall == best else f"{recall:.4f}"
            params = ", ".join(f"{k}={v}" for k, v in r.get("params", {}).items()) or "—"
            lines.append(f"| {r['model']} | {cell} | {ndcg:.4f} | {r['fit_seconds']:.1f} s | "
                         f"{r['peak_rss_mb'] / 1024:.2f} GiB | {params} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality.json")
    ap.add_argument("--report", action="store_true", help="re-print the table from --out and stop")
    ap.add_argument("--child", nargs=2, metavar=("DATASET", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return 0

    command = "python bench/quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    doc = {"machine": machine(), "command": command.strip(), "results": []}
    for dataset in args.datasets:
        if dataset != "sample" and not SHARED.exists():
            print(f"{dataset}: skipped, {SHARED} is absent", file=sys.stderr)
            continue
        for model in args.models:
            print(f"[{dataset}] {model} ...", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--child", dataset, model], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                doc["results"].append({"dataset": dataset, "model": model,
                                       "error": f"exited {proc.returncode}"})
            else:
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                doc["results"].append(result)
                for extra in result.pop("also", []):  # a child that measured a second model too
                    doc["results"].append({**result, "tuning": [], **extra})
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(doc, indent=2))
    print(report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
