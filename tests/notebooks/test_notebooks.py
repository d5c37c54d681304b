"""The analysts' notebooks run top to bottom on the committed sample, in a kernel of this interpreter.

The kernel is this test's own interpreter (``sys.executable``, i.e. the project's virtualenv), through a kernel
spec written to a temporary directory, so that a system-wide ``python3`` kernel of another Python is never picked.
A cell after the ``parameters`` cell (papermill's ``injected-parameters``) points the notebook's working directory
at a temporary one: nothing is written into the repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "riskgrade-test"


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory) -> list[str]:
    directory = tmp_path_factory.mktemp("kernels")
    spec = directory / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "riskgrade (tests)",
        "language": "python",
        "env": {"MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore::DeprecationWarning"},
    }), encoding="utf-8")
    return [str(directory)]


def _execute(name: str, kernel_dirs: list[str], tmp_path: Path, parameters: str = "") -> nbformat.NotebookNode:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    first = notebook.cells[code[0]]
    assert "parameters" in first.metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{name} is committed with outputs: strip them"
    if parameters:
        injected = nbformat.v4.new_code_cell(parameters, metadata={"tags": ["injected-parameters"]})
        notebook.cells.insert(code[0] + 1, injected)
    manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs),
                            transport="ipc", ip=str(tmp_path / "kernel"))
    client = NotebookClient(notebook, km=manager, timeout=180, allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError (with the cell and its traceback) if any cell fails
    return notebook


def _text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def test_explore_runs_on_the_sample(kernel_dirs, tmp_path):
    notebook = _execute("explore.ipynb", kernel_dirs, tmp_path)
    text = _text(notebook)
    assert "refused cells" in text and "features; by source table" in text
    assert _images(notebook) >= 4  # events over time, sector / township mix, distributions, correlations
    assert "Glyph" not in text  # no missing-glyph warning: the Chinese labels rendered


def test_retrain_backtests_logs_and_promotes_on_the_sample(kernel_dirs, tmp_path):
    notebook = _execute("retrain.ipynb", kernel_dirs, tmp_path, parameters=f"WORK_DIR = {str(tmp_path)!r}")
    text = _text(notebook)
    assert "promoted: no champion yet" in text
    assert "champion: riskgrade v" in text and "training distribution: " in text and "not logged" not in text
    assert _images(notebook) >= 1
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "riskgrade.db").exists()
    from models.registry import load_champion
    from scoring.report import load_reference

    champion = load_champion(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert champion.kind in ("expert", "scorecard", "boosting")
    assert load_reference(champion.run_id, f"sqlite:///{tmp_path / 'mlflow.db'}").n_rows > 1000
