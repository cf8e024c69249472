#!/usr/bin/env python3
"""Run a structfree-dask job on GPU workers that dask-jobqueue submits to SLURM.

Usage (from the repository root, in the environment where structfree-dask is installed,
plus ``pip install dask-jobqueue``)::

    python deploy/slurm/cluster.py deploy/slurm/job.yaml --jobs 4 --partition gpu

What it does:

1. checks the job file (``structfree_dask.jobs.schema.load_job``; a bad one ends with status 2);
2. starts a dask-jobqueue ``SLURMCluster``: its scheduler runs in this process, and each
   SLURM job it submits runs one Dask worker with one GPU (``#SBATCH --gres=gpu:1``) and the
   worker resource ``GPU=1``;
3. asks for ``--jobs`` such jobs (``--adapt``: up to that many, as the work needs) and waits
   for the first worker;
4. writes a copy of the job file whose ``cluster`` section names this scheduler
   (``kind: scheduler``, ``address: tcp://...`` or ``tls://...`` with ``--tls-dir``) and runs
   ``structfree-dask run`` on it, the nightly command;
5. stops the workers (their SLURM jobs are cancelled) and exits with the status of
   ``structfree-dask run``: 0 everything done, 1 some unit failed (also: no worker started
   within ``--wait`` seconds), 2 bad job file or input.

The job file's own ``cluster`` section, if any, is replaced. Workers run this same Python
(``sys.executable``), so the environment must be on a file system that the GPU nodes share,
with a CUDA build of torch; so must the plates and the records folder.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The console entry point of the package (pyproject ``[project.scripts]``).
ENTRY_POINT = "structfree-dask"

#: Set in every worker job: Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 otherwise, which
#: slows the network (the value in the worker's environment wins over Dask's default).
WORKER_PROLOGUE = ["export MALLOC_TRIM_THRESHOLD_=134217728"]

#: Certificate files expected in ``--tls-dir`` (the names used everywhere in deploy/).
TLS_FILES = {"ca": "ca.pem", "cert": "cert.pem", "key": "key.pem"}


def build_parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    p = argparse.ArgumentParser(
        description="Run a structfree-dask job on SLURM GPU workers (dask-jobqueue).")
    p.add_argument("job", help="job file (YAML); its cluster section is replaced")
    p.add_argument("--jobs", type=int, default=4,
                   help="SLURM jobs to submit, one GPU worker each (default 4)")
    p.add_argument("--adapt", action="store_true",
                   help="scale between 1 and --jobs workers as the work needs (replaces "
                        "workers whose job ended) instead of a fixed number")
    p.add_argument("--partition", default=None, help="SLURM partition (-p) of the GPU jobs")
    p.add_argument("--account", default=None, help="SLURM account (-A)")
    p.add_argument("--walltime", default="06:00:00",
                   help="time limit of each worker job (default 06:00:00)")
    p.add_argument("--cpus", type=int, default=8,
                   help="CPUs per worker job (default 8; the worker runs 1 task at a time)")
    p.add_argument("--memory", default="64GB", help="memory per worker job (default 64GB)")
    p.add_argument("--gres", default="gpu:1", help="generic resources per job (default gpu:1)")
    p.add_argument("--interface", default=None,
                   help="network interface for the scheduler and workers, e.g. ib0")
    p.add_argument("--prologue", action="append", default=[], metavar="LINE",
                   help="shell line run before each worker, e.g. 'module load cuda' "
                        "(repeatable)")
    p.add_argument("--log-dir", default="slurm-logs",
                   help="folder for the worker jobs' output (default slurm-logs)")
    p.add_argument("--tls-dir", default=None,
                   help="folder with ca.pem, cert.pem and key.pem: the scheduler, the "
                        "workers and the run then talk TLS (mutual authentication)")
    p.add_argument("--wait", type=float, default=3600,
                   help="seconds to wait for the first worker (default 3600)")
    return p


def tls_paths(tls_dir: str | Path | None) -> dict[str, str] | None:
    """Return the absolute paths of the certificate files in ``tls_dir`` (None: no TLS)."""
    if tls_dir is None:
        return None
    base = Path(tls_dir).expanduser().resolve()
    return {k: str(base / name) for k, name in TLS_FILES.items()}


def cluster_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Return the keyword arguments of ``dask_jobqueue.SLURMCluster`` for these options."""
    kwargs: dict[str, Any] = {
        "job_name": "structfree-dask-worker",
        # One worker process with one thread per SLURM job; --cpus goes to --cpus-per-task.
        "cores": 1,
        "processes": 1,
        "job_cpu": args.cpus,
        "memory": args.memory,
        "walltime": args.walltime,
        "queue": args.partition,
        "account": args.account,
        "job_extra_directives": [f"--gres={args.gres}"],
        "worker_extra_args": ["--resources", "GPU=1"],
        "job_script_prologue": WORKER_PROLOGUE + list(args.prologue),
        "log_directory": args.log_dir,
        "interface": args.interface,
        # Workers whose scheduler is gone stop, and their SLURM job ends.
        "death_timeout": 120,
    }
    files = tls_paths(args.tls_dir)
    if files is not None:
        from distributed.security import Security

        # One certificate for every role; the workers get the same files through
        # --tls-ca-file/--tls-cert/--tls-key (the files must be readable on the GPU nodes).
        kwargs["protocol"] = "tls://"
        kwargs["security"] = Security(
            tls_ca_file=files["ca"],
            tls_scheduler_cert=files["cert"], tls_scheduler_key=files["key"],
            tls_worker_cert=files["cert"], tls_worker_key=files["key"],
            tls_client_cert=files["cert"], tls_client_key=files["key"],
            require_encryption=True,
        )
    return kwargs


