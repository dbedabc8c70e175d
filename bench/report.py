"""Re-print the full-scale benchmark's Markdown table from its JSON; runs nothing.

    python bench/report.py                                # bench/results/full_scale.json
    python bench/report.py path/to/full_scale.json
    python bench/report.py bench/results/full_scale.json bench/results/full_scale_200pct.json   # side by side

`bench/full_scale.py` prints the same table when it finishes (it calls `render_table`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

DEFAULT_JSON = "bench/results/full_scale.json"
GIB = 1024 ** 3
DASH = "—"

Result = dict[str, Any]  # one scale's measurements (the median over its runs)


def _get(d: Any, *keys: str) -> Any:
    """d[k1][k2]... or None where any level is missing (the JSON may come from an older run)."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return DASH
    if s < 10:
        return f"{s:.2f} s"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min"


def fmt_gib(mb: float | None) -> str:
    """MiB (as the pipeline and /usr/bin/time report: KiB / 1024) -> GiB."""
    return DASH if mb is None else f"{mb / 1024:.2f} GiB"


def fmt_ms(ms: float | None) -> str:
    return DASH if ms is None else f"{ms:.1f} ms"


def fmt_int(n: Any) -> str:
    return DASH if n is None else f"{int(n):,}"


def ids_graph_split_seconds(r: Result) -> float | None:
    """Seconds from the clean rows to graph + split. Ids are coded inside the "load" stage today;
    an "ids" stage is counted here if the pipeline ever reports one."""
    stages = r.get("stages") or {}
    parts = [stages[s]["seconds"] for s in ("ids", "split", "graph") if s in stages]
    return sum(parts) if parts else None


def _stage(name: str) -> Callable[[Result], str]:
    def cell(r: Result) -> str:
        s = _get(r, "stages", name)
        if s is None:
            return DASH
        return f"{fmt_seconds(s.get('seconds'))} (peak {fmt_gib(s.get('peak_rss_mb'))})"
    return cell


def _stage_seconds(name: str) -> Callable[[Result], float | None]:
    return lambda r: _get(r, "stages", name, "seconds")


def _early_stopped(r: Result) -> bool:
    """Training ended by early stopping, not by running into the --epochs cap."""
    cap = _get(r, "summary", "config", "epochs")
    return cap is not None and _get(r, "train", "epochs_run") is not None and r["train"]["epochs_run"] < cap


def _train_total_seconds(r: Result) -> float | None:
    """Training's seconds including the spectral start (the "init" stage) where there is one."""
    train = _get(r, "stages", "train", "seconds")
    return None if train is None else train + (_get(r, "stages", "init", "seconds") or 0.0)


def _train_cell(r: Result) -> str:
    t = r.get("train") or {}
    if _get(r, "stages", "train") is None:
        return DASH
    stop = "" if _early_stopped(r) else " (hit the --epochs cap: no early stop)"
    init = _get(r, "stages", "init", "seconds")
    start = "" if init is None else f" incl. {fmt_seconds(init)} spectral start"
    return (f"{fmt_seconds(_train_total_seconds(r))}{start} (peak {fmt_gib(_get(r, 'stages', 'train', 'peak_rss_mb'))}), "
            f"{fmt_int(t.get('epochs_run'))} epochs, best {fmt_int(t.get('best_epoch'))}{stop}")


def _pair(name: str, metric: str) -> Callable[[Result], str]:
    def cell(r: Result) -> str:
        model = next((label for label in (r.get("test") or {}) if label != "popularity"), "GCN")  # the run's model
        gcn, pop = _get(r, "test", model, metric), _get(r, "test", "popularity", metric)
        if gcn is None and pop is None:
            return DASH
        return " / ".join(DASH if v is None else f"{v:.4f}" for v in (gcn, pop))
    return cell


def _rows_cell(r: Result) -> str:
    load = r.get("load") or {}
    if not load:
        return DASH
    read = load.get("rows_read", load.get("lines_read"))  # results before the one reader say lines_read
    return f"{fmt_int(read)} / {fmt_int(load.get('rows_kept'))}"


def _pairs_cell(r: Result) -> str:
    s = r.get("split") or {}
    return DASH if not s else " / ".join(fmt_int(s.get(k)) for k in ("train", "valid", "test"))


def _checkpoint_cell(r: Result) -> str:
    b = r.get("checkpoint_bytes")
    return DASH if b is None else f"{b / 1024 ** 2:,.1f} MiB"


def _estimate_cell(r: Result) -> str:
    """``memory.py``'s estimate (the larger of reading's and the rest's) against the measured peak."""
    reading, rest = _get(r, "summary", "reading_estimate_mb"), _get(r, "summary", "memory_estimate_mb")
    if reading is None or rest is None or not r.get("peak_rss_mb"):
        return DASH
    estimate = max(reading, rest)
    return f"{fmt_gib(estimate)} ({100 * (estimate / r['peak_rss_mb'] - 1):+.0f} %)"


def _generate_cell(r: Result) -> str:
    return fmt_seconds(_get(r, "dataset", "generate_seconds"))


