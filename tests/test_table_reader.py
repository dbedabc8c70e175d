"""Plain interaction tables: sniffing, every row's fate, shared codes and names."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_file

from melody_map.readers import (
    BAD_UTF8,
    BAD_WEIGHT,
    BLANK_LINE,
    EMPTY_FIELD,
    IN_TRAIN,
    UNKNOWN_ITEM,
    UNKNOWN_USER,
    WRONG_SHAPE,
    DataError,
)
from melody_map.tables import (
    is_table,
    read_item_names,
    read_item_tags,
    read_table,
    read_train_test,
    sniff_table,
)
from melody_map.types import Interactions


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def ids(inter: Interactions) -> tuple[list[str], list[str]]:
    """The user and item vocabularies as lists of str."""
    return inter.catalogue.user_ids.to_pylist(), inter.catalogue.item_ids.to_pylist()


def triples(inter: Interactions) -> set[tuple[str, str, float]]:
    """The pairs back as (user id, item id, weight)."""
    users, items = ids(inter)
    return {(users[u], items[i], float(w)) for u, i, w in zip(inter.user, inter.item, inter.weight)}


def pair_keys(inter: Interactions) -> np.ndarray:
    return inter.user * np.int64(inter.num_items) + inter.item


def one_line_error(excinfo, *words: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


# ----------------------------------------------------------------------------- layouts


def test_tsv_without_header_crlf(tmp_path):
    path = write(tmp_path, "t.tsv", "1\t10\t3\r\n2\t10\t1\r\n1\t11\t2.5\r\n")
    assert sniff_table(path) == ("\t", False, 3)
    inter = read_table(path)
    assert triples(inter) == {("1", "10", 3.0), ("2", "10", 1.0), ("1", "11", 2.5)}
    assert ids(inter) == (["1", "2"], ["10", "11"])  # first appearance
    assert inter.playlist is None and inter.catalogue.noun == "item"
    assert inter.catalogue.item_names.to_pylist() == ["10", "11"]  # names come later
    assert (inter.num_users, inter.num_items, len(inter)) == (2, 2, 3)
    assert inter.user.dtype == np.int64 and inter.item.dtype == np.int64 and inter.weight.dtype == np.float32
    assert list(zip(inter.user, inter.item)) == sorted(zip(inter.user, inter.item))  # sorted by user, item
    r = inter.report
    assert (r.rows_read, r.rows_kept, r.duplicates_merged, sum(r.dropped.values())) == (3, 3, 0, 0)
    assert r.balanced() and "3 rows read" in r.summary() and "\n" not in r.summary()


def test_csv_with_header_keeps_ids_as_strings(tmp_path):
    path = write(tmp_path, "c.csv", "user,item,weight\n007,0042,1.5\n7,42,2\n 007 , 0042 ,1\n")
    assert sniff_table(path) == (",", True, 3)
    inter = read_table(path)
    # "007" and "7" are different ids; surrounding spaces are trimmed, so " 007 " is "007".
    assert triples(inter) == {("007", "0042", 2.5), ("7", "42", 2.0)}
    assert inter.report.duplicates_merged == 1 and inter.report.rows_read == 3


def test_two_columns_weigh_one_and_duplicates_sum(tmp_path):
    # Header by the second rule: word ids above numeric ids.
    path = write(tmp_path, "two.csv", "userID,artistID\r\n5,9\r\n5,9\r\n5,8\r\n6,9\r\n5,9\r\n")
    assert sniff_table(path) == (",", True, 2)
    inter = read_table(path)
    assert triples(inter) == {("5", "9", 3.0), ("5", "8", 1.0), ("6", "9", 1.0)}
    r = inter.report
    assert (r.rows_read, r.rows_kept, r.duplicates_merged) == (5, 3, 2) and r.balanced()


def test_header_rule_on_word_ids(tmp_path):
    # Column names over word ids: a header; word ids with no names: data.
    assert sniff_table(write(tmp_path, "a.csv", "user,item\nalice,song a\nbob,song b\n")) == (",", True, 2)
    assert sniff_table(write(tmp_path, "b.csv", "u1,i1\nu2,i2\n")) == (",", False, 2)
    assert sniff_table(write(tmp_path, "c.tsv", "alice\tsong\t3\n")) == ("\t", False, 3)
    # A header the rule misses can be forced.
    path = write(tmp_path, "d.csv", "listener,band\nalice,x\n")
    assert sniff_table(path)[1] is False
    assert triples(read_table(path, header=True)) == {("alice", "x", 1.0)}


def test_bom_quotes_and_leading_blank_lines(tmp_path):
    path = write(tmp_path, "q.csv", b'\xef\xbb\xbf\n"a, b","x",2\n"c","y",1\n')
    assert sniff_table(path) == (",", False, 3)
    assert triples(read_table(path)) == {("a, b", "x", 2.0), ("c", "y", 1.0)}


def test_malformed_rows_are_dropped_and_counted(tmp_path):
    lines = [
        "u1\ti1\t1",
        "u1\ti2\t2",
        "u2\ti1\t1\textra",  # wrong shape
        "u2",  # wrong shape
        "",  # blank line
        "   ",  # blank line (whitespace only)
        "u3\t\t1",  # empty field
        "u3\ti3\t",  # empty field
        "u3\ti1\tabc",  # bad weight
        "u3\ti2\t-1",  # bad weight: weights are >= 0
        "u3\ti2\tnan",  # bad weight
        "u2\ti2\t4",
        "u1\ti1\t0.5",  # duplicate: summed
    ] + [f"u4\tj{k}\t1" for k in range(8)]  # a mostly good file: a few bad rows are not fatal
    inter = read_table(write(tmp_path, "m.tsv", "\r\n".join(lines) + "\r\n"))
    r = inter.report
    assert r.rows_read == len(lines)
    assert {k: v for k, v in r.dropped.items() if v} == {WRONG_SHAPE: 2, BLANK_LINE: 2, EMPTY_FIELD: 2, BAD_WEIGHT: 3}
    assert (r.rows_kept, r.duplicates_merged) == (11, 1) and r.balanced()
    assert triples(inter) == {("u1", "i1", 1.5), ("u1", "i2", 2.0), ("u2", "i2", 4.0)} | {
        ("u4", f"j{k}", 1.0) for k in range(8)}
    assert "u3" not in ids(inter)[0] and "i3" not in ids(inter)[1]  # ids of dropped rows get no code
    assert r.examples[BAD_WEIGHT] == "u3\ti1\tabc" and "extra" in r.examples[WRONG_SHAPE]
    assert "2 wrong shape" in r.summary() and "3 bad weight" in r.summary()


def test_a_messy_file_balances(tmp_path):
    rows = [b"user,item,weight", b"a,x,1", b"", b"  ", b"a,x,2", b"b,y", b"b,,1", b"Caf\xe9,y,1", b"c,y,-3",
            b"c,y,1", b"d,z,1", b"e,z,1", b"f,z,1", b"g,z,1"]
    r = read_table(write(tmp_path, "messy.csv", b"\xef\xbb\xbf" + b"\r\n".join(rows) + b"\r\n")).report
    assert {k: v for k, v in r.dropped.items() if v} == {BLANK_LINE: 2, WRONG_SHAPE: 1, EMPTY_FIELD: 1,
                                                          BAD_UTF8: 1, BAD_WEIGHT: 1}
    assert (r.rows_read, r.rows_kept, r.duplicates_merged) == (13, 6, 1) and r.balanced()
    assert r.layout == "comma-separated, header, 3 columns"


def test_an_id_first_seen_in_a_dropped_row_keeps_its_place(tmp_path):
    # Codes follow first appearance in the file, dropped rows included: "b" is coded before "c".
    inter = read_table(write(tmp_path, "order.tsv", "a\tx\t1\nb\tx\tbad\nc\tx\t1\nb\tx\t1\n"))
    assert ids(inter)[0] == ["a", "b", "c"] and inter.report.dropped[BAD_WEIGHT] == 1


def test_is_table_tells_tables_from_playlists_csvs(tmp_path):
    assert is_table(write(tmp_path, "t.tsv", "1\t2\t3\n"))
    assert is_table(write(tmp_path, "t.csv", "user,item\na,b\n"))
    assert not is_table(write(tmp_path, "p.csv", '"user_id", "artistname", "trackname", "playlistname"\n'))
    assert not is_table(tmp_path / "missing.tsv") and not is_table(tmp_path)


def test_invalid_utf8_row_is_dropped(tmp_path):
    path = write(tmp_path, "u.tsv", b"a\tx\t1\nb\tx\t1\nc\tx\t1\nCaf\xe9\tx\t1\n")
    r = read_table(path).report
    assert r.dropped[BAD_UTF8] == 1 and r.rows_kept == 3 and r.balanced()


@pytest.mark.parametrize("content, words", [
    (None, ["file not found"]),
    ("", ["file is empty"]),
    ("\r\n  \r\n", ["file is empty"]),
    ("user\titem\tweight\r\n", ["only a header"]),
    ("1\t2\t3\t4\n", ["4 tab-separated columns", "expected"]),
    ("1 2 3\n", ["1 comma-separated column", "space"]),
    ("u,i,w\n1,2,high\n1,3,low\n2,2,x\n", ["bad weight", "number"]),
    ("1\t2\t3\n1\t2\n2\t3\n3\t4\n", ["wrong shape", "3 tab-separated fields"]),
])
def test_errors_are_one_line(tmp_path, content, words):
    path = tmp_path / "bad.tsv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as excinfo:
        read_table(path)
    assert str(path) in one_line_error(excinfo, *words)


def test_binary_and_directory_are_refused(tmp_path):
    gz = write(tmp_path, "t.tsv.gz", gzip.compress(b"1\t2\t3\n"))
    with pytest.raises(DataError) as excinfo:
        read_table(gz)
    one_line_error(excinfo, "gzip")
    with pytest.raises(DataError) as excinfo:
        sniff_table(tmp_path)
    one_line_error(excinfo, "directory")


# ----------------------------------------------------------------------------- shared codes


TRAIN = "a\tx\t1\na\ty\t2\nb\ty\t1\nc\tz\t5\n"
TEST = "b\tx\t1\nc\ty\t1\na\ty\t9\nnew\tx\t1\nb\tunseen\t1\nnew\tunseen\t1\n"


def test_test_file_uses_training_codes_and_counts_unknown_ids(tmp_path):
    train = read_table(write(tmp_path, "train.tsv", TRAIN))
    cat = train.catalogue
    test = read_table(write(tmp_path, "test.tsv", TEST), user_ids=cat.user_ids, item_ids=cat.item_ids)
    assert test.catalogue.user_ids is cat.user_ids and test.catalogue.item_ids is cat.item_ids  # one vocabulary
    assert (test.num_users, test.num_items) == (train.num_users, train.num_items) == (3, 3)
    for u in test.user:  # the same id has the same code on both sides
        assert ids(test)[0][u] in {"a", "b", "c"} and ids(train)[0][u] == ids(test)[0][u]
    # A plain list works as a vocabulary too, with the same codes.
    again = read_table(write(tmp_path, "test.tsv", TEST), user_ids=ids(train)[0], item_ids=ids(train)[1])
    assert np.array_equal(again.user, test.user) and np.array_equal(again.item, test.item)
    assert triples(test) == {("b", "x", 1.0), ("c", "y", 1.0), ("a", "y", 9.0)}
    r = test.report
    # "new unseen" has both unknown: counted once, as an unknown user.
    assert (r.dropped[UNKNOWN_USER], r.dropped[UNKNOWN_ITEM], r.rows_kept) == (2, 1, 3) and r.balanced()


def test_read_train_test_removes_and_counts_overlap(tmp_path):
    train, test = read_train_test(write(tmp_path, "train.tsv", TRAIN), write(tmp_path, "test.tsv", TEST))
    assert triples(test) == {("b", "x", 1.0), ("c", "y", 1.0)}  # ("a", "y") is a training pair
    r = test.report
    assert r.dropped[IN_TRAIN] == 1 and r.rows_kept == 2 and r.balanced() and "1 in train" in r.summary()
    assert not np.isin(pair_keys(test), pair_keys(train)).any()
    assert test.catalogue is train.catalogue


def test_unknown_everything_is_an_error(tmp_path):
    train = write(tmp_path, "train.tsv", TRAIN)
    with pytest.raises(DataError) as excinfo:
        read_train_test(train, write(tmp_path, "other.tsv", "p\tq\t1\nr\ts\t1\n"))
    one_line_error(excinfo, "training vocabulary")
    with pytest.raises(DataError) as excinfo:
        read_train_test(train, train)
    one_line_error(excinfo, "also a training pair")


# ----------------------------------------------------------------------------- names


def test_item_names_tab_with_header_and_csv_with_quotes(tmp_path):
    item_ids = np.array(["2", "1", "9"])
    # Tab file: bare quotes are part of the name; an id listed twice keeps its first name.
    tsv = write(tmp_path, "artists.dat",
                'id\tname\turl\r\n1\t"Weird Al" Yankovic\thttp://a\r\n2\tBjörk\thttp://b\r\n2\tDup\tx\r\n')
    assert list(read_item_names(tsv, item_ids)) == ["Björk", '"Weird Al" Yankovic', ""]
    csv = write(tmp_path, "names.csv", '1,"Crosby, Stills & Nash"\n9,Air\n')
    assert list(read_item_names(csv, item_ids)) == ["", "Crosby, Stills & Nash", "Air"]


# ----------------------------------------------------------------------------- real data


def test_lastfm_lightgcn_split():
    train_path, test_path = shared_file("lastfm-lightgcn", "data1.txt"), shared_file("lastfm-lightgcn", "test1.txt")
    assert sniff_table(train_path) == ("\t", False, 3)
    train, test = read_train_test(train_path, test_path)
    assert (train.report.rows_read, len(train), train.num_users, train.num_items) == (42_135, 42_135, 1_878, 4_476)
    assert train.report.duplicates_merged == 0 and train.report.balanced()
    r = test.report
    # 10,533 test rows: 3 of users and 41 of items never seen in training; no overlap.
    assert (r.rows_read, r.dropped[UNKNOWN_USER], r.dropped[UNKNOWN_ITEM], r.dropped[IN_TRAIN]) == (10_533, 3, 41, 0)
    assert len(test) == 10_489 and r.balanced()
    # The 41 rows of unknown items are 41 distinct pairs of known users: counted as misses.
    assert test.unseen.sum() == 41 and len(test.unseen) == train.num_users
    assert min(int(i) for i in ids(train)[1]) == 1 and min(int(u) for u in ids(train)[0]) == 1
    # All ids together: 1,880 users with interactions and 4,489 items, as the README says.
    alone = read_table(test_path)
    assert len(np.union1d(ids(train)[0], ids(alone)[0])) == 1_880
    items = np.union1d(ids(train)[1], ids(alone)[1])
    assert len(items) == 4_489 and max(int(i) for i in items) == 4_489


def test_hetrec_user_artists_and_names():
    path = shared_file("hetrec2011-lastfm-2k", "user_artists.dat")
    assert sniff_table(path) == ("\t", True, 3)
    inter = read_table(path)
    assert (len(inter), inter.num_users, inter.num_items) == (92_834, 1_892, 17_632)
    assert inter.report.rows_read == 92_834 and inter.report.balanced()
    names = read_item_names(shared_file("hetrec2011-lastfm-2k", "artists.dat"), inter.catalogue.item_ids)
    assert len(names) == inter.num_items and (names != "").all()
    first = names[ids(inter)[1].index("51")]  # user 2's first artist
    print(f"artist 51: {first}")
    assert first == "Duran Duran"


# ----------------------------------------------------------------------------- item tags


def test_item_tags_from_hetrec_style_parts_by_glob(tmp_path):
    header = "userID\tartistID\ttagID\tday\tmonth\tyear\r\n"
    write(tmp_path, "tagged.part1.dat", header + "2\t51\t13\t1\t4\t2009\r\n7\t51\t13\t1\t4\t2009\r\n"
                                              "2\t52\t15\t1\t4\t2009\r\n\r\n2\t999\t13\t1\t4\t2009\r\n")
    write(tmp_path, "tagged.part2.dat", header + "3\t52\t13\t1\t4\t2009\r\n3\t52\t\t1\t4\t2009\r\n")
    counts, reports = read_item_tags(str(tmp_path / "tagged.part*.dat"), ["51", "52", "53"])
    assert [r.path for r in reports] == [str(tmp_path / "tagged.part1.dat"), str(tmp_path / "tagged.part2.dat")]
    assert all(r.balanced() for r in reports)
    first, second = reports
    assert (first.rows_read, first.rows_kept, first.duplicates_merged) == (5, 2, 1)
    assert {why: n for why, n in first.dropped.items() if n} == {BLANK_LINE: 1, UNKNOWN_ITEM: 1}
    assert {why: n for why, n in second.dropped.items() if n} == {EMPTY_FIELD: 1}
    assert counts.shape == (3, 2)  # tags 13 and 15, in order of first appearance
    assert counts.toarray().tolist() == [[2, 0], [1, 1], [0, 0]]  # artist 53 has no tag


def test_item_tags_without_header_take_the_first_two_columns(tmp_path):
    path = write(tmp_path, "tags.csv", 'i1,rock\ni2,"hip hop"\ni1,rock\n')
    counts, (report,) = read_item_tags(str(path), ["i1", "i2"])
    assert counts.toarray().tolist() == [[2, 0], [0, 1]]
    assert (report.rows_read, report.rows_kept, report.duplicates_merged) == (3, 2, 1)


@pytest.mark.parametrize("content, words", [
    ("a\tb\nc\td\n", ["no row names an item of the data"]),
    ("one column\n", ["1 column"]),
])
def test_item_tags_errors_are_one_line(tmp_path, content, words):
    with pytest.raises(DataError) as excinfo:
        read_item_tags(str(write(tmp_path, "tags.tsv", content)), ["i1"])
    one_line_error(excinfo, *words)
    with pytest.raises(DataError) as excinfo:
        read_item_tags(str(tmp_path / "nothing*.dat"), ["i1"])
    one_line_error(excinfo, "no file matches")
