"""Serving benchmark: new listeners folded in without retraining, and playlist continuation.

    python bench/serving.py                                  # both, on their default datasets
    python bench/serving.py --fold-in lastfm hetrec --continuation sample
    python bench/serving.py --report                         # re-print the tables from the JSON
    python bench/serving.py --fold-in --continuation --batch sample   # the batch timing alone

fold-in
    A seeded tenth of the users who have test pairs are "new". Each model is fitted twice,
    as ``train_gnn.py`` fits it (training pairs, early stopping on validation): once with
    every user, once with the new users' pairs hidden from training and validation. The
    second model folds each new user in from their training + validation items
    (``Recommender.fold_in``) and ranks every item, those items left out; the first ranks
    them as users it was trained on. Both are scored on the new users' test pairs by the
    metric code train_gnn.py reports with. iALS folds in by ``implicit``'s own
    ``recalculate_user``; popularity needs no fold-in.

continuation (the RecSys Challenge 2018 task)
    A seeded sample of playlists with at least ``MIN_PLAYLIST`` tracks keeps the first half of
    its tracks (file order) as seeds; the rest are removed from the file before training,
    so no model sees them. ``train_gnn.py`` trains on the rest, and
    ``recommend.continue_playlist`` ranks 500 tracks per playlist from the checkpoint.
    R-precision (hits among the top |held-out| / |held-out|) and NDCG@500 are the
    challenge's metrics. Baselines on the same file: popularity (playlists holding the
    track) and item-to-item neighbours (``implicit``'s cosine ItemKNN over the
    playlists x tracks matrix, the challenge's common baseline).

batch
    ``get_recommendations`` for a list of users (one DataFrame) against a loop of single
    calls, on a checkpoint trained by ``train_gnn.py``; the median of ``REPEATS`` runs each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import quality  # noqa: E402  (after the path is set)

K = 20
LIST = 500  # the challenge's list length
MIN_PLAYLIST = 10  # tracks a playlist needs to be continued
FOLD_IN_DATASETS = ("sample", "lastfm", "hetrec")
CONTINUATION_DATASETS = ("sample",)
BATCH_DATASETS = ("sample",)
REPEATS = 5
BATCH_USERS = 1000


def _restrict(items, users: np.ndarray):
    """``items`` (a UserItems) with only ``users``' rows kept, misses included."""
    from melody_map.types import UserItems

    keep = np.zeros(items.num_users, bool)
    keep[users] = True
    owner = np.repeat(np.arange(items.num_users), items.counts())
    out = UserItems.from_pairs(owner[keep[owner]], items.items[keep[owner]], items.num_users)
    return out if items.misses is None else replace(out, misses=np.where(keep, items.misses, 0))


def _fold_in_models(dataset: str) -> dict[str, Callable[[], Any]]:
    """The models compared, unfitted: the product's two, and iALS with its quality-bench choice."""
    from bench.baselines import IALS
    from melody_map.gcn import GCN, GCNBlend

    ials = {}
    path = ROOT / "bench" / "results" / "quality.json"
    if path.exists():
        for row in json.loads(path.read_text())["results"]:
            if (row["dataset"], row["model"]) == (dataset, "iALS") and "params" in row:
                ials = row["params"]
    return {"GCN": GCN, "GCN+GF-CF": GCNBlend, "iALS": lambda: IALS(**ials)}


