"""Fuzzed input files, both formats: every file loads or stops with one line, every row has
one fate, and every kept row is a row of the file, fields trimmed, nothing mangled.

Each run generates at least 10,000 lines. ``MELODY_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py``
runs longer (the default is 120 files per format).
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from melody_map.playlists import ORIGINAL_HEADER, read_playlists
from melody_map.readers import WRONG_SHAPE, DataError
from melody_map.tables import read_table

EXAMPLES = int(os.environ.get("MELODY_FUZZ_EXAMPLES", "120"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate], derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Field text: letters, digits, spaces at either end, punctuation, quotes and commas, non-ASCII;
# one field in fifty is long (up to 20 KB).
CHARS = st.sampled_from(list("abcxyzABC0179 ._-&!'éßø☃🎵") + [",", '"', "\t", "\u00a0", "\\"])
SHORT = st.one_of(st.text(CHARS, min_size=0, max_size=10), st.sampled_from(["a", "b", "c", "u1", "u2"]))
FIELD = st.integers(0, 49).flatmap(lambda n: st.integers(1, 40).map(lambda k: "x" * (k * 500)) if n == 0 else SHORT)
# What may become of a line: kept as written, or damaged.
DAMAGE = st.sampled_from(["none"] * 12 + ["blank", "spaces", "short", "long", "bad_utf8", "nul", "bare_cr"])


def _encode(fields: list[str], kind: str) -> bytes:
    if kind == "original":  # the Kaggle layout: every field quoted, nothing escaped
        return ('"' + '","'.join(fields) + '"').encode()
    if kind == "tsv":
        return "\t".join(fields).encode()
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)  # standard quoting
    return out.getvalue().encode()


def _damage(fields: list[str], kind: str, how: str) -> tuple[bytes, list[str] | None]:
    """The line after ``how``, and the fields a reader should see in it (None: it is no row)."""
    if how == "blank":
        return b"", None
    if how == "spaces":
        return b"   ", None
    if how in ("short", "long"):
        line = _encode(fields[:-1] if how == "short" else [*fields, "extra"], kind)
        return (b"" if kind == "csv" and b'"' in line else line), None  # a stray quote could span lines
    if how == "bad_utf8":  # a first field of invalid UTF-8: replaced (playlists) or dropped (tables)
        line = _encode(["ok", *fields[1:]], kind)
        at = 1 if kind == "original" else 0
        return line[:at] + b"\xff" + line[at:], ["\ufffdok", *fields[1:]]
    if how == "nul":  # a NUL byte at the end of the last field
        line = _encode([*fields[:-1], "z"], kind) + b"\x00"
        return line, None if kind == "original" else [*fields[:-1], "z\x00"]
    if how == "bare_cr":  # a CR before the line end: CRLF, or a CR alone (a line end of its own)
        return _encode(fields, kind) + b"\r", fields
    return _encode(fields, kind), fields


def _safe(field: str, kind: str) -> str:
    """A field as the layout can carry it: no tab in a TSV, no '","' inside an original-layout field."""
    if kind == "tsv":
        return field.replace("\t", " ")
    if kind == "original":
        return field.replace('","', '" ,"').replace('",', '" ,').replace(',"', ', "')
    return field


@st.composite
def files(draw, kind: str, width: int, clean_first: bool = False):
    """(each line's bytes, the fields each line should read as or None, each line's damage, the line end)."""
    rows = draw(st.lists(st.lists(FIELD, min_size=width, max_size=width), min_size=30, max_size=120))
    rows = [[_safe(f, kind) for f in r] for r in rows]
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    binary = draw(st.integers(0, 3)) == 0  # a NUL byte within the first 64 KiB makes the file binary
    lines, truth, hows = [], [], []
    for n, fields in enumerate(rows):
        how = "none" if clean_first and n == 0 else draw(DAMAGE)
        how = "none" if how == "nul" and not binary else how
        line, seen = _damage(fields, kind, how)
        lines.append(line)
        truth.append(seen)
        hows.append(how)
    return lines, truth, hows, end


def _write(header: bytes, lines: list[bytes], end: bytes, bom: bool) -> str:
    fd, path = tempfile.mkstemp(suffix=".csv")
    with os.fdopen(fd, "wb") as f:
        f.write((b"\xef\xbb\xbf" if bom else b"") + header + end + end.join(lines) + end)
    return path


def _rows(lines: list[bytes], end: bytes) -> int:
    """Rows in a body: its line ends, a CR alone counting as one (as CSV parsers read it)."""
    return len(re.findall(rb"\r\n|\r|\n", end.join(lines) + end))


def _read(reader, header: bytes, lines: list[bytes], end: bytes, bom: bool, total: dict):
    """``reader`` on the written file, counted in ``total``; None where it stops with one line."""
    path = _write(header, lines, end, bom)
    total["files"] += 1
    total["lines"] += len(lines) + 1
    try:
        inter = reader(path)
    except DataError as e:
        assert "\n" not in str(e) and str(e), str(e)
        total["refused"] += 1
        return None
    finally:
        os.unlink(path)
    total["loaded"] += 1
    return inter


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # as for the tables below
@pytest.mark.parametrize("kind", ["original", "csv"])
def test_fuzzed_playlists_csvs(kind):
    total = {"files": 0, "lines": 0, "loaded": 0, "refused": 0}

    @SETTINGS
    @given(files(kind, 4), st.booleans())
    def one(drawn, bom):
        lines, truth, _, end = drawn
        header = (ORIGINAL_HEADER if kind == "original" else "user_id,artistname,trackname,playlistname").encode()
        inter = _read(read_playlists, header, lines, end, bom, total)
        if inter is None:
            return
        assert inter.report.balanced(), inter.report
        assert inter.report.rows_read == _rows(lines, end), (inter.report.rows_read, _rows(lines, end))
        cat = inter.catalogue
        users = np.asarray(cat.user_ids.to_pylist(), dtype=object)
        titles = np.asarray(cat.item_names.to_pylist(), dtype=object)
        artists = np.asarray(cat.artist_names.to_pylist(), dtype=object)[cat.item_artist]
        playlists = np.asarray(cat.playlist_names.to_pylist(), dtype=object)
        written = {tuple(f.strip() for f in fields) for fields in truth if fields is not None}
        for u, i, p in zip(inter.user, inter.item, inter.playlist):
            kept = (users[u], artists[i], titles[i], playlists[p])
            assert kept in written, kept
        assert len(inter.user) == inter.report.rows_kept

    one()
    print(f"{kind}: {total}")
    assert total["lines"] >= 5_000 * EXAMPLES // 120 and total["loaded"] > total["files"] // 2


# pyarrow cannot decode a wrong-shaped row of invalid UTF-8 for the reader's handler: it reports
# the error as unraisable and fails the file, which the reader then reads again (readers.py).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["tsv", "csv"])
def test_fuzzed_interaction_tables(kind):
    total = {"files": 0, "lines": 0, "loaded": 0, "refused": 0}

    @SETTINGS
    @given(files(kind, 2, clean_first=True), st.sampled_from(["none", "user\titem", "userID,itemID"]), st.booleans())
    def one(drawn, header, bom):
        lines, truth, hows, end = drawn
        if header == "none":
            head, lines, truth, hows = lines[0], lines[1:], truth[1:], hows[1:]
        else:
            head = header.replace("\t", "\t" if kind == "tsv" else ",").replace(",", "\t" if kind == "tsv" else ",")
            head = head.encode()
        inter = _read(read_table, head, lines, end, bom, total)
        if inter is None:
            return
        report = inter.report
        assert report.balanced(), report
        # A headerless file's first line may be read as a header or as data: it is rows or not.
        assert report.rows_read in (_rows(lines, end), _rows(lines, end) + 1), (report.rows_read, _rows(lines, end))
        users, items = inter.catalogue.user_ids.to_pylist(), inter.catalogue.item_ids.to_pylist()
        kept = {(users[u], items[i]) for u, i in zip(inter.user, inter.item)}
        assert len(kept) == len(inter.user) == report.rows_kept
        assert np.isfinite(inter.weight).all() and (inter.weight > 0).all()
        # The pairs kept are exactly the pairs of the rows that carry one: every undamaged row
        # with both ids (and the damaged rows that still read whole), no row more and none less.
        # Invalid UTF-8 drops a table's row; a headerless file's first line is data or a header.
        whole = [tuple(f.strip() for f in fields) for fields, how in zip(truth, hows)
                 if fields is not None and how != "bad_utf8"]
        expected = {pair for pair in whole if all(pair)}
        first = _first_fields(head, kind) if header == "none" else None
        assert expected <= kept, f"undamaged rows were dropped: {sorted(expected - kept)[:3]}; {report.summary()}"
        assert kept <= expected | {first}, f"rows the file does not hold were kept: {sorted(kept - expected)[:3]}"
        # Only the rows the test cut short or lengthened are of the wrong shape (a CSV one that
        # would hold a stray quote was written blank instead, and a line of whitespace is blank).
        reshaped = sum(how in ("short", "long") and bool(line.decode("utf-8", "replace").strip())
                       for line, how in zip(lines, hows))
        assert report.dropped[WRONG_SHAPE] == reshaped, (report.dropped, reshaped, report.summary())

    one()
    print(f"{kind}: {total}")
    assert total["lines"] >= 5_000 * EXAMPLES // 120 and total["loaded"] > total["files"] // 2


def _first_fields(line: bytes, kind: str) -> tuple[str, ...] | None:
    try:
        text = line.decode()
    except UnicodeDecodeError:
        return None
    fields = text.split("\t") if kind == "tsv" else next(csv.reader([text]), [])
    return tuple(f.strip() for f in fields) if len(fields) == 2 else None
