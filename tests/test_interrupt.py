"""Ctrl-C during training loses nothing: the best model so far is written, and --resume finishes the run.

Interruptions here are real SIGINTs: the process signals itself from inside training's stop
check (in-process tests) or the test signals the command (``train_gnn.py``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, community_rows, leaves, write_original

from melody_map.api import get_recommendations, load_model
from melody_map.checkpoint import load_checkpoint, payload_checksum
from melody_map.config import TrainConfig
from melody_map.interrupt import StopRequest, TrainingInterrupted
from melody_map.pipeline import run

# Interrupting and resuming are the GCN's (GCN+ChebyCF's short training ends with its best weights).
FAST = {"model": "gcn", "epochs": 6, "eval_every": 2, "patience": 100, "plot": ""}  # every epoch runs: 16 steps each
STEPS = 16


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return write_original(tmp_path_factory.mktemp("interrupt") / "c.csv", community_rows((20, 30), tracks_per_user=10))


def train(csv, out, **options):
    return run(TrainConfig(data=str(csv), output=str(out), **{**FAST, **options}), log=lambda line: None,
               progress=False)


def signal_on_check(monkeypatch, call: int, signals: int = 1) -> None:
    """Training's ``call``-th stop check (one before each step) first sends this process ``signals`` SIGINTs."""
    count, check = 0, StopRequest.__call__

    def checked(self):
        nonlocal count
        count += 1
        if count == call:
            for _ in range(signals):
                os.kill(os.getpid(), signal.SIGINT)
        return check(self)

    monkeypatch.setattr(StopRequest, "__call__", checked)


def same_model(a: str, b: str) -> None:
    ra, rb = (dict(leaves(torch.load(p, weights_only=True)["model"])) for p in (a, b))
    assert ra.keys() == rb.keys()
    for key in ra:
        equal = torch.equal(ra[key], rb[key]) if isinstance(ra[key], torch.Tensor) else ra[key] == rb[key]
        assert equal, key


