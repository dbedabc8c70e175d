"""Tests for the synthetic Spotify Playlists generator (the `synthetic` package).

The file is re-read here with a deliberately simple, independent parser (split each line
on '","'), so the generator's own stats are checked against what is really on disk.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from synthetic import (
    HEADER,
    PLANTED_KINDS,
    generate,
    get_preset,
    write_dataset,
)

REPO = Path(__file__).resolve().parents[1]
GOOD_LINE = re.compile(r'"[0-9a-f]{32}","(?:[^\n]+)","(?:[^\n]+)","(?:[^\n]+)"\n')


def parse(path: Path) -> dict:
    """Independent parse: classify every data line, collect the good rows as tuples."""
    raw = path.read_bytes()
    header, _, body = raw.partition(b"\n")
    lines = body.split(b"\n")
    assert lines[-1] == b"", "file must end with a newline"
    kinds: dict[int, str] = {}  # 1-based line number -> planted kind found there
    good: list[tuple[str, str, str, str]] = []
    seen: set[tuple[str, ...]] = set()
    for lineno, b in enumerate(lines[:-1], start=2):
        try:
            text = b.decode("utf-8")
        except UnicodeDecodeError:
            kinds[lineno] = "invalid_utf8"
            continue
        parts = text.split('","')
        if len(parts) != 4 or not (text.startswith('"') and text.endswith('"')):
            kinds[lineno] = "wrong_shape"
            continue
        row = (parts[0][1:], parts[1], parts[2], parts[3][:-1])
        if any(not f.strip() for f in row):
            kinds[lineno] = "empty_field"
        elif row in seen:
            kinds[lineno] = "duplicate"
        else:
            seen.add(row)
            good.append(row)
    return {"header": header + b"\n", "lines": lines[:-1], "kinds": kinds, "good": good}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The shipped preset (scale 1): its structure is what the product trains on."""
    path = tmp_path_factory.mktemp("sample") / "spotify_dataset.csv"
    stats = write_dataset(path, "sample", 1.0, seed=0)
    return {"path": path, "stats": stats, "parsed": parse(path), "data": generate(get_preset("sample"), 0)}


# --------------------------------------------------------------------------- format


