"""Beyond one machine (not a test): SLURM worker start-up, throughput, a lost worker; and the
same over hosts made of network namespaces, with the plate on S3 (``--topology``).

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

With ``--topology`` (root; ``benchmarks/netns_topology.py``, the hosts of
tests/runtime/test_topology.py): the driver, ``dask scheduler`` (TLS), workers and SeaweedFS
each in a network namespace, the plate on S3 only:

- throughput with one and with two worker namespaces (ms per unit: the engine's own time of
  ``structfree-dask segment`` run in the driver's namespace);
- a cut link: a plate of three times the timepoints on 2 workers, one worker's link cut
  (``ip link set ... down``) once the first unit is written; the seconds from the cut to
  the scheduler removing the worker, and how much longer the run took than the same run
  without a cut (the time the work on the cut worker stood still). ``--tcp-timeout 12s``
  runs the scheduler and workers with ``distributed.comm.timeouts.tcp`` lowered (Dask's
  default: 30s).

Printed with the CPU flags. Usage::

    python benchmarks/bench_cluster.py [--repeats 3] [--timepoints 8] [--size 128]
        [--signal TERM|KILL]
    sudo python benchmarks/bench_cluster.py --topology [--tcp-timeout 12s]

Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
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


SEGMENT = ["--channels", "0,1", "--diameter", "20", "--no-progress"]


class OtherCpu:
    """Share of all cores used by processes outside the topology and this script while a
    measure ran (other work on a shared machine slows every figure down)."""

    def __init__(self, topo) -> None:
        self.topo = topo
        self.start = self._snap()

    def _snap(self) -> tuple[float, float, float]:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(vals[:8]) - vals[3] - vals[4]) / hz
        own = sum(getattr(resource.getrusage(w), a) for w in
                  (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for a in ("ru_utime", "ru_stime"))
        for host in [h for h in self.topo.addr if h != "bridge"]:
            pids = subprocess.run(["ip", "netns", "pids", self.topo.netns(host)],
                                  capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                own += (int(fields[11]) + int(fields[12])) / hz  # utime, stime
        return time.perf_counter(), busy, own

    def stop(self) -> float:
        end = self._snap()
        wall = end[0] - self.start[0]
        other = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, other / (wall * (os.cpu_count() or 1)))


def _topology_run(topo, url: str, cut: bool = False) -> tuple[float, int, float, float | None]:
    """Segment a plate on S3 from the driver's namespace; return (engine seconds, units, wall
    seconds, seconds from the cut to the worker's removal or None)."""
    argv = [str(Path(sys.executable).with_name("structfree-dask")), "segment", url, *SEGMENT,
            "--scheduler", topo.scheduler, "--tls-ca", topo.tls["ca"], "--tls-cert",
            topo.tls["cert"], "--tls-key", topo.tls["key"]]
    t0 = time.perf_counter()
    proc = topo.popen("drv", argv)
    removed = None
    if cut:
        fs = topo.filesystem()
        prefix = url.removeprefix("s3://") + "/A/1/0/labels/cyto/0"
        while proc.poll() is None and not any(
                not k.rsplit("/", 1)[-1].startswith(".") for k in fs.find(prefix)):
            time.sleep(0.1)
        at = time.time()
        topo.cut("w1")
        while proc.poll() is None and "w1" in topo.workers():
            time.sleep(0.2)
        from distributed import Client

        with Client(topo.scheduler, security=topo.security(), timeout=10) as client:
            events = client.get_events("all")
        gone = [ts for ts, msg in events if isinstance(msg, dict) and ts >= at
                and msg.get("action") == "remove-worker"
                and str(msg.get("worker", "")).startswith(f"tls://{topo.addr['w1']}:")]
        removed = min(gone) - at if gone else None
    out, err = proc.communicate(timeout=1200)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"segment failed ({proc.returncode}):\n{err}")
    m = re.search(r"labels/cyto: (\d+) done.*; ([\d.]+) s \(", out)
    assert m, out
    return float(m.group(2)), int(m.group(1)), wall, removed


def _topology(args: argparse.Namespace) -> None:
    import netns_topology as nt

    why = nt.why_not()
    if why:
        raise SystemExit(f"--topology: {why}")
    env = ({"DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP": args.tcp_timeout}
           if args.tcp_timeout else {})
    with tempfile.TemporaryDirectory() as tmp:
        topo = nt.Topology(Path(tmp) / "hosts")
        try:
            topo.build()
            topo.start_store()
            topo.start_scheduler(**env)
            topo.start_worker("w1", **env)
            topo.wait_for_workers(("w1",))
            fs = topo.filesystem()

            def on_s3(name: str, timepoints: int) -> str:
                local = Path(tmp) / f"{name}.zarr"
                simulate_plate(str(local), cell_line="CL1", rows=1, cols=2,
                               timepoints=timepoints, size=args.size, seed=4)
                fs.put(str(local), f"{nt.BUCKET}/{name}.zarr", recursive=True)
                return f"s3://{nt.BUCKET}/{name}.zarr"

            def timed(name: str, timepoints: int, cut: bool = False):
                url = on_s3(name, timepoints)
                watch = OtherCpu(topo)
                out = _topology_run(topo, url, cut)
                return (*out, watch.stop())

            _topology_run(topo, on_s3("warm", 1))  # the worker loads the model
            rates = {}
            seconds, n, _, _, other = timed("w1", args.timepoints)
            rates[1] = (seconds / n * 1000, other)
            topo.start_worker("w2", **env)
            topo.wait_for_workers()
            _topology_run(topo, on_s3("warm2", 1))
            seconds, n, _, _, other = timed("w2", args.timepoints)
            rates[2] = (seconds / n * 1000, other)
            for w, (ms, other) in rates.items():
                print(f"{w} worker namespace(s): {ms:.0f} ms per unit (2 wells x "
                      f"{args.timepoints} timepoints of {args.size} px, plate on S3, TLS; "
                      f"other CPU {other:.0%})")
            print(f"2 workers / 1 worker time per unit: {rates[2][0] / rates[1][0]:.2f}")
            longer = 3 * args.timepoints
            base, n, wall_base, _, other = timed("base", longer)
            print(f"no cut: {n} units in {wall_base:.1f} s ({base / n * 1000:.0f} ms per unit; "
                  f"other CPU {other:.0%})")
            cut_s, n_cut, wall_cut, removed, other = timed("cut", longer, cut=True)
            tcp = args.tcp_timeout or "30s (default)"
            print(f"a worker's link cut mid-run (distributed.comm.timeouts.tcp {tcp}): worker "
                  f"removed by the scheduler {removed:.1f} s after the cut; the run finished "
                  f"all {n_cut} units in {wall_cut:.1f} s, {wall_cut - wall_base:.1f} s more "
                  f"than without the cut ({cut_s / n_cut * 1000:.0f} ms per unit; other CPU "
                  f"{other:.0%})")
        finally:
            topo.teardown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timepoints", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--signal", default="TERM", choices=("TERM", "KILL"))
    ap.add_argument("--topology", action="store_true",
                    help="hosts as network namespaces, the plate on S3 (root)")
    ap.add_argument("--tcp-timeout", default=None,
                    help="with --topology: distributed.comm.timeouts.tcp of the scheduler "
                         "and workers (default: Dask's, 30s)")
    args = ap.parse_args()
    print(f"CPU flags: {_cpu_flags()}")
    if args.topology:
        _topology(args)
        return
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
