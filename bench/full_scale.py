"""The whole pipeline at 1% / 10% / 100% of the real Spotify Playlists file's size.

For each scale: generate the synthetic file once (reused from --data-dir), run
`train_gnn.py` as a new process under `/usr/bin/time -v` exactly as a user would, time a
cold `recommend.py` and warm `get_recommendations` calls on its checkpoint, and write
everything to --out as JSON; then print the Markdown table (`bench/report.py` re-prints it).

    python bench/full_scale.py                                   # 1%, 10%, 100%
    python bench/full_scale.py --scales 0.01 --extra "--epochs 2"  # a quick check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/full_scale.py` from the repo root, no install

from bench.report import render_table, scale_label  # noqa: E402

TIME = "/usr/bin/time"
PRESET = "full"
OWNED_FLAGS = ("--data", "--output", "--plot", "--summary-json")  # the harness sets these


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.01, 0.1, 1.0],
                    help="fractions of the real file's size (12.9M rows) to run")
    ap.add_argument("--data-dir", type=Path, default=Path("bench/data"),
                    help="generated CSVs (reused when complete) and each scale's checkpoint and logs")
    ap.add_argument("--out", type=Path, default=Path("bench/results/full_scale.json"), help="results JSON")
    ap.add_argument("--runs", type=int, default=1, help="runs per scale; the table shows their medians")
    ap.add_argument("--users", type=int, default=100, help="users timed for warm get_recommendations")
    ap.add_argument("--extra", default="", metavar="ARGS",
                    help='more flags for train_gnn.py, one string, e.g. "--epochs 3"')
    ap.add_argument("--seed", type=int, default=0, help="generator seed (train_gnn.py keeps its own --seed)")
    args = ap.parse_args(argv)
    extra = shlex.split(args.extra)
    clash = [a for a in extra if a.split("=")[0] in OWNED_FLAGS]
    if clash:
        ap.error(f"--extra must not set {', '.join(clash)}: the harness sets {', '.join(OWNED_FLAGS)}")
    if args.runs < 1 or args.users < 4:
        ap.error("--runs must be >= 1 and --users >= 4")
    if any(not 0 < s <= 4.0 for s in args.scales):
        ap.error("--scales must be in (0, 4]: past 1, the file holds more rows than the real 12.9M")
    return args


# --------------------------------------------------------------------------- measuring a process

def parse_time_v(text: str) -> dict[str, float]:
    """Wall seconds, peak RSS (MiB) and exit status from GNU time's -v report."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key.startswith("Elapsed (wall clock) time"):
            secs = 0.0
            for part in value.split(":"):  # h:mm:ss or m:ss.ss
                secs = secs * 60 + float(part)
            out["wall_seconds"] = secs
        elif key == "Maximum resident set size (kbytes)":
            out["peak_rss_mb"] = int(value) / 1024
        elif key == "User time (seconds)":
            out["user_seconds"] = float(value)
        elif key == "System time (seconds)":
            out["system_seconds"] = float(value)
        elif key == "Exit status":
            out["exit_status"] = int(value)
    return out


def _argv(cmd: list[str]) -> list[str]:
    """Commands are recorded as `python ...`; they run with the harness's own interpreter."""
    return [sys.executable, *cmd[1:]] if cmd[0] == "python" else cmd


def timed(cmd: list[str], time_file: Path, stdout: Path) -> dict[str, Any]:
    """Run cmd from the repo root under `/usr/bin/time -v`; stdout to a file, stderr (progress) live."""
    full = [TIME, "-v", "-o", str(time_file), *_argv(cmd)] if Path(TIME).exists() else _argv(cmd)
    time_file.unlink(missing_ok=True)
    start = time.perf_counter()
    with open(stdout, "wb") as f:
        rc = subprocess.run(full, cwd=ROOT, stdout=f).returncode
    result = {"command": shlex.join(cmd), "exit_code": rc, "harness_seconds": time.perf_counter() - start}
    if time_file.exists():
        result.update(parse_time_v(time_file.read_text()))
    return result


