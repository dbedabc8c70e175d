"""Checkpoint round trip, safe loading, the Python API and the CLIs' handling of bad input."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, community_rows, write_original

from melody_map.api import get_recommendations, load_model
from melody_map.config import TrainConfig
from melody_map.pipeline import run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("ckpt")
    path = write_original(folder / "c.csv", community_rows())
    out = folder / "model.pth"
    run(TrainConfig(data=str(path), output=str(out), plot=str(folder / "curve.png"), epochs=20),
        log=lambda line: None, progress=False)
    assert (folder / "curve.png").stat().st_size > 0
    return str(out)


@pytest.fixture(scope="module")
def gcn_checkpoint(tmp_path_factory) -> str:
    """A checkpoint of --model gcn: its network and embeddings are what some tests read."""
    folder = tmp_path_factory.mktemp("gcn")
    out = folder / "model.pth"
    run(TrainConfig(data=str(write_original(folder / "c.csv", community_rows())), output=str(out), plot="",
                    model="gcn", epochs=20), log=lambda line: None, progress=False)
    return str(out)


def cli(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_save_load_gives_identical_recommendations(checkpoint, tmp_path):
    model, data = load_model(checkpoint)
    before = get_recommendations(model, data, user_idx=3, top_k=10)
    raw = torch.load(checkpoint, weights_only=True)  # plain tensors and strings only
    torch.save(raw, tmp_path / "copy.pth")
    model2, data2 = load_model(tmp_path / "copy.pth")
    pd.testing.assert_frame_equal(before, get_recommendations(model2, data2, user_idx=3, top_k=10))


def test_recommendations_are_sorted_named_and_exclude_known(checkpoint):
    model, data = load_model(checkpoint)
    recs = get_recommendations(model, data, user_idx=0, top_k=10)
    assert list(recs.columns) == ["rank", "artist", "track", "score", "track_index"]
    assert recs["rank"].tolist() == list(range(1, 11))
    assert recs["score"].is_monotonic_decreasing
    assert not set(recs["track_index"]) & set(data.known.of(0).tolist())
    assert recs["artist"].str.startswith("Artist ").all() and recs["track"].str.startswith("Song ").all()
    with_known = get_recommendations(model, data, user_idx=0, top_k=data.num_items, include_known=True)
    assert len(with_known) == data.num_items  # every track, known ones included
    by_id = get_recommendations(model, data, user_id=data.user_ids[0].as_py(), top_k=10)
    pd.testing.assert_frame_equal(recs, by_id)


def test_top_k_beyond_the_catalogue_is_clipped(checkpoint):
    model, data = load_model(checkpoint)
    recs = get_recommendations(model, data, user_idx=0, top_k=10_000)
    assert len(recs) == data.num_items - len(data.known.of(0))


def test_seed_style_load_state_dict_works(gcn_checkpoint):
    from melody_map.model import GCNNetwork

    checkpoint = gcn_checkpoint
    ckpt = torch.load(checkpoint, weights_only=True)
    cfg, state = ckpt["config"], ckpt["model"]["state"]["network"]
    model = GCNNetwork(state["embedding.weight"].shape[0], cfg["dim"], cfg["dropout"])
    model.load_state_dict(state)
    # ...and the loaded recommender rebuilds the same network itself.
    rebuilt = load_model(checkpoint)[0].network()
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("kwargs, message", [
    ({"user_idx": -1}, "out of range: valid indices are 0..89"),
    ({"user_idx": 90}, "out of range: valid indices are 0..89"),
    ({"user_id": "nobody"}, "unknown user id 'nobody'"),
    ({"user_idx": 0, "top_k": 0}, "top_k must be a whole number >= 1"),
    ({"user_idx": 0, "top_k": 2.5}, "top_k must be a whole number >= 1"),
])
def test_api_rejects_bad_input_with_value_error(checkpoint, kwargs, message):
    model, data = load_model(checkpoint)
    with pytest.raises(ValueError, match=message):
        get_recommendations(model, data, **kwargs)


def test_pickled_object_in_checkpoint_is_refused(checkpoint, tmp_path):
    evil = torch.load(checkpoint, weights_only=True)
    evil["config"] = pd.Timestamp("2020-01-01")  # any non-allow-listed class is pickled code
    torch.save(evil, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="refused, it holds pickled objects"):
        load_model(tmp_path / "evil.pth")


def test_recommend_cli_prints_ranked_named_tracks(checkpoint):
    out = cli("recommend.py", "--user", "0", "--top-k", "5", "--checkpoint", checkpoint)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("top 5 tracks for user 0")
    assert len(lines) == 6 and lines[1].lstrip().startswith("1. Artist ") and " — Song " in lines[1]


@pytest.mark.parametrize("args, message", [
    (["--user", "999"], "out of range: valid indices are 0..89"),
    (["--user-id", "nobody"], "unknown user id"),
    (["--top-k", "0"], "--top-k must be >= 1"),
    (["--checkpoint", "missing.pth"], "checkpoint not found"),
    (["--checkpoint", "CORRUPT"], "not a readable checkpoint"),
    (["--checkpoint", "FOREIGN"], "not a Melody Map checkpoint"),
])
def test_recommend_cli_errors_are_one_line_exit_2(checkpoint, tmp_path, args, message):
    (tmp_path / "corrupt.pth").write_bytes(open(checkpoint, "rb").read()[:5000])
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pth")
    args = [a.replace("CORRUPT", str(tmp_path / "corrupt.pth")).replace("FOREIGN", str(tmp_path / "foreign.pth"))
            for a in args]
    if "--checkpoint" not in args:
        args += ["--checkpoint", checkpoint]
    out = cli("recommend.py", *args)
    assert out.returncode == 2
    assert out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


@pytest.mark.parametrize("args, message", [
    (["--data", "no/such/file.csv"], "file not found"),
    (["--data", "tests"], "is a directory"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--epochs", "-1"], "--epochs must be >= 0"),
    (["--valid-frac", "0.6", "--test-frac", "0.5"], "--valid-frac + --test-frac must be below 1"),
])
def test_train_cli_errors_exit_2_without_traceback(args, message):
    out = cli("train_gnn.py", *args)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in out.stderr


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_byte_for_byte(checkpoint, tmp_path, monkeypatch):
    """The write stops with half of the new checkpoint's bytes written: the file under the name
    is still the previous one, every byte, it loads and recommends as before, and no
    temporary file is left beside it."""
    from melody_map.checkpoint import CheckpointError, save_checkpoint

    path = tmp_path / "model.pth"
    shutil.copyfile(checkpoint, path)
    previous = path.read_bytes()
    model, data = load_model(path)
    before = get_recommendations(model, data, user_idx=3, top_k=10)
    newer = torch.load(checkpoint, weights_only=True)
    newer["metrics"] = {**newer["metrics"], "rewritten": 1.0}
    real_save, written = torch.save, []

    def half_then_fail(obj, f):
        whole = io.BytesIO()
        real_save(obj, whole)
        f.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        written.append(len(whole.getvalue()) // 2)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(CheckpointError):
        save_checkpoint(path, newer)
    monkeypatch.undo()
    assert written and written[0] > 1000  # the failure came midway, after many bytes of the new file
    assert path.read_bytes() == previous, "the failed save changed the previous checkpoint"
    model, data = load_model(path)
    pd.testing.assert_frame_equal(get_recommendations(model, data, user_idx=3, top_k=10), before)
    assert os.listdir(tmp_path) == ["model.pth"]


def test_a_save_that_succeeds_replaces_the_checkpoint_whole(checkpoint, tmp_path):
    from melody_map.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "model.pth"
    shutil.copyfile(checkpoint, path)
    previous = path.read_bytes()
    newer = torch.load(checkpoint, weights_only=True)
    newer["metrics"] = {**newer["metrics"], "rewritten": 1.0}
    save_checkpoint(path, newer)
    assert path.read_bytes() != previous and os.listdir(tmp_path) == ["model.pth"]
    load_checkpoint(path)  # its checksum and contents check out: the whole new file, not a mix
    assert torch.load(path, weights_only=True)["metrics"]["rewritten"] == 1.0
    model, data = load_model(path)
    assert len(get_recommendations(model, data, user_idx=3, top_k=10)) == 10


def test_pruned_single_user_ranking_equals_a_full_scan(checkpoint):
    from melody_map.ranking import top_k

    model, data = load_model(checkpoint)
    full_scan = model.scores  # every track scored
    for user in range(0, data.num_users, 7):
        for k in (1, 5, 40):
            fast = get_recommendations(model, data, user, top_k=k)
            items, scores = top_k(full_scan, np.array([user]), k, data.known)
            keep = np.isfinite(scores[0])
            np.testing.assert_allclose(fast["score"].to_numpy(), scores[0][keep], rtol=1e-6)
            # Tracks tied with the last score may be cut either way; all above it must agree.
            above = scores[0][keep] > scores[0][keep][-1] + 1e-6
            assert set(fast["track_index"][fast["score"] > scores[0][keep][-1] + 1e-6]) == set(items[0][keep][above])


@pytest.mark.parametrize("drop, message", [
    (("model", "state"), "lacks model.state"),
    (("catalogue", "user_ids"), "lacks catalogue.user_ids"),
    (("trained",), "lacks trained, trained.indptr, trained.items"),
])
def test_a_checkpoint_that_lacks_a_field_names_it(checkpoint, tmp_path, drop, message):
    ckpt = torch.load(checkpoint, weights_only=True)
    holder = ckpt
    for key in drop[:-1]:
        holder = holder[key]
    del holder[drop[-1]]
    torch.save(ckpt, tmp_path / "lacking.pth")
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / "lacking.pth")


def test_a_checkpoint_of_another_format_version_says_so(checkpoint, tmp_path):
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["version"] = 1
    torch.save(ckpt, tmp_path / "old.pth")
    with pytest.raises(ValueError, match="written by another Melody Map version"):
        load_model(tmp_path / "old.pth")


def test_recommend_never_imports_the_graph_library(gcn_checkpoint):
    # A GCN scores from its embeddings; GCN+ChebyCF's GCN part runs PyG's layers, so it imports them.
    checkpoint = gcn_checkpoint
    code = ("import sys; from melody_map.api import get_recommendations, load_model; "
            f"m, d = load_model({checkpoint!r}); get_recommendations(m, d, 0, 5); "
            "print(sorted(n for n in sys.modules if n.startswith('torch_geometric')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
