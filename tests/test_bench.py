"""The full-scale benchmark's table and parsers, from hand-made inputs (no pipeline run)."""

from __future__ import annotations

import json
import re

import pytest

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


def _table(text: str) -> dict[str, list[str]]:
    """The Markdown table in ``text``: its header's cells under "stage", and each body row's cells
    under its label; every row has as many cells as the header."""
    rows = [[c.strip() for c in line.strip()[1:-1].split("|")] for line in text.splitlines() if line.startswith("|")]
    head, rule, body = rows[0], rows[1], rows[2:]
    assert all(set(c) <= set("-:") for c in rule) and len(rule) == len(head), rule
    assert all(len(row) == len(head) for row in body), [row for row in body if len(row) != len(head)]
    table = {row[0]: row[1:] for row in body}
    assert len(table) == len(body) and "stage" not in table  # one row per label
    return {"stage": head[1:], **table}


# A figure as printed, in the unit the JSON keeps: seconds or MiB.
UNITS = {"ms": ("time", 1e-3), "s": ("time", 1.0), "min": ("time", 60.0), "MiB": ("memory", 1.0),
         "GiB": ("memory", 1024.0), "GB": ("bytes", 1e9)}
FIGURE = re.compile(r"(\d[\d,]*(?:\.\d+)?) ?(ms|s|min|MiB|GiB|GB)\b")
NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(?![\w.])")


def _figures(cell: str) -> list[tuple[str, float, float]]:
    """(kind, value, the rounding the printed digits allow) of each figure with a unit in ``cell``."""
    out = []
    for number, unit in FIGURE.findall(cell):
        kind, factor = UNITS[unit]
        decimals = len(number.partition(".")[2])
        out.append((kind, float(number.replace(",", "")) * factor, 0.5 * 10 ** -decimals * factor))
    return out


def _shows(cell: str, *expected: tuple[str, float]) -> None:
    """``cell`` shows exactly these (kind, value) figures, in order, each as its printed digits round it."""
    figures = _figures(cell)
    assert [kind for kind, _, _ in figures] == [kind for kind, _ in expected], (cell, expected)
    for (kind, value, rounding), (_, truth) in zip(figures, expected):
        assert abs(value - truth) <= rounding * (1 + 1e-9), (cell, kind, truth)


def _plain_numbers(cell: str) -> list[float]:
    """The numbers in ``cell`` that carry no unit (counts, metrics)."""
    return [float(n.replace(",", "")) for n in NUMBER.findall(FIGURE.sub("", cell))]


def test_table_has_one_column_per_scale_and_checks_targets_on_the_100_percent_column():
    doc = _doc()
    text = render_table(doc)
    table = _table(text)
    full = doc["scales"][2]["median"]
    small = doc["scales"][0]["median"]
    stages = full["stages"]
    assert table["stage"] == ["1%", "10%", "100%", "target (100%)", "100% meets it"]
    one, ten, hundred, target, meets = range(5)
    # The run that failed at 10 % fills its column with "failed" and is named below the table.
    assert {row[ten] for label, row in table.items() if label != "stage"} == {"failed"}
    assert re.search(r"10%.*train_gnn\.py exited 137", text.split("| stage |")[1])

    # Each stage: its seconds and the peak memory at its end, from each scale's own result.
    for label, stage in [("load + clean (CSV -> coded rows)", "load"), ("split", "split"), ("graph", "graph"),
                         ("evaluation (test, GCN + popularity)", "evaluate"), ("checkpoint write", "checkpoint")]:
        for column, result in ((one, small), (hundred, full)):
            s = result["stages"][stage]
            _shows(table[label][column], ("time", s["seconds"]), ("memory", s["peak_rss_mb"]))
    # Ids are coded inside load: the total is split + graph.
    _shows(table["ids + graph + split total"][hundred], ("time", stages["split"]["seconds"] + stages["graph"]["seconds"]))
    training = table["training to early stop"][hundred]
    _shows(training, ("time", stages["train"]["seconds"]), ("memory", stages["train"]["peak_rss_mb"]))
    assert _plain_numbers(training) == [full["train"]["epochs_run"], full["train"]["best_epoch"]], training
    _shows(table["whole run (`train_gnn.py`, wall)"][hundred], ("time", full["wall_seconds"]))
    _shows(table["peak RSS (whole run)"][hundred], ("memory", full["peak_rss_mb"]))
    _shows(table["cold `recommend.py` (new process, median of 3)"][hundred],
           ("time", full["cold_recommend"]["median_seconds"]))
    for column, result in ((one, small), (hundred, full)):
        warm = result["warm_recommend"]
        _shows(table["warm `get_recommendations` median / p95"][column],
               ("time", warm["median_ms"] / 1000), ("time", warm["p95_ms"] / 1000))
    _shows(table["checkpoint size"][hundred], ("memory", full["checkpoint_bytes"] / 1024 ** 2))
    assert _plain_numbers(table["rows read / kept"][hundred]) == [full["load"]["lines_read"], full["load"]["rows_kept"]]
    assert _plain_numbers(table["pairs train / valid / test"][hundred]) == [full["split"][k] for k in ("train", "valid", "test")]
    for label, metric in (("test Recall@20 model / popularity", "recall@20"), ("test NDCG@20 model / popularity", "ndcg@20")):
        shown = _plain_numbers(table[label][hundred])
        assert shown == pytest.approx([full["test"]["GCN"][metric], full["test"]["popularity"][metric]], abs=5e-5)

    # Targets: the limit, and whether the 100 % figure is within it (the whole run's 590 s is not).
    limits = {"load + clean (CSV -> coded rows)": (("time", 20), stages["load"]["seconds"]),
              "ids + graph + split total": (("time", 30), stages["split"]["seconds"] + stages["graph"]["seconds"]),
              "evaluation (test, GCN + popularity)": (("time", 90), stages["evaluate"]["seconds"]),
              "whole run (`train_gnn.py`, wall)": (("time", 8 * 60), full["wall_seconds"]),
              "cold `recommend.py` (new process, median of 3)": (("time", 3), full["cold_recommend"]["median_seconds"]),
              "warm `get_recommendations` median / p95": (("time", 0.020), full["warm_recommend"]["median_ms"] / 1000)}
    for label, (limit, value) in limits.items():
        assert _figures(table[label][target])[0][:2] == limit, (label, table[label][target])
        assert table[label][meets].strip("*") == ("yes" if value <= limit[1] else "no"), (label, table[label])
    peak_bytes = full["peak_rss_mb"] * 1024 ** 2  # 9.44e9 bytes: within 10 GB
    assert _figures(table["peak RSS (whole run)"][target])[0][:2] == ("bytes", 10e9)
    assert table["peak RSS (whole run)"][meets] == ("yes" if peak_bytes <= 10e9 else "**no**")
    assert table["training to early stop"][meets] == "—"  # the whole run carries the time target
    for label in ("split", "graph", "checkpoint size", "rows read / kept"):
        assert table[label][target:] == ["—", "—"], (label, table[label])  # no target, nothing to meet

    # Above the table: the command, how many runs each figure is the median of, and the machine.
    above = text.split("| stage |")[0]
    assert f"`{doc['command']}`" in above and re.search(rf"\b{doc['args']['runs']} run", above), above
    machine = doc["machine"]
    assert all(str(machine[k]) in above for k in ("platform", "torch", "python", "git")), above
    assert re.search(rf"\b{machine['cpu_count']} CPU", above), above


