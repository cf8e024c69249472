"""Beyond one machine: hosts as network namespaces, the plate on S3, TLS, faults mid-run.

The hosts (``benchmarks/netns_topology.py``, shared with ``bench_cluster.py --topology``):
the driver, ``dask scheduler`` and two ``dask worker`` (TLS, one thread each, a local
directory each) and SeaweedFS, each in a network namespace of its own with its own address,
joined by veth pairs to a bridge; no filesystem is shared for the data (the plate is on S3
only). Made by the module's fixture and removed at its end (with the left-overs of a run
that crashed). Faults, each in the middle of a run: a worker's link cut, a worker killed,
the store stopped (SIGSTOP) for some seconds, the store killed, the scheduler killed. In
every case: exit 0, or one line saying what happened and to rerun, and at most one rerun;
then the labels are bitwise those of a local run, nothing is written outside the plate (the
bucket's other objects, the hosts' folders) and the source images are untouched. Dask's and
S3's own settings are left at their defaults: the times printed are those a deployment gets.

Needs root (``ip netns``), iproute2 and ``weed``; skipped, saying why, otherwise. This
machine's kernel has no netem (``tc qdisc ... netem``): the test that delays and drops a
worker's packets skips, saying so, and the faults made are a link cut (``ip link set ...
down``) and the processes'. Takes 3-4 min on 2 cores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from structfree_dask import open_plate, simulate_plate
from structfree_dask.io import completed_timepoints, open_labels


def _shared_topology():
    """The benchmarks' topology module (one definition for the test and the benchmark)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "netns_topology.py"
    spec = importlib.util.spec_from_file_location("netns_topology", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


nt = _shared_topology()
WHY_NOT = nt.why_not()
pytestmark = [pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT)),
              pytest.mark.timeout(420)]

#: 2 wells x 6 timepoints of 96 px: 12 units, about 6 s on the two workers.
PLATE = {"cell_line": "CL1", "rows": 1, "cols": 2, "timepoints": 6, "size": 96, "seed": 2}
SEGMENT = ["--channels", "0,1", "--diameter", "20", "--no-progress"]
#: Seconds the store is stopped (SIGSTOP): well below botocore's read timeout (60 s).
PAUSE_S = 8.0


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    """The hosts, their processes started; this process on the store as its admin."""
    topology = nt.Topology(tmp_path_factory.mktemp("topology"))
    try:
        topology.build()
        topology.start_all()
        import s3fs

        with mock.patch.dict(os.environ, {k: v for k, v in topology.env("drv").items()
                                          if k.startswith("AWS_")}):
            s3fs.S3FileSystem.clear_instance_cache()
            yield topology
    finally:
        topology.teardown()
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("topology-plate") / "plate.zarr"
    simulate_plate(path, **PLATE)
    return path


def _labels(plate: str | Path) -> dict[str, np.ndarray]:
    return {info.path: np.asarray(open_labels(info, "cyto").open_array(0)[:])
            for info in open_plate(str(plate)).fields()}


@pytest.fixture(scope="module")
def reference(template, tmp_path_factory, installed_command) -> dict[str, np.ndarray]:
    """The labels of a local run (a local cluster of 2 workers, the plate on disk)."""
    plate = tmp_path_factory.mktemp("topology-local") / "plate.zarr"
    shutil.copytree(template, plate)
    subprocess.run([*installed_command, "segment", str(plate), *SEGMENT, "--workers", "2"],
                   check=True, capture_output=True, timeout=300)
    return _labels(plate)


@pytest.fixture
def hosts(topo):
    """The topology with every host back (links up, store, scheduler, both workers)."""
    topo.ensure_up()
    return topo


def _objects(topo, prefix: str) -> dict[str, str]:
    """{key: sha256 of its bytes} of the objects under a prefix of the bucket."""
    fs = topo.filesystem()
    keys = fs.find(prefix)
    return {k: hashlib.sha256(v).hexdigest() for k, v in fs.cat(keys).items()}


