"""``precision: auto`` resolved on the workers (engine._precision), on real multi-process
LocalClusters, one of them with workers that resolve ``auto`` otherwise than the driver."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time

import pytest

from structfree_dask.backbones import pick_device, resolve_precision
from structfree_dask.cli import main
from structfree_dask.config import SegmentationConfig
from structfree_dask.engine import (
    Target,
    agreed_precision,
    cluster_precision,
    segment,
    segment_many,
    validate,
)
from structfree_dask.io import LabelExistsError, label_record, open_labels, open_plate

CFG = SegmentationConfig(channels=(0, 1), tile_size=160, halo=48)


def test_workers_that_agree_give_their_precision_and_others_fp32(caplog):
    assert agreed_precision({"tcp://a:1": "fp16", "tcp://b:1": "fp16"}) == "fp16"
    with caplog.at_level(logging.WARNING, logger="structfree_dask.engine"):
        assert agreed_precision({"tcp://a:1": "bf16", "tcp://b:1": "fp16",
                                 "tcp://c:1": "fp16"}) == "fp32"
    assert "the workers differ (bf16 on 1 worker(s), fp16 on 2 worker(s))" in caplog.text
    assert "--precision" in caplog.text
    with pytest.raises(ValueError, match="no worker's precision"):
        agreed_precision({})


def test_a_cluster_without_workers_is_waited_for(caplog, monkeypatch, tmp_path, make_mosaic,
                                                 write_plate):
    from distributed import Client, LocalCluster

    monkeypatch.setattr("structfree_dask.engine._precision.QUIET_WAIT", 0.5)
    plate = str(write_plate(tmp_path / "p.zarr", [make_mosaic(96, seed=4)]))
    with LocalCluster(n_workers=0, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        later = threading.Timer(2.0, cluster.scale, args=(1,))  # a queued job that starts
        later.start()
        try:
            with caplog.at_level(logging.WARNING, logger="structfree_dask.engine"):
                # bad input is said at once, not after the wait for a worker
                with pytest.raises(KeyError, match="DAPI"):
                    segment(plate, SegmentationConfig(channels=("DAPI",)), client=client)
                assert "no worker after" not in caplog.text
                got = cluster_precision(client)
        finally:
            later.cancel()
        assert len(client.nthreads()) == 1
    assert got == resolve_precision("auto", pick_device())  # its worker runs here
    assert "no worker after 0.5 s; waiting for the first one" in caplog.text


def test_ctrl_c_while_waiting_for_a_first_worker(tmp_path, make_mosaic, write_plate,
                                                 installed_command):
    from distributed import LocalCluster

    plate = write_plate(tmp_path / "p.zarr", [make_mosaic(96, seed=3)])
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:  # workers never come
        proc = subprocess.Popen(
            [*installed_command, "segment", str(plate), "--channels", "0",
             "--scheduler", cluster.scheduler_address, "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        seen = [proc.stderr.readline()]
        assert seen[0].startswith("dashboard: "), seen
        time.sleep(1.5)  # in the wait for a worker
        assert proc.poll() is None, seen
        proc.send_signal(signal.SIGINT)
        err = seen[0] + proc.stderr.read()
        assert proc.wait(timeout=60) == 130, err
    assert err.strip().splitlines()[-1].startswith(
        "interrupted: no unit of this run finished yet"), err
    assert "Traceback" not in err, err
    assert not open_plate(plate).field("A/1/0").labels  # nothing written


@pytest.fixture(scope="module")
def fp32_workers():
    """Two workers whose oneDNN is capped below bf16: ``auto`` is fp32 there."""
    from structfree_dask.runtime.cluster import local_client

    client = local_client(n_workers=2, threads_per_worker=1,
                          env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    yield client
    cluster = client.cluster
    client.close()
    cluster.close()


@pytest.fixture
def bf16_driver(monkeypatch):
    """This process resolves ``auto`` to bf16 (as on a CPU with AMX), whatever its CPU."""
    monkeypatch.setattr("structfree_dask.backbones.cellpose.native_bf16", lambda *a, **k: True)
    assert resolve_precision("auto", pick_device()) in ("bf16", "fp16")


def _precision(plate, name: str = "cyto") -> str:
    return label_record(open_labels(open_plate(plate).field("A/1/0"), name))["precision"]


def test_auto_is_the_workers_precision_recorded_and_resumed(
        tmp_path, make_mosaic, write_plate, fp32_workers, bf16_driver, caplog):
    assert cluster_precision(fp32_workers) == "fp32"
    plate = str(write_plate(tmp_path / "p.zarr", [make_mosaic(200, seed=1)]))
    first = segment(plate, CFG, client=fp32_workers)
    assert first.ok and len(first.done) == 1
    assert _precision(plate) == "fp32"  # the workers', not this machine's bf16
    # resumed at the workers' precision: nothing refused, nothing redone
    again = segment(plate, CFG, client=fp32_workers)
    assert (len(again.done), len(again.skipped)) == (0, 1)
    # a precision named is kept as named, and compared with the record
    with pytest.raises(LabelExistsError, match=r"precision: 'fp32' vs 'bf16'"):
        segment(plate, CFG.replace(precision="bf16"), client=fp32_workers)
    # checked on this machine alone, auto is bf16 here: the record differs
    with pytest.raises(LabelExistsError, match=r"precision: 'fp32' vs 'bf16'"):
        validate(plate, CFG)
    # checked with auto left to the workers: the plan is made again at theirs as the
    # run starts, then compared with the record
    plans = validate(plate, CFG, auto="auto")
    assert plans[0].record["precision"] == "auto"
    with caplog.at_level(logging.INFO, logger="structfree_dask.engine"):
        (res,) = segment_many([Target(plate, CFG.replace(name="cyto"), None, None, plans)],
                              client=fp32_workers)
    assert res.ok and (len(res.done), len(res.skipped)) == (0, 1)
    assert "labels/cyto: planned again at precision fp32 (checked at auto before)" \
        in caplog.text
    caplog.clear()
    # a label image made anew has nothing to compare: its plan takes the precision as it is
    with caplog.at_level(logging.INFO, logger="structfree_dask.engine"):
        (made,) = segment_many(
            [Target(plate, CFG.replace(name="other"), None, None,
                    validate(plate, CFG.replace(name="other"), auto="auto"))],
            client=fp32_workers)
    assert made.ok and len(made.done) == 1 and _precision(plate, "other") == "fp32"
    assert "planned again" not in caplog.text


def test_cli_resumes_at_the_precision_of_workers_elsewhere(
        tmp_path, make_mosaic, write_plate, fp32_workers, bf16_driver, capsys):
    plate = str(write_plate(tmp_path / "p.zarr", [make_mosaic(200, seed=2)]))
    args = ["segment", plate, "--channels", "0,1", "--tile-size", "160", "--halo", "48",
            "--scheduler", fp32_workers.scheduler.address, "--no-progress"]
    assert main(args) == 0
    assert "1 done, 0 skipped" in capsys.readouterr().out
    assert _precision(plate) == "fp32"
    assert main(args) == 0  # not refused by this machine's bf16 before the workers answer
    assert "0 done, 1 skipped" in capsys.readouterr().out
    assert main([*args, "--precision", "bf16"]) == 2
    assert "precision: 'fp32' vs 'bf16'" in capsys.readouterr().err
