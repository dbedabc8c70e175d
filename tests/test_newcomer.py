"""A newcomer's first hour: every output path checked before work, one line and exit 2 for each
failure, names matched as a person types them, honest counts, and quick --help."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import ROOT, community_rows, train_checkpoint, write_original

import recommend
import train_gnn
from melody_map.api import load_model, recommend_for_tracks, similar_artists
from melody_map.outputs import busy_note, choose_threads, usable_cpus


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("newcomer")
    rows = community_rows((20, 20), tracks_per_community=20, tracks_per_user=8)
    # A longer artist name that a short query starts like, and a title shared by two artists.
    rows += [(f"user-0-{u}", "Otis Suzuki & the Loves", "Sleepy Diner", f"Mix {u % 2}") for u in range(6)]
    rows += [(f"user-1-{u}", "Ling Murphy", "Sleepy Diner", f"Mix {u % 2}") for u in range(6)]
    csv = write_original(folder / "c.csv", rows)
    return train_checkpoint(csv, folder / "m.pth", epochs=2)


def one_line_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(n in err for n in needles), err
    return err


@pytest.mark.parametrize("flag", ["--output", "--plot", "--summary-json", "--diagram"])
def test_train_refuses_an_unwritable_output_before_reading_anything(tmp_path, capsys, monkeypatch, flag):
    # Regression: --output /nonexistent/x.pth was refused only after the whole run.
    monkeypatch.setattr("melody_map.pipeline.load_dataset", lambda *a: pytest.fail("the data was read"))
    code = train_gnn.main([flag, "/nonexistent/out.file"])
    one_line_error(capsys, code, flag, "/nonexistent", "does not exist")


@pytest.mark.parametrize("args", [["--all-users", "--output", "/nonexistent/r.tsv"],
                                  ["--plot-user", "0", "/nonexistent/u.png"],
                                  ["--export-onnx", "/nonexistent/m.onnx"]])
def test_recommend_refuses_an_unwritable_output_before_loading(args, capsys, monkeypatch):
    monkeypatch.setattr("melody_map.api.load_model", lambda *a: pytest.fail("the checkpoint was loaded"))
    code = recommend.main([*args, "--checkpoint", "no.pth"])
    one_line_error(capsys, code, "/nonexistent", "does not exist")


def test_onnx_export_without_the_extras_is_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    # Regression: without `onnx`, torch's exporter raised OnnxExporterError, which ended in a traceback.
    def missing(*args, **kwargs):
        raise torch.onnx.OnnxExporterError("Module onnx is not installed!")

    monkeypatch.setattr(torch.onnx, "export", missing)
    gcn = train_checkpoint(write_original(tmp_path / "c.csv", community_rows()), tmp_path / "gcn.pth", model="gcn",
                           epochs=2)  # ONNX exports a GCN's embeddings
    code = recommend.main(["--checkpoint", gcn, "--export-onnx", str(tmp_path / "m.onnx")])
    one_line_error(capsys, code, "ONNX export failed", "requirements-extras.txt")


def test_a_bare_title_is_shown_in_the_expected_form_with_its_artists(checkpoint):
    model, data = load_model(checkpoint)
    with pytest.raises(ValueError) as e:
        recommend_for_tracks(model, data, ["sleepy diner"])
    message = str(e.value)
    assert 'tracks are named "Artist - Title"' in message
    assert "'Otis Suzuki & the Loves - Sleepy Diner'" in message and "'Ling Murphy - Sleepy Diner'" in message


def test_every_unknown_track_is_named_with_its_own_suggestion(checkpoint):
    # Regression: only the first unknown track was named; a second one got no suggestion.
    model, data = load_model(checkpoint)
    with pytest.raises(ValueError) as e:
        recommend_for_tracks(model, data, ["Artist 0-1 - Track 0-1", "Ling Murphy - Sleepy Dinner",
                                           "Otis Suzuki & the Loves - Sleepy Dine"])
    message = str(e.value)
    assert message.startswith("unknown tracks ")
    assert message.count("did you mean 'Ling Murphy - Sleepy Diner'") == 1
    assert message.count("did you mean 'Otis Suzuki & the Loves - Sleepy Diner'") == 1


def test_an_artist_is_found_from_the_beginning_of_its_name(checkpoint):
    model, data = load_model(checkpoint)
    with pytest.raises(ValueError, match=r"did you mean 'Otis Suzuki & the Loves'"):
        similar_artists(model, data, "Otis Suzuky")


def test_counts_agree_with_their_nouns(checkpoint, capsys):
    model, data = load_model(checkpoint)
    name = "Otis Suzuki & the Loves - Sleepy Diner"
    assert recommend.main(["--checkpoint", checkpoint, "--tracks", name, "--top-k", "1"]) == 0
    assert recommend.main(["--checkpoint", checkpoint, "--similar-artist", "Ling Murphy", "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "top 1 track for a new listener of 1 track (folded in" in out and "1 artist nearest to" in out
    assert "1 tracks" not in out and "1 artists" not in out


def test_a_table_with_nothing_to_test_says_so(tmp_path):
    # Regression: a 2-row table trained, printed nan and exited 0 without a word.
    (tmp_path / "t.tsv").write_text("u1\ti1\t1\nu2\ti2\t1\n")
    run = subprocess.run([sys.executable, "train_gnn.py", "--data", str(tmp_path / "t.tsv"), "--output", "",
                          "--plot", "", "--epochs", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-1000:]
    assert "warning: no user has held-out pairs, so there is nothing to test" in run.stdout


def test_threads_follow_the_flag_then_the_environment_then_the_cpus(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(5) == (5, "--threads")
    assert choose_threads(0) == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert choose_threads(0)[0] == min(4, usable_cpus())  # never more than the affinity allows


def test_busy_cpus_get_a_note_naming_fewer_threads(monkeypatch):
    # Regression: with other work on a 2-core laptop, 2 threads took 1 min 55 s where 1 took 16 s, unsaid.
    monkeypatch.setattr("melody_map.outputs.usable_cpus", lambda: 2)
    monkeypatch.setattr("os.getloadavg", lambda: (1.9, 1.0, 1.0))
    assert "--threads 1 may run several times faster" in busy_note(2)
    monkeypatch.setattr("os.getloadavg", lambda: (0.1, 0.0, 0.0))
    assert busy_note(2) is None and busy_note(1) is None


@pytest.mark.parametrize("script", ["train_gnn.py", "recommend.py"])
def test_help_answers_without_loading_torch(script):
    code = (f"import runpy, sys; sys.argv = [{script!r}, '--help']\n"
            f"try:\n    runpy.run_path({script!r}, run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "usage:" in run.stdout, run.stderr[-1000:]


PLAYLIST_ROWS = [("u1", "Ling Murphy", "Copper Window", "Mix"), ("u1", "Ling Murphy", "Closer", "Mix"),
                 ("u2", "Zed, the Band", "Song", "Other"), ("u2", "Ling Murphy", "Closer", "Road")]


def write_playlists(path, order: tuple[int, ...], sep: str = ",", drop: int | None = None):
    """The rows above under the header ``COLUMNS`` in ``order`` (a column left out with ``drop``)."""
    from melody_map.playlists import COLUMNS

    keep = [i for i in order if i != drop]
    quote = (lambda v: f'"{v}"') if sep == "," else (lambda v: v)
    lines = [sep.join(COLUMNS[i] for i in keep)] + [sep.join(quote(row[i]) for i in keep) for row in PLAYLIST_ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("order, sep", [((3, 1, 0, 2), ","), ((0, 1, 2, 3), ";"), ((2, 3, 1, 0), "\t")])
def test_playlist_columns_are_found_by_their_header_in_any_order_and_separator(tmp_path, order, sep):
    # Regression: a CSV with the four columns in another order was refused; a ';'-separated one
    # was read as one column with no hint.
    from melody_map.playlists import read_playlists

    plain = read_playlists(write_playlists(tmp_path / "plain.csv", (0, 1, 2, 3)))
    other = read_playlists(write_playlists(tmp_path / "other.csv", order, sep))
    for field in ("user_ids", "item_names", "artist_names", "playlist_names"):
        assert getattr(other.catalogue, field).to_pylist() == getattr(plain.catalogue, field).to_pylist(), field
    assert other.user.tolist() == plain.user.tolist() and other.item.tolist() == plain.item.tolist()
    assert "Zed, the Band" in plain.catalogue.artist_names.to_pylist()


def test_a_playlists_file_missing_a_column_is_named_as_such(tmp_path, capsys):
    # Regression: it was read as a plain table and failed with "the 3rd column must be a number".
    path = write_playlists(tmp_path / "three.csv", (0, 1, 2, 3), drop=3)
    code = train_gnn.main(["--data", str(path), "--output", "", "--plot", ""])
    one_line_error(capsys, code, "missing playlistname", "in any order")


def test_a_semicolon_table_is_named_with_the_flag_that_reads_it(tmp_path, capsys):
    # Regression: a ';'-separated table was read as one column, with no way to say otherwise.
    lines = "".join(f"u{u};i{(u + k) % 7};{k + 1}\n" for u in range(30) for k in range(4))
    (tmp_path / "t.csv").write_text(lines)
    code = train_gnn.main(["--data", str(tmp_path / "t.csv"), "--output", "", "--plot", "", "--stats-only"])
    one_line_error(capsys, code, "pass --sep semicolon")
    code = train_gnn.main(["--data", str(tmp_path / "t.csv"), "--output", "", "--plot", "", "--stats-only",
                           "--sep", "semicolon"])
    assert code == 0
    assert "120 rows read (semicolon-separated, no header, 3 columns), 120 pairs kept" in capsys.readouterr().out


def test_header_can_be_said_where_the_guess_cannot_tell(tmp_path, capsys):
    # Words over words: "listener,band" reads as a row unless --header yes says otherwise.
    rows = "".join(f"l{u},b{(u + k) % 9}\n" for u in range(20) for k in range(3))
    (tmp_path / "t.csv").write_text("listener,band\n" + rows)
    for flag, kept in (("auto", 61), ("yes", 60)):
        assert train_gnn.main(["--data", str(tmp_path / "t.csv"), "--output", "", "--plot", "", "--stats-only",
                               "--header", flag]) == 0
        assert f"{kept} pairs kept" in capsys.readouterr().out


def test_include_known_is_refused_where_it_means_nothing(capsys):
    # --all-users has its own flag for the evaluation protocol; --include-known there was ignored.
    code = recommend.main(["--all-users", "--include-known", "--checkpoint", "no.pth"])
    one_line_error(capsys, code, "--include-known goes with --user or --user-id alone", "--evaluation")
