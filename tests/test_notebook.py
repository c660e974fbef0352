"""The documentation notebook runs headless, and each result shows itself (a picture or a page, not a repr)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "featuremaps.ipynb"


@pytest.mark.timeout(600)
def test_the_docs_notebook_runs_and_its_results_show_themselves(tmp_path):
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    notebook = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.get("outputs", []) if output.output_type == "execute_result"]
    assert len(shown) == 5
    conv, explain, prediction, lineage, show = shown
    assert "image/png" in conv and "2x150x226 (D x H' x W')" in conv["text/html"]
    assert "map 0 (sobel_x) at (y=20, x=30)" in explain["text/html"] and "bias" in explain["text/html"]
    assert "sample:cat" in prediction["text/html"] and "unfamiliar image" in prediction["text/html"]
    assert "image/png" in lineage and len(lineage["image/png"]) > 1000
    assert show["text/html"].count("<img src='data:image/png;base64,") >= 2
    assert (tmp_path / "show-output" / "index.html").exists()