def test_same_seed_same_bytes_different_seed_different_bytes(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_dataset(a, "sample", 0.1, seed=3)
    write_dataset(b, "sample", 0.1, seed=3)
    write_dataset(c, "sample", 0.1, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv"], "temp file left"


def test_bytes_do_not_depend_on_write_chunking(tmp_path):
    """Planted lines are spliced into chunks; a line at a chunk edge must not move."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_dataset(a, "sample", 0.1, seed=5)
    write_dataset(b, "sample", 0.1, seed=5, chunk_rows=7)
    assert a.read_bytes() == b.read_bytes()


def test_cli_matches_library_across_hash_seeds(tmp_path):
    """`python -m synthetic` runs from the repo root, and set/dict hashing
    (PYTHONHASHSEED) never leaks into the bytes."""
    lib, cli = tmp_path / "lib.csv", tmp_path / "cli.csv"
    write_dataset(lib, "sample", 0.1, seed=7)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-m", "synthetic", "--preset", "sample",
                          "--scale", "0.1", "--seed", "7", "--out", str(cli)],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    assert cli.read_bytes() == lib.read_bytes()
    assert "rows" in out and "planted" in out and "bytes" in out


def test_header_is_the_real_header(sample):
    assert sample["parsed"]["header"] == b'"user_id", "artistname", "trackname", "playlistname"\n'
    assert HEADER == sample["parsed"]["header"]
    assert b"\r" not in sample["path"].read_bytes()


def test_every_non_planted_line_has_the_real_shape(sample):
    planted = {n for lines in sample["stats"].planted_lines.values() for n in lines}
    for lineno, b in enumerate(sample["parsed"]["lines"], start=2):
        if lineno in planted:
            continue
        text = b.decode("utf-8") + "\n"
        assert GOOD_LINE.fullmatch(text), (lineno, text)
        fields = text[1:-2].split('","')
        assert len(fields) == 4, (lineno, text)
        assert all(f == f.strip() and f for f in fields), (lineno, text)


def test_planted_lines_are_where_stats_say(sample):
    stats, kinds = sample["stats"], sample["parsed"]["kinds"]
    found = defaultdict(list)
    for lineno, kind in sorted(kinds.items()):
        found[kind].append(lineno)
    for kind in PLANTED_KINDS:
        assert stats.planted[kind] > 0
        assert tuple(found[kind]) == stats.planted_lines[kind], kind
        assert len(stats.planted_lines[kind]) == stats.planted[kind]
    # the wrong-shape pair: one short line (3 fields) and one name holding '","' (5 parts)
    shapes = sorted(len(sample["parsed"]["lines"][n - 2].decode().split('","'))
                    for n in stats.planted_lines["wrong_shape"])
    assert shapes == [3, 5]
    # planted lines are scattered, not bunched at one end
    lines = sorted(kinds)
    assert lines[0] < len(sample["parsed"]["lines"]) / 2 < lines[-1]


def test_stats_match_the_file(sample):
    stats, good = sample["stats"], sample["parsed"]["good"]
    assert stats.rows_written == len(sample["parsed"]["lines"])
    assert stats.good_rows == len(good) == stats.rows_written - sum(stats.planted.values())
    assert stats.n_users == len({r[0] for r in good})
    assert stats.n_artists == len({r[1] for r in good})
    assert stats.n_tracks == len({(r[1], r[2]) for r in good})
    assert stats.n_playlists == len({(r[0], r[3]) for r in good})
    assert stats.n_starred == sum(1 for r in {(r[0], r[3]) for r in good} if r[1] == "Starred")
    assert stats.bytes == sample["path"].stat().st_size


def test_sample_preset_size(sample):
    stats = sample["stats"]
    assert stats.rows_written == 120_000
    assert (stats.n_users, stats.n_tracks, stats.n_artists, stats.n_playlists) == (1000, 12000, 2000, 4000)
    assert stats.bytes < 12_000_000


def test_names_look_real(sample):
    good = sample["parsed"]["good"]
    names = [f for r in good for f in r[1:]]
    assert any("," in n for n in names), "names with commas"
    assert any('"' in n for n in names), "unescaped inner quotes"
    assert any(n.startswith('"') for n in names), "a name starting with a quote"
    assert any(not n.isascii() for n in names), "unicode"
    assert any("feat." in r[2] for r in good)
    assert any(" - Remastered" in r[2] for r in good)
    artists_per_title = defaultdict(set)
    for r in good:
        artists_per_title[r[2]].add(r[1])
    assert len(artists_per_title["Intro"]) >= 5, "a common title used by several artists"
    # playlist names come from a shared vocabulary: many users share them
    users_per_name = Counter(name for _, name in {(r[0], r[3]) for r in good})
    assert sorted(users_per_name.values())[-2] >= 20  # the first is 'Starred'


def test_user_ids_are_md5_like_and_deterministic(sample):
    ids = {r[0] for r in sample["parsed"]["good"]}
    assert all(re.fullmatch(r"[0-9a-f]{32}", u) for u in ids)
    assert set(sample["data"].user_ids) == ids


# --------------------------------------------------------------------------- structure


def test_track_popularity_is_heavy_tailed(sample):
    counts = np.sort(np.array(list(Counter((r[1], r[2]) for r in sample["parsed"]["good"]).values())))[::-1]
    top1 = counts[: len(counts) // 100].sum() / counts.sum()
    assert top1 > 0.12, f"top 1% of tracks hold {top1:.1%} of rows (uniform would be 1%)"


def test_artists_have_heavy_tailed_track_counts(sample):
    per_artist = Counter(artist for artist, _ in {(r[1], r[2]) for r in sample["parsed"]["good"]})
    n = np.array(list(per_artist.values()))
    assert np.mean(n <= 3) > 0.5, "most artists have 1-3 tracks"
    assert n.max() >= 100, f"some artist has hundreds of tracks, max is {n.max()}"


def test_most_users_have_starred_and_tracks_repeat_across_playlists(sample):
    good = sample["parsed"]["good"]
    users = {r[0] for r in good}
    starred = {r[0] for r in good if r[3] == "Starred"}
    assert 0.55 < len(starred) / len(users) < 0.75
    playlists_per_pair = Counter((r[0], r[1], r[2]) for r in good)
    repeated = np.mean([c >= 2 for c in playlists_per_pair.values()])
    assert repeated > 0.15, f"only {repeated:.1%} of (user, track) pairs are in >= 2 playlists"
    sizes = np.array(list(Counter((r[0], r[3]) for r in good).values()))
    assert 10 <= np.median(sizes) <= 25


def test_users_concentrate_on_few_genres(sample):
    """Ground-truth genres (from the generator) of the tracks the file lists per user."""
    data = sample["data"]
    genre_of = {(data.artist_names[a], t): g for a, t, g in
                zip(data.track_artist.tolist(), data.track_names, data.track_genre.tolist())}
    per_user = defaultdict(Counter)
    for r in sample["parsed"]["good"]:
        per_user[r[0]][genre_of[(r[1], r[2])]] += 1
    top3 = [sum(c for _, c in cnt.most_common(3)) / sum(cnt.values()) for cnt in per_user.values()]
    top1 = [cnt.most_common(1)[0][1] / sum(cnt.values()) for cnt in per_user.values()]
    n_genres = len(data.genre_names)
    assert np.mean(top3) > 0.9, f"top-3 genre share {np.mean(top3):.2f} (uniform {3 / n_genres:.2f})"
    assert np.mean(top1) > 0.6


def test_taste_communities_share_tracks(sample):
    """Users whose main genre matches share far more tracks than users whose doesn't,
    so collaborative filtering has something to learn."""
    data = sample["data"]
    uid = {u: i for i, u in enumerate(data.user_ids)}
    tid = {(data.artist_names[a], t): i for i, (a, t) in
           enumerate(zip(data.track_artist.tolist(), data.track_names))}
    pairs = {(uid[r[0]], tid[(r[1], r[2])]) for r in sample["parsed"]["good"]}
    u, t = np.array(list(pairs)).T
    X = np.zeros((len(uid), len(tid)), dtype=np.float32)  # (users, tracks) 0/1
    X[u, t] = 1.0
    size = X.sum(1)
    X = X[:, X.sum(0) >= 2]  # a track one user lists adds to no intersection
    inter = X @ X.T  # (users, users) shared tracks
    jaccard = inter / (size[:, None] + size[None, :] - inter)
    main = data.user_genres[np.arange(len(uid)), data.user_taste.argmax(1)]
    same = main[:, None] == main[None, :]
    off_diag = ~np.eye(len(uid), dtype=bool)
    within, across = jaccard[same & off_diag].mean(), jaccard[~same].mean()
    assert within > 3 * across, f"Jaccard within {within:.4f} vs across {across:.4f}"


# --------------------------------------------------------------------------- presets


def test_scale_multiplies_counts_and_rejects_nonsense():
    full = get_preset("full")
    tenth = get_preset("full", 0.1)
    assert (tenth.n_users, tenth.n_rows, tenth.n_tracks, tenth.n_artists, tenth.n_playlists) == (
        1590, 1_290_000, 280_000, 29_000, 23_000)
    assert tenth.n_genres == full.n_genres
    with pytest.raises(ValueError):
        get_preset("nope")
    with pytest.raises(ValueError):
        get_preset("sample", 0.0)
    with pytest.raises(ValueError):
        get_preset("sample", 0.001)  # too few artists for its genre/scene blocks


# --------------------------------------------------------------------------- with the reader


def test_reader_reads_the_generated_file_with_the_planted_counts(sample):
    """The product's reader on the generator's file: every planted line is accounted for,
    and the catalogue it builds is the generator's own."""
    from melody_map.playlists import read_playlists
    from melody_map.readers import BLANK_LINE, EMPTY_FIELD, WRONG_SHAPE

    stats, data = sample["stats"], sample["data"]
    interactions = read_playlists(sample["path"])
    report, cat = interactions.report, interactions.catalogue
    assert report.rows_read == stats.rows_written
    assert report.dropped == {WRONG_SHAPE: stats.planted["wrong_shape"],
                              EMPTY_FIELD: stats.planted["empty_field"], BLANK_LINE: 0}
    assert report.duplicates_merged == stats.planted["duplicate"]
    # Rows with a bad byte are well shaped: kept, with the byte replaced and counted.
    assert report.rows_with_bad_utf8 == stats.planted["invalid_utf8"]
    assert report.rows_kept == stats.good_rows + stats.planted["invalid_utf8"]
    assert report.rows_read == report.rows_kept + sum(report.dropped.values()) + report.duplicates_merged
    assert len(interactions.user) == len(interactions.item) == len(interactions.playlist) == report.rows_kept
    users, artists = [str(u) for u in cat.user_ids], [str(a) for a in cat.artist_names]
    assert sorted(users) == sorted(data.user_ids)
    # a bad-UTF-8 row may add a (replaced) track, artist or playlist name: at most one each
    bad = stats.planted["invalid_utf8"]
    assert stats.n_tracks <= len(cat.item_names) <= stats.n_tracks + bad
    assert stats.n_artists <= len(cat.artist_names) <= stats.n_artists + bad
    assert stats.n_playlists <= len(cat.playlist_names) <= stats.n_playlists + bad
    tracks = {(artists[a], str(t)) for a, t in zip(np.asarray(cat.item_artist).tolist(), cat.item_names)}
    assert tracks >= {(data.artist_names[a], t) for a, t in zip(data.track_artist.tolist(), data.track_names)}


def test_shipped_sample_is_the_generators_output(sample):
    shipped = REPO / "spotify_dataset.csv"
    assert shipped.read_bytes() == sample["path"].read_bytes(), (
        "spotify_dataset.csv differs from write_dataset('sample', seed=0): regenerate it with "
        "python -m synthetic --preset sample --out spotify_dataset.csv")
