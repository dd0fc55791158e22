"""The quickstart notebook runs top to bottom (tiny settings, a real kernel)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    assert "prefix codes match" in outputs
    assert (tmp_path / "runs" / "notebook" / "shapes.png").exists()
    if not list((tmp_path / "runs" / "notebook").glob("fit-*/tokenizer/model.safetensors")):
        pytest.fail("the notebook did not export its tokenizer")
