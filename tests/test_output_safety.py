"""Names from the data cannot reach the terminal as escape sequences, break the TSV's
columns, or run as spreadsheet formulas."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, community_rows, train_checkpoint, write_original

from melody_map.text import printable, tsv_field

HOSTILE = ["\x1b[31mred\x1b[0m", "=HYPERLINK(\"http://x\")", "+1+cmd", "-2", "@SUM(A1)", "tab\there",
           "bell\x07", "\u202eevil", "back\\slash", "\x1b]0;title\x07"]


def test_printable_escapes_every_control_character():
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("\u202eevil\x07\x9b") == "\\u202eevil\\x07\\x9b"
    assert printable("Beyoncé — Halo 🎵") == "Beyoncé — Halo 🎵"  # ordinary text is left alone
    for name in HOSTILE:
        out = printable(name)
        assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e for c in out)


def test_tsv_field_escapes_separators_and_neutralises_formulas():
    assert tsv_field("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    for start in "=+-@":
        assert tsv_field(start + "x") == "'" + start + "x"
    assert tsv_field("plain - name") == "plain - name"  # a dash inside a name is not a formula
    assert tsv_field("\tx") == "'\\tx"


def test_hostile_names_stay_inert_on_the_terminal_and_in_the_tsv(tmp_path):
    rows = community_rows((20, 20), tracks_per_community=len(HOSTILE), tracks_per_user=5)
    # Every track of the first community gets a hostile title, and one artist a hostile name.
    rows = [(u, "=cmd|' /C calc'!A0" if a.endswith("-0") else a,
             HOSTILE[int(t.split()[1])] if a.startswith("Artist 0") else t, p) for u, a, t, p in rows]
    csv = write_original(tmp_path / "hostile.csv", [tuple(f.replace('"', '""') for f in r) for r in rows])
    ckpt = train_checkpoint(csv, tmp_path / "m.pth", epochs=2)

    out = subprocess.run([sys.executable, "recommend.py", "--checkpoint", str(ckpt), "--all-users", "--top-k", "10",
                          "--output", str(tmp_path / "recs.tsv")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "recs.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) > 100
    cells = [line.split("\t") for line in lines]
    assert all(len(c) == 7 for c in cells)  # a tab or line break in a name cannot add a column or a row
    names = {(c[4], c[5]) for c in cells[1:]}  # (artist, track)
    assert ("Artist 0-1", "tab\\there") in names and ("'=cmd|' /C calc'!A0", "\\x1b[31mred\\x1b[0m") in names
    assert not any(n.startswith(("=", "+", "-", "@")) for c in cells for n in c[4:6])
    assert not any(ch in line for line in lines for ch in "\x1b\x07\u202e\r")

    # A first-community user: the list and its reasons are hostile titles.
    shown = subprocess.run([sys.executable, "recommend.py", "--checkpoint", str(ckpt), "--user", "0", "--top-k", "10",
                            "--explain"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "\\x1b[31mred" in shown.stdout and "\\u202eevil" in shown.stdout
    assert not any(ch in shown.stdout for ch in "\x1b\x07\u202e\t\r")
