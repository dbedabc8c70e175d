"""torchrun with two CPU processes (gloo) trains the GCN data-parallel, writes one checkpoint, and matches one process."""

from __future__ import annotations

import subprocess
import sys

import torch
from conftest import ROOT

from melody_map.config import TrainConfig
from melody_map.pipeline import run


def test_torchrun_two_processes_write_one_checkpoint_within_two_percent_of_one_process(tmp_path):
    sample = str(ROOT / "spotify_dataset.csv")
    single = run(TrainConfig(data=sample, output="", plot="", model="gcn"), log=lambda line: None, progress=False)
    out = tmp_path / "model.pth"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(ROOT / "train_gnn.py"), "--data", sample, "--output", str(out), "--plot", "",
                           "--model", "gcn", "--device", "cpu"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]  # rank 0 wrote it; rank 1 wrote nothing
    assert done.stdout.count("config: ") == 1 and done.stdout.count("wrote ") == 1  # rank 0 alone reports
    line = next(ln for ln in done.stdout.splitlines() if ln.strip().startswith("GCN "))
    recall, single_recall = float(line.split()[1]), single.test["GCN"]["recall@20"]
    print(f"torchrun x2 Recall@20 {recall:.4f}, one process {single_recall:.4f}")
    assert abs(recall - single_recall) <= 0.02 * single_recall
    saved = torch.load(out, weights_only=True)
    assert abs(saved["metrics"]["test"]["GCN"]["recall@20"] - recall) < 1e-4
