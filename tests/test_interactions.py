"""Plain interaction tables: sniffing, every row's fate, shared codes, names and the per-user split."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from melody_map.data import DataError
from melody_map.interactions import (
    BAD_UTF8,
    BAD_WEIGHT,
    BLANK_LINE,
    EMPTY_FIELD,
    IN_TRAIN,
    UNKNOWN_ITEM,
    UNKNOWN_USER,
    WRONG_SHAPE,
    Interactions,
    per_user_test_mask,
    read_interactions,
    read_item_names,
    read_train_test,
    sniff_table,
    split_per_user,
)

# The real data sits beside the project; it is absent on a user's machine.
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def triples(inter: Interactions) -> set[tuple[str, str, float]]:
    """The pairs back as (user id, item id, weight)."""
    return {(inter.user_ids[u], inter.item_ids[i], float(w)) for u, i, w in zip(inter.user, inter.item, inter.weight)}


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
    inter = read_interactions(path)
    assert triples(inter) == {("1", "10", 3.0), ("2", "10", 1.0), ("1", "11", 2.5)}
    assert list(inter.user_ids) == ["1", "2"] and list(inter.item_ids) == ["10", "11"]  # first appearance
    assert (inter.num_users, inter.num_items, len(inter)) == (2, 2, 3)
    assert inter.user.dtype == np.int64 and inter.item.dtype == np.int64 and inter.weight.dtype == np.float32
    assert list(zip(inter.user, inter.item)) == sorted(zip(inter.user, inter.item))  # sorted by user, item
    r = inter.report
    assert (r.rows_read, r.rows_kept, r.duplicates_merged, sum(r.dropped.values())) == (3, 3, 0, 0)
    assert r.balanced() and "3 rows read" in r.summary() and "\n" not in r.summary()


def test_csv_with_header_keeps_ids_as_strings(tmp_path):
    path = write(tmp_path, "c.csv", "user,item,weight\n007,0042,1.5\n7,42,2\n 007 , 0042 ,1\n")
    assert sniff_table(path) == (",", True, 3)
    inter = read_interactions(path)
    # "007" and "7" are different ids; surrounding spaces are trimmed, so " 007 " is "007".
    assert triples(inter) == {("007", "0042", 2.5), ("7", "42", 2.0)}
    assert inter.report.duplicates_merged == 1 and inter.report.rows_read == 3


def test_two_columns_weigh_one_and_duplicates_sum(tmp_path):
    # Header by the second rule: word ids above numeric ids.
    path = write(tmp_path, "two.csv", "userID,artistID\r\n5,9\r\n5,9\r\n5,8\r\n6,9\r\n5,9\r\n")
    assert sniff_table(path) == (",", True, 2)
    inter = read_interactions(path)
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
    assert triples(read_interactions(path, header=True)) == {("alice", "x", 1.0)}


def test_bom_quotes_and_leading_blank_lines(tmp_path):
    path = write(tmp_path, "q.csv", b'\xef\xbb\xbf\n"a, b","x",2\n"c","y",1\n')
    assert sniff_table(path) == (",", False, 3)
    assert triples(read_interactions(path)) == {("a, b", "x", 2.0), ("c", "y", 1.0)}


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
    inter = read_interactions(write(tmp_path, "m.tsv", "\r\n".join(lines) + "\r\n"))
    r = inter.report
    assert r.rows_read == len(lines)
    assert {k: v for k, v in r.dropped.items() if v} == {WRONG_SHAPE: 2, BLANK_LINE: 2, EMPTY_FIELD: 2, BAD_WEIGHT: 3}
    assert (r.rows_kept, r.duplicates_merged) == (11, 1) and r.balanced()
    assert triples(inter) == {("u1", "i1", 1.5), ("u1", "i2", 2.0), ("u2", "i2", 4.0)} | {
        ("u4", f"j{k}", 1.0) for k in range(8)}
    assert "u3" not in inter.user_ids and "i3" not in inter.item_ids  # ids of dropped rows get no code
    assert r.examples[BAD_WEIGHT] == "u3\ti1\tabc" and "extra" in r.examples[WRONG_SHAPE]
    assert "2 wrong shape" in r.summary() and "3 bad weight" in r.summary()


def test_invalid_utf8_row_is_dropped(tmp_path):
    path = write(tmp_path, "u.tsv", b"a\tx\t1\nb\tx\t1\nc\tx\t1\nCaf\xe9\tx\t1\n")
    r = read_interactions(path).report
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
        read_interactions(path)
    assert str(path) in one_line_error(excinfo, *words)


def test_binary_and_directory_are_refused(tmp_path):
    gz = write(tmp_path, "t.tsv.gz", gzip.compress(b"1\t2\t3\n"))
    with pytest.raises(DataError) as excinfo:
        read_interactions(gz)
    one_line_error(excinfo, "gzip")
    with pytest.raises(DataError) as excinfo:
        sniff_table(tmp_path)
    one_line_error(excinfo, "directory")


# ----------------------------------------------------------------------------- shared codes


TRAIN = "a\tx\t1\na\ty\t2\nb\ty\t1\nc\tz\t5\n"
TEST = "b\tx\t1\nc\ty\t1\na\ty\t9\nnew\tx\t1\nb\tunseen\t1\nnew\tunseen\t1\n"


def test_test_file_uses_training_codes_and_counts_unknown_ids(tmp_path):
    train = read_interactions(write(tmp_path, "train.tsv", TRAIN))
    test = read_interactions(write(tmp_path, "test.tsv", TEST), user_ids=train.user_ids, item_ids=train.item_ids)
    assert test.user_ids is train.user_ids and test.item_ids is train.item_ids  # one vocabulary
    assert (test.num_users, test.num_items) == (train.num_users, train.num_items) == (3, 3)
    for u, i in zip(test.user, test.item):  # the same id has the same code on both sides
        assert test.user_ids[u] in {"a", "b", "c"} and train.user_ids[u] == test.user_ids[u]
    assert triples(test) == {("b", "x", 1.0), ("c", "y", 1.0), ("a", "y", 9.0)}
    r = test.report
    # "new unseen" has both unknown: counted once, as an unknown user.
    assert (r.dropped[UNKNOWN_USER], r.dropped[UNKNOWN_ITEM], r.rows_kept) == (2, 1, 3) and r.balanced()


def test_read_train_test_removes_and_counts_overlap(tmp_path):
    train, test = read_train_test(write(tmp_path, "train.tsv", TRAIN), write(tmp_path, "test.tsv", TEST))
    assert triples(test) == {("b", "x", 1.0), ("c", "y", 1.0)}  # ("a", "y") is a training pair
    r = test.report
    assert r.dropped[IN_TRAIN] == 1 and r.rows_kept == 2 and r.balanced() and "1 in train" in r.summary()
    assert not np.isin(test.pair_keys(), train.pair_keys()).any()


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


# ----------------------------------------------------------------------------- split


def test_per_user_split_is_deterministic_disjoint_and_covering(tmp_path):
    rng = np.random.default_rng(1)
    # Users with 1..13 items: the 1-item users cannot be split and stay in train.
    rows = [f"u{u}\ti{i}\t1" for u in range(40) for i in rng.choice(50, size=1 + u % 13, replace=False)]
    inter = read_interactions(write(tmp_path, "s.tsv", "\n".join(rows)))
    train, test = split_per_user(inter, test_frac=0.2, seed=3)
    train2, test2 = split_per_user(inter, test_frac=0.2, seed=3)
    assert np.array_equal(train.pair_keys(), train2.pair_keys()) and np.array_equal(test.pair_keys(), test2.pair_keys())
    assert not np.isin(test.pair_keys(), train.pair_keys()).any()
    assert np.array_equal(np.sort(np.r_[train.pair_keys(), test.pair_keys()]), np.sort(inter.pair_keys()))
    assert train.user_ids is inter.user_ids and test.item_ids is inter.item_ids  # same codes
    counts = np.bincount(inter.user, minlength=inter.num_users)
    on_train = np.bincount(train.user, minlength=inter.num_users)
    on_test = np.bincount(test.user, minlength=inter.num_users)
    eligible = counts >= 2
    assert (on_train[eligible] >= 1).all() and (on_test[eligible] >= 1).all()
    assert (on_test[~eligible] == 0).all()
    assert np.array_equal(on_test[eligible], np.clip(np.floor(0.2 * counts[eligible] + 0.5), 1, None))
    other = per_user_test_mask(inter.user, 0.2, seed=4)
    assert not np.array_equal(other, per_user_test_mask(inter.user, 0.2, seed=3))
    with pytest.raises(ValueError):
        per_user_test_mask(inter.user, 1.0)


# ----------------------------------------------------------------------------- real data


def test_lastfm_lightgcn_split():
    train_path, test_path = real("lastfm-lightgcn", "data1.txt"), real("lastfm-lightgcn", "test1.txt")
    assert sniff_table(train_path) == ("\t", False, 3)
    train, test = read_train_test(train_path, test_path)
    assert (train.report.rows_read, len(train), train.num_users, train.num_items) == (42_135, 42_135, 1_878, 4_476)
    assert train.report.duplicates_merged == 0 and train.report.balanced()
    r = test.report
    # 10,533 test rows: 3 of users and 41 of items never seen in training; no overlap.
    assert (r.rows_read, r.dropped[UNKNOWN_USER], r.dropped[UNKNOWN_ITEM], r.dropped[IN_TRAIN]) == (10_533, 3, 41, 0)
    assert len(test) == 10_489 and r.balanced()
    assert min(int(i) for i in train.item_ids) == 1 and min(int(u) for u in train.user_ids) == 1
    # All ids together: 1,880 users with interactions and 4,489 items, as the README says.
    alone = read_interactions(test_path)
    assert len(np.union1d(train.user_ids, alone.user_ids)) == 1_880
    items = np.union1d(train.item_ids, alone.item_ids)
    assert len(items) == 4_489 and max(int(i) for i in items) == 4_489


def test_hetrec_user_artists_and_names():
    path = real("hetrec2011-lastfm-2k", "user_artists.dat")
    assert sniff_table(path) == ("\t", True, 3)
    inter = read_interactions(path)
    assert (len(inter), inter.num_users, inter.num_items) == (92_834, 1_892, 17_632)
    assert inter.report.rows_read == 92_834 and inter.report.balanced()
    names = read_item_names(real("hetrec2011-lastfm-2k", "artists.dat"), inter.item_ids)
    assert len(names) == inter.num_items and (names != "").all()
    first = names[list(inter.item_ids).index("51")]  # user 2's first artist
    print(f"artist 51: {first}")
    assert first == "Duran Duran"
    train, test = split_per_user(inter, seed=0)
    assert len(train) + len(test) == 92_834 and len(np.unique(test.user)) == np.sum(np.bincount(inter.user) >= 2)
