"""Job files and nightly runs against a scheduler and workers started with the ``dask`` CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from structfree_dask import limits
from structfree_dask.cli import main
from structfree_dask.config import SegmentationConfig
from structfree_dask.io import (
    append_timepoints,
    filesystem,
    list_tables,
    open_labels,
    open_plate,
)
from structfree_dask.jobs import schema as job_module
from structfree_dask.jobs.runner import run_job
from structfree_dask.jobs.schema import JobError, load_job, parse_job
from structfree_dask.simulate import simulate_plate

DASK = Path(sys.executable).with_name("dask")
SEGMENT = {"organelle": "cyto", "channels": [0, 1], "diameter": 20, "tile_size": 128}


@contextmanager
def dask_cli_cluster(folder: Path, n_workers: int = 2, tls: dict | None = None):
    """``dask scheduler`` + ``dask worker --nworkers N`` on loopback; yields the address."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    sfile = folder / "scheduler.json"
    flags = []
    if tls:
        flags = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]]
    log = open(folder / "cluster.log", "w")  # noqa: SIM115 - closed below
    sched = subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
         "127.0.0.1:0", "--scheduler-file", str(sfile),
         *(["--protocol", "tls"] if tls else []), *flags],
        stdout=log, stderr=subprocess.STDOUT)
    procs = [sched]
    try:
        deadline = time.time() + 60
        while not sfile.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert sfile.exists(), (folder / "cluster.log").read_text()
        address = json.loads(sfile.read_text())["address"]
        procs.append(subprocess.Popen(
            [str(DASK), "worker", address, "--nworkers", str(n_workers), "--nthreads", "1",
             "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "6GiB", *flags],
            stdout=log, stderr=subprocess.STDOUT))
        security = None
        if tls:
            from distributed.security import Security

            security = Security(tls_ca_file=tls["ca"], tls_client_cert=tls["cert"],
                                tls_client_key=tls["key"], require_encryption=True)
        with Client(address, security=security, timeout="30s") as c:
            c.wait_for_workers(n_workers, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGINT)
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def _plates(folder: Path, n: int = 1, *, fields: int = 1, timepoints: int = 2,
            size: int = 160) -> list[Path]:
    out = []
    for i in range(n):
        out.append(simulate_plate(folder / f"plate{i}.zarr", cell_line="CL1", rows=1, cols=1,
                                  fields=fields, timepoints=timepoints, size=size, seed=10 + i))
    return out


def _job(folder: Path, cluster: dict, **extra) -> Path:
    doc = {"version": 1, "plates": ["plates/*.zarr"], "segment": [SEGMENT],
           "cluster": cluster, "records": "runs", **extra}
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _last_record(folder: Path) -> dict:
    return json.loads(sorted((folder / "runs").glob("run-*.json"))[-1].read_text())


def _labels(plate: Path, name: str = "cyto") -> dict[str, np.ndarray]:
    pl = open_plate(plate)
    return {f: open_labels(pl.field(f), name).read() for f in pl.field_paths}


def test_nightly_job_twice_then_a_new_timepoint(tmp_path, capsys, permutation_equal):
    (plate,) = _plates(tmp_path / "plates")
    with dask_cli_cluster(tmp_path / "cluster") as address:
        job = _job(tmp_path, {"kind": "scheduler", "address": address})
        assert main(["run", str(job)]) == 0
        first = _last_record(tmp_path)
        assert first["status"] == "ok" and first["done"] == 2 and first["skipped"] == 0
        assert first["cluster"]["workers"] == 2 and first["workers_lost"] == []
        assert first["stages"]["flows"]["tasks"] > 0
        assert first["stages"]["integrate"]["seconds"] > 0
        assert first["software"]["structfree_dask"]
        assert len(first["entries"][0]["model_sha256"][0]) >= 16
        assert Path(first["performance_report"]).stat().st_size > 0
        before = _labels(plate)

        time.sleep(0.01)  # a distinct record name
        assert main(["run", str(job)]) == 0
        second = _last_record(tmp_path)
        assert second["done"] == 0 and second["skipped"] == 2
        assert "0 done, 2 skipped" in capsys.readouterr().out

        field = open_plate(plate).field(open_plate(plate).field_paths[0])
        t0 = np.asarray(field.open_array(0)[0:1])
        assert append_timepoints(field, t0) == 3  # the acquisition goes on
        assert main(["run", str(job)]) == 0
        third = _last_record(tmp_path)
    assert third["done"] == 1 and third["skipped"] == 2
    assert third["entries"][0]["done"] == [[field.path, 2]]
    after = _labels(plate)[field.path]
    assert after.shape[0] == 3
    assert np.array_equal(after[:2], before[field.path])  # earlier timepoints untouched
    assert after[2].max() > 10
    assert permutation_equal(after[2], after[0])  # the same image gives the same cells


def test_plates_of_a_job_run_as_one_stream(tmp_path, cluster_client):
    """Every plate and entry of a job is one stream: units of both plates are in flight
    at once (more than one plate has), fused units (fields of one region) report their
    steps per stage, labels equal a plate-by-plate run, and an entry that cannot be
    planned is its own error while the others run."""
    import shutil

    from structfree_dask.engine import FUSED, segment
    from structfree_dask.jobs.runner import task_config

    size = 160
    plates = _plates(tmp_path / "plates", n=2, timepoints=2, size=size)
    refs = []
    for plate in plates:
        refs.append(tmp_path / "ref" / plate.name)
        shutil.copytree(plate, refs[-1])
    whole = {**SEGMENT, "tile_size": 2 * size}  # one region per field: fused units
    bad = {**SEGMENT, "name": "nope", "channels": ["no-such-channel"]}
    job = load_job(_job(tmp_path, {"kind": "local"}, segment=[whole, bad]))
    record = run_job(job, client=cluster_client)
    good = [e for e in record["entries"] if e["label"] == job.tasks[0].label_name]
    broken = [e for e in record["entries"] if e["label"] == "nope"]
    assert len(good) == len(broken) == len(plates)
    assert all(e["error"] is None and not e["failed"] and e["done"] for e in good)
    assert all("no-such-channel" in e["error"] for e in broken)
    assert record["status"] == "failed" and len(record["problems"]) == len(broken)
    assert record["done"] == sum(len(e["done"]) for e in good)
    # plates run one after the other never have more units in flight than one plate has
    assert record["max_in_flight"] > max(len(e["done"]) for e in good)
    stages = record["stages"]
    assert FUSED not in stages  # a fused task is listed by its steps
    n_planes = sum(open_plate(e["plate"]).field(f).sizes["z"] for e in good
                   for f, _ in e["done"])  # one region each: one flows step per plane
    assert stages["flows"]["tasks"] == stages["flows"]["fused"] == n_planes
    assert stages["flows"]["seconds"] > 0 and stages["integrate"]["seconds"] > 0
    for plate, ref in zip(plates, refs, strict=True):
        assert not any("nope" in open_plate(plate).field(f).labels
                       for f in open_plate(plate).field_paths)
        config = task_config(job.tasks[0], str(ref))
        assert segment(str(ref), config, client=cluster_client).ok
        got, want = _labels(plate), _labels(ref)
        for f in want:
            assert np.array_equal(got[f], want[f]), (plate.name, f)
            assert got[f].max() > 0


def test_job_file_mistakes_give_one_message_each(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "version": 2,
        "plates": ["p.zarr"],
        "segment": [
            {"organelle": "nucleus", "channels": [0], "tile_size": 10},
            {"organelle": "cyto", "zoo": "z", "name": "../escape"},
            {"organelle": "cyto", "channels": [0], "wells": ["A1"], "fusion": "avg", "name": "c2"},
        ],
        "cluster": {"kind": "scheduler", "workers": 2, "adress": "x"},
        "recrods": "runs",
    }))
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    expected = [
        "version: this program reads version 1; got 2",
        "segment[0].organelle: expected one of cyto, nuclei; got 'nucleus'",
        "segment[0].tile_size: expected a whole number between 64 and 16384 px; got 10",
        "segment[1].cell_line: missing",
        "segment[1].name: ",
        "segment[2].wells: expected wells as ROW/COLUMN",
        "segment[2].fusion: expected one of fa, voting, majority, staple, simple; got 'avg'",
        "cluster.adress: unknown key (did you mean 'address'?",
        "cluster.address: missing",
        "cluster.workers: only used for clusters started here",
        "recrods: unknown key (did you mean 'records'?",
    ]
    for e in expected:
        assert e in err, e
    n = int(err.split(" problem(s)")[0].rsplit(" ", 1)[-1])
    assert n == len(expected) == err.count("\n  - ")
    with pytest.raises(JobError, match="not valid YAML"):
        (tmp_path / "broken.yaml").write_text("plates: [a\n")
        load_job(tmp_path / "broken.yaml")
    with pytest.raises(FileNotFoundError, match="job file not found"):
        load_job(tmp_path / "none.yaml")
    job = parse_job({"version": 1, "plates": ["x/*.zarr"], "segment": [SEGMENT]}, base=tmp_path)
    assert job.plate_paths() == [] and job.cluster.kind == "local"


