"""The full-scale benchmark's table and parsers, from hand-made inputs (no pipeline run)."""

from __future__ import annotations

import json

from bench.full_scale import median_of, parse_time_v
from bench.report import main as report_main
from bench.report import render_table


def _run(load_s: float, train_s: float, wall_s: float, rss_mb: float, cold_s: float, warm_ms: float) -> dict:
    return {
        "exit_code": 0, "wall_seconds": wall_s, "peak_rss_mb": rss_mb,
        "load": {"lines_read": 12_900_000, "rows_kept": 12_890_000},
        "split": {"train": 900, "valid": 50, "test": 50},
        "stages": {"load": {"seconds": load_s, "peak_rss_mb": 3000.0},
                   "split": {"seconds": 5.0, "peak_rss_mb": 3500.0},
                   "graph": {"seconds": 10.0, "peak_rss_mb": 5000.0},
                   "train": {"seconds": train_s, "peak_rss_mb": 8000.0},
                   "evaluate": {"seconds": 60.0, "peak_rss_mb": 8000.0},
                   "checkpoint": {"seconds": 2.0, "peak_rss_mb": 8000.0},
                   "a_stage_added_later": {"seconds": 1.0, "peak_rss_mb": 1.0}},
        "train": {"epochs_run": 12, "best_epoch": 6, "epoch_seconds_median": 30.0},
        "summary": {"config": {"epochs": 100}},  # stopped early at 12 of at most 100 epochs
        "test": {"GCN": {"recall@20": 0.25, "ndcg@20": 0.2}, "popularity": {"recall@20": 0.05, "ndcg@20": 0.04}},
        "checkpoint_bytes": 3 * 1024 ** 2,
        "cold_recommend": {"median_seconds": cold_s},
        "warm_recommend": {"median_ms": warm_ms, "p95_ms": 2 * warm_ms},
        "a_key_added_later": {"whatever": [1, 2]},
    }


def _doc() -> dict:
    full = _run(load_s=15.0, train_s=500.0, wall_s=590.0, rss_mb=9000.0, cold_s=2.5, warm_ms=12.0)
    return {
        "date": "2026-01-01T00:00:00+00:00", "command": "python bench/full_scale.py",
        "args": {"runs": 3, "extra": ""},
        "machine": {"platform": "Linux-x86_64", "cpu_count": 2, "mem_total_mb": 24576.0, "torch": "2.13.0",
                    "python": "3.11.7", "git": "abc1234"},
        "scales": [
            {"scale": 0.01, "dataset": {"generate_seconds": 1.5},
             "median": _run(0.2, 20.0, 25.0, 700.0, 1.9, 3.0), "runs": []},
            {"scale": 0.1, "dataset": {}, "median": None, "runs": [{"error": "train_gnn.py exited 137"}]},
            {"scale": 1.0, "dataset": {"generate_seconds": 150.0}, "median": full, "runs": [full]},
        ],
    }


def _row(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_table_has_one_column_per_scale_and_checks_targets_on_the_100_percent_column():
    table = render_table(_doc())
    assert _row(table, "stage") == ["stage", "1%", "10%", "100%", "target (100%)", "100% meets it"]
    assert _row(table, "load + clean (CSV -> coded rows)") == [
        "load + clean (CSV -> coded rows)", "0.20 s (peak 2.93 GiB)", "failed", "15.0 s (peak 2.93 GiB)",
        "≤ 20 s", "yes"]
    # ids are coded inside load: the total is split + graph
    assert _row(table, "ids + graph + split total")[1:] == ["15.0 s", "failed", "15.0 s", "≤ 30 s", "yes"]
    assert _row(table, "training to early stop")[3] == "8.3 min (peak 7.81 GiB), 12 epochs, best 6"
    assert _row(table, "training to early stop")[5] == "—"  # the whole run carries the time target
    assert _row(table, "whole run (`train_gnn.py`, wall)")[3:] == ["9.8 min", "≤ 8 min", "**no**"]
    # 9000 MiB = 9.44e9 bytes: within 10 GB
    assert _row(table, "peak RSS (whole run)")[3:] == ["8.79 GiB", "≤ 10 GB (9.31 GiB)", "yes"]
    assert _row(table, "warm `get_recommendations` median / p95")[1] == "3.0 ms / 6.0 ms"
    assert _row(table, "test Recall@20 GCN / popularity")[3] == "0.2500 / 0.0500"
    assert _row(table, "checkpoint size")[3] == "3.0 MiB"
    assert _row(table, "split")[-2:] == ["—", "—"]  # no target, nothing to meet
    assert "median of 3 run(s)" in table and "2 CPUs" in table and "git abc1234" in table
    assert "10%: train_gnn.py exited 137" in table


def test_table_without_a_100_percent_column_meets_nothing_and_tolerates_missing_keys():
    doc = {"scales": [{"scale": 0.01, "median": {"wall_seconds": 30.0}, "runs": []}]}
    table = render_table(doc)
    assert _row(table, "whole run (`train_gnn.py`, wall)")[1:] == ["30.0 s", "≤ 8 min", "—"]
    assert _row(table, "load + clean (CSV -> coded rows)")[1] == "—"


def test_report_reprints_the_table_from_the_json(tmp_path, capsys):
    path = tmp_path / "full_scale.json"
    path.write_text(json.dumps(_doc()))
    assert report_main([str(path)]) == 0
    assert capsys.readouterr().out.strip() == render_table(_doc())
    assert report_main([str(tmp_path / "missing.json")]) == 2


def test_gnu_time_report_is_parsed_for_wall_and_peak_rss():
    report = """\tCommand being timed: "python train_gnn.py"
\tUser time (seconds): 23.44
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.50
\tMaximum resident set size (kbytes): 2097152
\tExit status: 0
"""
    assert parse_time_v(report) == {"user_seconds": 23.44, "wall_seconds": 3723.5, "peak_rss_mb": 2048.0,
                                    "exit_status": 0}
    assert parse_time_v("\tElapsed (wall clock) time (h:mm:ss or m:ss): 0:15.04\n")["wall_seconds"] == 15.04


def test_median_over_runs_takes_numbers_and_keeps_the_rest_from_the_first_run():
    runs = [{"wall_seconds": s, "stages": {"load": {"seconds": s}}, "log": [f"run {s}"], "ok": True}
            for s in (3.0, 1.0, 2.0)]
    assert median_of(runs) == {"wall_seconds": 2.0, "stages": {"load": {"seconds": 2.0}}, "log": ["run 3.0"],
                               "ok": True}


def test_training_capped_by_epochs_is_not_judged_against_the_early_stop_target():
    doc = _doc()
    doc["scales"][2]["median"]["summary"]["config"]["epochs"] = 12  # ran into the cap
    row = _row(render_table(doc), "training to early stop")
    assert row[3].endswith("(hit the --epochs cap: no early stop)")
    # ...nor is the whole run, which the cap shortened.
    assert _row(render_table(doc), "whole run (`train_gnn.py`, wall)")[5] == "—"


def test_two_result_files_merge_into_one_table_ordered_by_scale():
    from bench.report import merge

    big = {"command": "python bench/full_scale.py --scales 2", "date": "d2", "machine": {"git": "b"},
           "scales": [{"scale": 2.0, "median": {"wall_seconds": 900.0}, "runs": []}]}
    table = render_table(merge([big, _doc()]))
    assert _row(table, "stage")[1:5] == ["1%", "10%", "100%", "200%"]
    assert _row(table, "whole run (`train_gnn.py`, wall)")[4] == "15.0 min"
    assert "--scales 2 (d2, git b)" in table
