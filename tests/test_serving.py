"""Beyond a user index: new listeners folded in, playlist continuation, similar tracks and
artists, and batch recommendations, each from the checkpoint alone and on planted structure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, community_rows, train_checkpoint, write_original
from test_recommend import cli

from melody_map.api import (
    continue_playlist,
    explain,
    get_recommendations,
    item_labels,
    load_model,
    recommend_for_tracks,
    similar_artists,
    similar_tracks,
)
from melody_map.config import TrainConfig
from melody_map.foldin import FoldIn
from melody_map.pipeline import run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("serving")
    return train_checkpoint(write_original(folder / "c.csv", community_rows()), folder / "model.pth", epochs=20)


@pytest.fixture(scope="module")
def gcn_checkpoint(tmp_path_factory) -> str:
    """The same with --model gcn: it scores from embeddings, which ONNX exports and serving reads without PyG."""
    folder = tmp_path_factory.mktemp("serving-gcn")
    return train_checkpoint(write_original(folder / "c.csv", community_rows()), folder / "model.pth", model="gcn",
                            epochs=20)


def community(labels) -> np.ndarray:
    """The planted community of "Artist c-a - Song t" names: c."""
    return np.array([int(str(label).split()[1].split("-")[0]) for label in labels])


# ----------------------------------------------------------------------------- fold-in


def test_fold_in_solves_the_weighted_least_squares_it_claims():
    # Reference: the same objective written out densely and solved by lstsq.
    torch.manual_seed(0)
    items, d, alpha, bias = 30, 5, 4.0, 0.1
    z_items, weight = torch.randn(items, d), torch.randn(d)
    fold = FoldIn(z_items, weight, bias, alpha)
    history = np.array([2, 7, 11])
    q = (z_items * weight).double().numpy()
    conf = np.ones(items)
    conf[history] = 1 + alpha
    target = -bias * np.ones(items)
    target[history] = 1 - bias
    root = np.sqrt(conf)[:, None]
    a = np.vstack([q * root, np.sqrt(fold.reg) * np.eye(d)])
    b = np.concatenate([target * np.sqrt(conf), np.zeros(d)])
    expected = np.linalg.lstsq(a, b, rcond=None)[0]
    np.testing.assert_allclose(fold.vectors([history])[0].numpy(), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fold.scores([history])[0].numpy(), q @ expected + bias, rtol=1e-4, atol=1e-5)
    # The scores split exactly into one term per own item plus the rest.
    parts, rest = fold.contributions(history, np.arange(items))
    np.testing.assert_allclose((parts.sum(1) + rest).numpy(), q @ expected + bias, rtol=1e-4, atol=1e-5)


def test_a_new_listener_gets_their_own_community(checkpoint):
    model, data = load_model(checkpoint)
    labels = item_labels(data)
    for c in (0, 1):  # popularity alone would give both communities the larger one's tracks
        mine = [name for name in labels if community([name])[0] == c][:5]
        recs = recommend_for_tracks(model, data, mine, top_k=10)
        got = recs["artist"] + " - " + recs["track"]
        assert (community(got) == c).mean() >= 0.9, (c, got.tolist())
        assert not set(got) & set(mine)  # the given tracks are left out


def test_gf_cf_folds_a_fitted_user_in_exactly():
    from conftest import pairs_dataset

    from melody_map.filters import GFCF

    rng = np.random.default_rng(1)
    user, item = np.nonzero(rng.random((40, 25)) < 0.3)
    data = pairs_dataset(user, item)
    model = GFCF(k=4).fit(data)
    train = data.items(0)  # TRAIN
    torch.testing.assert_close(model.fold_in([train.of(u) for u in range(5)]), model.scores(np.arange(5)))


def test_track_names_resolve_case_insensitively_and_unknown_ones_get_a_suggestion(checkpoint):
    model, data = load_model(checkpoint)
    name = item_labels(data)[0]
    same = recommend_for_tracks(model, data, [name.upper()], top_k=5)
    pd.testing.assert_frame_equal(same, recommend_for_tracks(model, data, [name], top_k=5))
    with pytest.raises(ValueError, match=f"did you mean '{name}'"):
        recommend_for_tracks(model, data, [name[:-1]])
    with pytest.raises(ValueError, match="no such artist; did you mean 'Artist 0-1'"):
        recommend_for_tracks(model, data, ["Artist 0-1x - Song 3"])
    with pytest.raises(ValueError, match="give one or more tracks"):
        recommend_for_tracks(model, data, [])
    with pytest.raises(ValueError, match="out of range"):
        recommend_for_tracks(model, data, [10**6])


# ----------------------------------------------------------------------------- playlists


def test_a_playlist_from_one_community_is_continued_with_that_community(checkpoint):
    model, data = load_model(checkpoint)
    for user in (0, 40):  # community 0's first user, community 1's
        c = 0 if user < 30 else 1
        recs = continue_playlist(model, data, f"mix {c}", top_k=8, user_idx=user)  # names match case-insensitively
        got = recs["artist"] + " - " + recs["track"]
        assert (community(got) == c).all(), got.tolist()
        playlist = int(np.flatnonzero((data.catalogue.playlist_user == user)
                                      & (np.array(data.catalogue.playlist_names.to_pylist()) == f"Mix {c}"))[0])
        assert not set(recs["track_index"]) & set(data.playlists.of(playlist).tolist())


def test_an_unknown_playlist_names_the_users_playlists(checkpoint):
    model, data = load_model(checkpoint)
    with pytest.raises(ValueError, match=r"has no playlist 'Mix 9'; did you mean 'Mix 0'\? \(their 2 playlists"):
        continue_playlist(model, data, "Mix 9", user_idx=0)


# ----------------------------------------------------------------------------- similar items


def test_similar_tracks_and_artists_come_from_the_same_community(checkpoint):
    model, data = load_model(checkpoint)
    name = item_labels(data)[0]
    recs = similar_tracks(model, data, name, top_k=10)
    assert (community(recs["artist"] + " - " + recs["track"]) == community([name])[0]).all()
    assert name not in set(recs["artist"] + " - " + recs["track"]) and recs["score"].is_monotonic_decreasing
    artists = similar_artists(model, data, "Artist 1-0", top_k=5)
    assert (community(artists["artist"]) == 1).all() and "Artist 1-0" not in set(artists["artist"])


def test_similar_tracks_share_a_scene_in_the_synthetic_sample(tmp_path):
    # The shipped sample's ground truth: each track's (genre, scene) block. Its nearest tracks
    # must come mostly from that block (chance: 1 in 24) and its artists' from the genre.
    from synthetic import generate, get_preset

    truth = generate(get_preset("sample"), 0)
    block_of = {f"{truth.artist_names[a]} - {t}": b
                for a, t, b in zip(truth.track_artist, truth.track_names, truth.track_block)}
    out = tmp_path / "sample.pth"  # the untrained start keeps the test fast; trained vectors pass too
    run(TrainConfig(data=str(ROOT / "spotify_dataset.csv"), output=str(out), plot="", epochs=0),
        log=lambda line: None, progress=False)
    model, data = load_model(out)
    counts = np.bincount(data.known.items, minlength=data.num_items)
    labels = item_labels(data)
    same = []
    for item in np.argsort(-counts)[:50]:
        recs = similar_tracks(model, data, int(item), top_k=10)
        near = recs["artist"] + " - " + recs["track"]
        same += [block_of.get(n, -1) == block_of[labels[item]] for n in near]
    assert np.mean(same) >= 0.8, f"only {np.mean(same):.2f} of the nearest tracks share the scene"
    genre_of = dict(zip(truth.artist_names, truth.artist_genre))
    artist = truth.artist_names[int(truth.track_artist[0])]
    near = similar_artists(model, data, artist, top_k=10)["artist"]
    assert np.mean([genre_of[a] == genre_of[artist] for a in near]) >= 0.8


# ----------------------------------------------------------------------------- batch


def test_batch_recommendations_equal_single_calls(checkpoint):
    model, data = load_model(checkpoint)
    users = [5, 0, 61]
    batch = get_recommendations(model, data, user_idx=users, top_k=7)
    assert batch["user_index"].tolist() == [u for u in users for _ in range(7)]
    for user in users:
        one = get_recommendations(model, data, user_idx=user, top_k=7)
        rows = batch[batch["user_index"] == user].drop(columns=["user_id", "user_index"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(rows.drop(columns="score"), one.drop(columns="score"))
        np.testing.assert_allclose(rows["score"], one["score"], rtol=1e-5)
    by_id = get_recommendations(model, data, user_id=[data.user_ids[u].as_py() for u in users], top_k=7)
    pd.testing.assert_frame_equal(by_id, batch)
    with pytest.raises(ValueError, match="out of range"):
        get_recommendations(model, data, user_idx=[0, 10**6])


# ----------------------------------------------------------------------------- command line


def test_the_new_commands_print_ranked_names(checkpoint, tmp_path):
    model, data = load_model(checkpoint)
    name = item_labels(data)[0]
    (tmp_path / "mine.txt").write_text(f"{name}\n\n{item_labels(data)[1]}\n")
    for args, head in [(["--tracks", name], "top 5 tracks for a new listener of 1 track "),
                       (["--tracks-file", str(tmp_path / "mine.txt")], "top 5 tracks for a new listener of 2"),
                       (["--user", "0", "--playlist", "Mix 0"], "next 5 tracks for the playlist 'Mix 0'"),
                       (["--similar-to", name], f"5 tracks nearest to '{name}'"),
                       (["--similar-artist", "Artist 0-1"], "5 artists nearest to 'Artist 0-1'")]:
        out = cli("recommend.py", *args, "--checkpoint", checkpoint)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.strip().splitlines()
        assert lines[0].startswith(head) and len(lines) == 6 and lines[1].lstrip().startswith("1. Artist ")


@pytest.mark.parametrize("args, message", [
    (["--tracks", "Artist 0-1 - Song 9999"], "unknown track 'Artist 0-1 - Song 9999'"),
    (["--tracks-file", "no/such.txt"], "cannot read --tracks-file no/such.txt"),
    (["--playlist", "Mix 0"], "--playlist needs the playlist's owner"),
    (["--user", "0", "--playlist", "Nope"], "has no playlist 'Nope'"),
    (["--similar-artist", "Nobody At All"], "unknown artist 'Nobody At All'"),
])
def test_the_new_commands_fail_in_one_line(checkpoint, args, message):
    out = cli("recommend.py", *args, "--checkpoint", checkpoint)
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


# ----------------------------------------------------------------------------- explanations


def test_reasons_are_real_terms_of_the_score_and_the_top_one_matters(checkpoint):
    model, data = load_model(checkpoint)
    recs = explain(model, data, user_idx=0, top_k=5)
    history = np.unique(data.known.of(0))
    folded = model.fold_in([history])[0]
    np.testing.assert_allclose(recs["folded_score"], folded[recs["track_index"].to_numpy().copy()].numpy(),
                               rtol=1e-4, atol=1e-5)
    names = item_labels(data)
    for row in range(len(recs)):
        reasons = recs["reasons"].iloc[row]
        assert reasons and all(part > 0 for _, part, _ in reasons)
        assert [p for _, p, _ in reasons] == sorted((p for _, p, _ in reasons), reverse=True)
        top = int(np.flatnonzero(names[history] == reasons[0][0])[0])
        without = model.fold_in([np.delete(history, top)])[0][recs["track_index"].iloc[row]]
        assert without < recs["folded_score"].iloc[row], (row, reasons[0])  # the top reason pulls it up


def test_the_blend_splits_its_folded_in_score_exactly():
    from conftest import pairs_dataset

    from melody_map.gcn import GCNBlend

    rng = np.random.default_rng(2)
    user, item = np.nonzero(rng.random((60, 40)) < 0.2)
    part = (rng.random(len(user)) < 0.2).astype(np.int8)  # some validation pairs to choose on
    model = GCNBlend(epochs=2, dim=8, valid_users=60).fit(pairs_dataset(user, item, part))
    history, targets = np.array([1, 5, 9, 30]), np.arange(40)
    parts, rest = model.contributions(history, targets)
    torch.testing.assert_close(parts.sum(1) + rest, model.fold_in([history])[0], rtol=1e-4, atol=1e-4)


def test_the_explain_command_prints_a_reason_line_per_track(checkpoint):
    out = cli("recommend.py", "--user", "0", "--explain", "--top-k", "3", "--checkpoint", checkpoint)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 7 and all(line.strip().startswith("because you have: Artist 0-") for line in lines[2::2])
    bad = cli("recommend.py", "--tracks", "x", "--explain", "--checkpoint", checkpoint)
    assert bad.returncode == 2 and "--explain goes with --user or --user-id alone" in bad.stderr


# ----------------------------------------------------------------------------- pictures


def test_onnx_export_of_the_default_model_says_which_models_it_takes(checkpoint, tmp_path):
    out = cli("recommend.py", "--export-onnx", str(tmp_path / "m.onnx"), "--checkpoint", checkpoint)
    assert out.returncode == 2 and "--model gcn" in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_export_reproduces_the_scores(gcn_checkpoint, tmp_path):
    checkpoint = gcn_checkpoint
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    out = cli("recommend.py", "--export-onnx", str(tmp_path / "m.onnx"), "--checkpoint", checkpoint)
    assert out.returncode == 0 and out.stdout.startswith(f"wrote {tmp_path / 'm.onnx'}"), out.stderr
    model, data = load_model(checkpoint)
    users = np.array([0, 7, 89], np.int64)
    scores = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"users": users})[0]
    np.testing.assert_allclose(scores, model.scores(users).numpy(), rtol=1e-5, atol=1e-5)
    bad = cli("recommend.py", "--export-onnx", str(tmp_path / "no" / "dir" / "m.onnx"), "--checkpoint", checkpoint)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr, bad.stderr


def test_the_network_diagram_is_drawn_or_skipped_in_one_line(tmp_path, monkeypatch):
    import shutil

    path = write_original(tmp_path / "c.csv", community_rows())
    lines: list[str] = []
    cfg = TrainConfig(data=str(path), output="", plot="", epochs=1, diagram=str(tmp_path / "net.svg"))
    present = shutil.which("dot") is not None
    try:
        import torchviz  # noqa: F401
    except ImportError:
        present = False
    run(cfg, log=lines.append, progress=False)
    if present:
        assert lines[-1] == f"wrote {tmp_path / 'net.svg'}"
        svg = (tmp_path / "net.svg").read_text()
        assert "conv1.lin.weight" in svg and "conv2.lin.weight" in svg and "scorer.weight" in svg
    monkeypatch.setattr(shutil, "which", lambda name: None)  # Graphviz absent: a note, training unharmed
    lines.clear()
    run(replace(cfg, diagram=str(tmp_path / "other.svg")), log=lines.append, progress=False)
    assert lines[-1].startswith("diagram skipped: ") and not (tmp_path / "other.svg").exists()


def test_plot_user_draws_a_png_and_rejects_an_unknown_user(checkpoint, tmp_path):
    out = cli("recommend.py", "--plot-user", "3", str(tmp_path / "u.png"), "--checkpoint", checkpoint)
    assert out.returncode == 0 and out.stdout.startswith(f"wrote {tmp_path / 'u.png'}: user 3"), out.stderr
    assert (tmp_path / "u.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "Warning" not in out.stderr
    bad = cli("recommend.py", "--plot-user", "nobody", str(tmp_path / "x.png"), "--checkpoint", checkpoint)
    assert bad.returncode == 2 and "unknown user id 'nobody'" in bad.stderr and bad.stderr.count("\n") == 1
    far = cli("recommend.py", "--plot-user", "999", str(tmp_path / "x.png"), "--checkpoint", checkpoint)
    assert far.returncode == 2 and "out of range" in far.stderr and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("model", ["gcn+chebycf", "gcn"])
def test_every_serving_path_runs_and_a_gcn_needs_no_graph_library(checkpoint, gcn_checkpoint, model):
    import subprocess
    import sys

    checkpoint = gcn_checkpoint if model == "gcn" else checkpoint  # the default's GCN part runs PyG's layers

    code = ("import sys; from melody_map.api import *; from melody_map.api import explain; "
            "from melody_map.plot import plot_user; import tempfile, os; "
            f"m, d = load_model({checkpoint!r}); name = item_labels(d)[0]; "
            "get_recommendations(m, d, [0, 1], 5); recommend_for_tracks(m, d, [name]); "
            "continue_playlist(m, d, 'Mix 0', user_idx=0); similar_tracks(m, d, name); "
            "similar_artists(m, d, 'Artist 0-1'); explain(m, d, 0, 3); "
            "plot_user(m, d, 0, os.path.join(tempfile.mkdtemp(), 'u.png')); "
            "print(sorted(n for n in sys.modules if n.startswith('torch_geometric')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]" or model != "gcn"
