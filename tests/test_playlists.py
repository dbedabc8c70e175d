"""The playlists reader: quirky lines of the real file, other layouts, identities and one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import ROOT, load, shared_file, write_original

import train_gnn

from melody_map.playlists import CSV_LAYOUT, ORIGINAL_LAYOUT, read_playlists
from melody_map.readers import BLANK_LINE, EMPTY_FIELD, WRONG_SHAPE, DataError

HEADER = b'"user_id", "artistname", "trackname", "playlistname"\n'


def rows_of(playlists) -> list[tuple[str, str, str, str]]:
    """The kept rows back as names, in file order."""
    cat = playlists.catalogue
    users = cat.user_ids.to_pylist()
    artists = cat.artist_names.to_pylist()
    titles = cat.item_names.to_pylist()
    names = cat.playlist_names.to_pylist()
    return [(users[u], artists[cat.item_artist[t]], titles[t], names[p])
            for u, t, p in zip(playlists.user, playlists.item, playlists.playlist)]


def test_original_layout_quirks_each_give_their_exact_row(tmp_path):
    lines = [
        b'"u1","\"Weird Al\" Yankovic","Amish Paradise","Starred"',  # unescaped inner quotes
        b'"u1","Snoop Dogg","Young, Wild & Free (feat. Bruno Mars)","Rap, Hip Hop"',  # commas in names
        b'"u2","Bj\xc3\xb6rk","J\xc3\xb3ga","\xe2\x98\x85 \xe6\x97\xa5\xe6\x9c\xac"',  # unicode
        b'"u2","  Padded  ","  Title ","Mix"\r',  # CRLF line end, whitespace trimmed
        b'"u3","Caf\xe9 Tacvba","Eres","Latin"',  # a latin-1 byte: replaced, counted, kept
        b'"u3","Artist","Title with "quoted" word","Pl"',
    ]
    path = tmp_path / "quirks.csv"
    path.write_bytes(HEADER + b"\n".join(lines) + b"\n")
    playlists = read_playlists(path)
    report = playlists.report
    assert rows_of(playlists) == [
        ("u1", '"Weird Al" Yankovic', "Amish Paradise", "Starred"),
        ("u1", "Snoop Dogg", "Young, Wild & Free (feat. Bruno Mars)", "Rap, Hip Hop"),
        ("u2", "Björk", "Jóga", "★ 日本"),
        ("u2", "Padded", "Title", "Mix"),
        ("u3", "Caf\ufffd Tacvba", "Eres", "Latin"),
        ("u3", "Artist", 'Title with "quoted" word', "Pl"),
    ]
    assert report.layout == ORIGINAL_LAYOUT
    assert report.rows_kept == 6 and report.rows_read == 6
    assert report.rows_with_bad_utf8 == 1
    assert sum(report.dropped.values()) == 0 and report.balanced()


def test_malformed_rows_are_dropped_and_counted_by_reason(tmp_path):
    lines = [
        b'"u1","A","T","P"',
        b'"u1","A","T","P"',  # duplicate of the row above
        b'"u1","A","T","P2"',  # same track in another playlist: a new row, not a duplicate
        b'"u1","A","T"',  # three fields
        b'"u1","A","T","P","extra"',  # five fields
        b'"u1","","T","P"',  # empty artist
        b'"u1","A","   ","P"',  # whitespace-only title
        b"",  # blank line
        b"not a row at all",
        b'"u2","B","S","Q"',
    ]
    path = tmp_path / "bad.csv"
    path.write_bytes(HEADER + b"\n".join(lines) + b"\n")
    playlists = read_playlists(path)
    report = playlists.report
    assert rows_of(playlists) == [("u1", "A", "T", "P"), ("u1", "A", "T", "P2"), ("u2", "B", "S", "Q")]
    assert report.rows_read == 10
    assert report.dropped == {WRONG_SHAPE: 3, EMPTY_FIELD: 2, BLANK_LINE: 1}
    assert report.duplicates_merged == 1
    assert report.balanced()


def test_a_messy_file_balances_with_a_whitespace_only_line_counted_blank(tmp_path):
    lines = [b'"u1","A","T","P"', b"   ", b'"u1","A","T","P"', b'"u1","A"', b'"u2","","S","Q"', b'"u2","B","S","Q"', b""]
    path = tmp_path / "messy.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER + b"\r\n".join(lines) + b"\r\n")
    report = read_playlists(path).report
    assert report.dropped == {WRONG_SHAPE: 1, EMPTY_FIELD: 1, BLANK_LINE: 2}
    assert (report.rows_read, report.rows_kept, report.duplicates_merged) == (7, 2, 1)
    assert report.balanced()


def test_shipped_sample_summary_is_unchanged():
    playlists = read_playlists(ROOT / "spotify_dataset.csv")
    assert playlists.report.summary() == (
        f"{ROOT / 'spotify_dataset.csv'}: 120,000 rows read (original layout), 119,991 kept; dropped: "
        "2 wrong shape, 2 empty field; 5 duplicates merged; 2 rows had invalid UTF-8 replaced")
    assert playlists.report.balanced() and len(playlists) == 119_991


def test_pandas_resave_with_mangled_header_reads_the_same_rows(tmp_path):
    rows = [("u1", 'Weird Al" Yankovic"', "Song, with comma", "Starred"), ("u2", "Plain", "Song", "Mix")]
    # What pandas does to the original file: its header cells become ' "artistname"' etc.
    df = pd.DataFrame(rows, columns=["user_id", ' "artistname"', ' "trackname"', ' "playlistname"'])
    path = tmp_path / "resaved.csv"
    df.to_csv(path, index=False)
    assert path.read_text().splitlines()[0] == 'user_id," ""artistname"""," ""trackname"""," ""playlistname"""'
    playlists = read_playlists(path)
    report = playlists.report
    assert report.layout == CSV_LAYOUT
    assert rows_of(playlists) == rows


