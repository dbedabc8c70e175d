"""The RecSys Challenge 2018 protocol (bench/challenge.py): its metrics on hand-computed cases,
a challenge set built from planted slices that train_gnn.py reads back, and one built from the
shared real slices that trains with --test, --catalogue and then answers a name alone."""

from __future__ import annotations

import json

import pytest
from conftest import load, shared_file
from test_mpd import planted_slices

import train_gnn
from bench.challenge import CATEGORIES, build, clicks, ndcg, r_precision, track_key
from melody_map.api import load_model, recommend_for_new_playlist
from melody_map.mpd import read_mpd_train_test


def test_r_precision_gives_artists_a_quarter():
    hidden, hidden_artists = ["a", "b", "c", "d"], ["A", "A", "B", "C"]
    recommended, artists = ["a", "x", "y", "z", "b"], ["A", "B", "D", "E", "A"]
    # The first |G| = 4: one track (a), two artists (A, B): (1 + 0.25 * 2) / 4; "b" at 5 is past |G|.
    assert r_precision(recommended, artists, hidden, hidden_artists) == pytest.approx(0.375)
    assert r_precision(["x"], ["Z"], ["a"], ["A"]) == 0.0


def test_ndcg_is_the_challenges():
    # rel = 0, 1, 0, 1: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG for 2 hidden = 1 + 1/log2(2) = 2.
    assert ndcg(["x", "a", "y", "b"], ["a", "b"]) == pytest.approx(0.75)
    assert ndcg(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    # Three hidden, one found first: 1 / (1 + 1 + 1/log2(3)).
    assert ndcg(["a", "x"], ["a", "b", "c"]) == pytest.approx(1 / (2 + 1 / 1.5849625007211563))
    assert ndcg(["x", "y"], ["a"]) == 0.0


def test_clicks_count_pages_of_ten_before_the_first_hit():
    listing = [f"t{i}" for i in range(500)]
    assert clicks(listing, ["t0"]) == 0
    assert clicks(listing, ["t9"]) == 0 and clicks(listing, ["t10"]) == 1
    assert clicks(listing, ["t22", "t499"]) == 2
    assert clicks(listing, ["elsewhere"]) == 51


def test_the_set_hides_the_rest_of_each_chosen_playlist_and_trains_on_the_others(tmp_path):
    planted = planted_slices(tmp_path / "slices", playlists_per_community=60)  # 120 playlists of 12 tracks
    planted[0]["tracks"].append(dict(planted[0]["tracks"][0], track_uri="spotify:track:once", track_name="Once"))
    (tmp_path / "slices" / "mpd.slice.0-999.json").write_text(json.dumps({"playlists": planted[:60]}))
    summary = build(tmp_path / "slices", tmp_path / "work", per_category=3, seed=1)
    meta = json.loads((tmp_path / "work" / "challenge.json").read_text())
    # Playlists of 12 tracks qualify for 0, 1 seeds (>= 10, 11 tracks) and not for 5 (>= 15).
    assert summary["categories"] == {label: (3 if k <= 1 else 0) for label, k, *_ in CATEGORIES}
    train, test = ({p["pid"]: p for p in json.loads(next((tmp_path / "work" / part).glob("*.json")).read_text())[
        "playlists"]} for part in ("train", "test"))
    assert len(train) == 120 and set(test) == {int(pid) for pid in meta["category_of"]}
    for p in planted:
        if p["pid"] not in test:
            assert train[p["pid"]] == p
            continue
        k = {"name only": 0, "name + first 1": 1}[meta["category_of"][str(p["pid"])]]
        keys = [track_key(r) for r in p["tracks"]]
        assert [track_key(r) for r in train[p["pid"]]["tracks"]] == keys[:k]  # the first k are the seeds
        assert [track_key(r) for r in test[p["pid"]]["tracks"]] == keys[k:]  # the rest is hidden
        assert train[p["pid"]]["name"] == p["name"]
    catalogue = json.loads((tmp_path / "work" / "catalogue.json").read_text())
    assert len(catalogue) == 2 * summary["unplayed_hidden_tracks"]  # each unplayed track and one distractor
    _, _, hidden = read_mpd_train_test(tmp_path / "work" / "train", tmp_path / "work" / "test")
    assert hidden.report.balanced() and hidden.report.rows_kept == summary["hidden_rows"]


def test_on_the_shared_slices_the_set_trains_with_test_catalogue_and_names(tmp_path, capsys):
    source = shared_file("mpd-slices-a")
    summary = build(source, tmp_path / "work", per_category=20, seed=0)
    work = tmp_path / "work"
    flags = ["--data", str(work / "train"), "--test", str(work / "test")]
    # Without the catalogue each hidden track no seed playlist holds is a miss; with it, none is.
    without = load(work / "train", test=str(work / "test"))
    with_catalogue = load(work / "train", test=str(work / "test"), catalogue=str(work / "catalogue.json"))
    assert all(r.balanced() for r in without.reports + with_catalogue.reports)
    assert without.test_items().misses.sum() + without.reports[-1].rows_kept == summary["hidden_rows"]
    assert with_catalogue.test_items().misses.sum() == 0
    assert with_catalogue.reports[-1].rows_kept == summary["hidden_rows"]
    assert with_catalogue.catalogue.new_items.sum() == 2 * summary["unplayed_hidden_tracks"]
    ckpt = tmp_path / "m.pth"
    assert train_gnn.main([*flags, "--catalogue", str(work / "catalogue.json"), "--output", str(ckpt), "--plot", "",
                           "--epochs", "1"]) == 0
    assert f"test (200 users, all {with_catalogue.num_items:,} tracks ranked" in capsys.readouterr().out
    # A name alone: every one of the top 10 is a track of a training playlist whose name has that word.
    model, data = load_model(ckpt)
    playlists = [p for f in sorted((work / "train").glob("*.json")) for p in json.loads(f.read_text())["playlists"]]
    lists = {}
    for word in ("christmas", "worship"):
        named = {t["track_uri"] for p in playlists if word in p["name"].lower().split() for t in p["tracks"]}
        lists[word] = set(recommend_for_new_playlist(model, data, word, top_k=10).track_uri)
        assert lists[word] <= named, word
    assert not lists["christmas"] & lists["worship"]
