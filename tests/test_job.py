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

from structfree_dask.cli import main
from structfree_dask.io import append_timepoints, open_labels, open_plate
from structfree_dask.job import JobError, load_job, parse_job
from structfree_dask.runner import run_job
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
        "segment[0].tile_size: expected an integer >= 64; got 10",
        "segment[1].cell_line: missing",
        "segment[1].name: ",
        "segment[2].wells: expected wells as ROW/COLUMN",
        "segment[2].fusion: expected one of fa, voting, majority, staple, simple; got 'avg'",
        "cluster.adress: unknown key (did you mean 'address'?",
        "cluster.address: missing",
        "cluster.workers: only used for clusters started by the job",
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
        with Client(address, security=job.cluster.security(), timeout="30s") as client:
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