def test_table_without_a_100_percent_column_meets_nothing_and_tolerates_missing_keys():
    doc = {"scales": [{"scale": 0.01, "median": {"wall_seconds": 30.0}, "runs": []}]}
    table = _table(render_table(doc))
    assert table["stage"] == ["1%", "target (100%)", "100% meets it"]
    wall = table["whole run (`train_gnn.py`, wall)"]
    _shows(wall[0], ("time", 30.0))
    _shows(wall[1], ("time", 8 * 60))
    assert wall[2] == "—"
    assert table["load + clean (CSV -> coded rows)"][0] == "—"


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
    table = _table(render_table(doc))
    assert "--epochs cap" in table["training to early stop"][2]
    # ...nor is the whole run, which the cap shortened.
    assert table["whole run (`train_gnn.py`, wall)"][4] == "—"


def test_two_result_files_merge_into_one_table_ordered_by_scale():
    from bench.report import merge

    big = {"command": "python bench/full_scale.py --scales 2", "date": "d2", "machine": {"git": "b"},
           "scales": [{"scale": 2.0, "median": {"wall_seconds": 900.0}, "runs": []}]}
    text = render_table(merge([big, _doc()]))
    table = _table(text)
    assert table["stage"][:4] == ["1%", "10%", "100%", "200%"]
    _shows(table["whole run (`train_gnn.py`, wall)"][3], ("time", big["scales"][0]["median"]["wall_seconds"]))
    # Each file's command is named with its own date and commit.
    command = next(line for line in text.splitlines() if "python bench/full_scale.py --scales 2" in line)
    parts = command.split("`")[1].split("; ")
    for doc in (big, _doc()):
        assert any(part.startswith(doc["command"] + " ") and doc["date"] in part and doc["machine"]["git"] in part
                   for part in parts), (doc["command"], parts)


def test_filter_scale_writes_each_filters_fit_and_block_cost(tmp_path, monkeypatch):
    from bench import filter_scale

    monkeypatch.setattr(filter_scale, "OUT", tmp_path / "filter_scale.json")
    assert filter_scale.main(["sample", "--users", "8"]) == 0
    entry = json.loads((tmp_path / "filter_scale.json").read_text())["sample"]
    assert entry["command"] == "python bench/filter_scale.py sample --users 8"
    assert entry["svd"] == "the Gram matrix, every eigenpair"  # the sample's users are few
    assert set(entry["models"]) == {"GF-CF", "ChebyCF"}
    assert all(m["fit_s"] >= 0 and m["score_8_users_s"] >= 0 for m in entry["models"].values())
