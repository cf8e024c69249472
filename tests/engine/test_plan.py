"""Planning and label actions (engine._plan): every check before any write, on real plates."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from structfree_dask.backbones import ModelSpec
from structfree_dask.config import SegmentationConfig
from structfree_dask.engine import _plan
from structfree_dask.io import (
    LabelExistsError,
    completed_timepoints,
    label_record,
    mark_done,
    open_labels,
    open_plate,
    write_labels,
)

CFG = SegmentationConfig(channels=(0, 1), tile_size=64)


@pytest.fixture
def plate(tmp_path, make_mosaic, write_plate):
    """Two fields (A/1/0, A/2/0) of 96 px, three timepoints, channels cyto-stain, nuc-stain."""
    return write_plate(tmp_path / "p.zarr", [make_mosaic(96, seed=s) for s in range(2)], t=3)


def _files(path):
    return {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}


def _plans(plate, cfg, specs, wells=None, timepoints=None):
    return _plan.plan_fields(str(plate), cfg, specs, wells, timepoints)


def test_run_record_holds_what_a_resume_must_match():
    a = ModelSpec(name="a", path="a.pth", diam_mean=30.0, sha256="aa")
    b = ModelSpec(name="b", path="b.pth", diam_mean=30.0, sha256="bb")
    rec = _plan.run_record(CFG, (a, a), (1, 0), ("nuc", "cyto"))
    assert (rec["kind"], rec["organelle"], rec["model"], rec["model_sha256"]) == (
        "segmentation", "cyto", "a", "aa")  # one model: named once
    assert rec["channels"] == [1, 0] and rec["channel_names"] == ["nuc", "cyto"]
    assert rec["diameter"] == 30.0  # the model's own scale when none is given
    assert rec["fusion"] == "flow_averaging"
    assert (rec["cellprob_threshold"], rec["flow_threshold"], rec["min_size"]) == (
        CFG.cellprob_threshold, CFG.flow_threshold, CFG.min_size)
    assert rec["software"] and rec["precision"] == "auto"  # as the specs carry it
    precise = (a.__class__(**{**a.__dict__, "precision": "bf16"}),) * 2
    assert _plan.run_record(CFG, precise, (1, 0), ("n", "c"))["precision"] == "bf16"
    other = _plan.run_record(CFG.replace(diameter=20.0, fusion="voting"), (a, b), (0, 1),
                             ("c", "n"))
    assert other["model"] == ["a", "b"] and other["model_sha256"] == ["aa", "bb"]
    assert other["diameter"] == 20.0 and other["fusion"] == "voting"


def test_new_fields_are_planned_for_creation_and_nothing_is_written(plate, specs):
    before = _files(plate)
    by_name = CFG.replace(channels=("nuc-stain", "cyto-stain"))
    plans = _plans(plate, by_name, specs, timepoints=[2, 0])
    assert [p.info.path for p in plans] == ["A/1/0", "A/2/0"]
    for p in plans:
        assert (p.action, p.channels, p.timepoints, p.redo, p.kept) == (
            "create", (1, 0), (0, 2), (), ())
        assert p.record == _plan.run_record(by_name, specs, (1, 0), ("nuc-stain", "cyto-stain"))
    (only,) = _plans(plate, CFG, specs, wells=["A/2"], timepoints=slice(1, None))
    assert only.info.path == "A/2/0" and only.timepoints == (1, 2)
    assert _files(plate) == before


def test_bad_selections_are_refused_before_any_write(tmp_path, plate, specs, make_mosaic,
                                                     write_plate):
    before = _files(plate)
    with pytest.raises(ValueError, match="more than once"):
        _plans(plate, CFG.replace(channels=(0, "cyto-stain")), specs)
    with pytest.raises(KeyError, match="channel 'DAPI' does not exist"):
        _plans(plate, CFG.replace(channels=("DAPI",)), specs)
    with pytest.raises(ValueError, match="no fields selected"):
        _plans(plate, CFG, specs, wells=[])
    with pytest.raises(KeyError, match="Z/9"):
        _plans(plate, CFG, specs, wells=["Z/9"])
    with pytest.raises(ValueError, match="timepoint"):
        _plans(plate, CFG, specs, timepoints=[3])
    with pytest.raises(ValueError, match="diameter 1 px"):
        _plans(plate, CFG.replace(diameter=1.0), specs)
    assert _files(plate) == before
    tiny = write_plate(tmp_path / "tiny.zarr", [make_mosaic(24, seed=0)])
    with pytest.raises(ValueError, match="smaller than one cell diameter"):
        _plans(tiny, CFG, specs)


def test_a_label_image_is_created_resumed_partly_redone_and_recreated(plate, specs):
    (fp,) = _plans(plate, CFG, specs, wells=["A/1"])
    label = _plan.apply_label_plan(fp, CFG)
    assert label.chunks[0][-2:] == (64, 64)  # chunks of one tile
    assert label_record(label)["model_sha256"] == fp.record["model_sha256"]
    assert completed_timepoints(label) == set()
    mark_done(label, [0, 1])

    (resume,) = _plans(plate, CFG, specs, wells=["A/1"])
    assert (resume.action, resume.redo, resume.kept) == ("resume", (), (0, 1))
    # overwrite redoes the selected timepoints that are done, and keeps the others
    redo_cfg = CFG.replace(overwrite=True)
    (partial,) = _plans(plate, redo_cfg, specs, wells=["A/1"], timepoints=[1, 2])
    assert (partial.action, partial.redo, partial.kept) == ("resume", (1,), (0,))
    again = _plan.apply_label_plan(partial, redo_cfg)
    assert completed_timepoints(again) == {0}
    # overwrite of every timepoint it holds: made anew
    (whole,) = _plans(plate, redo_cfg, specs, wells=["A/1"])
    assert whole.action == "recreate"
    fresh = _plan.apply_label_plan(whole, redo_cfg)
    assert completed_timepoints(fresh) == set()
    # the other field was never touched
    assert "cyto" not in open_plate(plate).field("A/2/0").labels


def test_existing_label_images_that_cannot_be_resumed_are_refused(plate, specs):
    (fp,) = _plans(plate, CFG, specs, wells=["A/1"])
    mark_done(_plan.apply_label_plan(fp, CFG), [0])
    with pytest.raises(LabelExistsError, match=r"other settings \(min_size: 15 vs 20\)"):
        _plans(plate, CFG.replace(min_size=20), specs)
    with pytest.raises(LabelExistsError, match="tile_size 128 would write across its chunks"):
        _plans(plate, CFG.replace(tile_size=128), specs)
    # another precision (the specs carry the one resolved for the run)
    import dataclasses

    other = tuple(dataclasses.replace(sp, precision="fp16") for sp in specs)
    with pytest.raises(LabelExistsError, match=r"other settings \(precision: '\w+' vs 'fp16'\)"):
        _plans(plate, CFG, other)
    # a record written before precisions were recorded resumes at any precision
    label = open_labels(open_plate(plate).field("A/1/0"), "cyto")
    record = dict(label_record(label))
    del record["precision"]
    assert _plan._settings_diffs(record, {**record, "precision": "fp16"}) == ""
    # a precision still auto (checked before the workers answer) is compared later
    record["precision"] = "bf16"
    assert _plan._settings_diffs(record, {**record, "precision": "auto"}) == ""
    assert _plan._settings_diffs(record, {**record, "precision": "fp16"}) == \
        "precision: 'bf16' vs 'fp16'"
    # another program's label image of that name
    info = open_plate(plate).field("A/2/0")
    write_labels(info, "gt", np.ones((3, 1, 96, 96), "uint32"))
    with pytest.raises(LabelExistsError, match="not written by a segmentation run"):
        _plans(plate, CFG.replace(name="gt"), specs, wells=["A/2"])
    (whole,) = _plans(plate, CFG.replace(name="gt", overwrite=True), specs, wells=["A/2"])
    assert whole.action == "recreate"


def test_the_tile_size_advice_of_a_field_lower_than_its_tile(tmp_path, make_mosaic, write_plate,
                                                             specs):
    """A 64 x 96 px field segmented with 128 px tiles is stored in 64 x 96 chunks; another
    tile size is refused naming a tile size that gives those chunks again (not 64)."""
    field = make_mosaic(96, seed=3)[:, :64, :]
    plate = write_plate(tmp_path / "low.zarr", [field], t=1)
    cfg = CFG.replace(tile_size=128)
    (fp,) = _plans(plate, cfg, specs)
    mark_done(_plan.apply_label_plan(fp, cfg), [0])
    with pytest.raises(LabelExistsError, match=r"64x96 px chunks, made with tile_size 96;.*"
                                               r"--tile-size 96"):
        _plans(plate, CFG.replace(tile_size=64), specs)  # (before: "made with tile_size 64")
    assert _plan.tile_size_of((64, 96), (64, 96)) == 96
    assert len(_plans(plate, CFG.replace(tile_size=96), specs)) == 1  # the advice resumes


def test_an_interrupted_creation_is_recreated_only_with_overwrite(plate, specs):
    (fp,) = _plans(plate, CFG, specs, wells=["A/1"])
    label = _plan.apply_label_plan(fp, CFG)
    shutil.rmtree(plate / label.path / label.level_paths[0])  # a level never made
    with pytest.raises(LabelExistsError, match="incomplete"):
        _plans(plate, CFG, specs, wells=["A/1"])
    redo = CFG.replace(overwrite=True)
    (again,) = _plans(plate, redo, specs, wells=["A/1"])
    assert again.action == "recreate"
    made = _plan.apply_label_plan(again, redo)
    assert open_labels(made.image, "cyto").shapes == label.shapes


def test_a_label_image_longer_than_its_image_is_refused(tmp_path, plate, specs, make_mosaic,
                                                        write_plate):
    (fp,) = _plans(plate, CFG, specs, wells=["A/1"])
    label = _plan.apply_label_plan(fp, CFG)
    short = write_plate(tmp_path / "short.zarr", [make_mosaic(96, seed=0)], t=2)
    shutil.rmtree(short / "A/1/0/labels", ignore_errors=True)
    shutil.copytree(plate / "A/1/0/labels", short / "A/1/0/labels")
    assert label.shapes[0][0] == 3
    with pytest.raises(ValueError, match="has 3 timepoints but its image only 2"):
        _plans(short, CFG, specs)