def rel(path: Path) -> str:
    """A path as the commands show it: relative to the repo root where it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --------------------------------------------------------------------------- stages of the benchmark

def dataset(scale: float, seed: int, data_dir: Path) -> dict[str, Any]:
    """The scale's CSV, generated in a child process unless a complete one is already there.

    Complete means: the sidecar `<csv>.meta.json` (written only after the generator's atomic
    rename) names this preset, scale and seed, and the file has the size it recorded.
    """
    csv = data_dir / f"spotify_{PRESET}_x{scale:g}_seed{seed}.csv"
    meta_path = csv.with_name(csv.name + ".meta.json")
    if meta_path.exists() and csv.exists():
        meta = json.loads(meta_path.read_text())
        if (meta.get("preset"), meta.get("scale"), meta.get("seed")) == (PRESET, scale, seed) \
                and meta.get("stats", {}).get("bytes") == csv.stat().st_size:
            return {**meta, "path": rel(csv), "reused": True}
    data_dir.mkdir(parents=True, exist_ok=True)
    stats_tmp = csv.with_name(csv.name + ".stats.tmp")
    code = ("import dataclasses, json, sys; from synthetic import write_dataset; "
            f'stats = write_dataset(sys.argv[1], preset="{PRESET}", scale={scale!r}, seed={seed!r}); '
            'json.dump({k: v for k, v in dataclasses.asdict(stats).items() if k != "planted_lines"}, '
            'open(sys.argv[2], "w"))')
    print(f"[{scale_label(scale)}] generating {rel(csv)} ...", file=sys.stderr, flush=True)
    run = timed(["python", "-c", code, rel(csv), rel(stats_tmp)],
                csv.with_name(csv.name + ".time.txt"), csv.with_name(csv.name + ".log"))
    if run["exit_code"] != 0:
        raise RuntimeError(f"generating {csv} failed (exit {run['exit_code']}): {run['command']}")
    meta = {"preset": PRESET, "scale": scale, "seed": seed, "command": run["command"],
            "generate_seconds": run.get("wall_seconds", run["harness_seconds"]),
            "generate_peak_rss_mb": run.get("peak_rss_mb"), "stats": json.loads(stats_tmp.read_text())}
    stats_tmp.unlink()
    meta_path.write_text(json.dumps(meta, indent=2))
    return {**meta, "path": rel(csv), "reused": False}


def train_run(csv: str, run_dir: Path, extra: list[str]) -> dict[str, Any]:
    """`train_gnn.py` as a new process; its --summary-json plus /usr/bin/time's wall and peak RSS."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt, summary_path = run_dir / "gnn_model.pth", run_dir / "summary.json"
    summary_path.unlink(missing_ok=True)  # never report an earlier run's numbers
    cmd = ["python", "train_gnn.py", "--data", csv, "--output", rel(ckpt),
           "--plot", rel(run_dir / "training_curve.png"), "--summary-json", rel(summary_path), *extra]
    run = timed(cmd, run_dir / "time.txt", run_dir / "train.log")
    run["checkpoint"] = rel(ckpt)
    run["log"] = (run_dir / "train.log").read_text(errors="replace").splitlines()
    if run["exit_code"] != 0 or not summary_path.exists():
        run["error"] = f"train_gnn.py exited {run['exit_code']} (stderr above; stdout in {rel(run_dir / 'train.log')})"
        return run
    summary = json.loads(summary_path.read_text())
    train = dict(summary.get("train") or {})
    epochs = train.get("epoch_seconds") or []
    train["epoch_seconds_median"] = statistics.median(epochs) if epochs else None
    # the known keys at the top, the whole summary kept as written (new keys included)
    run.update({k: summary.get(k) for k in ("load", "split", "graph", "stages", "test", "checkpoint_bytes")})
    run.update({"train": train, "summary_peak_rss_mb": summary.get("peak_rss_mb"), "summary": summary})
    if "peak_rss_mb" not in run:  # no GNU time report: the pipeline's own ru_maxrss
        run["peak_rss_mb"] = summary.get("peak_rss_mb")
    if "wall_seconds" not in run:
        run["wall_seconds"] = run["harness_seconds"]
    return run


