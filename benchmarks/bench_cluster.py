"""Beyond one machine (not a test): SLURM worker start-up, throughput, a lost worker.

On a running SLURM (``sudo deploy/slurm/local-cluster.sh start`` gives a one-node one) with
dask-jobqueue, through the package's own cluster kind ``slurm`` (``make_client``):

- start-up: from submitting one worker job to the worker joining the scheduler (``--repeats``
  times);
- throughput: a simulated plate segmented with 1 and with 2 worker jobs (ms per unit, the
  cluster started before the clock);
- a lost worker: a plate of three times the timepoints on 2 workers, one worker job
  cancelled (``scancel``, SIGTERM to the job, or ``--signal KILL``) once the first unit is
  done; the seconds from the cancel to the scheduler removing the worker, and the run's
  time per unit against the 2-worker run.

Printed with the CPU flags. Usage::

    python benchmarks/bench_cluster.py [--repeats 3] [--timepoints 8] [--size 128]
        [--signal TERM|KILL]

Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench_engine import _cpu_flags  # the same flags in every speed figure

from structfree_dask import SegmentationConfig, segment, simulate_plate
from structfree_dask.config import ClusterSettings
from structfree_dask.runtime.cluster import close_client, make_client
from structfree_dask.runtime.slurm import WORKER_JOB_NAME


def _settings(workers: int) -> ClusterSettings:
    return ClusterSettings(kind="slurm", workers=workers, memory="2GB", walltime="00:30:00",
                           interface="lo")


def _worker_jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", WORKER_JOB_NAME, "-o", "%i %T"],
                         capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if "RUNNING" in line]


def _startup(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        client = make_client(_settings(1))
        client.wait_for_workers(1, timeout=300)
        times.append(time.perf_counter() - t0)
        close_client(client)
    return times


def _plate(folder: Path, name: str, args: argparse.Namespace) -> str:
    plate = str(folder / f"{name}.zarr")
    simulate_plate(plate, cell_line="CL1", rows=1, cols=2, timepoints=args.timepoints,
                   size=args.size, seed=4)
    return plate


CONFIG = SegmentationConfig(channels=(0, 1), diameter=20)


def _throughput(folder: Path, workers: int, args: argparse.Namespace) -> float:
    plate = _plate(folder, f"w{workers}", args)
    client = make_client(_settings(workers))
    try:
        client.wait_for_workers(workers, timeout=300)
        t0 = time.perf_counter()
        result = segment(plate, CONFIG, client=client)
        wall = time.perf_counter() - t0
    finally:
        close_client(client)
    assert result.ok, result.failed
    return wall / len(result.done) * 1000


def _lost_worker(folder: Path, args: argparse.Namespace) -> tuple[float, float, int]:
    """(seconds from the cancel to the worker removed, ms per unit, units done).

    The run is in this thread (it installs signal handlers); a helper thread cancels one
    worker job once the first unit is written, and times its removal.
    """
    longer = argparse.Namespace(**{**vars(args), "timepoints": 3 * args.timepoints})
    plate = _plate(folder, "lost", longer)  # long enough for the worker to go mid-run
    client = make_client(_settings(2))
    removed: list[float] = []

    def cancel_one() -> None:
        first = Path(plate) / "A" / "1" / "0" / "labels" / "cyto"
        while not first.exists():
            time.sleep(0.05)
        time.sleep(1.0)
        job = _worker_jobs()[0]
        cancelled = time.perf_counter()
        # plain scancel ends the job (SIGTERM, SIGKILL after SLURM's KillWait); KILL is sent
        # to every process of the job, its batch shell included
        subprocess.run(["scancel", job] if args.signal == "TERM"
                       else ["scancel", "--full", "-s", "KILL", job], check=True)
        while client.status == "running" and len(client.nthreads()) > 1:
            time.sleep(0.02)
        if client.status == "running":
            removed.append(time.perf_counter() - cancelled)

    try:
        client.wait_for_workers(2, timeout=300)
        helper = threading.Thread(target=cancel_one, daemon=True)
        t0 = time.perf_counter()
        helper.start()
        result = segment(plate, CONFIG, client=client)
        wall = time.perf_counter() - t0
        helper.join(timeout=60)
    finally:
        close_client(client)
    assert result.ok, result.failed
    assert removed, "the worker job was not cancelled before the run ended"
    return removed[0], wall / len(result.done) * 1000, len(result.done)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timepoints", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--signal", default="TERM", choices=("TERM", "KILL"))
    args = ap.parse_args()
    print(f"CPU flags: {_cpu_flags()}")
    startup = _startup(args.repeats)
    print("SLURM worker start-up (submit -> worker joined): "
          + ", ".join(f"{s:.2f} s" for s in startup))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rates = {w: _throughput(folder, w, args) for w in (1, 2)}
        for w, ms in rates.items():
            print(f"{w} worker job(s): {ms:.0f} ms per unit (2 wells x {args.timepoints} "
                  f"timepoints of {args.size} px)")
        print(f"2 workers / 1 worker time per unit: {rates[2] / rates[1]:.2f}")
        gone, ms, n = _lost_worker(folder, args)
        print(f"a worker job cancelled (SIG{args.signal}) mid-run: removed by the scheduler "
              f"{gone:.2f} s after the cancel; the run finished all {n} units at {ms:.0f} ms "
              f"per unit ({ms / rates[2]:.2f}x the 2-worker run)")


if __name__ == "__main__":
    main()