def test_killed_worker_during_job(tmp_path, permutation_equal):
    import shutil

    from distributed import Client

    (plate,) = _plates(tmp_path / "plates", fields=2, timepoints=2, size=192)
    clean = tmp_path / "clean"
    (clean / "plates").mkdir(parents=True)
    shutil.copytree(plate, clean / "plates" / plate.name)
    with dask_cli_cluster(tmp_path / "cluster") as address:
        cluster = {"kind": "scheduler", "address": address}
        assert run_job(load_job(_job(clean, cluster)))["status"] == "ok"
        job = load_job(_job(tmp_path, cluster))
        out: dict = {}
        runner = threading.Thread(target=lambda: out.update(run_job(job)))
        with Client(address) as watcher:
            pids = watcher.run(os.getpid)
            runner.start()
            killed = None
            deadline = time.time() + 120
            while killed is None and runner.is_alive() and time.time() < deadline:
                busy = {w for w, keys in watcher.processing().items()
                        if any(str(k).startswith(("flows", "integrate")) for k in keys)}
                if busy:
                    victim = sorted(busy)[0]
                    os.kill(pids[victim], signal.SIGKILL)
                    killed = victim
                time.sleep(0.05)
            runner.join(timeout=600)
    assert killed is not None, "the job finished before a worker could be killed"
    assert out["status"] == "ok" and out["done"] == 4, out["problems"]
    assert [w["worker"] for w in out["workers_lost"]] == [killed]
    ref, got = _labels(clean / "plates" / plate.name), _labels(plate)
    for f in ref:
        assert np.array_equal(got[f], ref[f]), f


