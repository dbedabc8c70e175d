"""The quickstart notebook runs top to bottom, and the committed copy carries its outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT

from melody_map.config import TrainConfig
from melody_map.dataset import load_dataset

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def test_the_committed_notebook_shows_its_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs for c in code), "commit the notebook executed, with its outputs"
    assert not [o for c in code for o in c.outputs if o.output_type == "error" or o.get("name") == "stderr"]


def test_the_notebook_runs_from_a_fresh_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # Trained, tested on every user with held-out pairs against every track, and saved.
    tested = re.search(r"test \(([\d,]+) users, all ([\d,]+) tracks ranked", text)
    wrote = re.search(r"^wrote (\S+)$", text, re.MULTILINE)
    assert tested and wrote, text[-3000:]
    data = load_dataset(TrainConfig(data=str(ROOT / "spotify_dataset.csv")))  # the notebook's data and split
    held_out_users = int((data.test_items().heldout_counts() > 0).sum())
    assert (int(tested[1].replace(",", "")), int(tested[2].replace(",", ""))) == (held_out_users, data.num_items), \
        (tested[0], held_out_users, data.num_items)
    assert Path(wrote[1]).is_file(), wrote[0]
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the user's neighbourhood and the artist map