def fold_in(dataset: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Recall@K and NDCG@K of new users folded in, beside the same users trained on."""
    from melody_map.evaluate import evaluate, evaluate_popularity
    from melody_map.graph import build_graph
    from melody_map.types import TEST, TRAIN, VALID

    data = quality.load(dataset)
    test = data.test_items()
    candidates = np.flatnonzero(test.heldout_counts() > 0)
    new = np.sort(np.random.default_rng(0).choice(candidates, max(1, len(candidates) // 10), replace=False))
    heldout, known = _restrict(test, new), data.items(TRAIN, VALID)
    is_new = np.zeros(data.num_users, bool)
    is_new[new] = True
    part = np.where(is_new[data.pairs.user], np.int8(TEST), data.pairs.part)
    pairs = replace(data.pairs, part=part)
    hidden = replace(data, pairs=pairs, graph=build_graph(data.rows, pairs, data.words))
    histories = [known.of(int(u)) for u in range(data.num_users)]
    pop = evaluate_popularity(hidden.pairs.select(TRAIN)[1], heldout, known, data.num_items, K)
    result = {"dataset": dataset, "users": int(len(new)), "items": data.num_items,
              "popularity": {k: pop[k] for k in (f"recall@{K}", f"ndcg@{K}")}, "models": {}}
    for name, factory in _fold_in_models(dataset).items():
        trained = factory().fit(data)
        inside = evaluate(trained.scores, heldout, known, data.num_items, K)
        fitted = factory().fit(hidden)
        started = time.perf_counter()
        folded = evaluate(lambda users: fitted.fold_in([histories[u] for u in users]), heldout, known,
                          data.num_items, K)
        seconds = time.perf_counter() - started
        row = {"in_training": {k: inside[k] for k in (f"recall@{K}", f"ndcg@{K}")},
               "folded_in": {k: folded[k] for k in (f"recall@{K}", f"ndcg@{K}")},
               "ratio": folded[f"recall@{K}"] / max(inside[f"recall@{K}"], 1e-12),
               "ms_per_user": 1000 * seconds / len(new), "params": _jsonable(fitted.params())}
        log(f"[fold-in {dataset}] {name}: in training {inside[f'recall@{K}']:.4f}, folded in "
            f"{folded[f'recall@{K}']:.4f} ({row['ratio']:.3f}x)")
        result["models"][name] = row
    return result


def continuation(dataset: str, playlists: int, log: Callable[[str], None]) -> dict[str, Any]:
    """R-precision and NDCG@LIST of continued playlists, beside popularity and item neighbours."""
    import pandas as pd

    from bench.baselines import ItemKNN
    from melody_map.api import continue_playlist, item_labels, load_model
    from melody_map.config import TrainConfig
    from melody_map.pipeline import run
    from melody_map.playlists import read_playlists

    path = quality.DATASETS[dataset].split()[1]
    rows = read_playlists(ROOT / path)
    cat = rows.catalogue
    sizes = np.bincount(rows.playlist, minlength=cat.num_playlists)
    rng = np.random.default_rng(0)
    eligible = np.flatnonzero(sizes >= MIN_PLAYLIST)
    chosen = np.sort(rng.choice(eligible, min(playlists, len(eligible)), replace=False))
    # Each chosen playlist's rows in file order; the second half is held out.
    order = np.argsort(rows.playlist, kind="stable")
    start = np.concatenate([[0], np.cumsum(sizes)])
    held = np.zeros(len(rows), bool)
    for p in chosen:
        members = order[start[p]:start[p + 1]]
        held[members[len(members) // 2:]] = True
    artists = np.asarray(cat.artist_names.to_pylist(), dtype=object)
    titles = np.asarray(cat.item_names.to_pylist(), dtype=object)
    labels = np.array([f"{a} - {t}" for a, t in zip(artists[cat.item_artist], titles)], dtype=object)
    frame = pd.DataFrame({"user_id": np.asarray(cat.user_ids.to_pylist(), dtype=object)[rows.user],
                          "artistname": artists[cat.item_artist[rows.item]], "trackname": titles[rows.item],
                          "playlistname": np.asarray(cat.playlist_names.to_pylist(), dtype=object)[rows.playlist]})
    owners = np.asarray(cat.user_ids.to_pylist(), dtype=object)[cat.playlist_user[chosen]]
    names = np.asarray(cat.playlist_names.to_pylist(), dtype=object)[chosen]
    truth = [set(labels[rows.item[order[start[p]:start[p + 1]]][held[order[start[p]:start[p + 1]]]]])
             for p in chosen]
    result = {"dataset": dataset, "playlists": int(len(chosen)), "rows_held_out": int(held.sum()), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        seeds_csv = Path(tmp) / "seeds.csv"
        frame[~held].to_csv(seeds_csv, index=False)
        for model_name in ("gcn", "gcn+gf-cf"):
            ckpt = Path(tmp) / "model.pth"
            run(TrainConfig(data=str(seeds_csv), model=model_name, output=str(ckpt), plot=""),
                log=lambda line: None, progress=False)
            model, data = load_model(ckpt)
            own = item_labels(data)

            def ranked(i: int, model=model, data=data, own=own) -> list[str]:
                recs = continue_playlist(model, data, names[i], LIST, user_id=owners[i])
                return own[recs[f"{data.catalogue.noun}_index"].to_numpy()].tolist()

            result["models"][model_name] = _score([ranked(i) for i in range(len(chosen))], truth)
            log(f"[continuation {dataset}] {model_name}: {result['models'][model_name]}")
        # Baselines over the same checkpoint's playlists (the seeds' file): no user, no graph.
        matrix = data.playlists.matrix(data.num_items)
        index = {(data.user_ids[int(u)].as_py(), n): p for p, (u, n) in enumerate(
            zip(data.catalogue.playlist_user, data.catalogue.playlist_names.to_pylist()))}
        rows_of = np.array([index[(o, n)] for o, n in zip(owners, names)])
        popularity = np.asarray(matrix.sum(0)).ravel().astype(np.float32)
        knn = ItemKNN(neighbors=100).fit_matrix(matrix)
        for name, scores in (("popularity", lambda r: np.tile(popularity, (len(r), 1))),
                             ("ItemKNN", lambda r: knn.scores(r).numpy())):
            lists = []
            for i, p in enumerate(rows_of):
                s = scores(np.array([p]))[0].copy()
                s[data.playlists.of(p)] = -np.inf
                lists.append(own[np.argsort(-s, kind="stable")[:LIST]].tolist())
            result["models"][name] = _score(lists, truth)
            log(f"[continuation {dataset}] {name}: {result['models'][name]}")
    return result


def batch(dataset: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Seconds for BATCH_USERS users' top 10: one batch call against a loop of single calls."""
    from melody_map.api import get_recommendations, load_model
    from melody_map.config import TrainConfig, parse_config
    from melody_map.pipeline import run

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.pth"
        cfg = parse_config(TrainConfig, quality.DATASETS[dataset].split() + ["--output", str(ckpt), "--plot", ""], "")
        run(cfg, log=lambda line: None, progress=False)
        model, data = load_model(ckpt)
    users = np.arange(min(BATCH_USERS, data.num_users))
    get_recommendations(model, data, user_idx=users[:10].tolist(), top_k=10)  # warm
    timings: dict[str, list[float]] = {"batch": [], "loop": []}
    for _ in range(REPEATS):
        started = time.perf_counter()
        get_recommendations(model, data, user_idx=users.tolist(), top_k=10)
        timings["batch"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for u in users:
            get_recommendations(model, data, user_idx=int(u), top_k=10)
        timings["loop"].append(time.perf_counter() - started)
    result = {"dataset": dataset, "users": int(len(users)), "items": data.num_items, "top_k": 10,
              "batch_s": float(np.median(timings["batch"])), "loop_s": float(np.median(timings["loop"])),
              "timings": timings}
    log(f"[batch {dataset}] batch {result['batch_s']:.3f} s, loop {result['loop_s']:.3f} s")
    return result


def _score(lists: list[list[str]], truth: list[set[str]]) -> dict[str, float]:
    """Mean R-precision and NDCG@LIST of ranked name lists against held-out name sets."""
    r_prec, ndcg = [], []
    for ranked, relevant in zip(lists, truth):
        r_prec.append(len(set(ranked[:len(relevant)]) & relevant) / len(relevant))
        gains = np.array([1.0 if name in relevant else 0.0 for name in ranked[:LIST]])
        dcg = float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())
        ideal = float((1 / np.log2(np.arange(2, min(len(relevant), LIST) + 2))).sum())
        ndcg.append(dcg / ideal)
    return {"r_precision": float(np.mean(r_prec)), f"ndcg@{LIST}": float(np.mean(ndcg))}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool)) or v is None}


