"""Damaged and hostile checkpoints get one line, never a crash; saves survive kills and full disks."""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, community_rows, leaves, train_checkpoint, write_original

from melody_map import checkpoint as ckpt_module
from melody_map.api import get_recommendations, load_model
from melody_map.checkpoint import (
    CheckpointError,
    load_checkpoint,
    payload_checksum,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("safety")
    data = write_original(folder / "c.csv", community_rows((20, 30), tracks_per_user=10))
    return train_checkpoint(data, folder / "model.pth", model="gcn", epochs=2)  # its tensors are tampered with below


def refused(path, *words: str) -> str:
    """load_model's error for ``path``: a ValueError of one line holding ``words``."""
    with pytest.raises(ValueError) as excinfo:
        load_model(path)
    msg = str(excinfo.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    print(msg)
    return msg


def test_a_checksum_is_written_and_names_corruption(checkpoint, tmp_path):
    raw = torch.load(checkpoint, weights_only=True)
    assert raw["checksum"] == payload_checksum(raw)
    raw["model"]["state"]["item_embeddings"][3, 1] += 1e-3  # a damaged value, the file still a valid zip
    torch.save(raw, tmp_path / "damaged.pth")
    refused(tmp_path / "damaged.pth", "corrupt", "checksum")


def test_truncation_at_every_offset_is_refused(checkpoint, tmp_path):
    blob = open(checkpoint, "rb").read()
    offsets = sorted({*np.linspace(0, len(blob) - 1, 60).astype(int), 1, 4, 30, len(blob) - 22, len(blob) - 1})
    for n in offsets:
        (tmp_path / "cut.pth").write_bytes(blob[:n])
        refused(tmp_path / "cut.pth", "cut.pth")
    print(f"{len(offsets)} truncations of a {len(blob):,}-byte checkpoint, all refused")


def test_flipped_bits_are_refused_or_harmless(checkpoint, tmp_path):
    blob = bytearray(open(checkpoint, "rb").read())
    model, data = load_model(checkpoint)
    expected = get_recommendations(model, data, 0, 10)
    rng = np.random.default_rng(0)
    outcomes = {"refused": 0, "harmless": 0}
    for position in rng.choice(len(blob), 150, replace=False):
        damaged = blob.copy()
        damaged[position] ^= 1 << int(rng.integers(8))
        (tmp_path / "flip.pth").write_bytes(damaged)
        try:
            model, data = load_model(tmp_path / "flip.pth")
        except ValueError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
            continue
        # A flip in padding or in a zip field nobody reads changes nothing.
        assert get_recommendations(model, data, 0, 10).equals(expected), position
        outcomes["harmless"] += 1
    print(f"150 single-bit flips: {outcomes}")
    assert outcomes["refused"] > 100


def _resave(checkpoint, tmp_path, edit) -> str:
    """The checkpoint with ``edit`` applied, written with a fresh (valid) checksum: a hostile file."""
    raw = torch.load(checkpoint, weights_only=True)
    edit(raw)
    path = str(tmp_path / "hostile.pth")
    save_checkpoint(path, raw)
    return path


@pytest.mark.parametrize("edit, words", [
    (lambda c: c["known"].__setitem__("items", torch.full_like(c["known"]["items"], 10**12)), "known.items"),
    (lambda c: c["trained"]["items"].__setitem__(0, -1), "trained.items"),
    (lambda c: c["known"].__setitem__("indptr", c["known"]["indptr"].flip(0)), "known.indptr"),
    (lambda c: c["known"].__setitem__("items", c["known"]["items"].float()), "known.items"),
    (lambda c: c["catalogue"].__setitem__("item_artist", c["catalogue"]["item_artist"] + 10**9), "item_artist"),
    (lambda c: c["playlists"].__setitem__("items", c["playlists"]["items"][:-1]), "playlists"),
    (lambda c: c["catalogue"]["user_ids"]["data"].__setitem__(0, 0xFF), "invalid UTF-8"),
    (lambda c: c["catalogue"]["user_ids"].__setitem__("offsets", c["catalogue"]["user_ids"]["offsets"] * 10**6),
     "user_ids"),
    (lambda c: c["counts"].__setitem__("items", 10**15), "counts"),
    (lambda c: c["counts"].__setitem__("users", "many"), "counts"),
    (lambda c: c["model"]["state"].__setitem__("item_embeddings", c["model"]["state"]["item_embeddings"][:, :3]),
     "model's state does not load"),
    (lambda c: c["model"]["state"].__setitem__("item_embeddings", c["model"]["state"]["item_embeddings"][:-5]),
     "model"),
    (lambda c: c["model"]["state"]["network"].__setitem__("scorer.weight", torch.zeros(1, 2, dtype=torch.int64)),
     "model's state does not load"),
    (lambda c: c["model"]["params"].__setitem__("surprise", 1), "model's state does not load"),
    (lambda c: c["model"].__setitem__("state", {}), "model's state does not load"),
], ids=["indices-1e12", "negative-index", "indptr-reversed", "float-indices", "artist-out-of-range",
        "playlists-short", "bad-utf8", "offsets-past-data", "huge-count", "count-not-int", "embedding-width",
        "embedding-rows", "scorer-dtype", "unknown-option", "empty-state"])
def test_hostile_contents_are_named_not_run(checkpoint, tmp_path, edit, words):
    refused(_resave(checkpoint, tmp_path, edit), words)


def test_zip_members_that_claim_huge_sizes_are_refused(checkpoint, tmp_path):
    blob = bytearray(open(checkpoint, "rb").read())
    central = blob.find(b"PK\x01\x02")  # the first member's central directory entry
    struct.pack_into("<I", blob, central + 24, 0xFFFFFFF0)  # its uncompressed size: 4 GiB
    local = blob.find(b"PK\x03\x04")
    struct.pack_into("<I", blob, local + 22, 0xFFFFFFF0)
    (tmp_path / "zipbomb.pth").write_bytes(blob)
    start = time.perf_counter()
    refused(tmp_path / "zipbomb.pth", "zipbomb.pth")
    assert time.perf_counter() - start < 5


def test_corrupt_checkpoint_on_the_command_line_is_one_line_exit_2(checkpoint, tmp_path):
    blob = bytearray(open(checkpoint, "rb").read())
    blob[len(blob) // 2] ^= 0x10
    (tmp_path / "bad.pth").write_bytes(blob)
    out = subprocess.run([sys.executable, "recommend.py", "--checkpoint", str(tmp_path / "bad.pth"), "--user", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error: ")


# ----------------------------------------------------------------------------- saving

WRITER = """
import sys, torch
from melody_map.checkpoint import save_checkpoint
path, n = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
for i in range(10**6):
    save_checkpoint(path, {"i": i, "x": torch.full((n,), float(i % 7))})
"""


def _whole(path: str) -> dict:
    raw = torch.load(path, weights_only=True)
    assert raw["checksum"] == payload_checksum(raw)
    assert bool((raw["x"] == float(raw["i"] % 7)).all())
    return raw


def test_a_writer_killed_at_any_moment_leaves_the_previous_checkpoint_whole(tmp_path):
    path = str(tmp_path / "model.pth")
    save_checkpoint(path, {"i": -7, "x": torch.zeros(3_000_000)})
    rng = np.random.default_rng(0)
    seen = set()
    for kill in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, path, "3000000"], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        seen.add(_whole(path)["i"])  # the name always holds a whole checkpoint
    print(f"8 kills; the name held checkpoints {sorted(seen)}")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f".model.pth.{int(gone.stdout)}.tmp").write_bytes(b"PK")  # a writer that died mid-write
    (tmp_path / f".model.pth.{os.getppid()}.tmp").write_bytes(b"PK")  # a writer still running
    save_checkpoint(path, {"i": 0, "x": torch.zeros(3)})  # cleans the dead writers' files only
    assert sorted(os.listdir(tmp_path)) == sorted([f".model.pth.{os.getppid()}.tmp", "model.pth"])


def test_a_full_disk_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    path = str(tmp_path / "model.pth")
    save_checkpoint(path, {"i": 0, "x": torch.zeros(10)})

    def half_then_full(obj, f):
        f.write(b"PK\x03\x04" + b"\0" * 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt_module.torch, "save", half_then_full)
    with pytest.raises(CheckpointError) as excinfo:
        save_checkpoint(path, {"i": 1, "x": torch.ones(10)})
    assert "No space left on device" in str(excinfo.value) and "free some space" in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    monkeypatch.undo()
    assert _whole(path)["i"] == 0 and sorted(os.listdir(tmp_path)) == ["model.pth"]


def test_two_writers_at_once_leave_one_whole_checkpoint(tmp_path):
    path = str(tmp_path / "model.pth")
    one_save = ("import sys, torch; from melody_map.checkpoint import save_checkpoint\n"
                "for i in range(int(sys.argv[2]), 60, 2): save_checkpoint(sys.argv[1], {'i': i, 'x': torch.full((200_000,), float(i % 7))})")
    procs = [subprocess.Popen([sys.executable, "-c", one_save, path, str(start)], cwd=ROOT) for start in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert _whole(path)["i"] in (58, 59)
    assert sorted(os.listdir(tmp_path)) == ["model.pth"]


def test_load_checkpoint_reads_what_save_wrote(checkpoint):
    record, data = load_checkpoint(checkpoint)
    assert data.num_users == torch.load(checkpoint, weights_only=True)["counts"]["users"]


# ----------------------------------------------------------------------------- determinism


def test_the_same_seed_in_two_fresh_processes_gives_identical_checkpoints_and_output(tmp_path):
    data = write_original(tmp_path / "c.csv", community_rows((20, 30), tracks_per_user=10))
    outputs = []
    for run_ in ("a", "b"):
        ckpt = tmp_path / f"{run_}.pth"
        # The thread count is pinned: another count may sum in another order (the last bits).
        train = subprocess.run([sys.executable, "train_gnn.py", "--data", str(data), "--epochs", "6", "--output",
                                str(ckpt), "--plot", "", "--threads", "2"], cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
        assert train.returncode == 0, train.stderr[-2000:]
        recs = subprocess.run([sys.executable, "recommend.py", "--checkpoint", str(ckpt), "--all-users", "--top-k",
                               "20"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert recs.returncode == 0, recs.stderr[-2000:]
        saved = leaves(torch.load(ckpt, weights_only=True))
        outputs.append(({k: v for k, v in saved if isinstance(v, torch.Tensor)}, recs.stdout))
    (first, first_recs), (second, second_recs) = outputs
    assert first.keys() == second.keys() and len(first) > 10
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert first_recs == second_recs and len(first_recs.splitlines()) == 1 + 50 * 20
