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
    pooled = float(re.search(r"\(b\) pooled matched F1 = ([\d.]+)", out).group(1))
    assert pooled >= 0.95  # the CPU's default precision against fp32, on simulated cells
    assert re.findall(r"\(c\) peak resident memory of tcp://127\.0\.0\.1:\d+: \d+ MiB", out)
    assert (tmp_path / "plate.zarr").is_dir()