@pytest.fixture
def plate(hosts, template, request):
    """A fresh copy of the plate on S3; afterwards, nothing may have been written outside it.

    Yields the plate's URL; checks at the end that the bucket's other objects are those
    of before and that the hosts' folders hold nothing new outside Dask's own (a worker's
    local directory, the logs).
    """
    name = request.node.name.replace("[", "-").replace("]", "")
    key = f"{nt.BUCKET}/{name}.zarr"
    fs = hosts.filesystem()
    if fs.exists(key):
        fs.rm(key, recursive=True)
    fs.put(str(template), key, recursive=True)
    others = {k: v for k, v in _objects(hosts, nt.BUCKET).items()
              if not k.startswith(f"{key}/")}
    yield f"s3://{key}"
    hosts.ensure_up()  # a killed store is back: the bucket can be read
    after = {k: v for k, v in _objects(hosts, nt.BUCKET).items() if not k.startswith(f"{key}/")}
    assert after == others, "objects written or changed outside the plate"
    for host in nt.HOSTS:
        unexpected = [str(p.relative_to(hosts.root / host)) for p in (hosts.root / host).rglob("*")
                      if p.is_file() and not _expected(host, p.relative_to(hosts.root / host))]
        assert not unexpected, f"written on {host} outside the plate: {unexpected}"


def _expected(host: str, path: Path) -> bool:
    """What a host's folder may hold: logs, the store's data, Dask's local directories."""
    top = path.parts[0]
    if host == "s3":  # the store itself: its data, its sockets, its logs
        return True
    if path.suffix == ".log" and len(path.parts) == 1:
        return True
    if host in nt.WORKERS:
        return top == "work" and "dask-scratch-space" in path.parts
    if host == "sched":
        return top == "tmp" and "dask-scratch-space" in path.parts
    return False  # the driver writes nothing outside the plate


def _segment(topo, url: str, command: list[str]) -> list[str]:
    tls = topo.tls
    return [*command, "segment", url, *SEGMENT, "--scheduler", topo.scheduler,
            "--tls-ca", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]


