"""A job file over plates in an object store (a real S3 server on 127.0.0.1)."""

from __future__ import annotations

import json

import yaml

from structfree_dask.cli import main
from structfree_dask.io import (
    completed_timepoints,
    filesystem,
    open_labels,
    open_plate,
    remove_tree,
)


def test_a_job_over_plates_in_a_bucket(s3_cluster, tmp_path, capsys):
    plates = [f"s3://plates/job/p{i}.zarr" for i in range(2)]
    remove_tree("s3://plates/job")
    for i, url in enumerate(plates):
        assert main(["simulate", url, "--size", "64", "--seed", str(i)]) == 0
    capsys.readouterr()
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "version": 1, "plates": ["s3://plates/job/*.zarr"],
        "segment": [{"organelle": "cyto", "channels": [0], "tile_size": 64}],
        "cluster": {"kind": "scheduler", "address": s3_cluster.scheduler.address},
        "records": "s3://plates/job/runs"}))
    assert main(["run", str(job)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 2 done, 0 skipped, 0 failed")
    for url in plates:
        [info] = open_plate(url).fields()
        assert completed_timepoints(open_labels(info, "cyto")) == {0}
    fs, runs = filesystem("s3://plates/job/runs")
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(runs, detail=False))
    assert [n.rsplit(".", 1)[1] for n in names] == ["html", "json"]  # report and record
    record = json.loads(fs.cat_file(f"{runs}/{names[1]}"))
    assert record["status"] == "ok" and record["plates"] == plates
    assert record["record"] == f"s3://plates/job/runs/{names[1]}"
    # a second run finds everything done
    assert main(["run", str(job)]) == 0
    assert capsys.readouterr().out.startswith("ok: 0 done, 2 skipped")


def test_a_job_file_may_not_carry_credentials(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "version": 1, "plates": ["s3://KEY:SECRET@plates/p.zarr"],
        "segment": [{"organelle": "cyto", "channels": [0]}]}))
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert "plates[0]: expected a URL without credentials" in err and "SECRET" not in err
