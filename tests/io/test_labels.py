"""structfree_dask.io._labels: label images created, filled by region, finalized, recorded."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from structfree_dask.io import (
    LABEL_DTYPE,
    LabelExistsError,
    LabelImage,
    UnsafePathError,
    check_label_target,
    completed_timepoints,
    create_image,
    create_labels,
    create_plate,
    extend_timepoints,
    finalize_labels,
    label_group_exists,
    label_record,
    mark_done,
    open_complete_labels,
    open_labels,
    open_plate,
    read_image_info,
    unmark_done,
    write_label_region,
    write_labels,
)
from structfree_dask.io._labels import downsample_labels, label_shape

VERSIONS = ["0.4", "0.5"]


@pytest.mark.parametrize("version", VERSIONS)
def test_labels_region_by_region_and_rerun(tmp_path, version, make_plate, validate):
    path = make_plate(tmp_path / "p.zarr", version, t=3, size=256)
    info = open_plate(path).field("A/1/0")
    lab = create_labels(info, "cyto", chunk_yx=128, record={"kind": "segmentation"})
    block = np.full((128, 128), 7, "uint32")
    write_label_region(lab, {"t": slice(1, 2), "y": slice(128, 256), "x": slice(0, 128)}, block)
    with pytest.raises(ValueError, match="not aligned"):
        write_label_region(lab, {"t": slice(0, 1), "y": slice(64, 192), "x": slice(0, 128)},
                           block)
    finalize_labels(lab)
    finalize_labels(lab)  # re-running never duplicates the name
    info = open_plate(path).field("A/1/0")
    assert info.labels.count("cyto") == 1
    data = open_labels(info, "cyto").read()
    assert data[1, 0, 200, 10] == 7 and data[0].max() == 0
    with pytest.raises(LabelExistsError, match="already exists"):
        create_labels(info, "cyto")
    create_labels(info, "cyto", overwrite=True)
    validate(path)


def test_mismatched_label_shape_and_unwritable_output(tmp_path, make_plate):
    info = open_plate(make_plate(tmp_path / "p.zarr", "0.4")).field("A/1/0")
    with pytest.raises(ValueError, match=r"must have shape \(2, 1, 128, 128\)"):
        write_labels(info, "bad", np.zeros((2, 64, 64), "uint32"))
    with pytest.raises(TypeError, match="integer dtype"):
        write_labels(info, "bad", np.zeros((2, 128, 128), "float32"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises((PermissionError, NotADirectoryError, FileExistsError, OSError)):
        with create_plate(blocker / "p.zarr", rows=["A"], columns=["1"]) as plate:
            plate.write_field("A", "1", 0, np.zeros((1, 1, 32, 32), "uint16"))
    with pytest.raises(FileExistsError, match="already exists"):
        create_plate(tmp_path / "p.zarr", rows=["A"], columns=["1"])
    with pytest.raises(ValueError, match="one path component"):
        write_labels(info, "../evil", np.zeros((2, 128, 128), "uint32"))


def test_source_untouched_by_label_writes(tmp_path, make_plate):
    path = make_plate(tmp_path / "p.zarr", "0.5")

    def snapshot() -> dict[str, bytes]:
        return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*")
                if p.is_file() and "labels" not in p.parts}

    before = snapshot()
    info = open_plate(path).field("A/1/0")
    write_labels(info, "cyto", np.ones((2, 128, 128), "uint32"))
    after = snapshot()
    assert before == after
    json.dumps(after.keys().__len__())


# ----------------------------------------------------------------------------- more


@pytest.fixture
def image(tmp_path):
    """A standalone 2-timepoint, 256 px image (three levels: 256, 128, 64 px)."""
    return create_image(tmp_path / "i.zarr", np.zeros((2, 1, 256, 256), "uint16"), axes="tcyx")


def test_label_shape_and_downsampling_helpers():
    assert label_shape((3, 4, 5, 64, 32), ("t", "c", "z", "y", "x")) == (3, 1, 5, 64, 32)
    assert label_shape((64, 32), ("y", "x")) == (64, 32)
    lab = np.arange(36).reshape(6, 6)
    np.testing.assert_array_equal(downsample_labels(lab, (3, 2)), [[0, 2, 4], [18, 20, 22]])


def test_write_labels_builds_the_pyramid_with_metadata(image, tmp_path):
    assert [lvl.shape[-1] for lvl in image.levels] == [256, 128, 64]
    lab = np.zeros((2, 256, 256), "int64")  # any integer dtype; stored as LABEL_DTYPE
    lab[:, :128, :64] = 5
    lab[1, 200:, 200:] = 9
    label = write_labels(image, "cyto", lab, chunk_yx=64)
    assert label.path == "labels/cyto" and label.level_paths == ("0", "1", "2")
    assert label.shapes == ((2, 1, 256, 256), (2, 1, 128, 128), (2, 1, 64, 64))
    assert label.chunks == ((1, 1, 64, 64),) * 3
    full = label.read()
    assert full.dtype == LABEL_DTYPE
    np.testing.assert_array_equal(full[:, 0], lab)
    for k in (1, 2):
        np.testing.assert_array_equal(label.read(k)[:, 0], lab[:, :: 2**k, :: 2**k])
    group = zarr.open_group(str(tmp_path / "i.zarr"), path="labels/cyto", mode="r")
    assert group.attrs["image-label"]["source"] == {"image": "../../"}
    scales = [d["coordinateTransformations"][0]["scale"]
              for d in group.attrs["multiscales"][0]["datasets"]]
    assert scales == [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 4.0, 4.0]]
    assert read_image_info(str(tmp_path / "i.zarr")).labels == ("cyto",)
    with pytest.raises(ValueError, match="labels must be >= 0; got minimum -1"):
        write_labels(image, "neg", np.full((2, 256, 256), -1, "int32"))
    assert not label_group_exists(image, "neg")  # checked before anything was created


def test_write_label_region_fits_data_to_the_region(image):
    label = create_labels(image, "cyto", chunk_yx=128)
    # (y, x) data for a region whose t and c have size 1 is reshaped; absent axes are whole
    write_label_region(label, {"t": slice(1, 2), "y": slice(128, 256), "x": slice(128, 256)},
                       np.full((128, 128), 4, "uint16"))
    write_label_region(label, {"t": slice(0, 1)}, np.full((128, 128), 2, "uint16"), level=1)
    assert label.read()[1, 0, 128:, 128:].min() == 4 and label.read()[0].max() == 0
    assert label.read(1)[0].min() == 2 and label.read(1)[1].max() == 0
    with pytest.raises(ValueError, match=r"data of shape \(64, 64\) does not fit region "
                                         r"\(1, 1, 128, 128\) of labels/cyto"):
        write_label_region(label, {"t": slice(0, 1), "y": slice(0, 128), "x": slice(0, 128)},
                           np.ones((64, 64), "uint32"))
    with pytest.raises(ValueError, match="region x=0:100 of labels/cyto is not aligned to "
                                         "chunks of 128"):
        write_label_region(label, {"t": slice(0, 1), "y": slice(0, 128), "x": slice(0, 100)},
                           np.ones((128, 100), "uint32"))


def test_done_records_are_kept_by_the_driver(image):
    label = create_labels(image, "cyto", record={"kind": "segmentation", "model": "m1"})
    assert label_record(label) == {"level_paths": ["0", "1", "2"], "done": [],
                                   "kind": "segmentation", "model": "m1"}
    assert completed_timepoints(label) == set()
    mark_done(label, [1, 0], seconds=2.5)
    mark_done(label, [1])
    assert completed_timepoints(label) == {0, 1}
    unmark_done(label, [0, 5])
    rec = label_record(open_labels(image, "cyto"))
    assert rec["done"] == [1] and rec["seconds"] == 2.5 and rec["model"] == "m1"


def test_open_labels_and_half_made_label_groups(image, tmp_path):
    with pytest.raises(KeyError, match="has no label image 'cyto'; it has: none"):
        open_labels(image, "cyto")
    with pytest.raises(ValueError, match="label name must not contain '..'"):
        open_labels(image, "..")
    assert not label_group_exists(image, "cyto")
    assert open_complete_labels(image, "cyto") is None
    create_labels(image, "cyto")  # arrays and record, no NGFF metadata yet
    assert label_group_exists(image, "cyto")
    assert open_complete_labels(image, "cyto").level_paths == ("0", "1", "2")
    assert "cyto" not in read_image_info(str(tmp_path / "i.zarr")).labels  # not listed yet
    zarr.open_group(str(tmp_path / "i.zarr"), path="labels", mode="r+").create_group("half")
    assert label_group_exists(image, "half") and open_complete_labels(image, "half") is None
    with pytest.raises(KeyError, match="label image 'half' of .* has no multiscales metadata"):
        open_labels(image, "half")
    with pytest.raises(ValueError, match="chunk_yx must be >= 16; got 8"):
        create_labels(image, "small", chunk_yx=8)


def test_overwrite_replaces_and_unlists_the_old_label_image(image, tmp_path):
    write_labels(image, "cyto", np.full((2, 256, 256), 3, "uint32"))
    write_labels(image, "nuc", np.ones((2, 256, 256), "uint32"))
    fresh = read_image_info(str(tmp_path / "i.zarr"))
    assert fresh.labels == ("cyto", "nuc")
    label = create_labels(fresh, "cyto", overwrite=True)
    assert label.read().max() == 0  # old data gone
    assert read_image_info(str(tmp_path / "i.zarr")).labels == ("nuc",)  # listed once final
    finalize_labels(label, properties={"colors": []})
    after = read_image_info(str(tmp_path / "i.zarr"))
    assert after.labels == ("nuc", "cyto")
    attrs = zarr.open_group(str(tmp_path / "i.zarr"), path="labels/cyto", mode="r").attrs
    assert attrs["image-label"]["colors"] == []


def test_links_on_the_way_or_inside_are_refused(image, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    assert check_label_target(image, "cyto") == tmp_path / "i.zarr/labels/cyto"
    label = write_labels(image, "cyto", np.ones((2, 256, 256), "uint32"))
    os.symlink(outside, tmp_path / "i.zarr/labels/cyto/planted")
    with pytest.raises(UnsafePathError, match="planted is a symbolic link"):
        check_label_target(image, "cyto")
    with pytest.raises(UnsafePathError):
        create_labels(image, "cyto", overwrite=True)
    assert (tmp_path / "i.zarr/labels/cyto/0").is_dir()  # nothing was deleted
    os.unlink(tmp_path / "i.zarr/labels/cyto/planted")
    (tmp_path / "i.zarr/labels/cyto/1").rename(outside / "1")
    os.symlink(outside / "1", tmp_path / "i.zarr/labels/cyto/1")
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    with pytest.raises(UnsafePathError, match="refusing to write through .*it is a symbolic"):
        write_label_region(label, {}, np.zeros((2, 1, 128, 128), "uint32"), level=1)
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before


def test_extend_timepoints_follows_the_image(tmp_path):
    still = create_image(tmp_path / "yx.zarr", np.zeros((64, 64), "uint8"), axes="yx")
    label = write_labels(still, "cyto", np.ones((64, 64), "uint32"))
    assert extend_timepoints(label) is label  # no t axis: nothing to grow
    lapse = create_image(tmp_path / "t.zarr", np.zeros((2, 64, 64), "uint8"), axes="tyx")
    label = write_labels(lapse, "cyto", np.ones((2, 64, 64), "uint32"))
    assert extend_timepoints(label) is label  # as many timepoints as the image
    shorter = create_image(tmp_path / "s.zarr", np.zeros((1, 64, 64), "uint8"), axes="tyx")
    too_long = LabelImage(shorter, "cyto", ("0",), ((2, 64, 64),), ((1, 64, 64),))
    with pytest.raises(ValueError, match="has 2 timepoints but its image only 1"):
        extend_timepoints(too_long)
