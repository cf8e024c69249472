"""The promises of ``segment`` kept by link, measure, track and report.

Each refusal: the command line exits with status 2 and one ``error: ...`` line; the
Python API raises with the same message; nothing was written, inside the plate or
outside it (where a planted link points). Each partial ``--overwrite`` redoes the
selected timepoints only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from structfree_dask.cells.plate_measure import link_plate, measure_plate
from structfree_dask.cells.plate_track import track_plate
from structfree_dask.cells.report import write_report
from structfree_dask.cli import main
from structfree_dask.io import (
    completed_timepoints,
    label_record,
    open_labels,
    open_plate,
    read_feature_table,
)
from structfree_dask.simulate import simulate_plate

from .test_bad_input import read_only, snapshot

FIELD = ("A", "1", "0")


@pytest.fixture(scope="module")
def measured(tmp_path_factory, cluster_client) -> Path:
    """The issue's plate: 1 well, 2 timepoints, measured (gt_cyto with gt_nuclei)."""
    path = tmp_path_factory.mktemp("measured") / "p.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=1, timepoints=2, size=96, seed=5)
    result = measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei",
                           client=cluster_client)
    assert result.ok and len(result.done) == 2
    return path


@pytest.fixture()
def plate(measured, tmp_path) -> Path:
    path = tmp_path / "p.zarr"
    shutil.copytree(measured, path, symlinks=True)
    return path


def _cli(plate: Path, client, *args: str) -> list[str]:
    return [args[0], str(plate), *args[1:], "--no-progress", "--scheduler",
            client.scheduler.address]


def _refused(argv: list[str], capsys) -> str:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("warning: ")]  # (advice, e.g. --with-nuclei's model)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _link_out(target: Path, tmp: Path, name: str = "outside") -> Path:
    """Move ``target`` (if any) outside the plate and leave a link to it in its place."""
    outside = tmp / name
    if target.exists():
        shutil.move(target, outside)
    else:
        outside.mkdir(parents=True)
    os.symlink(outside, target)
    return outside


# ------------------------------------------------------------- writes outside the plate


