"""Workers as SLURM jobs on a real one-node SLURM (deploy/slurm/local-cluster.sh).

The SLURM tests run where the cluster is up (``sinfo`` shows a node, as after
``sudo deploy/slurm/local-cluster.sh start``, which ``.ci/run`` does when it can) and are
skipped otherwise, saying why. The bad-input tests need only dask-jobqueue.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from structfree_dask import open_plate, simulate_plate
from structfree_dask.io import completed_timepoints, open_labels

pytest.importorskip("dask_jobqueue", reason="cluster kind slurm needs dask-jobqueue")

RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "slurm" / "job-slurm.yaml"
#: What this test changes in the recipe: its plate and records, a diameter for the small
#: simulated cells, and workers that fit a 2-CPU node on loopback.
FOR_THIS_NODE = {"workers": 2, "threads_per_worker": 1, "memory": "2GB",
                 "walltime": "00:20:00", "interface": "lo"}
LOCAL = {"kind": "local", "workers": 2}
SLURM = "slurm"


def _write_job(path: Path, plate: Path, records: Path, cluster: dict | str = SLURM) -> None:
    """The recipe, for this plate and records, on SLURM (or with another cluster section)."""
    import yaml

    job = yaml.safe_load(RECIPE.read_text())
    job["plates"] = [str(plate)]
    job["records"] = str(records)
    job["segment"][0]["diameter"] = 20
    if cluster == SLURM:
        job["cluster"].update(FOR_THIS_NODE)
    else:
        job["cluster"] = dict(cluster)
    path.write_text(yaml.safe_dump(job))


def _slurm_up() -> str | None:
    """Why the SLURM tests cannot run here, or None."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no SLURM commands (sudo deploy/slurm/local-cluster.sh start installs them)"
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    if out.returncode != 0 or not any(s.startswith(("idle", "mixed", "alloc"))
                                      for s in out.stdout.split()):
        return f"SLURM is not running here (sinfo: {out.stderr.strip() or out.stdout.strip()})"
    return None


needs_slurm = pytest.mark.skipif(_slurm_up() is not None, reason=str(_slurm_up()))


def _worker_jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", "structfree-dask-worker", "-o", "%i %T"],
                         capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if "RUNNING" in line]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("slurm") / "plate.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=2, timepoints=6, size=96, seed=2)
    return path


@pytest.fixture(scope="module")
def reference(template, tmp_path_factory, installed_command) -> dict[str, np.ndarray]:
    """The labels of a local run of the same job."""
    root = tmp_path_factory.mktemp("local")
    plate = root / "plate.zarr"
    shutil.copytree(template, plate)
    job = root / "job.yaml"
    _write_job(job, plate, root / "records", LOCAL)
    subprocess.run([*installed_command, "run", str(job)], check=True, capture_output=True)
    return _labels(plate)


def _labels(plate: Path) -> dict[str, np.ndarray]:
    return {info.path: np.asarray(open_labels(info, "cyto").open_array(0)[:])
            for info in open_plate(plate).fields()}


def _job(template: Path, tmp_path: Path, **cluster: object) -> tuple[Path, Path]:
    """A copy of the plate and the recipe's job for it (``cluster``: settings changed)."""
    import yaml

    plate = tmp_path / "plate.zarr"
    shutil.copytree(template, plate)
    job = tmp_path / "job.yaml"
    _write_job(job, plate, tmp_path / "records")
    if cluster:
        data = yaml.safe_load(job.read_text())
        data["cluster"].update(cluster)
        job.write_text(yaml.safe_dump(data))
    return plate, job


@needs_slurm
def test_a_job_on_slurm_gives_the_labels_of_a_local_run(template, reference, tmp_path,
                                                          installed_command):
    plate, job = _job(template, tmp_path)
    done = subprocess.run([*installed_command, "run", str(job)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    got = _labels(plate)
    assert got.keys() == reference.keys()
    for path, labels in reference.items():
        np.testing.assert_array_equal(got[path], labels)  # bitwise
    assert not _worker_jobs()  # the worker jobs ended with the run


@needs_slurm
def test_a_cancelled_worker_job_loses_nothing(template, reference, tmp_path, installed_command):
    """scancel one of the two worker jobs mid-run: the run goes on (or a rerun resumes),
    and the labels equal a local run's."""
    plate, job = _job(template, tmp_path)
    proc = subprocess.Popen([*installed_command, "run", str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    first = plate / "A" / "1" / "0" / "labels" / "cyto"
    while (len(_worker_jobs()) < 2 or not first.exists()) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    jobs = _worker_jobs()
    assert proc.poll() is None and len(jobs) == 2, "the run ended before a worker could go"
    subprocess.run(["scancel", jobs[0]], check=True)
    out, err = proc.communicate(timeout=600)
    runs = [proc.returncode]
    if proc.returncode != 0:  # at most one rerun
        again = subprocess.run([*installed_command, "run", str(job)], capture_output=True,
                               text=True, timeout=600)
        runs.append(again.returncode)
        err += again.stderr
    assert runs[-1] == 0, err
    print(f"exit statuses of the run and its rerun: {runs}")
    for info in open_plate(plate).fields():
        assert completed_timepoints(open_labels(info, "cyto")) == set(range(6))
    got = _labels(plate)
    for path, labels in reference.items():
        np.testing.assert_array_equal(got[path], labels)


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


@needs_slurm
def test_a_partition_that_does_not_exist(template, tmp_path, installed_command):
    plate, job = _job(template, tmp_path, partition="no-such-partition")
    before = _snapshot(tmp_path)
    done = subprocess.run([*installed_command, "run", str(job)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "partition 'no-such-partition' does not exist" in lines[0]
    assert _snapshot(tmp_path) == before  # nothing written


def test_sbatch_missing(template, tmp_path, installed_command):
    plate, job = _job(template, tmp_path)
    before = _snapshot(tmp_path)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:/nonexistent"}
    done = subprocess.run([*installed_command, "run", str(job)], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sbatch is not on PATH" in lines[0], done.stderr
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(("setting", "message"), [
    ({"walltime": "1h"}, "cluster.walltime: expected [days-]hours:minutes:seconds"),
    ({"memory": "lots"}, "cluster.memory: expected a size such as 4GB"),
    ({"partitoin": "debug"}, "cluster.partitoin"),
    ({"workers": 0}, "cluster.workers"),
])
def test_bad_slurm_settings_are_one_line_each(template, tmp_path, setting, message,
                                              installed_command):
    plate, job = _job(template, tmp_path, **setting)
    before = _snapshot(tmp_path)
    done = subprocess.run([*installed_command, "run", str(job)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr
    assert _snapshot(tmp_path) == before


def test_slurm_settings_need_kind_slurm():
    from structfree_dask.config import ClusterSettings, SettingsError

    with pytest.raises(SettingsError, match="partition: only used with kind 'slurm'"):
        ClusterSettings(partition="debug")
    assert ClusterSettings(kind="slurm", workers=3).workers == 3
