"""The benchmark scripts that wait for hardware this machine may not have still run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_its_steps_on_the_cpu(tmp_path):
    """``gpu_check.py --dry-run-on-cpu``: the GPU check's every step (forward-only rates,
    the engine on a cluster, labels against fp32, peak memory) on the CPU, so that the
    script is known to run before a GPU is at hand."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run-on-cpu",
         "--size", "192", "--wells", "2", "--tiles", "4", "--cpu-fields", "1",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert out.startswith("DRY RUN ON THE CPU")
    assert re.search(r"\(a\) forward only: [\d.]+ tiles/s .* ratio engine / forward-only", out)
    assert re.search(r"\(a\) forward only at fp32: [\d.]+ tiles/s; (bf16|fp32) / fp32", out)
    assert re.search(r"recorded in labels/gpu: (bf16|fp32) \(expected \1\)", out)
    pooled = float(re.search(r"\(b\) pooled matched F1 = ([\d.]+)", out).group(1))
    assert pooled >= 0.95  # the CPU's default precision against fp32, on simulated cells
    assert re.findall(r"\(c\) peak resident memory of tcp://127\.0\.0\.1:\d+: \d+ MiB", out)
    assert (tmp_path / "plate.zarr").is_dir()


def _package_imports(path: Path) -> list[tuple[str, str | None, int]]:
    """``(module, name or None, line)`` of each import of the package in a script, at any
    depth (the scripts import most of what they use inside their functions)."""
    import ast

    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("structfree_dask"):
            out += [(node.module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names
                    if a.name.startswith("structfree_dask")]
    return out


def test_every_name_the_benchmarks_import_from_the_package_exists():
    """A name moved or renamed in the package breaks a benchmark only when it runs, often
    on hardware the tests never see: every import of the package, however deep in a
    script, names a module and a name that exist."""
    import importlib

    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    found = [(s, *i) for s in scripts for i in _package_imports(s)]
    assert len({s for s, *_ in found}) >= 8  # the scripts import the package
    broken = []
    for script, module, name, line in found:
        where = f"{script.name}:{line}"
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            broken.append(f"{where}: {module}: {err}")
            continue
        if name is not None and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                broken.append(f"{where}: {module} has no {name!r}")
    assert not broken, "\n".join(broken)
