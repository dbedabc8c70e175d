"""Million Playlist Dataset slices through the same front door: every playlist and track row has a
fate, a playlist is its own listener, and outputs join back to the source by pid and track_uri."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, load, shared_file

import recommend
import train_gnn
from melody_map.api import get_recommendations, load_model
from melody_map.mpd import read_mpd
from synthetic.generate import generate, get_preset
from synthetic.mpd import uri, write_mpd


def track(c: int, t: int, full: bool) -> dict:
    """Track t of community c: the reduced schema, or the full one with artist and album URIs."""
    row = {"artist_name": f"Artist {c}-{t % 5}", "track_uri": f"spotify:track:c{c}t{t:02d}",
           "track_name": f"Song {c}-{t}"}
    if full:
        row.update(artist_uri=f"spotify:artist:c{c}a{t % 5}", album_uri=f"spotify:album:c{c}b{t % 3}",
                   album_name=f"Album {c}-{t % 3}", duration_ms=200_000, pos=0)
    return row


def planted_slices(folder, playlists_per_community: int = 30, full: bool = True, seed: int = 0):
    """Two communities of playlists over 20 tracks each, in two slice files."""
    rng = np.random.default_rng(seed)
    playlists = []
    for c in (0, 1):
        for p in range(playlists_per_community):
            picked = rng.choice(20, size=12, replace=False)
            tracks = [dict(track(c, int(t), full), pos=i) for i, t in enumerate(picked)]
            playlists.append({"name": f"mix {c}", "pid": c * 1000 + p, "num_tracks": len(tracks), "tracks": tracks})
    folder.mkdir(exist_ok=True)
    half = len(playlists) // 2
    for i, part in enumerate((playlists[:half], playlists[half:])):
        doc = {"info": {"slice": f"{i * 1000}-{i * 1000 + 999}", "version": "v1"}, "playlists": part}
        (folder / f"mpd.slice.{i * 1000}-{i * 1000 + 999}.json").write_text(json.dumps(doc))
    return playlists


def test_every_playlist_and_track_row_has_one_fate(tmp_path):
    good = [track(0, t, full=False) for t in range(3)]
    playlists = [
        {"name": "fine", "pid": 7, "tracks": good + [good[0]]},  # a track twice: merged
        "not a playlist",
        {"name": "no pid", "tracks": good},
        {"name": "again", "pid": 7, "tracks": good},  # pid seen before: its 3 rows go with it
        {"name": "no list", "pid": 8, "tracks": None},
        {"name": "odd rows", "pid": "9", "tracks": [
            [1, 2], {"artist_name": "A"}, {"track_uri": "spotify:track:x", "track_name": "T"},
            {"artist_name": "Nameless", "track_name": "Known by name"}]},
    ]
    (tmp_path / "s.json").write_text(json.dumps({"info": {}, "playlists": playlists}))
    rows, report = read_mpd(tmp_path / "s.json")
    assert (report.rows_read, report.rows_kept) == (6, 2)
    assert report.dropped == {"not an object": 1, "no pid": 1, "pid seen before": 1, "no track list": 1}
    tracks = rows.report
    assert tracks.rows_read == 4 + 3 + 3 + 4 and tracks.balanced(), tracks
    assert (tracks.rows_kept, tracks.duplicates_merged) == (4, 1)
    assert tracks.dropped == {"not an object": 1, "no track (no track_uri, no artist and title)": 1,
                              "no artist": 1, "in a dropped playlist": 6}
    cat = rows.catalogue
    assert cat.user_ids.to_pylist() == ["7", "9"] and cat.user_names.to_pylist() == ["fine", "odd rows"]
    # A track without a URI is its artist and title; its URI cell is empty.
    assert cat.item_uris.to_pylist()[-1] == "" and cat.item_names.to_pylist()[-1] == "Known by name"


def test_artists_are_their_uris_where_the_schema_has_them(tmp_path):
    # Two artists of one name but two URIs stay two artists; without URIs, one name is one artist.
    rows = [{"artist_name": "Same", "artist_uri": f"spotify:artist:{a}", "track_uri": f"spotify:track:{a}",
             "track_name": "T"} for a in "ab"]
    (tmp_path / "full.json").write_text(json.dumps({"playlists": [{"pid": 1, "name": "x", "tracks": rows}]}))
    assert read_mpd(tmp_path / "full.json")[0].catalogue.num_artists == 2
    for r in rows:
        del r["artist_uri"]
    (tmp_path / "reduced.json").write_text(json.dumps({"playlists": [{"pid": 1, "name": "x", "tracks": rows}]}))
    assert read_mpd(tmp_path / "reduced.json")[0].catalogue.num_artists == 1


def test_a_slice_a_folder_and_a_glob_read_the_same_rows(tmp_path):
    planted_slices(tmp_path / "slices")
    folder, _ = read_mpd(tmp_path / "slices")
    globbed, _ = read_mpd(str(tmp_path / "slices" / "mpd.slice.*.json"))
    assert folder.user.tolist() == globbed.user.tolist() and folder.item.tolist() == globbed.item.tolist()
    one, _ = read_mpd(tmp_path / "slices" / "mpd.slice.0-999.json")
    assert one.catalogue.num_users == 30 and folder.catalogue.num_users == 60


def test_a_playlist_gets_its_own_community_and_outputs_join_back_by_pid_and_uri(tmp_path, capsys):
    planted = planted_slices(tmp_path / "slices", full=False)
    ckpt = tmp_path / "m.pth"
    assert train_gnn.main(["--data", str(tmp_path / "slices"), "--output", str(ckpt), "--plot", "",
                           "--epochs", "4"]) == 0
    out = capsys.readouterr().out
    assert "60 playlists read (MPD JSON), 60 kept" in out and "720 rows read (MPD JSON, 2 slices, track rows)" in out
    assert "playlist" not in out.split("graph:")[1].splitlines()[0]  # a playlist is its own user node
    model, data = load_model(ckpt)
    for user in (0, 45):  # community 0, then 1
        recs = get_recommendations(model, data, user, top_k=5)
        community = int(data.user_ids[user].as_py()) // 1000
        assert all(uri.startswith(f"spotify:track:c{community}") for uri in recs["track_uri"]), recs
    assert recommend.main(["--checkpoint", str(ckpt), "--all-users", "--top-k", "3",
                           "--output", str(tmp_path / "r.tsv")]) == 0
    source = {(str(p["pid"]), t["track_uri"]): (p["name"], t["track_name"]) for p in planted for t in p["tracks"]}
    names = {str(p["pid"]): p["name"] for p in planted}
    titles = {t["track_uri"]: t["track_name"] for p in planted for t in p["tracks"]}
    with open(tmp_path / "r.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(rows) == 60 * 3
    for row in rows:  # each row joins the source files by pid and track_uri, and names match
        assert names[row["user_id"]] == row["user_name"] and titles[row["track_uri"]] == row["track"]
        assert (row["user_id"], row["track_uri"]) not in source  # known tracks are left out


def test_a_track_is_found_by_its_uri(tmp_path, capsys):
    planted_slices(tmp_path / "slices")
    ckpt = tmp_path / "m.pth"
    assert train_gnn.main(["--data", str(tmp_path / "slices"), "--output", str(ckpt), "--plot", "",
                           "--epochs", "2"]) == 0
    capsys.readouterr()
    assert recommend.main(["--checkpoint", str(ckpt), "--tracks", "spotify:track:c1t03", "--top-k", "3"]) == 0
    assert "top 3 tracks for a new listener of 1 track" in capsys.readouterr().out


@pytest.mark.parametrize("content, words", [
    ("[1, 2]", "without a 'playlists' list"),
    ("{\"playlists\": [", "not readable JSON"),
    ("{\"playlists\": [{\"name\": \"no pid\", \"tracks\": []}]}", "no usable track row"),
])
def test_files_that_are_not_slices_are_one_line(tmp_path, capsys, content, words):
    (tmp_path / "s.json").write_text(content)
    code = train_gnn.main(["--data", str(tmp_path / "s.json"), "--output", "", "--plot", ""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err


def test_the_shared_real_slices_are_counted_whole():
    folder = shared_file("mpd-slices-a")
    rows, playlists = read_mpd(folder)
    # ../shared/data/README.md: 2,697 playlists, 260,310 playlist-track rows, 105,622 distinct track URIs.
    assert (playlists.rows_read, playlists.rows_kept) == (2697, 2697)
    assert rows.report.rows_read == 260_310 and rows.report.balanced()
    assert len(set(rows.catalogue.item_uris.to_pylist())) == 105_622 == rows.catalogue.num_items


def test_the_synthetic_slices_read_back_whole_with_their_planted_genres(tmp_path):
    done = write_mpd(tmp_path / "a", "sample", 0.05, seed=3, per_slice=50)
    again = write_mpd(tmp_path / "b", "sample", 0.05, seed=3, per_slice=50)
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in done.items() if k != "seconds"}
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)  # same seed
    rows, playlists = read_mpd(tmp_path / "a")
    data = generate(get_preset("sample", 0.05), 3)
    assert playlists.rows_kept == done["playlists"] == len(data.playlist_names) and done["slices"] == len(files)
    assert rows.report.rows_read == rows.report.rows_kept == done["rows"] == len(data.row_track)
    # The full schema: artists by URI, one per generated artist that has a track in the rows.
    assert rows.catalogue.num_artists == len(np.unique(data.track_artist[np.unique(data.row_track)]))
    # Planted structure: a themed playlist (not 'Starred') draws its tracks from one or two genres,
    # with a few off-taste draws, so its two main genres hold most of it.
    index = {uri("track", 3, t): t for t in range(len(data.track_names))}
    track_of = np.array([index[u] for u in rows.catalogue.item_uris.to_pylist()])
    names = rows.catalogue.user_names.to_pylist()
    shares = []
    for p in (p for p in range(rows.catalogue.num_users) if names[p] != "Starred"):
        counts = np.sort(np.bincount(data.track_genre[track_of[rows.item[rows.user == p]]]))[::-1]
        shares.append(counts[:2].sum() / counts.sum())
    assert len(shares) > 100 and np.mean(shares) > 0.9 and np.median(shares) > 0.95, np.mean(shares)


def test_the_reader_benchmark_reports_what_it_read(tmp_path):
    out = tmp_path / "r.json"
    run = subprocess.run([sys.executable, "bench/mpd_read.py", "--rows", "2e4", "--slices", "2", "--runs", "1",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(out.read_text())
    (only,) = doc["runs"]
    assert only["track_rows"] == doc["written"]["rows"] and only["playlists"] == doc["written"]["playlists"]
    assert doc["written"]["slices"] == 2 and doc["median_seconds"] == only["seconds"] > 0


def test_albums_are_nodes_where_the_schema_has_them(tmp_path):
    planted = planted_slices(tmp_path / "full", full=True)
    data = load(tmp_path / "full")
    cat = data.catalogue
    albums = {t["album_uri"]: t["album_name"] for p in planted for t in p["tracks"]}
    assert cat.num_albums == len(albums) == 6 and data.graph.num_albums == 6  # 2 communities x 3 albums
    uris = cat.item_uris.to_pylist()
    track_album = {t["track_uri"]: t["album_name"] for p in planted for t in p["tracks"]}
    assert [cat.album_names[int(a)].as_py() for a in cat.item_album] == [track_album[u] for u in uris]
    assert data.graph.edge_counts["track-album"] == cat.num_items
    assert "6 albums" in data.graph.summary()
    planted_slices(tmp_path / "reduced", full=False)
    reduced = load(tmp_path / "reduced")
    assert reduced.catalogue.num_albums == 0 and "track-album" not in reduced.graph.edge_counts


def test_a_fixed_test_in_mpd_slices_is_coded_with_the_training_playlists_and_tracks(tmp_path, capsys):
    a, b, c, d = (track(0, t, full=False) for t in range(4))
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    train = [{"name": "one", "pid": 1, "tracks": [a, b]}, {"name": "two", "pid": 2, "tracks": [a, c]},
             {"name": "seeds none", "pid": 3, "tracks": []}]
    test = [{"pid": 1, "tracks": [c, d, d, a, c]},  # c kept (then merged); d unknown twice; a a training pair
            {"pid": 3, "tracks": [b]},  # a playlist given no seed: its hidden track is known
            {"pid": 9, "tracks": [a]},  # a pid the training lacks
            "not a playlist"]
    (tmp_path / "train" / "mpd.slice.0-999.json").write_text(json.dumps({"playlists": train}))
    (tmp_path / "test" / "mpd.slice.0-999.json").write_text(json.dumps({"playlists": test}))
    data = load(tmp_path / "train", test=str(tmp_path / "test"))
    report = data.reports[-1]
    assert report.balanced() and report.rows_read == 7 and report.rows_kept == 2 and report.duplicates_merged == 1
    assert {k: v for k, v in report.dropped.items() if v} == {
        "a track no training playlist holds (counted as a miss)": 2, "a training pair": 1,
        "in a playlist whose pid the training slices lack": 1}
    assert data.num_items == 3  # d is not added to the catalogue
    held = data.test_items()
    users = {pid: data.catalogue.user_ids.to_pylist().index(pid) for pid in ("1", "3")}
    assert held.misses[users["1"]] == 1 and held.heldout_counts()[users["1"]] == 2
    assert held.heldout_counts()[users["3"]] == 1
    assert train_gnn.main(["--data", str(tmp_path / "train"), "--test", str(tmp_path / "test"), "--output", "",
                           "--plot", "", "--epochs", "0"]) == 0
    assert "+ 1 whose track never appears in training, counted as misses" in capsys.readouterr().out


def test_a_test_in_another_layout_is_one_line(tmp_path, capsys):
    planted_slices(tmp_path / "slices", playlists_per_community=3)
    (tmp_path / "t.tsv").write_text("1\t2\n")
    assert train_gnn.main(["--data", str(tmp_path / "slices"), "--test", str(tmp_path / "t.tsv")]) == 2
    assert "must be in the layout of --data" in capsys.readouterr().err


def test_a_catalogue_track_nobody_played_is_recommended_through_its_artist(tmp_path, capsys):
    planted_slices(tmp_path / "slices", full=True)
    new = {"artist_name": "Artist 0-1", "artist_uri": "spotify:artist:c0a1", "track_uri": "spotify:track:new0",
           "track_name": "New release", "album_uri": "spotify:album:c0new", "album_name": "New album"}
    # Distractors nobody played either, as many and more, by the other community's artists.
    distractors = [{"artist_name": f"Artist 1-{a}", "artist_uri": f"spotify:artist:c1a{a}",
                    "track_uri": f"spotify:track:new1{a}", "track_name": f"Other release {a}"} for a in range(3)]
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text(json.dumps([new, *distractors, new, track(0, 1, True), {"artist_name": "No title"}]))
    ckpt = tmp_path / "m.pth"
    assert train_gnn.main(["--data", str(tmp_path / "slices"), "--model", "gcn", "--catalogue", str(catalogue),
                           "--output", str(ckpt),
                           "--plot", "", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert ("7 catalogue rows read (catalogue of tracks), 4 kept; dropped: 1 no track (no track_uri, no artist and "
            "title), 1 a track training playlists hold already; 1 duplicates merged") in out
    model, data = load_model(ckpt)
    uris = data.catalogue.item_uris.to_pylist()
    assert data.num_items == 44 and not data.known.counts()[0] == 0
    unplayed = [uris.index(u) for u in ("spotify:track:new0", *(d["track_uri"] for d in distractors))]
    assert all(data.known.items[data.known.items == i].size == 0 for i in unplayed)  # in no playlist
    scores = model.scores(np.arange(data.num_users))[:, unplayed]
    community = np.asarray([int(pid) // 1000 for pid in data.user_ids.to_pylist()])
    # Community 0 ranks its artist's new release above every distractor; community 1 ranks it below them.
    assert (scores[community == 0, 0][:, None] > scores[community == 0, 1:]).all()
    assert (scores[community == 1, 0][:, None] < scores[community == 1, 1:]).all()


def test_a_catalogue_track_in_a_fixed_test_is_a_pair_not_a_miss(tmp_path):
    a, b, c = (track(0, t, full=False) for t in range(3))
    train = [{"name": "x", "pid": 1, "tracks": [a]}, {"name": "y", "pid": 2, "tracks": [a, b]}]
    for part, playlists in (("train", train), ("test", [{"pid": 1, "tracks": [b, c]}])):
        (tmp_path / part).mkdir()
        (tmp_path / part / "mpd.slice.0-999.json").write_text(json.dumps({"playlists": playlists}))
    (tmp_path / "catalogue.tsv").write_text("artist_name\ttrack_name\ttrack_uri\nArtist 0-2\tSong 0-2\t"
                                            "spotify:track:c0t02\n")
    without = load(tmp_path / "train", test=str(tmp_path / "test"))
    assert without.test_items().misses.sum() == 1 and without.num_items == 2
    data = load(tmp_path / "train", test=str(tmp_path / "test"), catalogue=str(tmp_path / "catalogue.tsv"))
    assert data.test_items().misses.sum() == 0 and data.num_items == 3 and len(data.test_items().items) == 2
