"""bench/quality.py splits each dataset exactly as train_gnn.py does, and its rows reproduce."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT
from test_tables import write_tables

from bench import quality


def stats_only(flags: str, tmp_path) -> dict:
    """train_gnn.py --stats-only's summary for these flags, run as a user runs it."""
    out = subprocess.run([sys.executable, "train_gnn.py", *shlex.split(flags), "--stats-only", "--summary-json",
                          str(tmp_path / "s.json")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads((tmp_path / "s.json").read_text())


@pytest.mark.parametrize("dataset", list(quality.DATASETS))
def test_the_benchmarks_split_is_train_gnns_split(dataset, tmp_path):
    if quality.SHARED in quality.DATASETS[dataset] and not (ROOT / quality.SHARED).exists():
        pytest.skip(f"{ROOT / quality.SHARED} not present")
    path = shlex.split(quality.DATASETS[dataset])[1]
    if dataset in quality.GENERATED and not (ROOT / path).exists():
        pytest.skip(f"{path} not generated (bench/quality.py --datasets {dataset} generates it)")
    bench = quality.load(dataset)
    ours = stats_only(quality.DATASETS[dataset], tmp_path)
    assert bench.pairs.digest() == ours["split_digest"]
    assert bench.pairs.counts() == ours["split"]


@pytest.mark.parametrize("name, label, options", [("GCN-last", "GCN", " --model gcn --combine last"),
                                                  ("GCN+ChebyCF", "GCN+ChebyCF", "")])  # the default model
def test_a_product_row_is_reproduced_by_its_train_gnn_command(tmp_path, name, label, options):
    # Both sides run as fresh processes, as a user would run them.
    write_tables(tmp_path)
    flags = f"--data {tmp_path / 'train.tsv'} --test {tmp_path / 'test.tsv'}"
    bench = subprocess.run([sys.executable, "bench/quality.py", "--dataset", "tiny", flags, "--models", name,
                            "--out", str(tmp_path / "q.json")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-2000:]
    row = json.loads((tmp_path / "q.json").read_text())["results"][0]
    assert row["command"] == f"python train_gnn.py {flags}{options} --refit"
    # The row and its untrained start, each reproduced by its command.
    assert row["start_command"] == row["command"] + " --epochs 0"
    for command, expected in ((row["command"], row["test"]), (row["start_command"], row["start"])):
        argv = shlex.split(command)[2:] + ["--output", "", "--plot", "", "--summary-json", str(tmp_path / "s.json")]
        out = subprocess.run([sys.executable, "train_gnn.py", *argv], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        printed = json.loads((tmp_path / "s.json").read_text())["test"][label]
        assert printed["recall@20"] == pytest.approx(expected["recall@20"], abs=1e-9)
        assert printed["ndcg@20"] == pytest.approx(expected["ndcg@20"], abs=1e-9)
    table = quality.report(json.loads((tmp_path / "q.json").read_text()))
    assert f"`{row['command']}`" in table and f"`{row['start_command']}`" in table


def test_commands_name_the_chosen_flags_and_baselines_name_the_benchmark():
    assert quality.command("lastfm", "GCN-tuned", {"dim": 128, "combine": "last", "epochs": 30}) == (
        f"python train_gnn.py {quality.DATASETS['lastfm']} --model gcn --dim 128 --combine last --refit")
    assert quality.command("sample", "GCN-trainable", {}) == (
        "python train_gnn.py --data spotify_dataset.csv --model gcn --no-fixed-features --init normal --combine last "
        "--refit")
    assert quality.command("hetrec", "GCN+GF-CF", {"dim": 64, "combine": "concat"}) == (
        f"python train_gnn.py {quality.DATASETS['hetrec']} --model gcn+gf-cf --dim 64 --refit")
    assert quality.command("hetrec", "iALS", {}) == "python bench/quality.py --datasets hetrec --models iALS"


def test_no_tune_and_fixed_options_reach_the_grid_and_every_rows_command():
    options = quality.Options({"batch_size": 65536}, no_tune=True)
    assert quality.entry("GCN-tuned", options).grid == {"dim": [64], "combine": ["concat"]}
    assert quality.entry("iALS", options).grid == {"factors": [64], "regularization": [0.01], "alpha": [1.0]}
    assert quality.entry("LightGCN", options).fixed["batch_size"] == 65536
    assert quality.command("spotify10", "LightGCN", {}, options) == (
        "python bench/quality.py --datasets spotify10 --models LightGCN --no-tune --fixed batch_size=65536")
    # A fixed option of a product row is a train_gnn.py flag, and it is taken out of the grid.
    seeded = quality.Options({"dim": 16})
    assert quality.entry("GCN-tuned", seeded).grid == {"combine": ["concat", "last"]}
    assert quality.command("sample", "GCN-tuned", {"dim": 16, "combine": "last"}, seeded) == (
        "python train_gnn.py --data spotify_dataset.csv --model gcn --dim 16 --combine last --refit")