# (label, cell text, target text, the number the target limits, the limit)
Row = tuple[str, Callable[[Result], str], str, Callable[[Result], float | None] | None, float | None]
ROWS: list[Row] = [
    ("rows read / kept", _rows_cell, "", None, None),
    ("pairs train / valid / test", _pairs_cell, "", None, None),
    ("load + clean (CSV -> coded rows)", _stage("load"), "≤ 20 s", _stage_seconds("load"), 20),
    ("split", _stage("split"), "", None, None),
    ("graph", _stage("graph"), "", None, None),
    ("ids + graph + split total", lambda r: fmt_seconds(ids_graph_split_seconds(r)), "≤ 30 s",
     ids_graph_split_seconds, 30),
    ("training to early stop", _train_cell, "", None, None),
    ("training per epoch (median, excl. validation)",
     lambda r: fmt_seconds(_get(r, "train", "epoch_seconds_median")), "", None, None),
    ("evaluation (test, GCN + popularity)", _stage("evaluate"), "≤ 90 s", _stage_seconds("evaluate"), 90),
    ("checkpoint write", _stage("checkpoint"), "", None, None),
    ("whole run (`train_gnn.py`, wall)", lambda r: fmt_seconds(r.get("wall_seconds")), "≤ 8 min",
     lambda r: r.get("wall_seconds") if _early_stopped(r) else None, 8 * 60),
    ("peak RSS (whole run)", lambda r: fmt_gib(r.get("peak_rss_mb")), "≤ 10 GB (9.31 GiB)",
     lambda r: None if r.get("peak_rss_mb") is None else r["peak_rss_mb"] * 1024 ** 2, 10e9),
    ("memory estimate made before allocating (error vs the peak)", _estimate_cell, "", None, None),
    ("cold `recommend.py` (new process, median of 3)",
     lambda r: fmt_seconds(_get(r, "cold_recommend", "median_seconds")), "≤ 3 s",
     lambda r: _get(r, "cold_recommend", "median_seconds"), 3),
    ("warm `get_recommendations` median / p95",
     lambda r: (DASH if _get(r, "warm_recommend", "median_ms") is None else
                f"{fmt_ms(_get(r, 'warm_recommend', 'median_ms'))} / {fmt_ms(_get(r, 'warm_recommend', 'p95_ms'))}"),
     "≤ 20 ms median", lambda r: _get(r, "warm_recommend", "median_ms"), 20),
    ("checkpoint size", _checkpoint_cell, "", None, None),
    ("test Recall@20 model / popularity", _pair("recall", "recall@20"), "", None, None),
    ("test NDCG@20 model / popularity", _pair("ndcg", "ndcg@20"), "", None, None),
    ("generate the CSV (not part of the run)", _generate_cell, "", None, None),
]


def scale_label(scale: float) -> str:
    return f"{scale * 100:g}%"


def _result(entry: dict) -> Result | None:
    """The numbers a scale's column shows: the median over its runs, else its first run."""
    result = entry.get("median") or next((r for r in entry.get("runs", []) if not r.get("error")), None)
    if result is None:
        return None
    return {**result, "dataset": entry.get("dataset") or {}}


def _met(row: Row, full: Result | None) -> str:
    _, _, _, value, limit = row
    if value is None or limit is None or full is None:
        return DASH
    v = value(full)
    return DASH if v is None else ("yes" if v <= limit else "**no**")


def render_table(doc: dict) -> str:
    """The Markdown table: one row per stage, one column per scale, the target, and whether the
    100% column meets it; above it, the machine and the command that produced the numbers.

    Args:
        doc: the JSON written by ``bench/full_scale.py``.
    """
    entries = doc.get("scales", [])
    results = [_result(e) for e in entries]
    full = next((r for e, r in zip(entries, results) if e.get("scale") == 1.0), None)
    m = doc.get("machine", {})
    runs = _get(doc, "args", "runs")
    lines = [
        f"Measured {doc.get('date', '?')} on {m.get('platform', '?')}, {m.get('cpu_count', '?')} CPUs, "
        f"{fmt_gib(m.get('mem_total_mb'))} RAM, torch {m.get('torch', '?')}, Python {m.get('python', '?')}, "
        f"git {m.get('git', '?')}.",
        f"Command: `{doc.get('command', '?')}`; each figure is the median of {runs if runs else '?'} run(s); "
        f"train_gnn.py extra flags: `{_get(doc, 'args', 'extra') or '(none)'}`.",
        "",
    ]
    head = ["stage"] + [scale_label(e.get("scale", 0)) for e in entries] + ["target (100%)", "100% meets it"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * len(entries) + ["---", "---"]) + "|")
    for row in ROWS:
        label, cell, target = row[0], row[1], row[2]
        cells = [cell(r) if r is not None else "failed" for r in results]
        lines.append("| " + " | ".join([label, *cells, target or DASH, _met(row, full)]) + " |")
    failed = [f"{scale_label(e.get('scale', 0))}: {r.get('error')}" for e in entries
              for r in e.get("runs", []) if r.get("error")]
    lines += ["", "Stage cells: seconds (peak RSS of the process at the end of that stage). "
              "Ids are coded inside load + clean; ids + graph + split adds the split and graph stages. "
              "GiB = 1024³ bytes; the RSS target is 10·10⁹ bytes."]
    if failed:
        lines += ["", "Failed runs: " + "; ".join(failed)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("json", nargs="*", default=[DEFAULT_JSON],
                    help="results written by bench/full_scale.py; several are merged into one table, "
                         "their scales side by side")
    args = ap.parse_args(argv)
    docs = []
    for path in args.json:
        try:
            with open(path) as f:
                docs.append(json.load(f))
        except (OSError, json.JSONDecodeError) as e:
            print(f"error: cannot read {path}: {e}", file=sys.stderr)
            return 2
    print(render_table(merge(docs)))
    return 0


def merge(docs: list[dict]) -> dict:
    """One document with every scale of ``docs`` in order of scale; the first's header, the others'
    commands and dates named beside it."""
    doc = {**docs[0], "scales": sorted((e for d in docs for e in d.get("scales", [])), key=lambda e: e.get("scale", 0))}
    if len(docs) > 1:
        doc["command"] = "; ".join(f"{d.get('command', '?')} ({d.get('date', '?')}, git {_get(d, 'machine', 'git')})"
                                   for d in docs)
    return doc


if __name__ == "__main__":
    sys.exit(main())