def test_plain_four_column_csv(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("user_id,artistname,trackname,playlistname\nu1,A,T,P\nu1,B,\"S, the song\",P\nu2,A,T,Q\n")
    playlists = read_playlists(path)
    report = playlists.report
    assert rows_of(playlists) == [("u1", "A", "T", "P"), ("u1", "B", "S, the song", "P"), ("u2", "A", "T", "Q")]
    assert report.balanced()


def test_a_track_is_artist_and_title_and_a_playlist_is_user_and_name(tmp_path):
    # Regression: the seed keyed tracks by title alone (every "Intro" became one node) and
    # playlists by name alone ("Starred" of thousands of users became one hub).
    path = write_original(tmp_path / "ids.csv", [
        ("u1", "Artist One", "Intro", "Starred"),
        ("u1", "Artist Two", "Intro", "Starred"),
        ("u2", "Artist One", "Intro", "Starred"),
    ])
    playlists = read_playlists(path)
    cat = playlists.catalogue
    assert cat.num_items == 2 and cat.noun == "track"  # two artists' "Intro"
    assert cat.num_playlists == 2  # u1's and u2's "Starred"
    assert cat.num_artists == 2 and cat.num_users == 2
    assert playlists.item.tolist() == [0, 1, 0]
    assert playlists.playlist.tolist() == [0, 0, 1]
    assert cat.playlist_user.tolist() == [0, 1]
    assert cat.item_artist.tolist() == [0, 1]
    assert playlists.weight.tolist() == [1.0, 1.0, 1.0] and cat.item_ids is None


def test_real_500_row_sample_loads_with_its_counts():
    path = shared_file("spotify-playlists-sample-500", "spotify_dataset_sample.csv")
    playlists = read_playlists(path)
    report = playlists.report
    assert report.layout == CSV_LAYOUT  # a pandas re-save
    assert report.rows_read == 500
    assert report.dropped[EMPTY_FIELD] == 1  # one row has no artist name
    assert report.rows_kept == 499 and report.balanced()
    # The data README gives 456 users and 492 playlists for all 500 rows; the dropped row's
    # user and playlist occur nowhere else.
    assert playlists.num_users == 455 and playlists.catalogue.num_playlists == 491
    names = set(playlists.catalogue.item_names.to_pylist())
    assert "Young, Wild & Free (feat. Bruno Mars)" in names


@pytest.mark.parametrize("content, message", [
    ("a,b,c\n1,2,3\n", "missing user_id, artistname, trackname, playlistname"),
    ("", "file is empty"),
    ('"user_id", "artistname", "trackname", "playlistname"\n"u","","t","p"\n', "no usable rows"),
    ('"user_id", "artistname", "trackname", "playlistname"\n', "only a header"),
])
def test_unusable_files_raise_one_line_errors(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        read_playlists(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_default_file_says_where_the_real_data_comes_from(tmp_path):
    with pytest.raises(DataError, match="file not found.*Kaggle") as err:
        read_playlists(tmp_path / "spotify_dataset.csv")
    assert "\n" not in str(err.value)


def test_a_fixed_test_csv_is_coded_with_the_training_users_and_tracks(tmp_path, capsys):
    train = [("u1", "A", "a", "P"), ("u1", "A", "b", "P"), ("u2", "A", "a", "Q"), ("u2", "B", "c", "Q")]
    test = [("u1", "B", "c", "P"),  # kept: u1 never played c
            ("u1", "B", "c", "Other"),  # the same pair from another playlist: merged
            ("u1", "A", "new", "P"), ("u1", "A", "new", "R"),  # one unseen pair (two rows): a miss, not an item
            ("u2", "A", "a", "Q2"),  # a training pair
            ("u9", "A", "a", "P")]  # a user training lacks
    for name, rows in (("train.csv", train), ("test.csv", test)):
        pd.DataFrame(rows, columns=["user_id", "artistname", "trackname", "playlistname"]).to_csv(
            tmp_path / name, index=False)
    data = load(tmp_path / "train.csv", test=str(tmp_path / "test.csv"))
    report = data.reports[-1]
    assert report.balanced() and report.rows_read == 6 and report.rows_kept == 1 and report.duplicates_merged == 1
    assert {k: v for k, v in report.dropped.items() if v} == {
        "a user training lacks": 1, "a track no training playlist holds (counted as a miss)": 2,
        "a training pair": 1}
    assert data.num_items == 3  # "new" is not added to the catalogue
    users = data.catalogue.user_ids.to_pylist()
    held = data.test_items()
    assert held.misses.tolist() == [1 if u == "u1" else 0 for u in users]
    u1 = users.index("u1")
    assert data.catalogue.item_names[int(held.items[held.indptr[u1]])].as_py() == "c"
    assert held.heldout_counts().tolist() == [2 if u == "u1" else 0 for u in users]
    assert train_gnn.main(["--data", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
                           "--output", "", "--plot", "", "--epochs", "0"]) == 0
    assert "+ 1 whose track never appears in training, counted as misses" in capsys.readouterr().out
