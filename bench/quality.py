"""Quality benchmark: our models beside tuned baselines, on train_gnn.py's own split and metric code.

    python bench/quality.py                                  # every model on sample, lastfm, hetrec
    python bench/quality.py --datasets lastfm --models EASE GCN
    python bench/quality.py --report                         # re-print the tables from the JSON
    python bench/quality.py --update --models GCN            # re-measure some rows, keep the others
    python bench/quality.py --dataset mine "--data my_train.tsv --test my_test.tsv"   # your own data

Datasets (the real ones are read from ../shared/data and skipped where it is absent), each
loaded exactly as the train_gnn.py flags in DATASETS load it:
    sample   the shipped synthetic spotify_dataset.csv, 80/10/10 per user
    lastfm   the Last.fm split of the reference LightGCN code: data1.txt (train) / test1.txt (test),
             validation carved from training
    hetrec   HetRec 2011 Last.fm 2K user_artists.dat, 70/10/20 per user, with its artists' tags
             (user_taggedartists.dat) for the GCN-tags row
    spotify10, spotify100
             the generated Spotify-shaped files of bench/full_scale.py at 10 % (1.29M rows,
             280k tracks) and 100 % (12.9M rows, 2.8M tracks), generated on first use;
             80/10/10 per user. Run by name only: not every model fits them (see bench/README.md)

Protocol, the same for every model, through the one model contract (melody_map.recommender):
    1. every grid point is fitted on the training pairs and judged by validation Recall@20
       (a model that trains by epochs also stops early on it);
    2. the best is refitted on training + validation with its choices (``model.refit``), as
       ``train_gnn.py --refit`` does;
    3. it is scored once on the test pairs: every item ranked, training and validation items
       left out (``pipeline.test_metrics``, the code train_gnn.py reports with).

Each (dataset, model) runs in a fresh process, so its peak resident memory is its own; the
time is the whole fit: tuning plus the refit. Every row carries the command that reproduces
it: a train_gnn.py command for our models, this script for a baseline. A GCN row also
scores its untrained start, the same command with ``--epochs 0``: what training adds.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = "../shared/data"  # relative to the repo root, as the commands below are run from it
K = 20
# Each dataset as train_gnn.py flags: the benchmark's split is train_gnn.py's split.
DATASETS = {
    "sample": "--data spotify_dataset.csv",
    "lastfm": f"--data {SHARED}/lastfm-lightgcn/data1.txt --test {SHARED}/lastfm-lightgcn/test1.txt",
    "hetrec": f"--data {SHARED}/hetrec2011-lastfm-2k/user_artists.dat --test-frac 0.2 "
              f"--item-tags '{SHARED}/hetrec2011-lastfm-2k/user_taggedartists.part*.dat'",
    "mpd": f"--data {SHARED}/mpd-slices-a",
    "spotify10": "--data bench/data/spotify_full_x0.1_seed0.csv",
    "spotify100": "--data bench/data/spotify_full_x1_seed0.csv",
}
GENERATED = {"spotify10": 0.1, "spotify100": 1.0}  # bench/full_scale.py's files: scale of each
DEFAULT_DATASETS = ("sample", "lastfm", "hetrec")  # without --datasets


@dataclass
class Entry:
    """One row of the tables: a contract model, the grid it is tuned over, and its fixed options."""

    factory: Callable[..., Any]
    grid: dict[str, list] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # options beside the defaults, part of the command


def entries() -> dict[str, Entry]:
    """Every benchmarked model by its row name (imports the models on demand)."""
    from bench.baselines import IALS, ItemKNN, LightGCNBaseline, Popularity
    from melody_map.ease import EASE
    from melody_map.filters import CHEBY_CF_GRID, GF_CF_GRID, GFCF, ChebyCF
    from melody_map.gcn import GCN, GCNBlend
    from melody_map.hybrid import GCNChebyCF

    gcn_grid = {"dim": [64, 128], "combine": ["concat", "last"]}  # dropout stays at 0.1
    return {
        "popularity": Entry(Popularity),
        "ItemKNN": Entry(ItemKNN, {"neighbors": [50, 100, 400], "similarity": ["cosine", "bm25"]}),
        "EASE": Entry(EASE, {"lam": [50.0, 200.0, 500.0, 2000.0]}),
        "iALS": Entry(IALS, {"factors": [64, 128], "regularization": [0.01, 1.0], "alpha": [1.0, 20.0]}),
        "GF-CF": Entry(GFCF, GF_CF_GRID),
        "ChebyCF": Entry(ChebyCF, CHEBY_CF_GRID),  # order 8, eta 256
        "LightGCN": Entry(partial(LightGCNBaseline, epochs=200, eval_every=5, patience=4)),
        # trainable random node vectors, the scorer on the last layer
        "GCN-trainable": Entry(GCN, fixed={"fixed_features": False, "init": "normal", "combine": "last"}),
        "GCN-last": Entry(GCN, fixed={"combine": "last"}),  # the scorer reads the second layer only
        "GCN": Entry(GCN),  # train_gnn.py's default
        "GCN-tuned": Entry(GCN, gcn_grid),
        "GCN+GF-CF": Entry(GCNBlend, gcn_grid),
        "GCN+ChebyCF": Entry(GCNChebyCF),  # its filter part is chosen inside fit, on validation
        # training options, each beside the default it changes
        "GCN-all-items": Entry(GCN, {"all_items": [0.01, 0.1, 1.0]}),  # iALS's all-pairs term
        "GCN-disjoint": Entry(GCN, {"negatives": [4, 16]}, fixed={"disjoint": True}),
        "GCN-degree": Entry(GCN, fixed={"init": "spectral+degree"}),
        "GAT": Entry(GCN, fixed={"conv": "gat"}),
        "GCN-tags": Entry(GCN, fixed={"init": "spectral+tags"}),  # needs --item-tags: hetrec only
        "GCN+GF-CF-tags": Entry(GCNBlend, gcn_grid, fixed={"init": "spectral+tags"}),
    }


MODELS = ("popularity", "ItemKNN", "EASE", "iALS", "GF-CF", "ChebyCF", "LightGCN", "GCN-trainable", "GCN-last", "GCN",
          "GCN-tuned", "GCN+GF-CF", "GCN+ChebyCF", "GCN-all-items", "GCN-disjoint", "GCN-degree", "GAT",
          "GCN-tags", "GCN+GF-CF-tags")


def load(dataset: str):
    """The dataset exactly as ``python train_gnn.py <its flags>`` loads and splits it."""
    from melody_map.config import TrainConfig, parse_config
    from melody_map.dataset import load_dataset

    return load_dataset(parse_config(TrainConfig, shlex.split(DATASETS[dataset]), ""))


@dataclass
class Options:
    """How this run departs from each row's own entry: for the large files, where a grid search
    or a default does not fit the time. Both are part of every affected row's command."""

    fixed: dict[str, Any] = field(default_factory=dict)  # --fixed KEY=VALUE: set for every model run
    no_tune: bool = False  # --no-tune: each grid cut to its first point

    def flags(self) -> str:
        return "".join([" --no-tune" if self.no_tune else "",
                        " --fixed " + " ".join(f"{k}={v}" for k, v in self.fixed.items()) if self.fixed else ""])


