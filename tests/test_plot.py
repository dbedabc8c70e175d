"""The pictures: names in every script a font is installed for, one note for those none draws,
the picture and the caller told what is left out, and plot.py's functions one screen each."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import pytest
from conftest import ROOT, community_rows, train_checkpoint, write_original
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text

from melody_map.api import load_model
from melody_map.plot import plot_artist_map, plot_user

KOREAN = "사랑해"  # drawn where a CJK font (e.g. fonts-noto-cjk) is installed
PRIVATE = "Song \ue000"  # a private-use character: no text font draws it
PLAIN = "Plain Song"
MONEY = r"Cash $\money$"  # names are data, never mathtext: matplotlib once failed on the unknown symbol
SPECIAL_USER = "ff" * 16
OWN_TRACKS = 20  # more than plot_user's max_tracks (16)


@pytest.fixture
def drawn_texts(monkeypatch) -> list[str]:
    """Every text of each figure written while the test runs."""
    texts, save = [], Figure.savefig

    def spy(fig, *args, **kwargs):
        texts.extend(t.get_text() for t in fig.findobj(Text))
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return texts


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("plot")
    rows = community_rows(users_per_community=(8, 8), tracks_per_community=24, tracks_per_user=8)
    titles = [KOREAN, PRIVATE, PLAIN, MONEY] + [f"Song {t}" for t in range(OWN_TRACKS - 4)]
    rows += [(SPECIAL_USER, f"Artist 0-{t % 6}", title, "Mix 0" if t % 2 else "Starred")
             for t, title in enumerate(titles)]
    return train_checkpoint(write_original(folder / "names.csv", rows), folder / "m.pth", epochs=4)


def undrawable_by_font_files(names: list[str]) -> set[str]:
    """The names with a character outside every installed text font's character map, read from the
    font files themselves: the system's fonts and matplotlib's DejaVu Sans (its other bundled fonts
    are math symbols and placeholder boxes)."""
    bundled = Path(matplotlib.get_data_path()).resolve()
    files = [f.fname for f in font_manager.fontManager.ttflist if not Path(f.fname).resolve().is_relative_to(bundled)]
    files.append(str(bundled / "fonts" / "ttf" / "DejaVuSans.ttf"))
    drawn = set().union(*(FT2Font(f).get_charmap() for f in files))
    return {n for n in names if any(not c.isspace() and ord(c) not in drawn for c in n)}


def test_the_note_names_exactly_the_names_no_installed_font_draws(checkpoint, tmp_path, drawn_texts):
    model, data = load_model(checkpoint)
    user = data.user_index(SPECIAL_USER)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notes = plot_user(model, data, user, str(tmp_path / "u.png"), max_tracks=OWN_TRACKS)
    assert (tmp_path / "u.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [w for w in caught if "Glyph" in str(w.message)], "the glyph warnings become the note"
    assert {KOREAN, PRIVATE, PLAIN, MONEY} <= set(drawn_texts)
    expected = undrawable_by_font_files([KOREAN, PRIVATE, PLAIN, MONEY])
    assert PRIVATE in expected and PLAIN not in expected and MONEY not in expected
    [note] = [n for n in notes if "no installed font draws" in n]
    assert note.startswith(f"note: {len(expected)} name"), note
    for name in (KOREAN, PRIVATE, PLAIN, MONEY):
        assert (repr(name) in note) == (name in expected), (name, note)
    assert not [n for n in notes if " shown: " in n], "all the user's tracks are drawn"


def test_a_user_with_more_tracks_than_drawn_is_told_how_many_are_shown(checkpoint, tmp_path, drawn_texts):
    model, data = load_model(checkpoint)
    notes = plot_user(model, data, data.user_index(SPECIAL_USER), str(tmp_path / "u.png"))
    said = f"16 of the user's {OWN_TRACKS} tracks shown: the reasons first, then those in most of the user's playlists"
    assert f"note: {said}" in notes
    assert any(said in t for t in drawn_texts), "the picture says so too"


def test_the_artist_map_names_its_dataset_and_counts_each_group(checkpoint, tmp_path, drawn_texts):
    model, data = load_model(checkpoint)
    groups = {f"Artist {c}-{a}": f"community {c}" for c in (0, 1) for a in range(6)}
    assert plot_artist_map(model, data, str(tmp_path / "a.png"), groups, group_name="community") == []
    assert "names.csv: 12 artists by their track vectors" in drawn_texts
    assert {"community 0 (6)", "community 1 (6)", "community (artists drawn)"} <= set(drawn_texts)
    assert plot_artist_map(model, data, str(tmp_path / "b.png"), groups, most=5) == []
    assert "names.csv: the 5 of 12 artists with the most tracks, by their track vectors" in drawn_texts


def test_recommend_cli_prints_the_notes_after_what_it_wrote(checkpoint, tmp_path):
    png = tmp_path / "u.png"
    out = subprocess.run([sys.executable, str(ROOT / "recommend.py"), "--checkpoint", checkpoint,
                          "--plot-user", SPECIAL_USER, str(png)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"wrote {png}: user ") and lines[1].startswith("note: 16 of the user's 20 tracks shown")
    assert "Glyph" not in out.stderr and "findfont" not in out.stderr, out.stderr


def test_no_function_in_plot_is_longer_than_a_screen():
    tree = ast.parse((ROOT / "melody_map" / "plot.py").read_text(encoding="utf-8"))
    lengths = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert max(lengths.values()) <= 60, sorted(lengths.items(), key=lambda kv: -kv[1])[:3]
