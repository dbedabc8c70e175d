"""The MPD reader's speed and memory on synthetic slices of the real MPD's shape.

    python bench/mpd_read.py                       # 100 slices, about 6.6M track rows, median of 2
    python bench/mpd_read.py --rows 1e6 --runs 3   # a smaller set

The slices are written once by the synthetic generator (``python -m synthetic --format mpd``,
the full MPD schema) under ``bench/data/``; each run reads them with ``melody_map.mpd.read_mpd``
in a fresh process, which reports its wall time and peak resident memory. The result goes
to ``--out`` as JSON, with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL_ROWS = 12_868_330  # the full preset's rows (the real file's cleaned size)
FULL_PLAYLISTS = 231_569
READ = """
import json, resource, sys, time
from melody_map.mpd import read_mpd
start = time.perf_counter()
rows, playlists = read_mpd(sys.argv[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": peak, "track_rows": rows.report.rows_read,
                  "playlists": playlists.rows_read, "tracks": rows.catalogue.num_items,
                  "artists": rows.catalogue.num_artists}))
"""


def slices_folder(rows: float, slices: int, seed: int) -> Path:
    """The synthetic slices for about ``rows`` track rows in ``slices`` files, written once."""
    from synthetic.mpd import write_mpd

    scale = rows / FULL_ROWS
    per_slice = math.ceil(FULL_PLAYLISTS * scale / slices)
    folder = ROOT / "bench" / "data" / f"mpd_rows{int(rows)}_slices{slices}_seed{seed}"
    if not (folder / ".complete").exists():
        done = write_mpd(folder, "full", scale, seed, per_slice=per_slice, slices=slices)
        (folder / ".complete").write_text(json.dumps(done))
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--rows", type=float, default=6.6e6, help="track rows, about (the full preset scaled)")
    ap.add_argument("--slices", type=int, default=100, help="slice files")
    ap.add_argument("--runs", type=int, default=2, help="fresh-process reads; the median is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mpd_read.json")
    args = ap.parse_args(argv)
    folder = slices_folder(args.rows, args.slices, args.seed)
    written = json.loads((folder / ".complete").read_text())
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", READ, str(folder)], cwd=ROOT, capture_output=True, text=True,
                             check=True)
        runs.append(json.loads(out.stdout))
        print(f"read {runs[-1]['track_rows']:,} track rows of {runs[-1]['playlists']:,} playlists in "
              f"{runs[-1]['seconds']:.1f} s, peak {runs[-1]['peak_rss_mb'] / 1024:.2f} GiB")
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    doc = {"command": "python bench/mpd_read.py " + shlex.join(sys.argv[1:] if argv is None else argv),
           "machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "git": git.stdout.strip()},
           "written": written, "runs": runs,
           "median_seconds": statistics.median(r["seconds"] for r in runs),
           "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs)}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"median {doc['median_seconds']:.1f} s, peak {doc['median_peak_rss_mb'] / 1024:.2f} GiB; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