def report(doc: dict[str, Any]) -> str:
    """The two tables in Markdown."""
    m = doc["machine"]
    lines = [f"Measured {m['when']} on {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, git {m['git']}, "
             f"by `{doc['command']}`.", ""]
    if doc.get("fold_in"):
        lines += [f"**New listeners folded in** (Recall@{K} / NDCG@{K} of a seeded tenth of the users, on "
                  f"their test pairs; ratio = folded in / in training)", "",
                  "| dataset | users | model | in training | folded in | ratio | ms per user |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for r in doc["fold_in"]:
            pop = r["popularity"]
            lines.append(f"| {r['dataset']} | {r['users']:,} | popularity | {pop[f'recall@{K}']:.4f} / "
                         f"{pop[f'ndcg@{K}']:.4f} | (the same) | | |")
            for name, row in r["models"].items():
                a, b = row["in_training"], row["folded_in"]
                lines.append(f"| {r['dataset']} | {r['users']:,} | {name} | {a[f'recall@{K}']:.4f} / "
                             f"{a[f'ndcg@{K}']:.4f} | {b[f'recall@{K}']:.4f} / {b[f'ndcg@{K}']:.4f} | "
                             f"{row['ratio']:.3f} | {row['ms_per_user']:.2f} |")
        lines.append("")
    if doc.get("continuation"):
        lines += [f"**Playlist continuation** (the second half of each playlist held out; R-precision and "
                  f"NDCG@{LIST})", "", "| dataset | playlists | model | R-precision | NDCG@500 |",
                  "|---|---:|---|---:|---:|"]
        for r in doc["continuation"]:
            for name, row in r["models"].items():
                lines.append(f"| {r['dataset']} | {r['playlists']:,} | {name} | {row['r_precision']:.4f} | "
                             f"{row[f'ndcg@{LIST}']:.4f} |")
        lines.append("")
    if doc.get("batch"):
        lines += [f"**Batch recommendations** (top 10 each; median of {REPEATS} runs)", "",
                  "| dataset | users | one batch call | a loop of single calls | speed-up |", "|---|---:|---:|---:|---:|"]
        for r in doc["batch"]:
            lines.append(f"| {r['dataset']} | {r['users']:,} | {r['batch_s']:.3f} s | {r['loop_s']:.3f} s | "
                         f"{r['loop_s'] / r['batch_s']:.1f}x |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--fold-in", nargs="*", default=list(FOLD_IN_DATASETS), choices=list(quality.DATASETS),
                    help="datasets for the fold-in benchmark")
    ap.add_argument("--continuation", nargs="*", default=list(CONTINUATION_DATASETS),
                    choices=[d for d in quality.DATASETS if d not in ("lastfm", "hetrec")],
                    help="playlists datasets for the continuation benchmark")
    ap.add_argument("--batch", nargs="*", default=list(BATCH_DATASETS), choices=list(quality.DATASETS),
                    help="datasets for the batch timing")
    ap.add_argument("--playlists", type=int, default=500, help="playlists continued per dataset")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serving.json")
    ap.add_argument("--report", action="store_true", help="re-print the tables from --out and stop")
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return 0
    import shlex

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    doc = {"machine": quality.machine(),
           "command": ("python bench/serving.py " + shlex.join(sys.argv[1:] if argv is None else argv)).strip(),
           "fold_in": [], "continuation": [], "batch": []}
    for dataset in args.fold_in:
        if quality.SHARED in quality.DATASETS[dataset] and not (ROOT / quality.SHARED).exists():
            log(f"{dataset}: skipped, {ROOT / quality.SHARED} is absent")
            continue
        doc["fold_in"].append(fold_in(dataset, log))
    for dataset in args.continuation:
        if dataset in quality.GENERATED:
            from bench.full_scale import dataset as generated

            generated(quality.GENERATED[dataset], 0, ROOT / "bench" / "data")
        doc["continuation"].append(continuation(dataset, args.playlists, log))
    for dataset in args.batch:
        doc["batch"].append(batch(dataset, log))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    print(report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
