"""The RecSys Challenge 2018 protocol on MPD slices: a challenge set built the official way,
scored with the challenge's own metrics, per category and overall.

    python bench/challenge.py                                   # every row on ../shared/data/mpd-slices-a
    python bench/challenge.py --models GCN popularity --update  # re-measure some rows, keep the others
    python bench/challenge.py --report                          # re-print the table from the JSON
    python bench/challenge.py --mpd DIR --per-category 100      # other slices, a larger set

The set. From the slices, ``--per-category`` playlists (seeded) go to each of the
challenge's ten categories (``CATEGORIES``): the seeds a playlist keeps (none; its first 1,
5, 10, 25 or 100 tracks; or 25 or 100 at random) and whether its name is given. A playlist
qualifies for a category with K seeds when it has at least ``K + max(10, K // 2)`` distinct
tracks (and, where the name is given, a name with a word in it); the categories are filled
from the most demanding down, each playlist in one. The rest of a chosen playlist is hidden.
Every other playlist trains whole.

The files. ``--work`` receives ``train/`` (every playlist: the chosen ones with their seeds
alone, their name blanked where the category hides it) and ``test/`` (the chosen playlists'
hidden tracks), both MPD slices, and ``challenge.json``. They are derived from the source
data: they are written outside the repository and never committed. Every model then reads
them as ``python train_gnn.py --data WORK/train --test WORK/test`` does: a chosen playlist
is a training playlist of its seeds, so each model scores it as one of its own users (no
model needs a fold-in, as the challenge's entrants trained on MPD with the challenge
playlists' seeds); iALS also runs with implicit's fold-in (``recalculate_user``) from a fit
without the chosen playlists.

The metrics (the challenge's rules; ``r_precision``, ``ndcg``, ``clicks``), over the 500
tracks recommended, a playlist's seeds and validation tracks left out:
    R-precision   (|S_T & G_T| + 0.25 |S_A & G_A|) / |G_T|: G_T the hidden tracks, S_T the first
                  |G_T| recommended, G_A and S_A their distinct artists (artist partial credit)
    NDCG          DCG = rel_1 + sum_{i>=2} rel_i / log2(i) over the 500; IDCG the same for |G_T|
                  hits in a row (0 when no hidden track is among the 500, and NDCG 0)
    clicks        floor((rank of the first hidden track - 1) / 10), 51 when none is among the 500
A hidden track that no training playlist holds can be matched by no model: it counts in
|G_T| (and its artist in G_A) all the same. Recall@20 is the project's (``evaluate``).

Protocol per row, as bench/quality.py: tuned on validation (a seeded 10 % of each training
playlist's pairs), refitted on training + validation, scored once. ``GCN`` is
``train_gnn.py``'s default run as it is (no tuning, no refit). A model that cannot read a
name gives a playlist with no seed the popularity list, as a challenge entry would.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import resource
import shlex
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import quality  # noqa: E402

SOURCE = "../shared/data/mpd-slices-a"  # relative to the repo root
WORK = Path(tempfile.gettempdir()) / "melody-challenge"  # derived from the source data: never in the repository
OUT = ROOT / "bench" / "results" / "challenge.json"
OUT_CATALOGUE = ROOT / "bench" / "results" / "challenge_catalogue.json"  # the same with --catalogue
N = 500  # tracks recommended per playlist, as the challenge asks
K = 20

# (label, seeds, name given, seeds taken at random): the official ten, in the official order.
CATEGORIES = (
    ("name only", 0, True, False),
    ("name + first 1", 1, True, False),
    ("name + first 5", 5, True, False),
    ("first 5, no name", 5, False, False),
    ("name + first 10", 10, True, False),
    ("first 10, no name", 10, False, False),
    ("name + first 25", 25, True, False),
    ("name + 25 at random", 25, True, True),
    ("name + first 100", 100, True, False),
    ("name + 100 at random", 100, True, True),
)
FOLDED = ("GCN", "GCN+GF-CF")  # also scored folded in from their seeds, without and with their order
FOLDED_LABELS = {"": "", "plain": " fold-in", "order": " fold-in, order"}
ROWS = ("popularity", "name-popularity", "ItemKNN", "EASE", "iALS", "iALS-fold-in", "GF-CF", "ChebyCF", "GCN",
        "GCN-no-words", "GCN+GF-CF")


# --------------------------------------------------------------------------- metrics

def r_precision(recommended: Sequence[str], recommended_artists: Sequence[str], hidden: Sequence[str],
                hidden_artists: Sequence[str]) -> float:
    """The challenge's R-precision with artist partial credit (see the module's docstring).

    Args:
        recommended: the ranked track keys; recommended_artists: the artist of each.
        hidden: the hidden tracks; hidden_artists: the artist of each.
    """
    truth = set(hidden)
    if not truth:
        return float("nan")
    top = list(recommended[: len(truth)])
    top_artists = set(recommended_artists[: len(truth)])
    return (len(set(top) & truth) + 0.25 * len(top_artists & set(hidden_artists))) / len(truth)


def ndcg(recommended: Sequence[str], hidden: Sequence[str]) -> float:
    """The challenge's NDCG: rel_1 + sum_{i>=2} rel_i / log2(i), over the ideal list of |G_T| hits."""
    truth = set(hidden)
    rel = np.fromiter((t in truth for t in recommended), dtype=np.float64, count=len(recommended))
    if not rel.any():
        return 0.0
    discount = np.ones(max(len(rel), len(truth)))
    discount[1:] = 1 / np.log2(np.arange(2, len(discount) + 1))
    return float((rel * discount[: len(rel)]).sum() / discount[: len(truth)].sum())