def _tls_files(folder: Path) -> dict[str, str]:
    """A CA and a certificate it signs for localhost / 127.0.0.1 (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "structfree-dask test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    files = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return {k: str(v) for k, v in files.items()}


def test_tls_scheduler_refuses_clients_without_the_certificate(tmp_path):
    pytest.importorskip("cryptography")
    from distributed import Client

    tls = _tls_files(tmp_path / "tls")
    _plates(tmp_path / "plates", timepoints=1, size=128)
    with dask_cli_cluster(tmp_path / "cluster", n_workers=1, tls=tls) as address:
        assert address.startswith("tls://127.0.0.1:")
        from distributed.security import Security

        other = _tls_files(tmp_path / "other")  # a certificate from another authority
        stranger = Security(tls_ca_file=tls["ca"], tls_client_cert=other["cert"],
                            tls_client_key=other["key"], require_encryption=True)
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=stranger, timeout="5s")
        with pytest.raises((OSError, TimeoutError)):
            Client(address.replace("tls://", "tcp://"), timeout="5s")  # plain TCP
        job = load_job(_job(tmp_path, {"kind": "scheduler", "address": address, "tls": tls}))
        from structfree_dask.runtime.cluster import tls_security

        security = tls_security(job.cluster.tls_ca, job.cluster.tls_cert, job.cluster.tls_key)
        with Client(address, security=security, timeout="30s") as client:
            assert client.submit(sum, [1, 2]).result() == 3
        record = run_job(job)  # the job file names the certificates
    assert record["status"] == "ok" and record["done"] == 1


def test_names_from_plate_metadata_cannot_escape_the_plate(tmp_path):
    import zarr

    (plate,) = _plates(tmp_path / "plates", timepoints=1, size=128)
    group = zarr.open_group(str(plate), mode="r+")
    meta = dict(group.attrs["plate"])
    meta["wells"] = [dict(meta["wells"][0], path="A/../../evil")]
    group.attrs["plate"] = meta
    with pytest.raises(ValueError, match="path component"):
        list(open_plate(plate).fields())
    job = _job(tmp_path, {"kind": "local", "workers": 1})
    assert main(["run", str(job)]) == 1  # the plate is refused, nothing is written
    record = _last_record(tmp_path)
    assert record["status"] == "failed" and "path component" in record["problems"][0]
    assert not (tmp_path / "evil").exists() and not (tmp_path / "plates" / "evil").exists()


# ------------------------------------------------------------------ job file hardening

GOOD = {"version": 1, "plates": ["p.zarr"],
        "segment": [{"organelle": "cyto", "channels": [0, 1]}]}
NAN, INF = float("nan"), float("inf")


def _write(folder: Path, doc: dict | str, name: str = "job.yaml") -> Path:
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def _with(task: dict | None = None, cluster: dict | None = None) -> dict:
    doc = {**GOOD, "segment": [{**GOOD["segment"][0], **(task or {})}]}
    if cluster is not None:
        doc["cluster"] = cluster
    return doc


def _problems(path: Path) -> list[str]:
    with pytest.raises(JobError) as info:
        load_job(path, check_files=False)
    assert str(info.value).startswith(f"{path}: {len(info.value.problems)} problem(s):")
    return info.value.problems


@pytest.mark.parametrize(("task", "cluster", "expected"), [
    ({"diameter": NAN}, None,
     "segment[0].diameter: expected a finite number between 0.001 and 100000 px; got nan"),
    ({"diameter": INF}, None, "segment[0].diameter: expected a finite number"),
    ({"diameter": -INF}, None, "segment[0].diameter: expected a finite number"),
    ({"diameter": 0}, None, "segment[0].diameter: expected a finite number"),
    ({"diameter": -5}, None, "; got -5"),
    ({"diameter": 1e6}, None, "; got 1e+06"),
    ({"diameter": True}, None, "segment[0].diameter: expected a finite number"),
    ({"diameter": "20"}, None, "; got '20'"),
    ({"tile_size": 10}, None,
     "segment[0].tile_size: expected a whole number between 64 and 16384 px; got 10"),
    ({"tile_size": 100_000}, None, "segment[0].tile_size: expected a whole number"),
    ({"tile_size": 256.5}, None, "segment[0].tile_size: expected a whole number"),
    ({"tile_size": NAN}, None, "segment[0].tile_size: expected a whole number"),
    ({"tile_size": 10**400}, None, "segment[0].tile_size: expected a whole number between "
                                   "64 and 16384 px; got a number of 401 digits"),
    ({"halo": -1}, None, "segment[0].halo: expected a whole number between 0 and 4096 px"),
    ({"halo": INF}, None, "segment[0].halo: expected a whole number"),
    ({"batch_size": 0}, None, "segment[0].batch_size: expected a whole number between 1 and "
                              "4096; got 0"),
    ({"batch_size": False}, None, "segment[0].batch_size: expected a whole number"),
    (None, {"kind": "local", "workers": 0},
     "cluster.workers: expected a whole number between 1 and 4096; got 0"),
    (None, {"kind": "local", "workers": INF}, "cluster.workers: expected a whole number"),
    (None, {"kind": "local", "workers": True}, "cluster.workers: expected a whole number"),
    (None, {"kind": "local", "threads_per_worker": 2000},
     "cluster.threads_per_worker: expected a whole number between 1 and 1024; got 2000"),
    (None, {"kind": "local", "threads_per_worker": NAN},
     "cluster.threads_per_worker: expected a whole number"),
])
def test_numbers_out_of_bounds_or_not_finite_are_refused(tmp_path, task, cluster, expected):
    problems = _problems(_write(tmp_path, _with(task, cluster)))
    assert len(problems) == 1 and expected in problems[0], problems


def test_numbers_within_bounds_are_kept(tmp_path):
    job = load_job(_write(tmp_path, _with(
        {"diameter": 17, "tile_size": 512.0, "halo": 0, "batch_size": 4096},
        {"kind": "local", "workers": 4096, "threads_per_worker": 1})))
    task = job.tasks[0]
    given = task.settings
    assert given["diameter"] == 17.0 and isinstance(given["diameter"], float)
    assert given["tile_size"] == 512 and isinstance(given["tile_size"], int)
    assert (given["halo"], given["batch_size"]) == (0, 4096)
    assert (job.cluster.workers, job.cluster.threads_per_worker) == (4096, 1)


def _plain(v):
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def test_module_docstring_lists_the_bounds():
    doc = job_module.__doc__
    diameter = SegmentationConfig.settings_fields()["diameter"].metadata["setting"].bounds
    for key, bounds in [("segment[i].diameter", diameter),
                        ("segment[i].tile_size", limits.TILE_SIZE),
                        ("segment[i].flow_threshold", limits.FLOW_THRESHOLD),
                        ("segment[i].cellprob_threshold", limits.CELLPROB_THRESHOLD),
                        ("segment[i].min_size", limits.MIN_SIZE),
                        ("segment[i].halo", limits.HALO),
                        ("segment[i].batch_size", limits.BATCH_SIZE),
                        ("cluster.workers", limits.WORKERS),
                        ("cluster.threads_per_worker", limits.THREADS),
                        ("cluster.timeout", limits.SCHEDULER_TIMEOUT),
                        ("cells.max_distance", limits.MAX_DISTANCE)]:
        line = next(ln for ln in doc.splitlines() if f"``{key}``:" in ln)
        assert f"{_plain(bounds[0])} to {_plain(bounds[1])}" in line, line


@pytest.mark.parametrize(("value", "expected"), [
    (None, 10.0), (2.5, 2.5), (30, 30.0), (limits.SCHEDULER_TIMEOUT[1], 3600.0)])
def test_cluster_timeout_parses(tmp_path, value, expected):
    cluster = {"kind": "scheduler", "address": "tcp://127.0.0.1:8786"}
    if value is not None:
        cluster["timeout"] = value
    job = load_job(_write(tmp_path, _with(cluster=cluster)))
    assert job.cluster.timeout == expected and isinstance(job.cluster.timeout, float)


@pytest.mark.parametrize("value", [-1, 0, NAN, INF, 1e9, True, "10s"])
def test_cluster_timeout_is_refused_when_not_a_sensible_number(tmp_path, value):
    problems = _problems(_write(tmp_path, _with(cluster={
        "kind": "scheduler", "address": "tcp://127.0.0.1:8786", "timeout": value})))
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "cluster.timeout: expected a finite number between 0.1 and 3600 s; got "), problems


@pytest.mark.parametrize(("task", "expected"), [
    ({"timepoints": "5:2"}, "segment[0].timepoints: expected a range whose stop is after "
                            "its start, like '0:5' or '2:'; got '5:2', which selects no"),
    ({"timepoints": "3:3"}, "segment[0].timepoints: expected a range whose stop is after"),
    ({"timepoints": [1, 2, 1]}, "segment[0].timepoints: expected each timepoint once; "
                                "listed more than once: [1]"),
    ({"timepoints": []}, "segment[0].timepoints: expected a timepoint, a list of them"),
    ({"timepoints": "1" * 30 + ":"}, "segment[0].timepoints: expected a timepoint"),
    ({"timepoints": -1}, "segment[0].timepoints: expected a timepoint"),
    ({"wells": []}, "segment[0].wells: expected a list of wells like ['A/1', 'B/3']; got []"),
    ({"wells": ["A/1", "B/2", "A/1"]}, "segment[0].wells: expected each well once; listed "
                                       "more than once: ['A/1']"),
    ({"name": ""}, "segment[0].name: expected a label name that is one path component"),
    ({"name": ".zattrs"}, "segment[0].name: expected a label name that is one path "
                          "component: label name must not start with '.'"),
    ({"name": "a/b"}, "segment[0].name: expected a label name"),
    ({"name": "a\\b"}, "segment[0].name: expected a label name"),
    ({"name": ".."}, "segment[0].name: expected a label name"),
    ({"name": 7}, "segment[0].name: expected a label name"),
])
def test_selections_and_names_that_cannot_work_are_refused(tmp_path, task, expected):
    problems = _problems(_write(tmp_path, _with(task)))
    assert len(problems) == 1 and expected in problems[0], problems


def test_selections_that_select_something_are_kept(tmp_path):
    doc = _with({"timepoints": "2:5", "wells": ["A/1", "B/2"], "name": "cyto_2"})
    doc["segment"].append({"organelle": "nuclei", "channels": [1], "timepoints": [3, 0]})
    doc["segment"].append({"organelle": "cyto", "channels": [0], "timepoints": "4:"})
    job = load_job(_write(tmp_path, doc))
    assert job.tasks[0].timepoints == slice(2, 5) and job.tasks[0].wells == ("A/1", "B/2")
    assert job.tasks[0].label_name == "cyto_2"
    assert job.tasks[1].timepoints == (3, 0) and job.tasks[2].timepoints == slice(4, None)


def test_every_mistake_with_a_nan_is_reported_in_one_pass(tmp_path):
    doc = {"version": True, "plates": ["ok.zarr", 3, ""],
           "segment": [{"organelle": "cyto", "channels": [0], "diameter": NAN,
                        "tile_size": INF, "halo": -2, "batch_size": 1.5,
                        "timepoints": "5:2", "wells": ["A/1", "A/1"], "name": ".zattrs"},
                       {"organelle": "nuclei", "channels": [1], "timepoints": [0, 0]}],
           "cluster": {"kind": "local", "workers": 0, "threads_per_worker": NAN,
                       "timeout": -1}}
    problems = _problems(_write(tmp_path, doc))
    expected = [
        "version: this program reads version 1; got True",
        "plates[1]: expected a plate path or glob pattern; got 3",
        "plates[2]: expected a plate path or glob pattern; got ''",
        # settings in the order of the file (written with sorted keys)
        "segment[0].batch_size: expected a whole number between 1 and 4096; got 1.5",
        "segment[0].diameter: expected a finite number between 0.001 and 100000 px; got nan",
        "segment[0].halo: expected a whole number between 0 and 4096 px; got -2",
        "segment[0].name: expected a label name",
        "segment[0].tile_size: expected a whole number between 64 and 16384 px; got inf",
        "segment[0].wells: expected each well once",
        "segment[0].timepoints: expected a range whose stop is after its start",
        "segment[1].timepoints: expected each timepoint once",
        "cluster.threads_per_worker: expected a whole number between 1 and 1024; got nan",
        "cluster.timeout: expected a finite number between 0.1 and 3600 s; got -1",
        "cluster.workers: expected a whole number between 1 and 4096; got 0",
    ]
    assert len(problems) == len(expected), problems
    for e, p in zip(expected, problems, strict=True):
        assert p.startswith(e), (e, p)


def _alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": 9 ** levels items (about 4e8 for 9 levels) in 10 lines."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    names = "abcdefghijklmnopqrstuvwxyz"
    for prev, cur in zip(names[:levels - 1], names[1:levels], strict=True):
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("loader", job_module._LOADERS, ids=lambda c: c.__name__)
def test_alias_bomb_is_refused_before_it_is_expanded(tmp_path, monkeypatch, loader):
    monkeypatch.setattr(job_module, "_LOADERS", (loader,))
    path = _write(tmp_path, _alias_bomb())
    problems = _problems(path)  # refused from the node graph: expanding it would take GBs
    assert problems == ["the YAML expands to more than 100000 items through anchors/aliases "
                        "(an alias bomb?); write the job without deep aliases"]
    assert "alias bomb" in _problems(_write(tmp_path, _alias_bomb(6), "six.yaml"))[0]  # 5e5
    assert "alias bomb" not in " ".join(  # 9 ** 5 = 59049 items: within the limit
        _problems(_write(tmp_path, _alias_bomb(5), "five.yaml")))
    recursive = _write(tmp_path, "plates: &p [*p]\n", "recursive.yaml")
    assert "an anchor is used inside itself" in _problems(recursive)[0]


@pytest.mark.parametrize("loader", job_module._LOADERS, ids=lambda c: c.__name__)
def test_normal_anchors_and_aliases_still_work(tmp_path, monkeypatch, loader):
    monkeypatch.setattr(job_module, "_LOADERS", (loader,))
    path = _write(tmp_path, """\
