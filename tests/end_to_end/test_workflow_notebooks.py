"""The notebooks: committed without outputs, and run top to bottom on the tiny demo."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .workflow_support import PROJECT, network_attempts, offline_environment

NOTEBOOKS = sorted((PROJECT / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "01_data_and_features.ipynb",
        "02_models.ipynb",
        "03_ab_readout.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_stripped(path: Path) -> None:
    """What nbstripout would leave: no outputs, execution counts, run timings or widget state
    (clear them with ``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb``)."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        where = f"{path.name}, cell {index}"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{where} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{where} has an execution count"
        assert "execution" not in cell.metadata, f"{where} has run timings"
    assert "widgets" not in notebook.metadata, f"{path.name} has widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_reads_the_first_cell_switch(path: Path) -> None:
    """Every notebook opens with its title, then loads the project MIXAI_PROJECT_PATH names."""
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown"
    assert cells[0].source.startswith(f"# {path.stem[:2]} · ")
    setup = cells[1].source
    assert cells[1].cell_type == "code"
    assert 'os.environ.get("MIXAI_PROJECT_PATH"' in setup
    assert setup.index("%load_ext kedro.ipython") < setup.index("%reload_kedro $PROJECT")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_on_the_tiny_demo(
    path: Path, tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Executed top to bottom (nbclient) on the tiny demo, offline; the notebooks' own
    assertions (e.g. feature parity with librosa) run too."""
    for key, value in offline_environment(
        tmp_path / "guard", MIXAI_PROJECT_PATH=str(tiny_project)
    ).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MIXAI_DB_URL", raising=False)
    notebook = nbformat.read(path, as_version=4)
    work = tmp_path / "cwd"  # outside any Kedro project: only MIXAI_PROJECT_PATH is loaded
    work.mkdir()
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    figures = sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )
    assert figures >= 3, "each notebook shows at least three figures"
    assert network_attempts(tmp_path / "guard") == []
