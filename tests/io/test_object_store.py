"""Plates on a real S3 server (SeaweedFS on 127.0.0.1): the same results as on disk.

The workers of the local clusters started here read and write the store directly
(they inherit the standard AWS environment); no shared filesystem is involved.
"""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.cli import main
from structfree_dask.io import (
    StoreError,
    check_store,
    completed_timepoints,
    exists,
    open_labels,
    open_plate,
    remove_tree,
)

SIM = ["--rows", "1", "--cols", "2", "--timepoints", "2", "--size", "64", "--seed", "5"]
SEGMENT = ["--channels", "0", "--tile-size", "64", "--no-progress"]


def _labels(plate: str, name: str) -> dict[str, np.ndarray]:
    pl = open_plate(plate)
    return {info.path: np.asarray(open_labels(info, name).open_array(0)[:])
            for info in pl.fields()}


def _listing(url: str) -> list[str]:
    from structfree_dask.io._location import filesystem

    fs, path = filesystem(url)
    fs.invalidate_cache()
    return sorted(fs.find(path))


def test_a_plate_on_s3_gives_the_labels_it_gives_on_disk(s3_cluster, tmp_path, capsys):
    url, local = "s3://plates/same.zarr", str(tmp_path / "same.zarr")
    segment = ["segment", *SEGMENT, "--scheduler", s3_cluster.scheduler.address]
    remove_tree(url)
    for where in (url, local):
        assert main(["simulate", where, *SIM]) == 0
        assert main([*segment, where]) == 0
    capsys.readouterr()
    on_s3, on_disk = _labels(url, "cyto"), _labels(local, "cyto")
    assert on_s3.keys() == on_disk.keys() == {"A/1/0", "A/2/0"}
    for path in on_s3:
        assert on_s3[path].max() > 0
        np.testing.assert_array_equal(on_s3[path], on_disk[path])
    # completion records and pyramids live in the store
    for info in open_plate(url).fields():
        label = open_labels(info, "cyto")
        assert completed_timepoints(label) == {0, 1}
        assert len(label.level_paths) == len(info.levels)
    assert main(["info", url]) == 0
    assert "labels/cyto 2/2 timepoint(s) done" in capsys.readouterr().out
    # a rerun resumes (nothing to do); --overwrite deletes through the store's API
    assert main([*segment, url]) == 0
    assert "0 done, 4 skipped" in capsys.readouterr().out
    marker = "s3://plates/same.zarr/A/1/0/labels/cyto/stale-object"
    from structfree_dask.io._location import filesystem

    fs, path = filesystem(marker)
    fs.pipe_file(path, b"left from an earlier run")
    assert main([*segment, url, "--overwrite"]) == 0
    assert "4 done" in capsys.readouterr().out
    assert not exists(marker)
    for path, labels in _labels(url, "cyto").items():
        np.testing.assert_array_equal(labels, on_disk[path])
    assert main(["evaluate", url, "--pred", "cyto", "--gt", "gt_cyto"]) == 0
    assert "overall" in capsys.readouterr().out


def test_import_to_s3(s3_env, real_dev, capsys):
    s3_env("admin")
    url = "s3://plates/kc167.zarr"
    remove_tree(url)
    assert main(["import", str(real_dev / "Kc167"), url, "--channels", "1,0"]) == 0
    assert f"wrote {url}" in capsys.readouterr().out
    plate = open_plate(url)
    assert len(plate.field_paths) == 3
    assert all("gt_cyto" in info.labels for info in plate.fields())
    # a second import to the same URL is refused, the first kept
    assert main(["import", str(real_dev / "Kc167"), url]) == 2
    assert "already exists" in capsys.readouterr().err
    assert len(open_plate(url).field_paths) == 3


@pytest.fixture(scope="module")
def s3_plate(s3_server):
    """A small plate on the S3 server, written once for the bad-input tests."""
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, s3_server.env("admin")):
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        url = "s3://plates/bad-input.zarr"
        remove_tree(url)
        assert main(["simulate", url, "--size", "64"]) == 0
        listing = _listing(url)
        s3fs.S3FileSystem.clear_instance_cache()
    return url, listing