version: 1
plates: &plates [a.zarr, b.zarr]
segment:
  - &cyto {organelle: cyto, channels: &ch [0, 1], diameter: 30, tile_size: 256}
  - <<: *cyto
    organelle: nuclei
    channels: *ch
    halo: 16
""")
    job = load_job(path)
    assert job.plates == (str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"))
    cyto, nuclei = job.tasks
    assert cyto.settings == {"organelle": "cyto", "channels": (0, 1), "diameter": 30.0,
                             "tile_size": 256}
    assert nuclei.settings == {"organelle": "nuclei", "channels": (0, 1), "diameter": 30.0,
                               "tile_size": 256, "halo": 16}


@pytest.mark.parametrize(("text", "expected"), [
    ("version: !!python/object/apply:os.system ['echo unsafe']\n", "not valid YAML"),
    ("version: 1\nplates: [a\n", "not valid YAML"),
    ("version: " + "9" * 5000 + "\n", "not valid YAML"),
    (b"version: 1\nplates: ['\xff\xfe\xfa']\n", "not valid YAML"),
    ("plates: " + "[" * 2000 + "]" * 2000 + "\n", "not valid YAML"),
])
@pytest.mark.parametrize("loader", job_module._LOADERS, ids=lambda c: c.__name__)
def test_unreadable_yaml_is_a_job_error(tmp_path, monkeypatch, loader, text, expected):
    monkeypatch.setattr(job_module, "_LOADERS", (loader,))
    path = tmp_path / "job.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    problems = _problems(path)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    assert not (tmp_path / "unsafe").exists()


def test_a_home_folder_that_cannot_be_expanded_is_a_problem(tmp_path):
    user = "~no_such_user_structfree"
    problems = _problems(_write(tmp_path, {**GOOD, "plates": [f"{user}/p.zarr", "q.zarr"]}))
    assert problems == [f"plates[0]: cannot expand {user!r} (no such user or no home "
                        f"folder); got '{user}/p.zarr'"]


@pytest.mark.parametrize("value", [
    "a", "a/b.zarr", "/abs/p.zarr", "./a", "a/./b", "a//b", "a/", "a/.", ".", "..", "../a",
    "a/../b", ".hidden/p", "//net/p", "///x", "a b/c*d", "~", "~/p.zarr", "a/~b", "é/ü.zarr"])
@pytest.mark.parametrize("base", [".", "/", "/data/run 1", "rel/x"])
def test_plate_paths_are_resolved_as_pathlib_would(value, base):
    ck = job_module._Checker()
    fast = job_module._resolve_all(Path(base), [value], ck, "plates")
    p = Path(value).expanduser()
    assert fast == [str(p if p.is_absolute() else Path(base) / p)] and not ck.problems


def test_a_job_of_300000_plates_parses_and_lists_them(tmp_path):
    n = 300_000
    (tmp_path / "g").mkdir()
    for name in ("y.zarr", "x.zarr"):
        (tmp_path / "g" / name).mkdir()
    plates = [f"plates/p{i:06d}.zarr" for i in range(n)]
    lines = ["version: 1", "plates:", *(f"  - {p}" for p in plates),
             "  - plates/p000000.zarr", "  - g/*.zarr", "  - g/x.zarr",
             "segment:", "  - {organelle: cyto, channels: [0, 1]}"]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    job = load_job(path)
    assert len(job.plates) == n + 3
    paths = job.plate_paths()
    assert len(paths) == n + 2
    assert paths[:2] == [str(tmp_path / "plates" / "p000000.zarr"),
                         str(tmp_path / "plates" / "p000001.zarr")]
    assert paths[-2:] == [str(tmp_path / "g" / "x.zarr"), str(tmp_path / "g" / "y.zarr")]
    assert len(set(paths)) == len(paths)


@pytest.mark.parametrize(("text", "fragment"), [
    (yaml.safe_dump(_with({"diameter": NAN})), "segment[0].diameter: expected a finite"),
    (_alias_bomb(), "an alias bomb?"),
])
def test_cli_exits_2_with_one_error_message(tmp_path, capsys, text, fragment):
    path = _write(tmp_path, text)
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert err[0] == f"error: {path}: 1 problem(s):", err
    assert len(err) == 2 and err[1].startswith("  - ") and fragment in err[1], err


def test_job_files_accept_every_setting_of_segment(tmp_path):
    """A job entry and the command line build the same settings, through one schema."""
    from structfree_dask.cli import build_parser
    from structfree_dask.cli._common import given_settings
    from structfree_dask.jobs.runner import task_config

    values = {"organelle": "nuclei", "channels": [0, "mito"], "model": "cyto3", "name": "n2",
              "diameter": 17.5, "tile_size": 256, "halo": 12, "batch_size": 3,
              "cellprob_threshold": -0.5, "flow_threshold": 0.7, "min_size": 30,
              "overwrite": True, "fusion": "staple"}
    on_cli = {n for n, f in SegmentationConfig.settings_fields().items()
              if f.metadata["setting"].cli}
    assert set(values) == on_cli  # a new setting must be added here, and works in both
    job = parse_job({"version": 1, "plates": ["p.zarr"], "segment": [values]}, base=tmp_path)
    from_job = task_config(job.tasks[0], str(tmp_path / "p.zarr"))
    argv = ["segment", "p.zarr"]
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        else:
            argv += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    args = build_parser().parse_args(argv)
    from_cli = SegmentationConfig.from_mapping(given_settings(args, SegmentationConfig))
    expected = SegmentationConfig(**{**values, "channels": (0, "mito")})
    assert from_job == from_cli == expected
    assert (expected.flow_threshold, expected.cellprob_threshold, expected.min_size) == (
        0.7, -0.5, 30)
    # absent settings take the one default, in both
    job = parse_job({"version": 1, "plates": ["p.zarr"],
                     "segment": [{"organelle": "cyto", "channels": [1]}]})
    args = build_parser().parse_args(["segment", "p.zarr", "--channels", "1"])
    assert task_config(job.tasks[0], "p.zarr") == SegmentationConfig.from_mapping(
        given_settings(args, SegmentationConfig)) == SegmentationConfig(channels=(1,))


def test_settings_problems_are_reported_together_by_job_cli_and_python(tmp_path, capsys):
    bad = {"flow_threshold": -1, "min_size": 2.5, "cellprob_threshold": NAN}
    problems = _problems(_write(tmp_path, _with(bad)))
    assert [p.split(":")[0] for p in problems] == [
        "segment[0].cellprob_threshold", "segment[0].flow_threshold", "segment[0].min_size"]
    with pytest.raises(ValueError) as raised:
        SegmentationConfig(channels=(0,), **bad)
    assert str(raised.value).startswith("3 problems: cellprob_threshold: expected")
    code = main(["segment", str(tmp_path / "p.zarr"), "--channels", "0",
                 "--flow-threshold=-1", "--min-size", "2.5", "--cellprob-threshold", "nan"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    for line in raised.value.lines:
        assert line in err[0]


# ------------------------------------------------------------------ cells after segmenting

CELLS = {"cells": "cyto", "nuclei": "nuclei", "table": "cyto_features", "channels": [0, "ER"],
         "link": True, "track": True, "tracked_labels": True, "max_distance": 12,
         "report": False}


def test_cells_block_parses_with_defaults(tmp_path):
    job = load_job(_write(tmp_path, {**GOOD, "cells": CELLS}))
    cells = job.cells
    assert (cells.cells, cells.nuclei, cells.table_name, cells.channels) == (
        "cyto", "nuclei", "cyto_features", (0, "ER"))
    assert (cells.link, cells.track, cells.tracked_labels, cells.report) == (
        True, True, True, False)
    assert cells.max_distance == 12.0 and isinstance(cells.max_distance, float)
    assert cells.outputs() == ("cyto_nuclei", "cyto_cytoplasm", "cyto_tracked")
    least = load_job(_write(tmp_path, {**GOOD, "cells": {"cells": "gt_cyto"}})).cells
    assert (least.nuclei, least.table_name, least.channels, least.link, least.track,
            least.max_distance, least.report) == (None, "gt_cyto_features", None, False,
                                                   False, None, True)
    linked = load_job(_write(tmp_path, {**GOOD, "cells": {"cells": "c", "nuclei": "n"}}))
    assert linked.cells.link and linked.cells.inputs == ("c", "n")
    assert load_job(_write(tmp_path, GOOD)).cells is None


@pytest.mark.parametrize(("cells", "expected"), [
    ({"cells": "c", "nucleus": "n"}, ["cells.nucleus: unknown key (did you mean 'nuclei'?"]),
    ({"nuclei": "n"}, ["cells.cells: missing"]),
    ({"cells": "c", "max_distance": 0, "track": True},
     ["cells.max_distance: expected a finite number between 0.001 and 100000 px; got 0"]),
    ({"cells": "c", "max_distance": NAN, "track": True}, ["cells.max_distance: expected a"]),
    ({"cells": "c", "max_distance": "12", "track": True}, ["cells.max_distance: expected a"]),
    ({"cells": "c", "max_distance": 5}, ["cells.max_distance: only used when tracking"]),
    ({"cells": "c", "tracked_labels": True}, ["cells.tracked_labels: only used when tracking"]),
    ({"cells": "c", "max_gap": 2}, ["cells.max_gap: only used when tracking"]),
    ({"cells": "c", "track": True, "max_gap": -1}, ["cells.max_gap: expected a whole number"]),
    ({"cells": "c", "track": True, "divisions": "no"}, ["cells.divisions: expected true or"]),
    ({"cells": "c", "region": 10}, ["cells.region: expected a whole number between 64 and"]),
    ({"cells": "c", "track": True, "measure": False}, ["cells.track: needs measure"]),
    ({"cells": "a/b"}, ["cells.cells: expected a label name that is one path component"]),
    ({"cells": 3}, ["cells.cells: expected a label name that is one path component"]),
    ({"cells": "c", "nuclei": ".."}, ["cells.nuclei: expected a label name"]),
    ({"cells": "c", "nuclei": "c"}, ["cells.nuclei: the same label image as cells ('c')"]),
    ({"cells": "c", "table": "x/y"}, ["cells.table: expected a table name that is one path"]),
    ({"cells": "c", "channels": []}, ["cells.channels: expected at least one channel"]),
    ({"cells": "c", "channels": [1, 1]}, ["cells.channels: expected each channel once"]),
    ({"cells": "c", "link": True}, ["cells.link: needs nuclei"]),
    ({"cells": "c", "track": "yes", "report": 1},
     ["cells.report: expected true or false; got 1",
      "cells.track: expected true or false; got 'yes'"]),
    (["c"], ["cells: expected a mapping with at least 'cells'; got ['c']"]),
])
def test_cells_mistakes_are_each_reported_where_they_are(tmp_path, cells, expected):
    problems = _problems(_write(tmp_path, {**GOOD, "cells": cells}))
    assert len(problems) == len(expected), problems
    for e in expected:
        assert any(p.startswith(e) for p in problems), (e, problems)


def test_cells_outputs_must_not_be_a_segment_entrys_label_image(tmp_path):
    cells = {"cells": "c", "nuclei": "n", "track": True, "tracked_labels": True}
    for name in ("c_nuclei", "c_cytoplasm", "c_tracked"):
        problems = _problems(_write(tmp_path, {**_with({"name": name}), "cells": cells}))
        assert problems == [f"cells: writes the label image {name!r}, which segment[0] "
                            "writes too; rename one"]


def test_cells_mistakes_come_with_the_others_in_one_pass(tmp_path):
    doc = {**_with({"tile_size": 10}), "cells": {"cels": "c", "max_distance": -1,
                                                 "track": True}}
    problems = _problems(_write(tmp_path, doc))
    assert [p.split(":")[0] for p in problems] == [
        "segment[0].tile_size", "cells.cels", "cells.cells", "cells.max_distance"], problems


def _cells_job(folder: Path, client, segment: dict, cells: dict, records: str = "runs"
               ) -> dict:
    job = load_job(_job(folder, {"kind": "local"}, segment=[segment], cells=cells,
                        performance_report=False, records=records))
    return run_job(job, client=client)


def test_cells_after_segmenting_are_measured_tracked_and_reported(tmp_path, cluster_client,
                                                                  small_cpnet_path):
    from structfree_dask.cells.plate_track import tracks_location
    from structfree_dask.io import read_plate_dataset

    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=3, size=96)
    segment = {"organelle": "cyto", "channels": [0, 1], "model": str(small_cpnet_path),
               "tile_size": 128}
    cells = {"cells": "gt_cyto", "nuclei": "gt_nuclei", "track": True,
             "tracked_labels": True}
    first = _cells_job(tmp_path, cluster_client, segment, cells)
    assert first["status"] == "ok", first["problems"]
    assert first["done"] == 3  # the segmentation ran
    (section,) = first["cells"]
    field = open_plate(plate).field_paths[0]
    assert section["table"] == "gt_cyto_features" and section["errors"] == []
    assert section["done"] == [[field, t] for t in range(3)] and section["skipped"] == []
    assert section["cells"] > 0 and set(section["flagged"]) == {
        "cells_without_nucleus", "cells_with_several_nuclei", "nuclei_outside_cells"}
    track = section["track"]
    assert track["tracks"] > 0 and track["failed"] == []
    assert track["timepoints"] == [[field, [0, 1, 2]]]
    page = Path(section["report"])
    assert page.is_file() and page.name == "report.html"
    assert page.parent.parent == tmp_path / "runs"
    assert page.parent.name == Path(first["record"]).stem + "-report-p"
    table = read_plate_dataset(str(plate), "gt_cyto_features")
    assert len(table) and (table["track_id"] >= 0).all()
    image = open_plate(plate).field(field)
    assert {"gt_cyto_nuclei", "gt_cyto_cytoplasm", "gt_cyto_tracked"} <= set(image.labels)
    assert Path(tracks_location(image, "gt_cyto_features")).is_dir()

    # again, with the records in an object store: the report is uploaded there
    records = f"memory://jobs-{tmp_path.name}/runs"
    second = _cells_job(tmp_path, cluster_client, segment, cells, records)
    assert second["status"] == "ok", second["problems"]
    assert second["done"] == 0 and second["skipped"] == 3
    (again,) = second["cells"]
    assert again["done"] == [] and again["skipped"] == section["done"]
    assert again["track"]["timepoints"] == [[field, []]]
    assert again["track"]["tracks"] == track["tracks"]
    stem = second["record"].rsplit("/", 1)[1].removesuffix(".json")
    assert again["report"] == f"{records}/{stem}-report-p/report.html"
    fs, folder = filesystem(f"{records}/{stem}-report-p")
    uploaded = {p.rsplit("/", 1)[1] for p in fs.ls(folder, detail=False)}
    assert {"report.html", "cells_per_well.csv"} <= uploaded
    assert uploaded == {f.name for f in page.parent.iterdir()}
    assert len(read_plate_dataset(str(plate), "gt_cyto_features")) == len(table)


def test_cells_of_a_plate_that_did_not_segment_are_skipped(tmp_path, cluster_client):
    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=1, size=64)
    broken = {**SEGMENT, "channels": ["no-such-channel"]}
    record = _cells_job(tmp_path, cluster_client, broken, {"cells": "cyto",
                                                           "nuclei": "gt_nuclei"})
    (section,) = record["cells"]
    assert record["status"] == "failed" and section["done"] == []
    assert section["errors"] == ["skipped: labels/cyto did not segment on this plate (see "
                                 "its problems)"]
    assert any("no-such-channel" in p for p in record["problems"])
    assert f"{plate} cells skipped: labels/cyto" in " ".join(record["problems"])


def test_a_bad_cells_section_stops_the_job_before_anything_is_written(tmp_path, capsys):
    """The cells step is checked with the segmentation, before a cluster or a write."""
    from ..cli.test_bad_input import snapshot

    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=1, size=64)
    job = _job(tmp_path, {"kind": "local"}, segment=[SEGMENT],
               cells={"cells": "gt_cyto", "nuclei": "absent"}, performance_report=False)
    before = snapshot(tmp_path)
    with pytest.raises(KeyError, match="no label image 'absent'"):
        run_job(load_job(job))
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no label image 'absent'" in err[0], err
    assert snapshot(tmp_path) == before  # no labels, no records folder
    image = open_plate(plate).field(open_plate(plate).field_paths[0])
    assert list_tables(image) == ["gt_truth"] and "cyto" not in image.labels


def test_run_records_inside_a_plate_are_refused(tmp_path, capsys):
    from ..cli.test_bad_input import snapshot

    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=1, size=64)
    job = _job(tmp_path, {"kind": "local"}, segment=[SEGMENT], performance_report=False,
               records=str(plate / "runs"))
    before = snapshot(tmp_path)
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is inside the plate" in err[0], err
    with pytest.raises(ValueError) as raised:
        run_job(load_job(job))
    assert f"error: {raised.value}" == err[0]
    assert snapshot(tmp_path) == before


def test_run_prints_a_cells_line_per_plate(tmp_path, capsys, monkeypatch):
    from structfree_dask.jobs import runner

    section = {"plate": "/d/p.zarr", "table": "cyto_features", "done": [["A/1/0", 0]],
               "skipped": [], "failed": [], "cells": 12, "report": "/r/report.html",
               "track": {"tracks": 5, "divisions": 1, "timepoints": [], "failed": []}}
    record = {"status": "ok", "done": 1, "skipped": 0, "failed": 0, "seconds": 1.0,
              "record": "/r/run.json", "problems": [], "cells": [section]}
    monkeypatch.setattr(runner, "run_job", lambda job: record)
    assert main(["run", str(_write(tmp_path, GOOD))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("/d/p.zarr: tables/cyto_features: 1 done, 0 skipped, 0 failed; "
                        "12 cells; 5 tracks, 1 divisions; report /r/report.html")