def _first_unit_started(topo, url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until a label chunk of the first field is in the store (the run is under way)."""
    fs = topo.filesystem()
    prefix = url.removeprefix("s3://") + "/A/1/0/labels/cyto/0"
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if any(not k.rsplit("/", 1)[-1].startswith(".") for k in fs.find(prefix)):
                return
        except OSError:
            pass
        time.sleep(0.1)
    out, err = proc.communicate(timeout=60) if proc.poll() is not None else ("", "")
    pytest.fail(f"no unit started (exit {proc.returncode}):\n{err[-3000:]}")


def _check_plate(topo, url: str, before: dict[str, str], reference) -> None:
    """Labels bitwise those of the local run, every unit recorded, the source untouched,
    and only the new label image (and the labels group's list of names) written."""
    got = _labels(url)
    assert got.keys() == reference.keys()
    for path, labels in reference.items():
        np.testing.assert_array_equal(got[path], labels)  # bitwise
    for info in open_plate(url).fields():
        assert completed_timepoints(open_labels(info, "cyto")) == set(range(PLATE["timepoints"]))
    key = url.removeprefix("s3://")
    after = _objects(topo, key)
    changed = {k for k in before if after.get(k) != before[k]}
    new = set(after) - set(before)
    fields = [f"{key}/{info.path}/labels/" for info in open_plate(url).fields()]
    assert changed <= {f + ".zattrs" for f in fields}, f"changed in the plate: {changed}"
    assert all(any(k.startswith(f + "cyto/") for f in fields) for k in new), \
        f"written in the plate outside labels/cyto: {sorted(new)}"


def _run_with_fault(topo, url: str, command: list[str], fault) -> tuple[int, str, float, float]:
    """Start the run, wait until it is under way, call ``fault()``; return the exit status,
    the output (stdout, then stderr), the time of the fault (``time.time()``) and the
    seconds from the fault to the run's end."""
    proc = topo.popen("drv", _segment(topo, url, command))
    _first_unit_started(topo, url, proc)
    t0 = time.time()
    fault()
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err, t0, time.time() - t0


def _rerun(topo, url: str, command: list[str]) -> str:
    done = topo.run("drv", _segment(topo, url, command), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _removed_after(topo, host: str, since: float) -> float | None:
    """Seconds from ``since`` to the scheduler's removing the worker ``host`` (its events)."""
    from distributed import Client

    with Client(topo.scheduler, security=topo.security(), timeout=10) as client:
        events = client.get_events("all")
    times = [ts for ts, msg in events if isinstance(msg, dict) and ts >= since
             and msg.get("action") == "remove-worker"
             and str(msg.get("worker", "")).startswith(f"tls://{topo.addr[host]}:")]
    return min(times) - since if times else None


# ------------------------------------------------------------------------------ tests


def test_the_topology_gives_the_labels_of_a_local_run(hosts, plate, reference,
                                                      installed_command):
    before = _objects(hosts, plate.removeprefix("s3://"))
    done = hosts.run("drv", _segment(hosts, plate, installed_command), timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"labels/cyto: {len(reference) * PLATE['timepoints']} done" in done.stdout
    assert "workers lost" not in done.stderr
    workers = hosts.workers()
    assert set(workers) == set(nt.WORKERS)
    assert all(a.startswith(f"tls://{hosts.addr[w]}:") for w, a in workers.items())
    _check_plate(hosts, plate, before, reference)


@pytest.mark.parametrize("fault", ["link cut", "killed"])
def test_a_worker_lost_mid_run(fault, hosts, plate, reference, installed_command):
    """A worker's link cut (``ip link set ... down``, brought back up after the run) or the
    worker killed (SIGKILL to its nanny and worker): the run goes on on the other worker."""
    before = _objects(hosts, plate.removeprefix("s3://"))
    if fault == "link cut":
        def lose() -> None:
            hosts.cut("w1")
    else:
        def lose() -> None:
            hosts.signal("w1", signal.SIGKILL)
    status, err, at, seconds = _run_with_fault(hosts, plate, installed_command, lose)
    noticed = _removed_after(hosts, "w1", at)
    assert noticed is not None, err
    print(f"worker {fault}: removed by the scheduler {noticed:.2f} s after the fault; the run "
          f"ended {seconds:.1f} s after it, exit {status}")
    assert status == 0, err
    line = next(ln for ln in err.splitlines() if ln.startswith("workers lost during the run"))
    assert f"1 (tls://{hosts.addr['w1']}:" in line and "nothing to redo" in line, err
    assert "Traceback" not in err, err
    _check_plate(hosts, plate, before, reference)


@pytest.mark.skipif(nt.why_no_netem() is not None, reason=str(nt.why_no_netem()))
def test_a_worker_link_delayed_and_lossy_mid_run(hosts, plate, reference, installed_command):
    """netem on a worker's link mid-run (200 ms +- 50 ms delay, 5 % of packets dropped):
    TCP retransmits, the run finishes on both workers, exit 0, labels bitwise."""
    before = _objects(hosts, plate.removeprefix("s3://"))
    status, err, _, seconds = _run_with_fault(
        hosts, plate, installed_command, lambda: hosts.degrade("w1", 200, 50, 0.05))
    hosts.mend("w1")
    print(f"worker link delayed and lossy: the run ended {seconds:.1f} s after, exit {status}")
    assert status == 0, err
    assert "Traceback" not in err, err
    _check_plate(hosts, plate, before, reference)


def test_the_store_stopped_and_resumed_mid_run(hosts, plate, reference, installed_command):
    """SIGSTOP to SeaweedFS for a few seconds, then SIGCONT: the requests wait, the run
    finishes (a pause shorter than botocore's read timeout, 60 s, is no failure)."""
    before = _objects(hosts, plate.removeprefix("s3://"))

    def pause() -> None:
        hosts.signal("store", signal.SIGSTOP)
        time.sleep(PAUSE_S)
        hosts.signal("store", signal.SIGCONT)

    status, err, _, seconds = _run_with_fault(hosts, plate, installed_command, pause)
    print(f"store stopped {PAUSE_S:g} s: the run ended {seconds:.1f} s after the SIGSTOP, "
          f"exit {status}")
    assert status == 0, err
    assert "Traceback" not in err, err
    _check_plate(hosts, plate, before, reference)


def _last_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), err
    return lines[-1]


def test_the_store_killed_mid_run(hosts, plate, reference, installed_command):
    """SIGKILL to SeaweedFS: the run fails saying the store stopped answering and to rerun;
    once the store is back (restarted on its data), one rerun finishes."""
    before = _objects(hosts, plate.removeprefix("s3://"))
    status, err, _, seconds = _run_with_fault(
        hosts, plate, installed_command, lambda: hosts.signal("store", signal.SIGKILL))
    print(f"store killed: the run ended {seconds:.1f} s after the kill, exit {status}")
    assert status == 1, err
    line = _last_error(err)
    assert f"the store of {plate} stopped answering mid-run" in line, err
    assert "rerun the same command to resume" in line, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    hosts.stop("store")
    hosts.start_store()  # the same data folder
    out = _rerun(hosts, plate, installed_command)
    assert "skipped (already done)" in out
    _check_plate(hosts, plate, before, reference)


def test_the_scheduler_killed_mid_run(hosts, plate, reference, installed_command):
    """SIGKILL to the scheduler: the run stops at once saying the scheduler was lost and to
    start it and its workers again, then rerun; the workers leave by themselves (Dask's
    workers end when their scheduler goes); one rerun on a new scheduler finishes."""
    before = _objects(hosts, plate.removeprefix("s3://"))
    status, err, _, seconds = _run_with_fault(
        hosts, plate, installed_command, lambda: hosts.signal("scheduler", signal.SIGKILL))
    print(f"scheduler killed: the run ended {seconds:.1f} s after the kill, exit {status}")
    assert status == 1, err
    line = _last_error(err)
    assert f"lost the connection to the Dask scheduler at {hosts.scheduler}" in line, err
    assert "rerun the same command to resume" in line, err
    assert "Traceback" not in err, err
    hosts.ensure_up()  # a new scheduler at the same address, new workers
    _rerun(hosts, plate, installed_command)
    _check_plate(hosts, plate, before, reference)


def test_a_scheduler_no_route_reaches(hosts, plate, installed_command):
    """A scheduler that runs, in a namespace the driver has no route to: one line, exit 2,
    nothing written."""
    if not hosts.running("scheduler-far"):
        hosts.start_scheduler("far")
    listens = [sys.executable, "-c", "import socket, sys, time\n"
               "for _ in range(300):\n"
               "    try:\n"
               f"        socket.create_connection(('{hosts.addr['far']}', {nt.SCHEDULER_PORT}),"
               " 1).close(); sys.exit(0)\n"
               "    except OSError: time.sleep(0.1)\n"
               "sys.exit(1)"]
    assert hosts.run("far", listens, timeout=60).returncode == 0, hosts.log("far",
                                                                           "scheduler-far")
    before = _objects(hosts, plate.removeprefix("s3://"))
    far = f"tls://{hosts.addr['far']}:{nt.SCHEDULER_PORT}"
    argv = [a if a != hosts.scheduler else far for a in _segment(hosts, plate, installed_command)]
    done = hosts.run("drv", [*argv, "--scheduler-timeout", "2"], timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: no Dask scheduler answered at {far} within 2 s"), lines
    assert _objects(hosts, plate.removeprefix("s3://")) == before  # nothing written
