"""Playlist names take part in the model: their words are graph nodes, so a name alone, a
playlist in the data or a new one, reaches the tracks of playlists named alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_mpd import track

import recommend
import train_gnn
from melody_map.api import get_recommendations, load_model, recommend_for_new_playlist, recommend_for_tracks
from melody_map.graph import name_word_edges
from melody_map.names import normalise, words


def test_words_and_normalised_names():
    assert words("Summer  Vibes!!") == ["summer", "vibes"]
    assert words("🔥🔥🔥 Bangers") == ["🔥", "bangers"]  # an emoji is a word of its own, repeats once
    assert words("💃🏻✌🏼️") == ["💃", "✌"]  # skin tones and presentation selectors carry no word
    assert words("--- >> ...") == []
    assert normalise("  Road   Trip! ") == normalise("road trip") == "road trip"
    assert normalise("Café") == normalise("CAFÉ")


def test_a_word_gets_a_node_when_two_names_share_it():
    vocab, owner, code = name_word_edges(["gym hits", "Gym!", "sleep", "", "hits for the road"])
    assert vocab == ["gym", "hits"]  # "sleep", "for", "the", "road" are in one name each
    assert sorted(zip(owner.tolist(), [vocab[c] for c in code])) == [
        (0, "gym"), (0, "hits"), (1, "gym"), (4, "hits")]


def named_slices(folder, name_only: bool = False):
    """Two communities of 30 playlists over 20 tracks each: "gym N" playlists hold community 0's
    tracks, "sleep N" ones community 1's; optionally one more playlist, "gym", with no track."""
    rng = np.random.default_rng(0)
    playlists = []
    for c, word in enumerate(("gym", "sleep")):
        for p in range(30):
            picked = rng.choice(20, size=12, replace=False)
            playlists.append({"name": f"{word} {p}", "pid": c * 1000 + p,
                              "tracks": [track(c, int(t), full=False) for t in picked]})
    if name_only:
        playlists.append({"name": "Gym", "pid": 5000, "tracks": []})
    folder.mkdir(exist_ok=True)
    (folder / "mpd.slice.0-999.json").write_text(json.dumps({"info": {}, "playlists": playlists}))


@pytest.fixture(scope="module")
def named_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("names")
    named_slices(folder / "slices", name_only=True)
    ckpt = folder / "m.pth"
    assert train_gnn.main(["--data", str(folder / "slices"), "--output", str(ckpt), "--plot", "",
                           "--epochs", "2"]) == 0
    return ckpt


def community(recs) -> set[int]:
    return {int(uri.split(":c")[1].split("t")[0]) for uri in recs["track_uri"]}


def test_a_new_playlist_from_its_name_alone_gets_the_tracks_of_playlists_named_alike(named_model):
    model, data = load_model(named_model)
    assert model.reads_names() and {"gym", "sleep"} <= set(model.word_vocabulary())
    assert community(recommend_for_new_playlist(model, data, "Gym time", top_k=5)) == {0}
    assert community(recommend_for_new_playlist(model, data, "sleep well", top_k=5)) == {1}


def test_a_name_with_tracks_leaves_the_tracks_out(named_model):
    model, data = load_model(named_model)
    recs = recommend_for_new_playlist(model, data, "sleep", tracks=["spotify:track:c1t03"], top_k=5)
    assert community(recs) == {1} and "spotify:track:c1t03" not in set(recs["track_uri"])


def test_a_playlist_in_the_data_with_a_name_and_no_track_is_reached_through_its_words(named_model):
    model, data = load_model(named_model)
    user = data.user_index("5000")
    assert data.known.counts()[user] == 0
    assert community(get_recommendations(model, data, user, top_k=5)) == {0}


def test_the_cli_names_a_new_playlist(named_model, capsys):
    assert recommend.main(["--checkpoint", str(named_model), "--playlist-name", "gym", "--top-k", "3"]) == 0
    assert "top 3 tracks for a new playlist named 'gym'" in capsys.readouterr().out
    assert recommend.main(["--checkpoint", str(named_model), "--playlist-name", "qwzx"]) == 2
    assert "no word of 'qwzx' names a playlist" in capsys.readouterr().err
    assert recommend.main(["--checkpoint", str(named_model), "--playlist-name", "gym", "--user", "0"]) == 2
    assert "--playlist-name goes alone or with --tracks" in capsys.readouterr().err


def test_without_words_a_name_cannot_be_read(tmp_path, capsys):
    named_slices(tmp_path / "slices")
    ckpt = tmp_path / "m.pth"
    assert train_gnn.main(["--data", str(tmp_path / "slices"), "--output", str(ckpt), "--plot", "",
                           "--epochs", "0", "--no-words"]) == 0
    assert "name words" not in capsys.readouterr().out
    model, data = load_model(ckpt)
    assert not model.reads_names()
    with pytest.raises(ValueError, match="has no name words"):
        recommend_for_new_playlist(model, data, "gym")


def test_the_blend_reads_names_through_its_name_filter(tmp_path):
    named_slices(tmp_path / "slices", name_only=True)
    ckpt = tmp_path / "m.pth"
    assert train_gnn.main(["--data", str(tmp_path / "slices"), "--model", "gcn+gf-cf", "--output", str(ckpt),
                           "--plot", "", "--epochs", "2"]) == 0
    model, data = load_model(ckpt)  # the names' part comes back from the checkpoint
    assert model.names is not None and model.name_weight is not None and model.reads_names()
    assert community(get_recommendations(model, data, data.user_index("5000"), top_k=5)) == {0}
    assert community(recommend_for_new_playlist(model, data, "sleep tight", top_k=5)) == {1}
    assert community(recommend_for_new_playlist(model, data, "gym", tracks=["spotify:track:c0t01"], top_k=5)) == {0}


def test_later_tracks_weigh_more_with_a_recency(tmp_path, capsys):
    named_slices(tmp_path / "slices")
    ckpt = tmp_path / "blend.pth"
    assert train_gnn.main(["--data", str(tmp_path / "slices"), "--model", "gcn+gf-cf", "--output", str(ckpt),
                           "--plot", "", "--epochs", "2"]) == 0
    model, data = load_model(ckpt)
    # Three gym tracks, then three sleep tracks: the more the later ones weigh, the more sleep.
    tracks = [f"spotify:track:c0t0{t}" for t in range(3)] + [f"spotify:track:c1t0{t}" for t in range(3)]
    sleep = []
    for recency in (0.0, 3.0, 30.0):
        recs = recommend_for_tracks(model, data, tracks, top_k=10, recency=recency)
        sleep.append(sum(community({"track_uri": [u]}) == {1} for u in recs["track_uri"]))
    assert sleep[0] < sleep[2] and sleep[0] <= sleep[1] <= sleep[2] and sleep[2] >= 8, sleep
    assert recommend.main(["--checkpoint", str(ckpt), "--recency", "1"]) == 2
    assert "--recency weighs the tracks of --tracks" in capsys.readouterr().err
    with pytest.raises(ValueError, match="recency must be 0 or more"):
        recommend_for_tracks(model, data, tracks, recency=-1.0)
