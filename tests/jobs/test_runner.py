"""Running job files (jobs.runner): nightly reruns, one stream over plates, lost workers.

Against a scheduler and workers started with the ``dask`` command line, or the session's
real multi-process LocalCluster.
"""

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

from structfree_dask.cli import main
from structfree_dask.io import append_timepoints, open_labels, open_plate
from structfree_dask.jobs.runner import run_job, task_config
from structfree_dask.jobs.schema import load_job
from structfree_dask.simulate import simulate_plate

DASK = Path(sys.executable).with_name("dask")


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


def _last_record(folder: Path) -> dict:
    return json.loads(sorted((folder / "runs").glob("run-*.json"))[-1].read_text())


def _labels(plate: Path, name: str = "cyto") -> dict[str, np.ndarray]:
    pl = open_plate(plate)
    return {f: open_labels(pl.field(f), name).read() for f in pl.field_paths}


def test_nightly_job_twice_then_a_new_timepoint(tmp_path, capsys, permutation_equal,
                                                make_plates, write_job):
    (plate,) = make_plates(tmp_path / "plates")
    with dask_cli_cluster(tmp_path / "cluster") as address:
        job = write_job(tmp_path, {"kind": "scheduler", "address": address})
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


def test_plates_of_a_job_run_as_one_stream(tmp_path, cluster_client, make_plates, write_job,
                                           segment_entry):
    """Every plate and entry of a job is one stream: units of both plates are in flight
    at once (more than one plate has), fused units (fields of one region) report their
    steps per stage, labels equal a plate-by-plate run, and an entry that cannot be
    planned is its own error while the others run."""
    import shutil

    from structfree_dask.engine import FUSED, segment

    size = 160
    plates = make_plates(tmp_path / "plates", n=2, timepoints=2, size=size)
    refs = []
    for plate in plates:
        refs.append(tmp_path / "ref" / plate.name)
        shutil.copytree(plate, refs[-1])
    whole = {**segment_entry, "tile_size": 2 * size}  # one region per field: fused units
    bad = {**segment_entry, "name": "nope", "channels": ["no-such-channel"]}
    job = load_job(write_job(tmp_path, {"kind": "local"}, segment=[whole, bad]))
    seen: list[tuple[int, int]] = []
    record = run_job(job, client=cluster_client, progress=lambda d, n: seen.append((d, n)))
    good = [e for e in record["entries"] if e["label"] == job.tasks[0].label_name]
    broken = [e for e in record["entries"] if e["label"] == "nope"]
    assert len(good) == len(broken) == len(plates)
    # progress over the whole stream: every unit of every plate, one count at a time
    assert seen == [(n, record["done"]) for n in range(1, record["done"] + 1)]
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


def test_killed_worker_during_job(tmp_path, permutation_equal, make_plates, write_job):
    import shutil

    from distributed import Client

    (plate,) = make_plates(tmp_path / "plates", fields=2, timepoints=2, size=192)
    clean = tmp_path / "clean"
    (clean / "plates").mkdir(parents=True)
    shutil.copytree(plate, clean / "plates" / plate.name)
    with dask_cli_cluster(tmp_path / "cluster") as address:
        cluster = {"kind": "scheduler", "address": address}
        assert run_job(load_job(write_job(clean, cluster)))["status"] == "ok"
        job = load_job(write_job(tmp_path, cluster))
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


def test_tls_scheduler_refuses_clients_without_the_certificate(tmp_path, make_plates,
                                                               write_job):
    pytest.importorskip("cryptography")
    from distributed import Client

    tls = _tls_files(tmp_path / "tls")
    make_plates(tmp_path / "plates", timepoints=1, size=128)
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
        job = load_job(write_job(tmp_path, {"kind": "scheduler", "address": address, "tls": tls}))
        from structfree_dask.runtime.cluster import tls_security

        security = tls_security(job.cluster.tls_ca, job.cluster.tls_cert, job.cluster.tls_key)
        with Client(address, security=security, timeout="30s") as client:
            assert client.submit(sum, [1, 2]).result() == 3
        record = run_job(job)  # the job file names the certificates
    assert record["status"] == "ok" and record["done"] == 1


def test_names_from_plate_metadata_cannot_escape_the_plate(tmp_path, make_plates, write_job):
    import zarr

    (plate,) = make_plates(tmp_path / "plates", timepoints=1, size=128)
    group = zarr.open_group(str(plate), mode="r+")
    meta = dict(group.attrs["plate"])
    meta["wells"] = [dict(meta["wells"][0], path="A/../../evil")]
    group.attrs["plate"] = meta
    with pytest.raises(ValueError, match="path component"):
        list(open_plate(plate).fields())
    job = write_job(tmp_path, {"kind": "local", "workers": 1})
    assert main(["run", str(job)]) == 1  # the plate is refused, nothing is written
    record = _last_record(tmp_path)
    assert record["status"] == "failed" and "path component" in record["problems"][0]
    assert not (tmp_path / "evil").exists() and not (tmp_path / "plates" / "evil").exists()


def test_run_records_inside_a_plate_are_refused(tmp_path, capsys, write_job):
    from ..cli.test_bad_input import snapshot

    plate = simulate_plate(tmp_path / "plates" / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=1, size=64)
    job = write_job(tmp_path, {"kind": "local"}, performance_report=False,
               records=str(plate / "runs"))
    before = snapshot(tmp_path)
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is inside the plate" in err[0], err
    with pytest.raises(ValueError) as raised:
        run_job(load_job(job))
    assert f"error: {raised.value}" == err[0]
    assert snapshot(tmp_path) == before


