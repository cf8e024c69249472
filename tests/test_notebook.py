"""Run the example notebook headless in a real Jupyter kernel and check its outputs."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")
manager = pytest.importorskip("jupyter_client.manager")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "segment_plate.ipynb"
KERNEL_NAME = "structfree-dask-test"
CELL_TIMEOUT_S = 300

PROBE = "import sys, structfree_dask\nprint('PROBE', sys.executable, structfree_dask.__file__)"


def _kernel_manager(kernel_dir: Path) -> manager.AsyncKernelManager:
    """A kernel manager whose only custom kernel runs this interpreter (``sys.executable``)."""
    spec_dir = kernel_dir / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "structfree-dask test",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = kernelspec.KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    return manager.AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def _text(cell) -> str:
    """Standard output and plain-text results of a cell (stderr holds only log noise)."""
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream" and o.get("name") == "stdout":
            out.append(o.get("text", ""))
        elif o.get("output_type") in ("execute_result", "display_data"):
            out.append(o.get("data", {}).get("text/plain", ""))
    return "".join(out)


def _overall(table: str) -> dict[str, float]:
    """Parse the ``overall`` row of :func:`structfree_dask.evaluation.format_scores`."""
    lines = table.splitlines()
    header = next(ln for ln in lines if ln.split()[:2] == ["field", "t"]).split()
    row = next(ln for ln in lines if ln.startswith("overall")).split()
    return dict(zip(header[2:], map(float, row[1:]), strict=True))  # overall has no t


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The example notebook after a headless run, plus the probe cell's output."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "store the notebook without outputs"
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    run_dir = tmp_path_factory.mktemp("notebook-run")
    env = {k: v for k, v in os.environ.items() if k != "STRUCTFREE_EXAMPLE_PLATE"}
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    client = nbclient.NotebookClient(
        nb, km=_kernel_manager(tmp_path_factory.mktemp("kernels")), timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(run_dir)}},
    )
    client.execute(env=env)
    return nb, run_dir


def test_kernel_is_this_interpreter(executed):
    nb, _ = executed
    probe = _text(nb.cells[0]).split()
    assert probe[0] == "PROBE"
    assert Path(probe[1]).resolve() == Path(sys.executable).resolve()
    assert probe[2].endswith("__init__.py")


def test_notebook_outputs(executed):
    nb, run_dir = executed
    code = [c for c in nb.cells[1:] if c.cell_type == "code"]
    text = "\n".join(_text(c) for c in code)
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors

    assert "dims:     ('t', 'c', 'y', 'x')" in text
    assert "'cyto-reporter', 'translocation-reporter', 'ER', 'mito'" in text

    links = re.findall(r"dashboard: (\S+)", text)
    assert len(links) == 1 and re.fullmatch(r"http://127\.0\.0\.1:\d+/status", links[0])

    assert "2/2 field(s) done" in text and "ok=True" in text
    table = next(_text(c) for c in code if "overall" in _text(c))
    assert len([ln for ln in table.splitlines() if ln.startswith("A/")]) == 2
    overall = _overall(table)
    assert overall["f1"] > 0.5, table
    assert overall["n_pred"] > 10

    pngs = [o for c in code for o in c.outputs
            if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    # the masks, the time course with tracks; the screen: conditions, Z', dose-response
    assert len(pngs) == 5
    assert "timepoints in the time course: 8" in text
    assert "measured 8 (field, timepoint) units" in text
    assert "screen tables: ['conditions', 'dose_response', 'wells', 'zprime']" in text
    assert "z_prime" in text and "fit_error" in text
    assert _text(code[-1]).strip() == "closed"
    assert not any(run_dir.iterdir())  # the plate went to a temporary folder, now removed