def cold_recommend(ckpt: str, repeats: int = 3) -> dict[str, Any]:
    """`recommend.py` in a new process (imports included), median of `repeats`."""
    cmd = ["python", "recommend.py", "--checkpoint", ckpt, "--user", "0", "--top-k", "10"]
    seconds, first = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        p = subprocess.run(_argv(cmd), cwd=ROOT, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        if p.returncode != 0:
            return {"command": shlex.join(cmd), "exit_code": p.returncode,
                    "error": p.stderr.strip()[-500:], "seconds": seconds}
        first = first or p.stdout.splitlines()
    return {"command": shlex.join(cmd), "exit_code": 0, "seconds": seconds,
            "median_seconds": statistics.median(seconds), "output": first}


def warm_recommend(ckpt: str, n_users: int) -> dict[str, Any]:
    """`get_recommendations` in this process: load once, 3 warm-up calls, then n_users timed calls."""
    import gc

    import numpy as np

    from melody_map.api import get_recommendations, load_model

    start = time.perf_counter()
    model, data = load_model(ROOT / ckpt)
    load_seconds = time.perf_counter() - start
    users = np.unique(np.linspace(0, data.num_users - 1, num=n_users).round().astype(int))  # spread out
    for u in users[:3]:
        get_recommendations(model, data, user_idx=int(u), top_k=10)
    ms = []
    for u in users:
        start = time.perf_counter()
        get_recommendations(model, data, user_idx=int(u), top_k=10)
        ms.append((time.perf_counter() - start) * 1000)
    del model, data
    gc.collect()
    return {"users": len(users), "load_model_seconds": load_seconds, "median_ms": float(np.median(ms)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(np.max(ms)),
            "call": "get_recommendations(model, data, user_idx=u, top_k=10)"}


def median_of(runs: list[dict]) -> dict:
    """Numbers: the median over runs; nested dicts: recursively; anything else: the first run's."""
    out = {}
    for key, first in runs[0].items():
        values = [r.get(key) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[key] = statistics.median(values)
        elif all(isinstance(v, dict) for v in values) and key != "summary":
            out[key] = median_of(values)
        else:
            out[key] = first
    return out


def machine() -> dict[str, Any]:
    import torch

    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), None) if Path("/proc/meminfo").exists() else None
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_mb": None if mem_kb is None else mem_kb / 1024,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(), "python_executable": sys.executable,
        "git": git.stdout.strip() if git.returncode == 0 else None,
    }


def write_json(doc: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(TIME).exists():
        print(f"note: {TIME} not found; whole-run wall and peak RSS come from the harness and the "
              "pipeline's own ru_maxrss instead", file=sys.stderr)
    extra = shlex.split(args.extra)
    doc = {
        "benchmark": "full_scale",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", *(sys.argv if argv is None else ["bench/full_scale.py", *argv])]),
        "args": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}},
        "machine": machine(),
        "commands": [],
        "scales": [],
    }
    ok = True
    for scale in args.scales:
        label = scale_label(scale)
        entry: dict[str, Any] = {"scale": scale, "runs": []}
        doc["scales"].append(entry)
        entry["dataset"] = dataset(scale, args.seed, args.data_dir)
        if not entry["dataset"]["reused"]:
            doc["commands"].append(entry["dataset"]["command"])
        run_dir = args.data_dir / f"run_x{scale:g}"
        for i in range(args.runs):
            print(f"[{label}] run {i + 1}/{args.runs}: train_gnn.py ...", file=sys.stderr, flush=True)
            run = train_run(entry["dataset"]["path"], run_dir, extra)
            doc["commands"].append(f"{TIME} -v {run['command']}")
            if "error" not in run:
                print(f"[{label}] cold recommend.py, warm get_recommendations ...", file=sys.stderr, flush=True)
                run["cold_recommend"] = cold_recommend(run["checkpoint"])
                doc["commands"].append(run["cold_recommend"]["command"] + "  # x3")
                if run["cold_recommend"].get("error"):
                    run["error"] = f"recommend.py failed: {run['cold_recommend']['error']}"
                else:
                    run["warm_recommend"] = warm_recommend(run["checkpoint"], args.users)
            ok &= "error" not in run
            entry["runs"].append(run)
            write_json(doc, args.out)  # after every run: a long benchmark keeps what it measured
        good = [r for r in entry["runs"] if "error" not in r]
        entry["median"] = median_of(good) if good else None
        write_json(doc, args.out)
    print(render_table(doc))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
