"""The memory estimate stops a run that would not fit, before it allocates, with one line naming the flags that lower it; training reuses the memory its steps free."""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, community_rows, write_original

import train_gnn
from melody_map import memory
from melody_map.config import TrainConfig
from melody_map.gcn import GCN
from melody_map.memory import Counts, MemoryShortage, phases, run_peak
from melody_map.pipeline import run

GB = 1 << 30
# The 100 % file's counts (bench/README.md's full-scale table).
FULL = Counts(users=15_900, items=2_800_004, nodes=3_335_904, train_pairs=7_497_530, nnz=44_568_184,
              valid_users=15_485, test_users=15_485)


def test_the_estimate_grows_with_what_each_flag_allocates():
    base = TrainConfig(model="gcn")
    peak = run_peak(FULL, base, 0)[0]
    assert 3 * GB < peak < 6 * GB  # the 100 % file: node and item matrices of GBs, not MBs or TBs
    # Doubling dim doubles every (rows x dim) matrix; the score blocks stay.
    wider = run_peak(FULL, dataclasses.replace(base, dim=64), 0)[0]
    assert 1.5 * peak < wider < 2 * peak
    for other in (dict(model="gcn+gf-cf"), dict(fixed_features=False), dict(conv="gat")):
        assert run_peak(FULL, dataclasses.replace(base, **other), 0)[0] > peak, other
    assert run_peak(FULL, dataclasses.replace(base, combine="last"), 0)[0] < peak
    # A tenth of everything: a tenth of the matrices, while the score blocks keep their caps.
    tenth = Counts(**{k: v // 10 for k, v in dataclasses.asdict(FULL).items()})
    assert run_peak(tenth, base, 0)[0] < peak / 2
    assert phases(FULL, base)["test"] > memory.ranker_bytes(FULL.test_users, FULL.items, 64)


def test_a_run_that_does_not_fit_stops_before_training_with_one_line(tmp_path, monkeypatch, capsys):
    data = write_original(tmp_path / "c.csv", community_rows())
    monkeypatch.setattr(memory, "available_bytes", lambda: 200 << 20)  # 200 MB left beside what is resident
    monkeypatch.setattr(memory, "reading_peak", lambda n: 0)  # the reading check is the next test's
    trained, fit = [], GCN.fit
    monkeypatch.setattr(GCN, "fit", lambda self, *a, **k: trained.append(1) or fit(self, *a, **k))
    code = train_gnn.main(["--data", str(data), "--output", str(tmp_path / "m.pth"), "--plot", "", "--model", "gcn",
                           "--dim", "16384", "--no-fixed-features"])
    err = capsys.readouterr().err.strip()
    print(err)
    assert code == 2 and "\n" not in err and not trained and not (tmp_path / "m.pth").exists()
    assert err.startswith("error: this run needs about ") and "GB at its peak" in err
    assert "--fixed-features (" in err and "--dim 8192 (" in err and "--no-memory-check" in err

    # The estimate is what decides: at the default width the same data fits in the same 200 MB.
    code = train_gnn.main(["--data", str(data), "--output", "", "--plot", "", "--model", "gcn", "--epochs", "1"])
    assert code == 0 and trained == [1]


def test_a_file_too_large_to_read_stops_before_reading(tmp_path, monkeypatch, capsys):
    data = write_original(tmp_path / "c.csv", community_rows())
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 20)
    read = []
    monkeypatch.setattr("melody_map.pipeline.load_dataset", lambda *a, **k: read.append(1))
    assert train_gnn.main(["--data", str(data), "--plot", "", "--output", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: reading ") and "estimated from its size" in err and not read


def test_no_memory_check_runs_anyway_and_the_summary_holds_the_estimates(tmp_path, monkeypatch):
    data = write_original(tmp_path / "c.csv", community_rows())
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 20)
    with pytest.raises(MemoryShortage):
        run(TrainConfig(data=str(data), output="", plot="", epochs=1), log=lambda line: None, progress=False)
    summary = run(TrainConfig(data=str(data), output="", plot="", epochs=1, memory_check=False),
                  log=lambda line: None, progress=False)
    assert summary.memory_estimate_mb > 400
    assert summary.reading_estimate_mb == pytest.approx(memory.reading_peak(data.stat().st_size) / memory.MB)
    assert (ROOT / "bench" / "memory.py").exists()


def test_the_reading_estimate_grows_with_the_input_files_size_by_the_readers_bytes_per_byte(tmp_path):
    """The summary's reading estimate is ``reading_peak`` of the input's size: a file with more
    bytes gets a larger estimate, by READ_BYTES_PER_INPUT_BYTE for each byte more, so an
    estimate that ignored the file (or read the wrong one) fails here."""
    small = write_original(tmp_path / "small.csv", community_rows())
    large = write_original(tmp_path / "large.csv", community_rows((60, 120), seed=1))
    sizes = [path.stat().st_size for path in (small, large)]
    assert sizes[1] > 1.5 * sizes[0], sizes
    estimates = [run(TrainConfig(data=str(path), output="", plot="", stats_only=True, memory_check=False),
                     log=lambda line: None, progress=False).reading_estimate_mb for path in (small, large)]
    for size, estimate in zip(sizes, estimates):
        assert estimate == pytest.approx(memory.reading_peak(size) / memory.MB), (size, estimate)
    grown = (estimates[1] - estimates[0]) * memory.MB
    expected = memory.READ_BYTES_PER_INPUT_BYTE * (sizes[1] - sizes[0])
    assert grown == pytest.approx(expected, abs=2), (sizes, estimates)  # reading_peak rounds down to whole bytes


CHURN = """
import json, resource, torch
from melody_map.allocator import reuse_freed_memory
from melody_map.memory import resident_bytes

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def resident_mb():
    return resident_bytes() / 2**20

def step():  # a training step's worth of large tensors: made, used, freed
    a = torch.ones(1 << 25)
    b = a * 2
    c = torch.ones(1 << 24)
    return float((b[:1] + c[:1]).sum())

def last_steps_faults():  # page faults of the last 5 of 25 steps
    for _ in range(20):
        step()
    before = faults()
    for _ in range(5):
        step()
    return faults() - before

outside = last_steps_faults()
with reuse_freed_memory() as changed:
    inside = last_steps_faults()
    held = resident_mb()
print(json.dumps({"changed": changed, "outside": outside, "inside": inside, "held": held, "after": resident_mb()}))
"""


def _huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator is tuned on glibc only")
@pytest.mark.skipif(_huge_pages_always(), reason="page faults are counted in 4 KiB pages")
def test_training_reuses_freed_blocks_and_hands_them_back_after():
    """glibc unmaps a freed block over 32 MB, so every step that reallocates the last one's
    tensors faults their pages in again (outside: 5 x 320 MB of faults). Inside
    ``reuse_freed_memory`` (training's steps) later steps reuse the freed blocks; leaving it
    returns the memory."""
    done = subprocess.run([sys.executable, "-c", CHURN], capture_output=True, text=True, cwd=ROOT, check=True)
    r = json.loads(done.stdout)
    assert r["changed"]
    assert r["outside"] > 5 * 60_000, r  # the check can fail: without reuse every step faults 80k pages
    assert r["inside"] < r["outside"] / 4, r
    assert r["after"] < r["held"] - 200, r  # the blocks kept for reuse went back to the system