def entry(row: str, options: Options) -> Entry:
    """A row's entry as this run fits it."""
    e = entries()[row]
    grid = {k: v[:1] if options.no_tune else v for k, v in e.grid.items() if k not in options.fixed}
    return Entry(e.factory, grid, {**e.fixed, **options.fixed})


def command(dataset: str, row: str, params: dict[str, Any], options: Options = Options()) -> str:
    """The command that reproduces a row: train_gnn.py for our models, this script for a baseline."""
    from melody_map.config import TrainConfig

    if not is_product(row):
        return f"python bench/quality.py --datasets {dataset} --models {row}{options.flags()}"
    entry_ = entry(row, options)
    name = entry_.factory.name
    defaults = TrainConfig()
    chosen = {**entry_.fixed, **{k: params[k] for k in entry_.grid}}
    flags = [f"--model {name}"] if name != defaults.model else []
    for key, value in chosen.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif value != getattr(defaults, key):
            flags.append(f"{flag} {value}")
    return " ".join(["python train_gnn.py", DATASETS[dataset], *flags, "--refit"])


def child(dataset: str, row: str, options: Options) -> dict[str, Any]:
    """Tune, refit and test one model on one dataset; the result as a JSON-able dict."""
    from bench.baselines import tune
    from melody_map.pipeline import test_metrics

    def log(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    data = load(dataset)
    loaded = time.perf_counter()
    entry_ = entry(row, options)
    best, tuning = tune(partial(entry_.factory, **entry_.fixed), entry_.grid, data, K, log=log)
    merged = data.with_valid_in_train()
    final = best.refit(merged, log=log)
    fitted = time.perf_counter()
    metrics = test_metrics(final, data, K)
    params = final.params()
    result = {"dataset": dataset, "model": row, "flags": DATASETS[dataset], "command": command(dataset, row, params, options),
              "users": data.num_users, "items": data.num_items, "pairs": data.pairs.counts(),
              "split_digest": data.pairs.digest(),
              "load_seconds": loaded - start, "fit_seconds": fitted - loaded,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "params": params, "tuning": tuning, "tuned": not options.no_tune, "test": metrics[final.label]}
    if is_product(row):
        # The untrained start: the same choices with --epochs 0, fitted (and refitted) as the command does.
        log("the untrained start (--epochs 0):")
        untrained = entry_.factory(**entry_.fixed, **{k: params[k] for k in entry_.grid}, epochs=0)
        untrained = untrained.fit(data, log=log).refit(merged, log=log)
        result["start"] = test_metrics(untrained, data, K)[untrained.label]
        result["start_command"] = result["command"] + " --epochs 0"
    return result


def is_product(row: str) -> bool:
    """Whether a row is one of our models (a GCN, trained by epochs): its command is train_gnn.py's,
    and its untrained start is a row of its own."""
    from melody_map.gcn import MODELS as PRODUCT

    return getattr(entries()[row].factory, "name", "") in PRODUCT


def machine() -> dict[str, Any]:
    import os

    import torch

    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "platform": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "git": git.stdout.strip()}