def clicks(recommended: Sequence[str], hidden: Sequence[str]) -> int:
    """Recommended-songs clicks: pages of 10 before the first hidden track; 51 when none is listed."""
    truth = set(hidden)
    for rank, track in enumerate(recommended, start=1):
        if track in truth:
            return (rank - 1) // 10
    return 51


# --------------------------------------------------------------------------- the set

def track_key(row: dict) -> str:
    """A track row's identity, as the MPD reader keys it: its URI, else artist and title."""
    uri = str(row.get("track_uri") or "").strip()
    return uri or f"{str(row.get('artist_name') or '').strip()}\x1f{str(row.get('track_name') or '').strip()}"


def build(source: str | os.PathLike, work: Path, per_category: int, seed: int) -> dict[str, Any]:
    """Write the challenge set's ``train/``, ``test/`` and ``challenge.json`` under ``work``; its summary."""
    from melody_map.mpd import mpd_files
    from melody_map.names import normalise

    files = mpd_files(source) or []
    if not files:
        raise SystemExit(f"{source}: no MPD slice found")
    playlists = []
    for file in files:
        with open(file, encoding="utf-8") as f:
            playlists += json.load(f)["playlists"]
    rng = random.Random(seed)
    distinct = {}
    for p in playlists:
        seen: dict[str, dict] = {}
        for row in p["tracks"]:
            seen.setdefault(track_key(row), row)
        distinct[p["pid"]] = list(seen.values())
    chosen: dict[int, str] = {}
    seeds: dict[int, list[dict]] = {}
    # The most demanding categories first, so that the long playlists they need are still free.
    for label, k, named, at_random in sorted(CATEGORIES, key=lambda c: (-c[1], c[3], c[2])):
        pool = [p["pid"] for p in playlists if p["pid"] not in chosen
                and len(distinct[p["pid"]]) >= k + max(10, k // 2) and (not named or normalise(p.get("name") or ""))]
        for pid in rng.sample(pool, min(per_category, len(pool))):
            tracks = distinct[pid]
            picked = sorted(rng.sample(range(len(tracks)), k)) if at_random else list(range(k))
            chosen[pid], seeds[pid] = label, [tracks[i] for i in picked]
    named_of = {label: named for label, _, named, _ in CATEGORIES}
    train, test = [], []
    for p in playlists:
        pid = p["pid"]
        if pid not in chosen:
            train.append(p)
            continue
        kept = {track_key(r) for r in seeds[pid]}
        train.append({**p, "name": p.get("name", "") if named_of[chosen[pid]] else "", "tracks": seeds[pid]})
        test.append({"pid": pid, "name": p.get("name", ""),
                     "tracks": [r for r in distinct[pid] if track_key(r) not in kept]})
    for part, rows in (("train", train), ("test", test)):
        (work / part).mkdir(parents=True, exist_ok=True)
        for old in glob.glob(str(work / part / "*.json")):
            os.remove(old)
        with open(work / part / f"mpd.slice.challenge-{part}.json", "w", encoding="utf-8") as f:
            json.dump({"info": {"generated_on": "bench/challenge.py", "slice": part, "version": "challenge"},
                       "playlists": rows}, f)
    unplayed = write_catalogue(work, train, test, rng)
    summary = {"source": str(source), "seed": seed, "per_category": per_category, "playlists": len(playlists),
               "chosen": len(chosen), "categories": {label: sum(v == label for v in chosen.values())
                                                     for label, *_ in CATEGORIES},
               "hidden_rows": sum(len(p["tracks"]) for p in test), "unplayed_hidden_tracks": unplayed}
    (work / "challenge.json").write_text(json.dumps({**summary, "category_of": {str(k): v for k, v in chosen.items()}}))
    return summary


def write_catalogue(work: Path, train: list[dict], test: list[dict], rng: random.Random) -> int:
    """``work/catalogue.json``: every hidden track no training playlist holds (new releases, as far
    as the training can tell), and as many distractors nobody played: a made-up track by an
    artist drawn at random from the training's, so that being in the catalogue is no hint.
    Returns the number of unplayed hidden tracks."""
    played = {track_key(r) for p in train for r in p["tracks"]}
    unplayed: dict[str, dict] = {}
    for p in test:
        for r in p["tracks"]:
            if track_key(r) not in played:
                unplayed.setdefault(track_key(r), r)
    artists = sorted({(str(r.get("artist_name") or ""), str(r.get("artist_uri") or ""))
                      for p in train for r in p["tracks"]})
    distractors = []
    for n in range(len(unplayed)):
        name, uri = rng.choice(artists)
        distractors.append({"artist_name": name, **({"artist_uri": uri} if uri else {}),
                            "track_uri": f"distractor:{n}", "track_name": f"Distractor {n}"})
    with open(work / "catalogue.json", "w", encoding="utf-8") as f:
        json.dump([*unplayed.values(), *distractors], f)
    return len(unplayed)


# --------------------------------------------------------------------------- scoring

def flags(work: Path, catalogue: bool = False) -> str:
    return f"--data {work}/train --test {work}/test" + (f" --catalogue {work}/catalogue.json" if catalogue else "")


def fit_row(row: str, data, log) -> tuple[Any, dict[str, Any]]:
    """The row's fitted model as the protocol fits it, and its chosen parameters."""
    from bench.baselines import IALS, NamePopularity, tune
    from melody_map.gcn import GCN
    from melody_map.types import TRAIN

    if row == "GCN":  # train_gnn.py's default run: no tuning, no refit
        model = GCN().fit(data, log=log)
        return model, model.params()
    if row == "GCN-no-words":  # the same on the graph without name words
        from dataclasses import replace

        from melody_map.graph import build_graph

        bare = replace(data, words=False, graph=build_graph(data.rows, data.pairs, False), _items={})
        model = GCN().fit(bare, log=log)
        return model, model.params()
    if row == "name-popularity":
        return NamePopularity().fit(data.with_valid_in_train()), {}
    entry = quality.entry("iALS" if row == "iALS-fold-in" else row, quality.Options())
    best, _ = tune(partial(entry.factory, **entry.fixed), entry.grid, data, K, log=log)
    merged = data.with_valid_in_train()
    if row != "iALS-fold-in":
        model = best.refit(merged, log=log)
        return model, model.params()
    # iALS fitted without the challenge playlists, which are then folded in from their seeds.
    challenge = np.flatnonzero(data.test_items().heldout_counts() > 0)
    matrix = merged.matrix(TRAIN).tolil()
    matrix[challenge] = 0
    model = IALS(**{k: v for k, v in best.params().items()}).fit_matrix(matrix.tocsr())
    model.challenge = challenge
    return model, model.params()


RECENCY = 1.0  # order-aware fold-in: a playlist's last seed weighs twice its first (foldin.position_weights)


def ranked(model, row: str, data, users: np.ndarray, fold: str = "") -> np.ndarray:
    """(len(users), N) the N best items of each challenge playlist, seeds and validation left out.

    ``fold``: "" ranks a playlist as the model's own user; "plain" folds it in from its seeds
    (and its name, for a model that reads names), "order" does so with later seeds weighing more.
    """
    from melody_map.foldin import position_weights
    from melody_map.ranking import top_k
    from melody_map.types import TRAIN, VALID

    known = data.items(TRAIN, VALID)
    if row == "iALS-fold-in" or fold:
        histories = seeds_in_order(data, users)
        options = {}
        if fold:
            options["names"] = data.catalogue.user_names.take(users).to_pylist()
        if fold == "order":
            options["weights"] = [position_weights(len(h), RECENCY) for h in histories]
        scores = model.fold_in(histories, **options)
        items, _ = top_k(lambda batch: scores[torch_index(np.searchsorted(users, batch))], users, N, known)
    else:
        items, _ = model.top_k(users, N, known)
    reads_names = row == "name-popularity" or (hasattr(model, "reads_names") and model.reads_names())
    bare = known.counts()[users] == 0
    if bare.any() and not reads_names:  # a name alone, and a model that cannot read it: popularity
        counts = np.bincount(known.items, minlength=data.num_items)
        items[bare] = np.argsort(-counts, kind="stable")[:N]
    return items


def seeds_in_order(data, users: np.ndarray) -> list[np.ndarray]:
    """Each user's rows' items in the order of their position in the playlist."""
    rows = data.rows
    position = rows.position if rows.position is not None else np.arange(len(rows.user))
    order = np.lexsort((position, rows.user))
    user, item = rows.user[order], rows.item[order]
    start, stop = np.searchsorted(user, users), np.searchsorted(user, users, side="right")
    return [item[a:b] for a, b in zip(start, stop)]


def torch_index(rows: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(rows, np.int64))


def score(data, users: np.ndarray, items: np.ndarray, work: Path) -> dict[str, Any]:
    """The challenge metrics per category and overall, and the project's Recall@20 and NDCG@20."""
    from melody_map.evaluate import ranking_metrics

    meta = json.loads((work / "challenge.json").read_text())
    hidden = {}
    for file in sorted(glob.glob(str(work / "test" / "*.json"))):
        with open(file, encoding="utf-8") as f:
            for p in json.load(f)["playlists"]:
                hidden[str(p["pid"])] = p["tracks"]
    cat = data.catalogue
    uris = cat.item_uris.to_pylist()
    titles, artists = cat.item_names.to_pylist(), cat.artist_names.to_pylist()
    item_artist = cat.item_artist
    keys = [u or f"{artists[item_artist[i]]}\x1f{titles[i]}" for i, u in enumerate(uris)]
    pids = cat.user_ids.to_pylist()
    per: dict[str, list[tuple[float, float, int]]] = {}
    for u, row in zip(users, items):
        pid = pids[int(u)]
        truth = hidden[pid]
        got = [keys[i] for i in row]
        got_artists = [artists[item_artist[i]] for i in row]
        truth_keys = [track_key(r) for r in truth]
        truth_artists = [str(r.get("artist_name") or "").strip() for r in truth]
        per.setdefault(meta["category_of"][pid], []).append(
            (r_precision(got, got_artists, truth_keys, truth_artists), ndcg(got, truth_keys), clicks(got, truth_keys)))
    table = {}
    for label, *_ in CATEGORIES:
        values = np.asarray(per.get(label, []), dtype=np.float64).reshape(-1, 3)
        table[label] = {"playlists": len(values), "r_precision": float(values[:, 0].mean()) if len(values) else None,
                        "ndcg": float(values[:, 1].mean()) if len(values) else None,
                        "clicks": float(values[:, 2].mean()) if len(values) else None}
    every = np.asarray([v for vs in per.values() for v in vs], dtype=np.float64)
    table["overall"] = {"playlists": len(every), "r_precision": float(every[:, 0].mean()),
                        "ndcg": float(every[:, 1].mean()), "clicks": float(every[:, 2].mean())}
    project = ranking_metrics(users, items, np.zeros(items.shape, np.float32), data.test_items(), data.num_items, K)
    return {"categories": table, "recall@20": project[f"recall@{K}"], "ndcg@20": project[f"ndcg@{K}"],
            "unplayed": unplayed_recovered(data, users, items)}


def unplayed_recovered(data, users: np.ndarray, items: np.ndarray) -> dict[str, float | int]:
    """Of the held-out pairs whose track no training playlist holds, the share each cut-off recovers
    (a track outside the catalogue counts as not recovered)."""
    from melody_map.types import TRAIN, VALID

    played = np.zeros(data.num_items, bool)
    played[data.items(TRAIN, VALID).items] = True
    held = data.test_items()
    misses = held.misses if held.misses is not None else np.zeros(held.num_users, np.int64)
    total, hits = int(misses[users].sum()), {20: 0, N: 0}
    for u, row in zip(users, items):
        mine = held.of(int(u))
        new = mine[~played[mine]]
        total += len(new)
        for k in hits:
            hits[k] += int(np.isin(row[:k], new).sum())
    return {"pairs": total, **{f"recovered@{k}": hits[k] / total if total else 0.0 for k in hits}}


def child(row: str, work: Path, catalogue: bool = False) -> dict[str, Any]:
    from melody_map.config import TrainConfig, parse_config
    from melody_map.dataset import load_dataset

    def log(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    data = load_dataset(parse_config(TrainConfig, shlex.split(flags(work, catalogue)), ""))
    loaded = time.perf_counter()
    model, params = fit_row(row, data, log)
    fitted = time.perf_counter()
    users = np.flatnonzero(data.test_items().heldout_counts() > 0)
    results = []
    for fold in ("", "plain", "order") if row in FOLDED else ("",):
        begun = time.perf_counter()
        items = ranked(model, row, data, users, fold)
        results.append({"model": row + FOLDED_LABELS[fold],
                        "params": {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool))},
                        "load_seconds": loaded - start, "fit_seconds": fitted - loaded,
                        "rank_seconds": time.perf_counter() - begun,
                        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                        "pairs": data.pairs.counts(),
                        "command": f"python bench/challenge.py --models {row}" + " --catalogue" * catalogue,
                        **score(data, users, items, work)})
    return {"rows": results}


# --------------------------------------------------------------------------- report

def report(doc: dict[str, Any]) -> str:
    m, s = doc["machine"], doc["set"]
    rows = doc["results"]
    lines = [f"Last run {m['when']} on {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, git {m['git']}: "
             f"`{doc['command']}`; each row's own commit is in the second table. The set: {s['chosen']:,} of {s['playlists']:,} playlists of "
             f"`{s['source']}` (seed {s['seed']}, {s['per_category']} per category), {s['hidden_rows']:,} hidden "
             f"tracks; the rest train. Train_gnn.py reads it as `python train_gnn.py --data WORK/train --test "
             f"WORK/test` (WORK: `--work`, by default {WORK}).", "",
             "R-precision (artist credit 0.25) / NDCG over 500 / clicks per category; best R-precision in bold.", ""]
    labels = [label for label, *_ in CATEGORIES] + ["overall"]
    ok = [r for r in rows if "categories" in r]
    best = {label: max((r["categories"][label]["r_precision"] or 0) for r in ok) for label in labels} if ok else {}
    lines += ["| category (playlists) | " + " | ".join(r["model"] for r in ok) + " |",
              "|---|" + "---:|" * len(ok)]
    for label in labels:
        n = ok[0]["categories"][label]["playlists"] if ok else 0
        cells = []
        for r in ok:
            c = r["categories"][label]
            rp = f"{c['r_precision']:.4f}" if c["r_precision"] is not None else "—"
            rp = f"**{rp}**" if c["r_precision"] is not None and c["r_precision"] == best[label] else rp
            cells.append(f"{rp} / {c['ndcg']:.4f} / {c['clicks']:.2f}" if c["ndcg"] is not None else "—")
        lines.append(f"| {label} ({n}) | " + " | ".join(cells) + " |")
    unplayed = next((r["unplayed"]["pairs"] for r in ok if "unplayed" in r), 0)
    held = ok[0]["pairs"].get("test", 0) + ok[0]["pairs"].get("test_unseen", 0) if ok else 0
    lines += ["", f"Recall@20 and NDCG@20 (the project's) over all {held:,} held-out pairs; {unplayed:,} of them "
              "have a track no training playlist holds (a miss where the catalogue lacks it). Unplayed: the share "
              "of those each model recovers in its top 20 / 500.", "",
              "| model | Recall@20 | NDCG@20 | unplayed @20 / @500 | fit | peak RSS | chosen | git | reproduce |",
              "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for r in rows:
        git = r.get("measured", {}).get("git", "—")  # rows from before 2026-12-04 did not record it
        if "categories" not in r:
            lines.append(f"| {r['model']} | — | — | — | — | — | {r.get('error', 'failed')} | {git} | |")
            continue
        base = next((b for b in sorted(ROWS, key=len, reverse=True) if r["model"].startswith(b)), r["model"])
        entry = {"iALS-fold-in": "iALS", "GCN-no-words": "GCN"}.get(base, base)
        chosen = quality.shown_params(entry if entry in quality.entries() else "popularity", r["params"])
        new = r.get("unplayed", {})
        share = f"{new.get('recovered@20', 0):.4f} / {new.get(f'recovered@{N}', 0):.4f}" if new else "—"
        lines.append(f"| {r['model']} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} | {share} | "
                     f"{r['fit_seconds']:.1f} s | {r['peak_rss_mb'] / 1024:.2f} GiB | {chosen} | {git} | "
                     f"`{r['command']}` |")
    return "\n".join(lines)


def order_key(result: dict[str, Any]) -> tuple[int, int]:
    """Rows in ``ROWS`` order, each fold-in variant after its row."""
    for base in sorted(ROWS, key=len, reverse=True):
        for n, suffix in enumerate(FOLDED_LABELS.values()):
            if result["model"] == base + suffix:
                return ROWS.index(base), n
    return len(ROWS), 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--mpd", default=SOURCE, help="the MPD slices to build the set from")
    ap.add_argument("--work", type=Path, default=WORK, help="where the set's files go (outside the repository)")
    ap.add_argument("--per-category", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=list(ROWS), choices=ROWS)
    ap.add_argument("--catalogue", action="store_true",
                    help="train with --catalogue: the unplayed hidden tracks and as many distractors (writes "
                         f"{OUT_CATALOGUE.relative_to(ROOT)} unless --out says otherwise)")
    ap.add_argument("--out", type=Path, default=None, help=f"default {OUT.relative_to(ROOT)}")
    ap.add_argument("--report", action="store_true", help="re-print the tables from --out and stop")
    ap.add_argument("--update", action="store_true", help="re-measure the rows asked for, keep the others")
    ap.add_argument("--child", metavar="MODEL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.out = args.out or (OUT_CATALOGUE if args.catalogue else OUT)
    if args.child:
        import torch

        from melody_map.outputs import choose_threads

        torch.set_num_threads(choose_threads(0)[0])
        print(json.dumps(child(args.child, args.work, args.catalogue)))
        return 0
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return 0
    if not (ROOT / args.mpd).exists() and not Path(args.mpd).exists():
        print(f"{args.mpd} is absent: nothing to build the challenge set from", file=sys.stderr)
        return 0
    os.chdir(ROOT)
    summary = build(args.mpd, args.work, args.per_category, args.seed)
    print(f"challenge set: {summary}", file=sys.stderr)
    command_line = ("python bench/challenge.py " + shlex.join(sys.argv[1:] if argv is None else argv)).strip()
    doc = json.loads(args.out.read_text()) if args.update and args.out.exists() else {"results": []}
    doc.update(machine=quality.machine(), command=command_line, set=summary)
    for row in args.models:
        print(f"[challenge] {row} ...", file=sys.stderr, flush=True)
        result = quality._run_child([sys.executable, __file__, "--child", row, "--work", str(args.work)]
                                    + ["--catalogue"] * args.catalogue)
        fresh = result.get("rows", [{"model": row, **result}])
        for r in fresh:
            r["measured"] = {"when": doc["machine"]["when"], "git": doc["machine"]["git"]}
        names = {r["model"] for r in fresh}
        doc["results"] = [r for r in doc["results"] if r["model"] not in names] + fresh
        doc["results"].sort(key=order_key)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2))
    print(report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
