"""The research notebooks run top to bottom on the shipped data and are stored without outputs.

Each notebook is executed by a Jupyter kernel running this interpreter (a kernelspec installed
in a temporary folder, so a user's own ``python3`` kernel can never be picked up instead), in a
temporary working directory, with every service folder pointed at temporary paths.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.integration

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "strategy-engine-tests"
CELL_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data folder holding one kernelspec that launches ``sys.executable``."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL_NAME, prefix=str(prefix))
    return prefix / "share" / "jupyter"


@pytest.fixture
def kernel_env(kernel_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the kernel's services at temporary folders; return the working directory."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("STRATEGY_ENGINE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("STRATEGY_ENGINE_MLFLOW_DIR", str(tmp_path / "mlflow"))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # Figures render inline in the kernel; a display-less backend inherited from CI would not.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir


def _execute(notebook: nbformat.NotebookNode, workdir: Path) -> None:
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()


def test_the_four_research_notebooks_are_there():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


def test_the_kernel_runs_this_interpreter_in_the_working_directory(kernel_env: Path):
    probe = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import os, sys\nprint(sys.executable)\nprint(os.getcwd())")
        ]
    )

    _execute(probe, kernel_env)

    printed = probe.cells[0].outputs[0]["text"].split()
    assert Path(printed[0]).resolve() == Path(sys.executable).resolve()
    assert Path(printed[1]).resolve() == kernel_env.resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_is_stored_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]

    assert code, f"{path.name} has no code cells"
    for index, cell in enumerate(code):
        assert cell.get("outputs") == [], f"{path.name}: code cell {index} has stored outputs"
        assert cell.get("execution_count") is None, f"{path.name}: code cell {index} has a count"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_top_to_bottom_on_the_shipped_data(path: Path, kernel_env: Path):
    notebook = nbformat.read(path, as_version=4)

    try:
        _execute(notebook, kernel_env)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell failed\n{exc}", pytrace=False)

    # Everything a notebook writes goes to folders it creates and removes itself: nothing in
    # the working directory (no stray ./mlruns) and nothing in the default MLflow store.
    assert sorted(p.name for p in kernel_env.iterdir()) == []
    assert not (kernel_env.parent / "mlflow").exists()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