def shown_params(row: str, params: dict[str, Any]) -> str:
    """The choices worth a column: the grid's, the fixed options, and what fitting chose."""
    entry = entries()[row]
    keys = [*entry.grid, *entry.fixed, "epochs", "gf_k", "gf_alpha", "weight"]
    return ", ".join(f"{k}={params[k]}" for k in dict.fromkeys(keys) if k in params) or "—"


def report(doc: dict[str, Any]) -> str:
    """One Markdown table per dataset, models in run order, best Recall@20 in bold."""
    m = doc["machine"]
    lines = [f"Measured {m['when']} on {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, git {m['git']}. "
             f"Command: `{doc['command']}`. Each row: tuned on validation, refitted on training + validation, "
             f"tested once; the last column reproduces it.", ""]
    for n, update in enumerate(doc.get("updates", []), start=1):
        u = update["machine"]
        lines += [f"Rows marked ({n}) were re-measured {u['when']} at git {u['git']} by `{update['command']}`.", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in doc["results"]):
        rows = [r for r in doc["results"] if r["dataset"] == dataset]
        ok = [r for r in rows if "test" in r]
        best = max((r["test"][f"recall@{K}"] for r in ok), default=None)
        head = ok[0] if ok else rows[0]
        pairs = head.get("pairs", {})
        lines += [f"**{dataset}** — `{head.get('flags', '')}`: {head.get('users', 0):,} users, "
                  f"{head.get('items', 0):,} items; pairs: train {pairs.get('train', 0):,}, "
                  f"validation {pairs.get('valid', 0):,}, test {pairs.get('test', 0):,}"
                  + (f" + {pairs['test_unseen']:,} whose item never appears in training (misses)"
                     if pairs.get("test_unseen") else ""), "",
                  f"| model | Recall@{K} | NDCG@{K} | fit (tuning + refit) | peak RSS | chosen | reproduce |",
                  "|---|---:|---:|---:|---:|---|---|"]
        for r in rows:
            if "test" not in r:
                lines.append(f"| {r['model']} | — | — | — | — | {r.get('error', 'failed')} | |")
                continue
            recall, ndcg = r["test"][f"recall@{K}"], r["test"][f"ndcg@{K}"]
            cell = f"**{recall:.4f}**" if recall == best else f"{recall:.4f}"
            name = f"{r['model']} ({r['update']})" if r.get("update") else r["model"]
            untuned = (" (untuned: its grid's first point)"
                       if r.get("tuned") is False and entries()[r["model"]].grid else "")
            lines.append(f"| {name} | {cell} | {ndcg:.4f} | {r['fit_seconds']:.1f} s | "
                         f"{r['peak_rss_mb'] / 1024:.2f} GiB | {shown_params(r['model'], r['params'])}{untuned} | "
                         f"`{r['command']}` |")
            if "start" in r:
                s_recall, s_ndcg = r["start"][f"recall@{K}"], r["start"][f"ndcg@{K}"]
                gain = f"training adds {100 * (recall / s_recall - 1):+.1f} % Recall" if s_recall else ""
                lines.append(f"| ↳ its untrained start | {s_recall:.4f} | {s_ndcg:.4f} | | | {gain} | "
                             f"`{r['start_command']}` |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=None, choices=list(DATASETS),
                    help="the built-in datasets to run (default: sample, lastfm and hetrec, or none with --dataset)")
    ap.add_argument("--dataset", nargs=2, action="append", default=[], metavar=("NAME", "FLAGS"),
                    help="also run a dataset of your own, given as train_gnn.py's data flags in one string")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality.json")
    ap.add_argument("--report", action="store_true", help="re-print the tables from --out and stop")
    ap.add_argument("--update", action="store_true",
                    help="re-measure only the rows asked for and replace them in --out, keeping the others")
    ap.add_argument("--no-tune", action="store_true",
                    help="fit each model at the first point of its grid, without a search (for the large files)")
    ap.add_argument("--fixed", nargs="+", default=[], metavar="KEY=VALUE",
                    help="set a model option for every model run (e.g. batch_size=65536); part of each row's command")
    ap.add_argument("--child", nargs=2, metavar=("DATASET", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    DATASETS.update(dict(args.dataset))
    options = Options({k: _value(v) for k, _, v in (f.partition("=") for f in args.fixed)}, args.no_tune)
    if args.child:
        import torch

        from melody_map.outputs import choose_threads

        torch.set_num_threads(choose_threads(0)[0])  # train_gnn.py's default: each row's command reproduces it
        print(json.dumps(child(*args.child, options)))
        return 0
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return 0

    command_line = ("python bench/quality.py " + shlex.join(sys.argv[1:] if argv is None else argv)).strip()
    if args.update:
        doc = json.loads(args.out.read_text())
        doc.setdefault("updates", []).append({"machine": machine(), "command": command_line})
    else:
        doc = {"machine": machine(), "command": command_line, "results": []}
    own = [name for name, _ in args.dataset]
    for dataset in (args.datasets or ([] if own else list(DEFAULT_DATASETS))) + own:
        if SHARED in DATASETS[dataset] and not (ROOT / SHARED).exists():
            print(f"{dataset}: skipped, {ROOT / SHARED} is absent", file=sys.stderr)
            continue
        if dataset in GENERATED:
            from bench.full_scale import dataset as generated

            generated(GENERATED[dataset], 0, ROOT / "bench" / "data")
        for model in args.models:
            print(f"[{dataset}] {model} ...", file=sys.stderr, flush=True)
            extra = ["--dataset", dataset, DATASETS[dataset]] if dataset in own else []
            extra += ["--no-tune"] * options.no_tune + (["--fixed", *args.fixed] if args.fixed else [])
            result = _run_child([sys.executable, __file__, "--child", dataset, model, *extra])
            result = {"dataset": dataset, "model": model, **result}
            _put(doc, result, len(doc.get("updates", [])))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(doc, indent=2))
    print(report(doc))
    return 0


def _value(text: str) -> Any:
    """A --fixed value: a JSON number, boolean or null where it parses as one, else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _run_child(argv: list[str]) -> dict[str, Any]:
    """Run one (dataset, model) child, its log passed through; its result, or why it failed."""
    with tempfile.TemporaryFile("w+") as stdout:  # a file, not a pipe: a large result cannot block the child
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True)
        last = ""
        for line in proc.stderr:  # passed through as it comes; the last line says why a child failed
            print(line, end="", file=sys.stderr, flush=True)
            last = line.strip() or last
        proc.wait()
        stdout.seek(0)
        out = stdout.read()
    if proc.returncode != 0:
        return {"error": f"exited {proc.returncode}: {last[-300:]}"}
    return json.loads(out.strip().splitlines()[-1])


def _put(doc: dict[str, Any], result: dict[str, Any], update: int) -> None:
    """Add a result, or (``update`` > 0) replace the row of the same dataset and model in place."""
    if update:
        result["update"] = update
        for i, old in enumerate(doc["results"]):
            if (old["dataset"], old["model"]) == (result["dataset"], result["model"]):
                doc["results"][i] = result
                return
    doc["results"].append(result)


if __name__ == "__main__":
    sys.exit(main())