def scheduled_job(job_path: str | Path, address: str,
                  tls: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the job file's content with its cluster set to the scheduler at ``address``.

    Every path is made absolute (as the original file resolves it), so the copy may be
    written anywhere. Raises ``structfree_dask.jobs.schema.JobError`` for a bad job file.
    """
    import yaml

    from structfree_dask.jobs.schema import load_job

    job = load_job(job_path, check_files=False)
    data = yaml.safe_load(Path(job_path).read_text())
    data["plates"] = list(job.plates)
    for entry, task in zip(data["segment"], job.tasks, strict=True):
        if entry.get("model") is not None:
            entry["model"] = task.settings["model"]
        if entry.get("zoo") is not None:
            entry["zoo"] = task.zoo
    data["records"] = job.records
    cluster: dict[str, Any] = {"kind": "scheduler", "address": address}
    if tls is not None:
        cluster["tls"] = dict(tls)
    data["cluster"] = cluster
    return data


def _run_command() -> str:
    """Return the structfree-dask executable of this environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name(ENTRY_POINT)
    return str(beside) if beside.exists() else (shutil.which(ENTRY_POINT) or ENTRY_POINT)


def _say(msg: str) -> None:
    print(f"[slurm-cluster] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the job; return the exit status of ``structfree-dask run``."""
    import yaml

    from structfree_dask.jobs.schema import JobError, load_job

    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        _say(f"error: --jobs must be >= 1; got {args.jobs}")
        return 2
    try:
        load_job(args.job, check_files=False)
    except (FileNotFoundError, JobError) as err:
        _say(f"error: {err}")
        return 2
    tls = tls_paths(args.tls_dir)
    if tls is not None:
        missing = [p for p in tls.values() if not Path(p).is_file()]
        if missing:
            _say(f"error: TLS file(s) not found: {', '.join(missing)}")
            return 2
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        _say("error: dask-jobqueue is not installed (pip install dask-jobqueue)")
        return 2
    from distributed import Client

    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    with SLURMCluster(**cluster_kwargs(args)) as cluster:
        _say(f"scheduler {cluster.scheduler_address}; dashboard {cluster.dashboard_link}")
        _say("worker job script:\n" + cluster.job_script())
        if args.adapt:
            cluster.adapt(minimum_jobs=1, maximum_jobs=args.jobs)
        else:
            cluster.scale(jobs=args.jobs)
        with Client(cluster) as client:
            try:
                client.wait_for_workers(1, timeout=args.wait)
            except TimeoutError:
                _say(f"no worker started within {args.wait:g} s (check squeue and "
                     f"{args.log_dir}/); giving up")
                return 1
        data = scheduled_job(args.job, cluster.scheduler_address, tls)
        with tempfile.TemporaryDirectory(prefix="structfree-dask-slurm-") as tmp:
            path = Path(tmp) / Path(args.job).name
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            cmd = [_run_command(), "run", str(path)]
            _say("running: " + " ".join(cmd))
            status = subprocess.run(cmd, check=False).returncode
    _say(f"structfree-dask run exited with status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
