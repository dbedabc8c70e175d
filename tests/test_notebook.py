"""The quickstart notebook runs top to bottom, and the committed copy carries its outputs."""

from __future__ import annotations

import pytest
from conftest import ROOT

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
    assert "test (892 users" in text and "wrote " in text  # trained, tested and saved
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the user's neighbourhood and the artist map