BAD = {
    "unreachable endpoint": ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"},
                             "{url}",
                             "cannot reach the store of {url}"),
    "wrong credentials": ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "{url}",
                          "refused the credentials"),
    "missing bucket": ({}, "s3://no-such-bucket/plate.zarr",
                       "the bucket 'no-such-bucket' does not exist"),
    "nothing there": ({}, "s3://plates/never-written.zarr", "nothing is there"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("command", [["info"], ["segment", "--channels", "0"],
                                     ["evaluate", "--pred", "cyto", "--gt", "gt_cyto"]])
def test_bad_store_is_one_line_before_any_work(case, command, s3_plate, s3_env, capsys):
    url, before = s3_plate
    overrides, target, expected = BAD[case]
    env = s3_env("admin", **overrides)
    target = target.format(url=url)
    assert main([command[0], target, *command[1:]]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected.format(url=url) in err and target in err
    assert env["AWS_SECRET_ACCESS_KEY"] not in err
    s3_env("admin")
    assert _listing(url) == before  # nothing written


def test_a_store_that_refuses_writes(s3_plate, s3_env, real_dev, capsys):
    url, before = s3_plate
    env = s3_env("reader")
    assert main(["info", url]) == 0  # reading is allowed
    capsys.readouterr()
    for argv in (["segment", url, "--channels", "0"],
                 ["simulate", "s3://plates/by-reader.zarr", "--size", "64"],
                 ["import", str(real_dev / "Kc167"), "s3://plates/by-reader.zarr"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: cannot write into s3://plates/") and \
            "refused the write" in err and "\n" not in err, err
        assert env["AWS_SECRET_ACCESS_KEY"] not in err
    s3_env("admin")
    assert _listing(url) == before
    assert not exists("s3://plates/by-reader.zarr")


def test_a_protocol_whose_package_is_missing(capsys):
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed here: gs:// would be tried for real")
    assert main(["info", "gs://bucket/plate.zarr"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot open gs://bucket/plate.zarr") and "gcsfs" in err
    # the URL is named without its user, password or query
    with pytest.raises(StoreError) as info:
        check_store("gs://user:hunter2@bucket/plate.zarr?token=abc")
    assert "hunter2" not in str(info.value) and "abc" not in str(info.value)
    assert "gs://bucket/plate.zarr" in str(info.value)


def test_cells_on_s3_equal_cells_on_disk(s3_cluster, tmp_path):
    """Link, measure and track a plate in the store: the tables of the same plate on disk."""
    import pandas as pd

    from structfree_dask.cells.plate_measure import measure_plate
    from structfree_dask.cells.plate_track import track_plate
    from structfree_dask.io import read_plate_dataset

    url, local = "s3://plates/cells.zarr", str(tmp_path / "cells.zarr")
    remove_tree(url)
    tables = {}
    for where in (url, local):
        assert main(["simulate", where, "--cell-line", "CL2", "--rows", "1", "--cols", "1",
                     "--timepoints", "3", "--size", "96", "--seed", "3"]) == 0
        assert measure_plate(where, labels="gt_cyto", nuclei="gt_nuclei", link_labels=True,
                             client=s3_cluster).ok
        assert track_plate(where, table="gt_cyto_features", client=s3_cluster).ok
        tables[where] = read_plate_dataset(where, "gt_cyto_features")
    assert len(tables[url]) > 0 and (tables[url]["track_id"] >= 1).all()
    pd.testing.assert_frame_equal(tables[url], tables[local])
    assert exists(f"{url}/A/1/0/tracks/gt_cyto_features")
    np.testing.assert_array_equal(_labels(url, "gt_cyto_nuclei")["A/1/0"],
                                  _labels(local, "gt_cyto_nuclei")["A/1/0"])


def test_workers_reopen_arrays_that_grew(s3_cluster, tmp_path, capsys):
    """The workers keep the arrays they opened on S3; after timepoints are appended (the
    driver's plan has a longer t axis) they open them again: the new timepoint's labels
    equal those on disk, and the earlier ones are untouched."""
    from structfree_dask.io import append_timepoints

    url, local = "s3://plates/grows.zarr", str(tmp_path / "grows.zarr")
    segment = ["segment", *SEGMENT, "--scheduler", s3_cluster.scheduler.address]
    remove_tree(url)
    for where in (url, local):
        assert main(["simulate", where, *SIM]) == 0
        assert main([*segment, where]) == 0  # the workers now hold the 2-timepoint arrays
    before = _labels(url, "cyto")
    for where in (url, local):
        for info in open_plate(where).fields():
            new = np.asarray(info.open_array(0)[1:2])[..., ::-1]  # another timepoint
            assert append_timepoints(info, new) == 3
        assert main([*segment, where]) == 0
        assert "2 done, 4 skipped" in capsys.readouterr().out
    on_s3, on_disk = _labels(url, "cyto"), _labels(local, "cyto")
    for path in on_s3:
        assert on_s3[path].shape[0] == 3 and on_s3[path][2].max() > 0
        np.testing.assert_array_equal(on_s3[path], on_disk[path])
        np.testing.assert_array_equal(on_s3[path][:2], before[path])
    for info in open_plate(url).fields():
        assert completed_timepoints(open_labels(info, "cyto")) == {0, 1, 2}


def test_a_group_and_a_chunk_cost_few_requests(s3_env, monkeypatch, tmp_path):
    """On S3 an image group of a known NGFF version opens with 2 requests (zarr's probing:
    8), a label array's metadata with 2, and a chunk is read with 1 (no HEAD first).

    Counted in s3fs, so the arrays go through s3fs here too (obstore's requests cannot be
    counted from Python)."""
    import zarr
    from s3fs.core import S3FileSystem

    from structfree_dask.io import S3_CLIENT_VARIABLE

    monkeypatch.setenv(S3_CLIENT_VARIABLE, "fsspec")

    from structfree_dask.io import (
        clear_array_cache,
        create_labels,
        finalize_labels,
        label_group_exists,
        store_options,
    )
    from structfree_dask.io._ngff import open_group_as

    s3_env("admin")
    url = "s3://plates/requests.zarr"
    remove_tree(url)
    assert main(["simulate", url, *SIM]) == 0
    info = open_plate(url).field("A/1/0")
    label = create_labels(info, "cyto")
    calls: list[tuple[str, str]] = []
    original = S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        calls.append((method, kwargs.get("Key") or kwargs.get("Prefix") or ""))
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(S3FileSystem, "_call_s3", counted)

    def requests(call) -> list[tuple[str, str]]:
        calls.clear()
        call()
        return list(calls)

    assert len(requests(lambda: zarr.open_group(store=url, path=info.path, mode="r"))) == 8
    group = requests(lambda: open_group_as(url, info.path, "r", info.ngff_version))
    assert [m for m, _ in group] == ["get_object", "get_object"], group
    array = requests(lambda: zarr.open_array(store=url, path=f"{label.path}/0", mode="r",
                                             zarr_format=2, **store_options(url)))
    assert [m for m, _ in array] == ["get_object", "get_object"], array
    opened = info.open_array(0)
    chunk = requests(lambda: np.asarray(opened[0, 0, :8, :8]))
    assert [m for m, _ in chunk] == ["get_object"], chunk
    # a label image's metadata is made in memory and stored file by file: no probing of
    # every parent group (zarr's own creation: ~50 requests per array)
    made = requests(lambda: create_labels(info, "more"))
    assert not [c for c in made if c[0] in ("head_object", "list_objects_v2")], made
    assert [m for m, _ in made].count("put_object") == 4, made  # group and one level
    assert len(made) <= 9, made
    # its NGFF metadata: the two groups opened directly, two writes
    more = open_labels(info, "more")
    finalized = requests(lambda: finalize_labels(more))
    assert [m for m, _ in finalized].count("get_object") == 4, finalized
    assert len(finalized) == 8, finalized
    # whether a label image exists: one group, opened as the plate's format
    assert len(requests(lambda: label_group_exists(info, "none"))) == 2
    # an image array (once per worker process): its metadata only, no group
    clear_array_cache()
    level = requests(lambda: info.open_array(0))
    assert [m for m, _ in level] == ["get_object", "get_object"], level

