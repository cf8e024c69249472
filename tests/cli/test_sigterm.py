"""SIGTERM (SLURM's time limit, ``scancel``, ``systemctl stop``) stops every long command as
Ctrl-C does: one line saying what was kept and to rerun, exit status 143, no process left,
and a rerun finishes the work with nothing lost."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from structfree_dask import open_plate, simulate_plate
from structfree_dask.io import read_feature_table

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

QUIET = ["--workers", "1", "--no-progress"]
MEASURE = ["measure", "{plate}", "--labels", "gt_cyto", "--nuclei", "gt_nuclei", "--table", "m2"]
JOB = """version: 1
plates: ["{plate}"]
segment:
  - organelle: cyto
    channels: [0, 1]
    model: generalist
    diameter: 20
cluster:
  kind: local
  workers: 1
records: {records}
"""
COMMANDS = {
    "measure": [*MEASURE, *QUIET],
    "link": ["link", "{plate}", "--cells", "gt_cyto", "--nuclei", "gt_nuclei", "--overwrite",
             *QUIET],
    "track": ["track", "{plate}", "--table", "m", "--tracked-labels", *QUIET],
    "run": ["run", "{job}"],
    "zoo-build": ["zoo", "build", "{zoo_plate}", "--gt", "gt_cyto", "--organelle", "cyto",
                  "--cell-line", "CL1", "--zoo", "{zoo}", "--strategies", "cw",
                  "--max-epochs", "3", "--tile-size", "64", *QUIET],
}


@pytest.fixture(scope="module")
def template(tmp_path_factory, installed_command) -> Path:
    """2 wells x 12 timepoints of 256 px, its ground truth measured into table ``m``."""
    path = tmp_path_factory.mktemp("sigterm") / "plate.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=2, timepoints=12, size=256, seed=3)
    subprocess.run([*installed_command, "measure", str(path), "--labels", "gt_cyto", "--nuclei",
                    "gt_nuclei", "--table", "m", *QUIET], check=True, capture_output=True)
    return path


def _terminate_mid_run(command: list[str], args: list[str], started: Path | None = None
                       ) -> tuple[int, str, list[int]]:
    """Start the command, send SIGTERM to its process group once its work has started.

    The work has started when the command prints its cluster's dashboard or, for a command
    that prints nothing before its end (``run``), when ``started`` exists. Returns the exit
    status, stderr, and the processes of its session still alive after it ended (given
    15 s to go).
    """
    proc = subprocess.Popen([*command, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    assert proc.stderr is not None
    if started is not None:
        deadline = time.monotonic() + 120
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("dashboard: "):
                break
    time.sleep(0.3)
    assert proc.poll() is None, "the command ended before it could be stopped:\n" + "".join(seen)
    os.killpg(proc.pid, signal.SIGTERM)
    err = "".join(seen) + proc.stderr.read()
    proc.wait(timeout=180)
    left: list[int] = []
    for _ in range(30):
        found = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
        left = [int(p) for p in found.stdout.split()]
        if not left:
            break
        time.sleep(0.5)
    return proc.returncode, err, left


@pytest.mark.parametrize("name", list(COMMANDS))
def test_sigterm_stops_like_ctrl_c(name, template, tmp_path, installed_command):
    plate = tmp_path / "plate.zarr"
    shutil.copytree(template, plate)
    zoo_plate = tmp_path / "zoo_plate.zarr"
    if name == "zoo-build":
        simulate_plate(zoo_plate, cell_line="CL1", rows=1, cols=3, timepoints=1, size=128,
                       seed=3)
    job = tmp_path / "job.yaml"
    job.write_text(JOB.format(plate=plate, records=tmp_path / "records"))
    values = {"plate": plate, "job": job, "zoo_plate": zoo_plate, "zoo": tmp_path / "zoo"}
    args = [a.format(**values) for a in COMMANDS[name]]
    started = plate / "A" / "1" / "0" / "labels" / "cyto" if name == "run" else None
    status, err, left = _terminate_mid_run(installed_command, args, started)
    assert status == 143, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and ("rerun" in last or "again" in last), err
    assert "Traceback" not in err, err
    assert not left, f"processes left after SIGTERM: {left}"


def _rows(plate: Path, table: str) -> pd.DataFrame:
    opened = open_plate(plate)
    parts = [read_feature_table(opened.field(p), table).assign(_field=p)
             for p in opened.field_paths]
    return pd.concat(parts).sort_values(["_field", "t", "label"]).reset_index(drop=True)


def test_a_rerun_after_sigterm_loses_nothing(template, tmp_path, installed_command):
    """measure stopped by SIGTERM, then rerun: the same rows as an uninterrupted run."""
    plate = tmp_path / "plate.zarr"
    shutil.copytree(template, plate)
    args = [a.format(plate=plate) for a in COMMANDS["measure"]]
    status, err, _ = _terminate_mid_run(installed_command, args)
    assert status == 143, err
    assert "finished and are kept" in err.strip().splitlines()[-1], err
    rerun = subprocess.run([*installed_command, *args], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    # the template's table "m" was measured from the same labels in one go
    pd.testing.assert_frame_equal(_rows(plate, "m2"), _rows(template, "m"))
