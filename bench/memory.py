"""The memory estimate (melody_map/memory.py) against the measured peak, per file and flags.

Each run is `train_gnn.py` as a new process under `/usr/bin/time -v`; its summary JSON holds
the two estimates it made before allocating (reading, from the file's size; the rest, from
the counts and the flags), and `time` the measured peak RSS. Results go to --out as JSON
and a Markdown table to stdout.

    python bench/memory.py bench/data/spotify_full_x0.01_seed0.csv bench/data/spotify_full_x0.1_seed0.csv
    python bench/memory.py FILE --extra "--dim 64"
    python bench/memory.py --per-entity    # the model's bytes per user, track, ... at each --dim
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(data: str, extra: list[str]) -> dict:
    """One run: its command, both estimates, the measured peak and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        cmd = [sys.executable, str(ROOT / "train_gnn.py"), "--data", data, "--output", str(Path(tmp) / "m.pth"),
               "--plot", "", "--summary-json", str(summary), *extra]
        done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{shlex.join(cmd)} failed:\n{done.stderr[-2000:]}")
        peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
        doc = json.loads(summary.read_text())
    estimate = max(doc["reading_estimate_mb"], doc["memory_estimate_mb"])
    measured = peak_kb / 1024
    return {"command": shlex.join(["python", "train_gnn.py", "--data", data, *extra]),
            "graph": doc["graph"], "reading_estimate_mb": doc["reading_estimate_mb"],
            "run_estimate_mb": doc["memory_estimate_mb"], "estimate_mb": estimate, "measured_peak_mb": measured,
            "error": estimate / measured - 1, "stages": doc["stages"]}


def table(rows: list[dict]) -> str:
    lines = ["| command | estimate (reading / rest) | measured peak | error |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['command']}` | {r['estimate_mb'] / 1024:.2f} GB ({r['reading_estimate_mb'] / 1024:.2f} / "
                     f"{r['run_estimate_mb'] / 1024:.2f}) | {r['measured_peak_mb'] / 1024:.2f} GB | "
                     f"{100 * r['error']:+.1f} % |")
    return "\n".join(lines)


def per_entity_table(dims: tuple[int, ...] = (16, 32, 64, 128)) -> str:
    """The estimate's bytes per user, track, artist, playlist and undirected edge at the 100 % file's
    counts (one more of each, the rest fixed), its fixed part, and its peak phase, at each --dim."""
    sys.path.insert(0, str(ROOT))
    import dataclasses

    from melody_map.config import TrainConfig
    from melody_map.memory import Counts, run_peak

    full = Counts(users=15_900, items=2_800_004, nodes=3_335_904, train_pairs=7_497_530, nnz=44_568_184,
                  valid_users=15_485, test_users=15_485)
    step = 1000  # finite differences over 1,000 more of each
    grow = {"user": dict(users=step, nodes=step, nnz=step),
            "track": dict(items=step, nodes=step, nnz=step),
            "artist": dict(nodes=step, nnz=step), "playlist": dict(nodes=step, nnz=step),
            "edge": dict(nnz=2 * step)}
    lines = ["| --dim | per user | per track | per artist | per playlist | per edge | added on the 100 % file (peak phase) |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for dim in dims:
        cfg = TrainConfig(dim=dim)
        base, phase = run_peak(full, cfg, 0)
        cells = []
        for more in grow.values():
            bigger = dataclasses.replace(full, **{k: getattr(full, k) + v for k, v in more.items()})
            cells.append(f"{(run_peak(bigger, cfg, 0)[0] - base) / step:,.0f} B")
        lines.append(f"| {dim} | " + " | ".join(cells) + f" | {base / (1 << 30):.2f} GB ({phase}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="input files, each run once")
    ap.add_argument("--per-entity", action="store_true",
                    help="print the estimate's bytes per user, track, artist, playlist and edge at each --dim")
    ap.add_argument("--extra", default="", metavar="ARGS", help='more flags for train_gnn.py, e.g. "--dim 64"')
    ap.add_argument("--out", type=Path, default=Path("bench/results/memory.json"),
                    help="results JSON; runs are appended to what it holds")
    args = ap.parse_args(argv)
    if args.per_entity:
        print(per_entity_table())
        return 0
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "memory", "runs": []}
    rows = []
    for path in args.files:
        row = measure(path, shlex.split(args.extra))
        row["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        row["machine"] = f"{platform.machine()}, {platform.python_version()}"
        row["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=ROOT).stdout.strip()
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
        doc["runs"].append(row)
        args.out.write_text(json.dumps(doc, indent=2))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