@pytest.mark.parametrize("where", ["measurements", "measurements/gt_cyto_features",
                                   "A/1/0/tables/gt_cyto_features"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_measure_never_writes_through_a_link(where, overwrite, plate, tmp_path, capsys,
                                             cluster_client):
    _link_out(plate / where, tmp_path)
    before = snapshot(tmp_path)
    extra = ["--overwrite", "--timepoints", "1"] if overwrite else []
    line = _refused(_cli(plate, cluster_client, "measure", "--labels", "gt_cyto", "--nuclei",
                         "gt_nuclei", *extra), capsys)
    assert "is a symbolic link" in line
    assert snapshot(tmp_path) == before
    with pytest.raises(PermissionError) as raised:
        measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei", overwrite=overwrite,
                      timepoints=[1] if overwrite else None, client=cluster_client)
    assert str(raised.value) in line
    assert snapshot(tmp_path) == before


def test_track_never_writes_through_a_link(plate, tmp_path, capsys, cluster_client):
    _link_out(plate.joinpath(*FIELD, "tracks"), tmp_path)
    before = snapshot(tmp_path)
    line = _refused(_cli(plate, cluster_client, "track", "--table", "gt_cyto_features"), capsys)
    assert "is a symbolic link" in line
    with pytest.raises(PermissionError) as raised:
        track_plate(str(plate), table="gt_cyto_features", client=cluster_client)
    assert str(raised.value) in line
    assert snapshot(tmp_path) == before


def test_report_replaces_a_link_instead_of_writing_through_it(plate, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    os.symlink(plate.joinpath(*FIELD, ".zattrs"), out / "report.html")
    before = snapshot(plate)
    assert main(["report", str(plate), "--table", "gt_cyto_features",
                 "--output", str(out)]) == 0
    assert snapshot(plate) == before  # the plate's metadata is untouched
    page = out / "report.html"
    assert not page.is_symlink() and page.read_text().startswith("<!DOCTYPE html>")
    os.unlink(page)
    os.symlink(plate.joinpath(*FIELD, ".zattrs"), page)
    assert write_report(str(plate), table="gt_cyto_features", output=out) == page  # Python
    assert snapshot(plate) == before and not page.is_symlink()
    assert open_plate(plate).field("A/1/0").n_timepoints == 2


@pytest.mark.parametrize(("output", "fragment"), [
    ("", "expected a folder path; got ''"),
    ("{tmp}/afile", "is a file, not a folder"),
    ("{tmp}/afile/deeper", "is a file, not a folder"),
    ("{plate}/inside", "is inside the plate"),
], ids=["empty", "a-file", "below-a-file", "inside-the-plate"])
def test_report_refuses_bad_folders(output, fragment, plate, tmp_path, capsys,
                                    monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    output = output.format(tmp=tmp_path, plate=plate)
    before = snapshot(tmp_path)
    line = _refused(["report", str(plate), "--table", "gt_cyto_features", "--output", output],
                    capsys)
    assert fragment in line
    with pytest.raises((ValueError, OSError)) as raised:
        write_report(str(plate), table="gt_cyto_features", output=output)
    assert str(raised.value) in line
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------- partial --overwrite


def _parts(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_partial_overwrite_of_a_measurement_keeps_the_other_timepoints(plate, capsys,
                                                                     cluster_client):
    field_parts = plate.joinpath(*FIELD, "tables", "gt_cyto_features", "table.parquet")
    plate_parts = plate / "measurements" / "gt_cyto_features"
    before_field, before_plate = _parts(field_parts), _parts(plate_parts)
    rows = read_feature_table(open_plate(plate).field("A/1/0"), "gt_cyto_features")
    assert main(_cli(plate, cluster_client, "measure", "--labels", "gt_cyto", "--nuclei",
                     "gt_nuclei", "--overwrite", "--timepoints", "1")) == 0
    assert "1 done, 0 skipped" in capsys.readouterr().out
    after_field, after_plate = _parts(field_parts), _parts(plate_parts)
    assert after_field.keys() == before_field.keys() and after_plate.keys() == before_plate.keys()
    assert after_field["t00000.parquet"] == before_field["t00000.parquet"]  # not touched
    assert after_plate["A-1-0-t00000.parquet"] == before_plate["A-1-0-t00000.parquet"]
    again = read_feature_table(open_plate(plate).field("A/1/0"), "gt_cyto_features")
    assert again.equals(rows)  # t=1 redone, to the same rows


def test_partial_overwrite_of_a_table_not_measured_here_is_refused(plate, capsys,
                                                                   cluster_client):
    before = snapshot(plate)
    line = _refused(_cli(plate, cluster_client, "measure", "--labels", "gt_cyto", "--table",
                         "gt_truth", "--overwrite", "--timepoints", "1"), capsys)
    assert "was not written by a measurement run" in line and "[0]" in line
    with pytest.raises(FileExistsError) as raised:
        measure_plate(str(plate), labels="gt_cyto", table="gt_truth", overwrite=True,
                      timepoints=[1], client=cluster_client)
    assert str(raised.value) in line
    assert snapshot(plate) == before


def test_partial_overwrite_of_links_keeps_the_other_timepoints(plate, capsys,
                                                              cluster_client):
    assert link_plate(str(plate), nuclei="gt_nuclei", cells="gt_cyto",
                      client=cluster_client).ok
    image = open_plate(plate).field("A/1/0")
    first = {n: open_labels(image, n).read() for n in ("gt_cyto_nuclei", "gt_cyto_cytoplasm")}
    assert all(a[0].max() > 0 for a in first.values())
    assert main(_cli(plate, cluster_client, "link", "--nuclei", "gt_nuclei", "--cells",
                     "gt_cyto", "--overwrite", "--timepoints", "1")) == 0
    for name, data in first.items():
        label = open_labels(open_plate(plate).field("A/1/0"), name)
        np.testing.assert_array_equal(label.read(), data)  # t=0 kept, t=1 redone the same
        assert completed_timepoints(label) == {0, 1}
    # linking from other nuclei cannot redo part of it
    line = _refused(_cli(plate, cluster_client, "link", "--nuclei", "gt_cyto_nuclei",
                         "--cells", "gt_cyto", "--overwrite", "--timepoints", "1"), capsys)
    assert "cannot mix settings" in line


# ------------------------------------------------------------- tracking


def test_tracked_labels_after_tracking_resume_and_settings(plate, capsys, cluster_client):
    image = open_plate(plate).field("A/1/0")
    assert track_plate(str(plate), table="gt_cyto_features", client=cluster_client).ok
    # tracked labels asked for later: written for every tracked timepoint
    again = track_plate(str(plate), table="gt_cyto_features", tracked_labels=True,
                        client=cluster_client)
    assert again.ok and again.tracks["A/1/0"][2] == []  # nothing tracked anew
    label = open_labels(image, "gt_cyto_tracked")
    assert completed_timepoints(label) == {0, 1}
    tracked = label.read()
    assert all(tracked[t].max() > 0 for t in (0, 1))
    # an interrupted run (labels created, nothing recorded) resumes with the same command
    zarr.open_group(str(plate.joinpath(*FIELD, "labels", "gt_cyto_tracked")),
                    mode="r+").attrs["structfree_dask"] = {
        **label_record(label), "done": []}
    assert main(_cli(plate, cluster_client, "track", "--table", "gt_cyto_features",
                     "--tracked-labels")) == 0
    label = open_labels(open_plate(plate).field("A/1/0"), "gt_cyto_tracked")
    assert completed_timepoints(label) == {0, 1}
    np.testing.assert_array_equal(label.read(), tracked)
    # another max_distance: refused without --overwrite, tracked afresh with it
    line = _refused(_cli(plate, cluster_client, "track", "--table", "gt_cyto_features",
                         "--max-distance", "0.5"), capsys)
    assert "tracked with other settings" in line
    with pytest.raises(FileExistsError) as raised:
        track_plate(str(plate), table="gt_cyto_features", max_distance=0.5,
                    client=cluster_client)
    assert str(raised.value) in line
    assert main(_cli(plate, cluster_client, "track", "--table", "gt_cyto_features",
                     "--max-distance", "0.5", "--overwrite")) == 0
    rows = read_feature_table(open_plate(plate).field("A/1/0"), "gt_cyto_features")
    # cells move more than half a pixel: almost every track is one timepoint long now
    assert rows["track_id"].nunique() > len(rows) // 2 + 1


@pytest.mark.parametrize("value", ["1e9", "0.0001", "nan", "-1"])
def test_track_max_distance_has_the_job_files_bounds(value, plate, capsys, cluster_client):
    before = snapshot(plate)
    line = _refused(_cli(plate, cluster_client, "track", "--table", "gt_cyto_features",
                         "--max-distance", value), capsys)
    assert "max_distance: expected" in line and "between 0.001 and 100000 px" in line
    with pytest.raises(ValueError) as raised:
        track_plate(str(plate), table="gt_cyto_features", max_distance=float(value),
                    client=cluster_client)
    assert str(raised.value) in line
    assert snapshot(plate) == before


def test_tracked_labels_grow_with_appended_timepoints(tmp_path, cluster_client):
    from structfree_dask.io import append_timepoints, extend_timepoints, write_label_region

    full = tmp_path / "full.zarr"
    simulate_plate(full, cell_line="CL1", rows=1, cols=1, timepoints=3, size=96, seed=2)
    whole = open_plate(full).field("A/1/0")
    gt = open_labels(whole, "gt_cyto")
    # the same plate with its first two timepoints only: a time-lapse that will grow
    short = tmp_path / "short.zarr"
    simulate_plate(short, cell_line="CL1", rows=1, cols=1, timepoints=2, size=96, seed=2)
    assert measure_plate(str(short), labels="gt_cyto", client=cluster_client).ok
    assert track_plate(str(short), table="gt_cyto_features", tracked_labels=True,
                       client=cluster_client).ok
    image = open_plate(short).field("A/1/0")
    third = np.asarray(whole.open_array(0)[2:3])
    append_timepoints(image, third)
    image = open_plate(short).field("A/1/0")
    grown = extend_timepoints(open_labels(image, "gt_cyto"))
    for level in range(len(grown.shapes)):
        write_label_region(grown, {"t": slice(2, 3)},
                           np.asarray(gt.open_array(level, mode="r")[2:3]), level=level)
    assert measure_plate(str(short), labels="gt_cyto", client=cluster_client).ok
    result = track_plate(str(short), table="gt_cyto_features", tracked_labels=True,
                         client=cluster_client)
    assert result.ok and result.tracks["A/1/0"][2] == [2]
    tracked = open_labels(open_plate(short).field("A/1/0"), "gt_cyto_tracked")
    assert tracked.shapes[0][0] == 3 and completed_timepoints(tracked) == {0, 1, 2}
    assert tracked.read()[2].max() > 0


# ------------------------------------------------------------- silent acceptance


@pytest.mark.parametrize(("args", "kwargs", "fragment"), [
    (["measure", "--labels", "gt_cyto", "--channels", ""],
     {"labels": "gt_cyto", "channels": []}, "expected at least one channel"),
    (["measure", "--labels", "gt_cyto", "--channels", "mito,mito"],
     {"labels": "gt_cyto", "channels": ["mito", "mito"]}, "more than once"),
    (["measure", "--labels", "gt_cyto", "--channels", "0,cyto-reporter"],
     {"labels": "gt_cyto", "channels": [0, "cyto-reporter"]}, "the same channel"),
    (["measure", "--labels", "gt_cyto", "--timepoints", "1:0"],
     {"labels": "gt_cyto", "timepoints": slice(1, 0)}, "select none of the 2"),
    (["measure", "--labels", "gt_cyto", "--nuclei", "gt_cyto"],
     {"labels": "gt_cyto", "nuclei": "gt_cyto"}, "the same label image"),
    (["link", "--cells", "gt_cyto", "--nuclei", "gt_cyto"],
     {"cells": "gt_cyto", "nuclei": "gt_cyto"}, "the same label image"),
], ids=["no-channels", "duplicate-channels", "same-channel-twice", "empty-timepoints",
        "measure-nuclei-are-the-cells", "link-nuclei-are-the-cells"])
def test_cells_commands_refuse_what_they_accepted_silently(args, kwargs, fragment, plate,
                                                           capsys, cluster_client):
    before = snapshot(plate)
    line = _refused(_cli(plate, cluster_client, *args), capsys)
    assert fragment in line
    call = measure_plate if args[0] == "measure" else link_plate
    with pytest.raises(ValueError) as raised:
        call(str(plate), client=cluster_client, **kwargs)
    assert str(raised.value) in line
    assert snapshot(plate) == before


# ------------------------------------------------------------- memory by objects


def test_measure_memory_follows_the_objects_not_their_ids(plate, cluster_client):
    """Cell IDs near 300 000 000 measure like IDs 1..n (scikit-image sizes by the ID)."""
    image = open_plate(plate).field("A/1/0")
    small = read_feature_table(image, "gt_cyto_features")
    root = zarr.open_group(str(plate.joinpath(*FIELD, "labels", "gt_cyto")), mode="r+")
    for key in root.array_keys():
        data = root[key][...]
        root[key][...] = np.where(data > 0, data + 300_000_000, 0).astype(data.dtype)
    result = measure_plate(str(plate), labels="gt_cyto", table="big", client=cluster_client)
    assert result.ok, result.failed
    big = read_feature_table(image, "big")
    assert (big["label"] - 300_000_000).tolist() == small["label"].tolist()
    assert big["area_px"].tolist() == small["area_px"].tolist()


# ------------------------------------------------------------- checks before work


def test_segment_with_nuclei_checks_the_linking_before_segmenting(plate, capsys,
                                                                  cluster_client):
    from structfree_dask.io import create_labels, finalize_labels

    image = open_plate(plate).field("A/1/0")
    finalize_labels(create_labels(image, "cyto_nuclei", record={"made_by": "someone else"}))
    before = snapshot(plate)
    line = _refused(_cli(plate, cluster_client, "segment", "--channels", "0",
                         "--with-nuclei", "1", "--diameter", "20", "--tile-size", "64"),
                    capsys)
    assert "'cyto_nuclei'" in line and "was not written by linking" in line
    from structfree_dask.workflow import CellsSettings, check_cells_steps

    with pytest.raises(FileExistsError) as raised:  # the same check from Python
        check_cells_steps(str(plate), CellsSettings(cells="cyto", nuclei="nuclei", link=True),
                          produced=["cyto", "nuclei"])
    assert str(raised.value) in line
    assert snapshot(plate) == before  # nothing segmented


# ------------------------------------------------------------- import, simulate, zoo


def _import_folder(tmp: Path, case: str) -> Path:
    import imageio.v3 as iio

    folder = tmp / "fields"
    folder.mkdir()
    rng = np.random.default_rng(0)
    two = rng.integers(0, 255, (2, 64, 64), dtype=np.uint8)
    iio.imwrite(folder / "A01.tif", two)
    iio.imwrite(folder / "A01_masks.png", np.zeros((64, 64), np.uint8))
    if case == "channels":
        iio.imwrite(folder / "A02.tif", rng.integers(0, 255, (3, 64, 64), dtype=np.uint8))
    elif case == "mask-shape":
        iio.imwrite(folder / "A02.tif", two)
        iio.imwrite(folder / "A02_masks.png", np.zeros((32, 64), np.uint8))
    else:
        iio.imwrite(folder / "A02.tif", two)
    return folder


@pytest.mark.parametrize(("case", "args", "fragment"), [
    ("channels", [], "A02.tif has 3 channels"),
    ("mask-shape", [], "A02_masks.png has shape (32, 64)"),
    ("ok", ["--mask-label", ".zattrs"], "must not start with '.'"),
    ("ok", ["--pixel-size", "0"], "pixel size: expected"),
    ("ok", ["--pixel-size", "nan"], "pixel size: expected"),
    ("ok", ["--pixel-size", "1e-300"], "pixel size: expected"),
    ("ok", ["--channels", "0,0"], "listed more than once"),
    ("ok", ["--channel-names", "a,a"], "expected distinct"),
], ids=["later-file-other-channels", "later-mask-other-shape", "bad-mask-name",
        "pixel-size-zero", "pixel-size-nan", "pixel-size-tiny", "duplicate-channels",
        "duplicate-names"])
def test_import_checks_every_file_before_writing(case, args, fragment, tmp_path, capsys):
    from structfree_dask.io import import_folder

    folder = _import_folder(tmp_path, case)
    out = tmp_path / "plates" / "p.zarr"
    out.parent.mkdir()
    before = snapshot(tmp_path)
    line = _refused(["import", str(folder), str(out), *args], capsys)
    assert fragment in line
    assert snapshot(tmp_path) == before  # no plate, no hidden partial folder
    kwargs = {"--mask-label": ("mask_label", str), "--pixel-size": ("pixel_size_um", float),
              "--channels": ("channels", lambda v: [int(x) for x in v.split(",")]),
              "--channel-names": ("channel_names", lambda v: v.split(","))}
    given = {kwargs[k][0]: kwargs[k][1](v) for k, v in zip(args[::2], args[1::2], strict=True)}
    with pytest.raises(ValueError) as raised:
        import_folder(folder, out, **given)
    assert str(raised.value) in line
    assert snapshot(tmp_path) == before


def test_import_failing_while_writing_leaves_nothing(tmp_path, monkeypatch):
    from structfree_dask.io import _importer, import_folder

    folder = _import_folder(tmp_path, "ok")
    out = tmp_path / "p.zarr"
    calls = []

    def broken(path):
        calls.append(path)
        if len(calls) > 2:  # the second field's image: a disk error while writing
            raise OSError(28, "No space left on device")
        return real(path)

    real = _importer._read
    monkeypatch.setattr(_importer, "_read", broken)
    before = snapshot(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        import_folder(folder, out)
    assert snapshot(tmp_path) == before


def test_simulate_from_shapes_refuses_to_write_into_its_source(plate, tmp_path, capsys):
    from structfree_dask.simulate import simulate_plate_from_shapes

    before = snapshot(plate)
    line = _refused(["simulate", str(plate / "inner.zarr"), "--shapes-from", str(plate)],
                    capsys)
    assert "overlap" in line
    with pytest.raises(ValueError) as raised:
        simulate_plate_from_shapes(plate / "inner.zarr", plate)
    assert str(raised.value) in line
    line = _refused(["simulate", str(tmp_path / "n.zarr"), "--shapes-from", str(plate),
                     "--nuclei", "gt_cyto"], capsys)
    assert "the cells' own" in line
    with pytest.raises(ValueError) as raised:
        simulate_plate_from_shapes(tmp_path / "n.zarr", plate, nuclei="gt_cyto")
    assert str(raised.value) in line
    assert snapshot(plate) == before and not (tmp_path / "n.zarr").exists()


def test_zoo_list_leaves_the_folder_as_it_is(tmp_path, capsys):
    from structfree_dask.zoo import Zoo

    folder = tmp_path / "zoo"
    folder.mkdir()
    assert main(["zoo", "list", str(folder)]) == 0
    assert "no models in the zoo" in capsys.readouterr().out
    assert Zoo(folder).cards() == []
    assert list(folder.iterdir()) == []


def test_report_into_a_read_only_folder_is_refused(plate, tmp_path, capsys):
    out = tmp_path / "reports"
    out.mkdir()
    with read_only(out):
        line = _refused(["report", str(plate), "--table", "gt_cyto_features", "--output",
                         str(out / "r")], capsys)
        assert "is not writable" in line and "Errno" not in line
        with pytest.raises(PermissionError) as raised:
            write_report(str(plate), table="gt_cyto_features", output=out / "r")
        assert str(raised.value) in line
    assert list(out.iterdir()) == []


def test_a_damaged_table_part_is_measured_again(plate, capsys, cluster_client):
    part = plate.joinpath(*FIELD, "tables", "gt_cyto_features", "table.parquet",
                          "t00001.parquet")
    rows = read_feature_table(open_plate(plate).field("A/1/0"), "gt_cyto_features")
    part.write_bytes(part.read_bytes()[:100])  # cut short (a full disk, a bad copy)
    assert main(_cli(plate, cluster_client, "measure", "--labels", "gt_cyto", "--nuclei",
                     "gt_nuclei")) == 0
    assert "1 done, 1 skipped" in capsys.readouterr().out
    again = read_feature_table(open_plate(plate).field("A/1/0"), "gt_cyto_features")
    assert again.equals(rows)


# ------------------------------------------------------------- Dask's own configuration


@pytest.mark.parametrize(("env", "fragment"), [
    ({"DASK_CONFIG": "{tmp}/bad.yaml"}, "is malformed"),
    ({"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "abc"}, "Dask configuration: "),
], ids=["malformed-config-file", "bad-environment-variable"])
def test_bad_dask_configuration_is_one_line(env, fragment, measured, tmp_path, cli_env):
    import subprocess
    import sys

    (tmp_path / "bad.yaml").write_text("a: [\n")
    plate = tmp_path / "p.zarr"
    shutil.copytree(measured, plate)
    before = snapshot(plate)
    run_env = {**cli_env, **{k: v.format(tmp=tmp_path) for k, v in env.items()}}
    proc = subprocess.run([sys.executable, "-m", "structfree_dask", "segment", str(plate),
                           "--channels", "0", "--diameter", "20", "--workers", "1",
                           "--no-progress"], capture_output=True, text=True, env=run_env,
                          timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert snapshot(plate) == before


# ------------------------------------------------------------- a full disk


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MiB filesystem of its own (tmpfs; needs root, as CI has)."""
    import subprocess

    where = tmp_path / "disk"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(disk: Path, leave_kib: int = 8) -> Path:
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.truncate(0)
        fh.write(b"\0" * max(0, free - leave_kib * 1024))
    return filler


def test_a_full_disk_leaves_nothing_half_made_and_a_rerun_recovers(measured, small_disk,
                                                                    capsys, cluster_client):
    plate = small_disk / "p.zarr"
    shutil.copytree(measured, plate)
    filler = _fill(small_disk)
    argv = _cli(plate, cluster_client, "segment", "--channels", "0", "--diameter", "20",
                "--tile-size", "64")
    capsys.readouterr()
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert err and "No space left on device" in err[-1]
    assert "BaseException" not in err[-1]
    measure = _cli(plate, cluster_client, "measure", "--labels", "gt_cyto", "--table", "full")
    assert main(measure) in (1, 2)
    parts = [p for p in plate.rglob("*.parquet") if p.is_file()]
    import pyarrow.parquet as pq

    for part in parts:  # whatever was published reads whole
        pq.read_metadata(part)
    filler.unlink()
    assert main(argv) == 0  # the same command, once there is space again
    assert main(measure) == 0
    image = open_plate(plate).field("A/1/0")
    assert completed_timepoints(open_labels(image, "cyto")) == {0, 1}
    assert len(read_feature_table(image, "full")) > 0


# ------------------------------------------------------------- messages


def test_a_truncated_source_chunk_is_named(plate, capsys, cluster_client):
    chunk = plate.joinpath(*FIELD, "0", "0", "2", "0", "0")  # t=0, channel 2 (ER)
    assert chunk.is_file()
    chunk.write_bytes(chunk.read_bytes()[:50])
    assert main(_cli(plate, cluster_client, "segment", "--channels", "0,2", "--diameter",
                     "20", "--tile-size", "64")) == 1
    err = capsys.readouterr().err
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and "t=0" in failed[0]
    assert "channel 2 (ER)" in failed[0] and "chunk (0, 2, 0, 0)" in failed[0], failed


@pytest.mark.parametrize(("text", "fragment"), [
    ('{"model_id": NaN}', "NaN is not a JSON number"),
    ('{"model_id": Infinity}', "Infinity is not a JSON number"),
    ("[" * 200_000, "nested too deeply"),
], ids=["nan", "infinity", "deep"])
def test_a_bad_model_card_is_named(text, fragment, tmp_path, capsys):
    card = tmp_path / "zoo" / "models" / "m1" / "card.json"
    card.parent.mkdir(parents=True)
    card.write_text(text)
    (card.parent / "weights.pth").write_bytes(b"x")
    before = snapshot(tmp_path)
    line = _refused(["zoo", "list", str(tmp_path / "zoo")], capsys)
    assert fragment in line and "card.json" in line
    from structfree_dask.zoo import CardError, Zoo

    with pytest.raises(CardError) as raised:
        Zoo(tmp_path / "zoo").cards()
    assert str(raised.value) in line
    assert snapshot(tmp_path) == before


def test_an_incomplete_label_image_is_recreated_by_overwrite(plate, capsys, cluster_client):
    """What an interrupted creation of older versions left: a group without metadata."""
    from structfree_dask.io import create_labels

    image = open_plate(plate).field("A/1/0")
    folder = Path(create_labels(image, "cyto").image.store).joinpath(*FIELD, "labels", "cyto")
    (folder / ".zattrs").write_text("{}")  # no record of its levels, no multiscales
    argv = _cli(plate, cluster_client, "segment", "--channels", "0", "--diameter", "20",
                "--tile-size", "64")
    line = _refused(argv, capsys)
    assert "is incomplete" in line and "--overwrite" in line
    assert main([*argv, "--overwrite"]) == 0
    assert completed_timepoints(open_labels(open_plate(plate).field("A/1/0"), "cyto")) == {0, 1}


def test_a_malformed_scheduler_address_is_not_called_a_dask_configuration(plate, capsys):
    line = _refused(["segment", str(plate), "--channels", "0", "--no-progress",
                     "--scheduler", "tcp://127.0.0.1:notaport"], capsys)
    assert "--scheduler: expected tcp://HOST:PORT or tls://HOST:PORT" in line
    assert "Dask configuration" not in line