def test_the_first_ctrl_c_asks_and_the_second_stops_at_once():
    stop = StopRequest()
    before = signal.getsignal(signal.SIGINT)
    with stop.armed():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # let the handler run
        assert stop() and stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("model, options, call, phase", [
    ("gcn", {}, 1, "fit"),  # before the first step: the untrained start is the best so far
    ("gcn", {}, 2 * STEPS + 4, "fit"),  # mid-epoch, after a validation check
    ("gcn", {"all_items": 1.0, "init": "normal"}, 4 * STEPS + 1, "fit"),  # an epoch's first step
    ("gcn+gf-cf", {"refit": True, "init": "normal"}, STEPS + 7, "fit"),  # the blend's GCN
    ("gcn+gf-cf", {"refit": True, "init": "normal"}, 6 * STEPS + 3, "refit"),  # the refit after the fit
])
def test_ctrl_c_writes_the_best_so_far_and_resume_reaches_the_uninterrupted_result(
        csv, tmp_path, monkeypatch, model, options, call, phase):
    reference = train(csv, tmp_path / "reference.pth", model=model, **options)
    signal_on_check(monkeypatch, call)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(csv, tmp_path / "stopped.pth", model=model, **options)
    monkeypatch.undo()
    print(stopped.value)
    assert "--resume" in str(stopped.value) and "\n" not in str(stopped.value)

    # The file is a usable checkpoint, marked interrupted, holding the best model so far.
    raw = torch.load(tmp_path / "stopped.pth", weights_only=True)
    mark = raw["config"]["interrupted"]
    step = call - 1 if phase == "fit" else call - 1 - 6 * STEPS
    assert (mark["phase"], mark["epoch"], mark["step"]) == (phase, step // STEPS + 1, step % STEPS)
    assert raw["metrics"]["test"] == {}
    stopped_model, data = load_model(tmp_path / "stopped.pth")
    assert len(get_recommendations(stopped_model, data, 0, 5)) == 5
    if phase == "fit":
        assert raw["model"]["name"] == "gcn"  # a blend's filter is built after its GCN: the GCN is the model so far
        history = raw["resume"]["trainer"]["history"]
        checked = [r for r in history if "valid_recall@20" in r]
        best = max(checked, key=lambda r: r["valid_recall@20"])
        assert raw["metrics"]["best_epoch"] == best["epoch"] < mark["epoch"]
    else:
        assert raw["model"]["name"] == model  # the fitted model, whole; the refit is what is left

    resumed = run(TrainConfig(resume=str(tmp_path / "stopped.pth"), output=str(tmp_path / "resumed.pth"), plot=""),
                  log=lambda line: None, progress=False)
    same_model(tmp_path / "reference.pth", tmp_path / "resumed.pth")
    assert resumed.test == reference.test
    assert "interrupted" not in torch.load(tmp_path / "resumed.pth", weights_only=True)["config"]


def test_a_second_ctrl_c_stops_at_once_and_leaves_the_previous_checkpoint(csv, tmp_path, monkeypatch):
    out = tmp_path / "model.pth"
    train(csv, out, epochs=1)
    before = out.read_bytes()
    signal_on_check(monkeypatch, 2 * STEPS + 4, signals=2)
    with pytest.raises(KeyboardInterrupt) as stopped:
        train(csv, out)
    assert not isinstance(stopped.value, TrainingInterrupted)
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.pth"]


def test_resume_refuses_what_it_cannot_carry_on_from(csv, tmp_path, monkeypatch):
    finished = tmp_path / "finished.pth"
    train(csv, finished, epochs=1)
    with pytest.raises(ValueError, match="not an interrupted one"):
        run(TrainConfig(resume=str(finished), output=""), log=lambda line: None, progress=False)

    copy = write_original(tmp_path / "copy.csv", community_rows((20, 30), tracks_per_user=10))
    signal_on_check(monkeypatch, 5)
    with pytest.raises(TrainingInterrupted):
        train(copy, tmp_path / "stopped.pth")
    monkeypatch.undo()

    raw = torch.load(tmp_path / "stopped.pth", weights_only=True)
    weights = raw["resume"]["trainer"]["weights"]
    name = next(iter(weights))
    weights[name] = torch.zeros(3, 3)  # the wrong shape, with a valid checksum
    raw["checksum"] = payload_checksum(raw)
    torch.save(raw, tmp_path / "hostile.pth")
    with pytest.raises(ValueError, match="does not fit this model") as refused:
        run(TrainConfig(resume=str(tmp_path / "hostile.pth"), output=""), log=lambda line: None, progress=False)
    assert "\n" not in str(refused.value)

    write_original(copy, community_rows((20, 30), tracks_per_user=10, seed=1))  # the data changed since
    with pytest.raises(ValueError, match="another split"):
        run(TrainConfig(resume=str(tmp_path / "stopped.pth"), output=""), log=lambda line: None, progress=False)


def test_ctrl_c_on_the_command_line_exits_130_with_one_line_and_resume_finishes(tmp_path):
    """A real Ctrl-C (SIGINT) to train_gnn.py while it trains, then --resume on the command line."""
    out = tmp_path / "model.pth"
    cmd = [sys.executable, str(ROOT / "train_gnn.py"), "--data", str(ROOT / "spotify_dataset.csv"),
           "--output", str(out), "--plot", "", "--model", "gcn", "--epochs", "12", "--eval-every", "6",
           "--patience", "100"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    while b"training (" not in seen:  # the progress bar: training has begun
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk, f"train_gnn.py ended before training: {seen[-500:]!r}"
        seen += chunk
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    stderr = (seen + stderr).decode()
    last = stderr.replace("\r", "\n").strip().splitlines()[-1]
    print(last)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert last.startswith(f"interrupted: {out} holds the best weights so far")
    assert "marked interrupted" in stdout.decode()
    assert load_checkpoint(out)[1].config["interrupted"]["phase"] == "fit"

    resumed = subprocess.run([sys.executable, str(ROOT / "train_gnn.py"), "--resume", str(out), "--plot", "",
                              "--output", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming the fit" in resumed.stdout and "GCN" in resumed.stdout
    assert "interrupted" not in load_checkpoint(out)[1].config


def test_ctrl_c_ends_the_default_models_training_with_its_best_weights_and_the_run_finishes(csv, tmp_path,
                                                                                          monkeypatch):
    signal_on_check(monkeypatch, 20)  # during its third epoch: epoch 1 is the scorer's grid, then 16 steps each
    summary = train(csv, tmp_path / "m.pth", model="gcn+chebycf", epochs=50, eval_every=1)
    epochs = [r["epoch"] for r in summary.train.history]
    assert epochs[-1] == 3 and summary.test["GCN+ChebyCF"]["recall@20"] > 0  # stopped there, then tested
    record, saved = load_checkpoint(tmp_path / "m.pth")
    assert "interrupted" not in saved.config and record["params"]["epochs"] == summary.train.best_epoch
