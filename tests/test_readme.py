"""The README's front page works as written: its Python example runs, and runs again."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_example_runs_twice(tmp_path, cli_env):
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    script = tmp_path / "example.py"
    script.write_text(block)
    for run in (1, 2):  # the second run meets the first run's plate
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              text=True, env=cli_env, timeout=600)
        assert proc.returncode == 0, f"run {run}:\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr
        lines = proc.stdout.strip().splitlines()
        assert lines[-1].endswith("cells") and "(256, 256)" in lines[-1], lines
