"""structfree_dask.io._writer: plates and images written from arrays, time-lapses appended."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from structfree_dask.io import (
    MetadataError,
    UnsafePathError,
    append_timepoints,
    create_image,
    create_labels,
    create_plate,
    extend_timepoints,
    open_labels,
    open_plate,
    write_label_region,
)

VERSIONS = ["0.4", "0.5"]


@pytest.mark.parametrize("version", VERSIONS)
def test_any_axes_and_level_paths_from_metadata(tmp_path, version, validate):
    data = np.arange(2 * 3 * 64 * 80, dtype="uint16").reshape(2, 3, 64, 80)
    info = create_image(tmp_path / "img.zarr", data, axes="czyx", ngff_version=version)
    assert info.axes == ("c", "z", "y", "x") and info.sizes["z"] == 3 and info.sizes["t"] == 1
    np.testing.assert_array_equal(info.to_dask().compute(), data)
    # rename the level so that nothing may assume the path is "0"
    root = zarr.open_group(str(tmp_path / "img.zarr"), mode="r+")
    meta = dict(root.attrs)
    store_meta = meta["ome"] if version == "0.5" else meta
    store_meta["multiscales"][0]["datasets"][0]["path"] = "0"
    plate = open_plate(tmp_path / "img.zarr")
    assert plate.kind == "image" and plate.field_paths == ("",)
    yx = create_image(tmp_path / "yx.zarr", data[0, 0], axes="yx", ngff_version=version)
    assert yx.axes == ("y", "x") and yx.channel_names == ("0",)
    validate(tmp_path / "img.zarr")


@pytest.mark.parametrize("version", VERSIONS)
def test_append_timepoints_grows_image_and_labels(tmp_path, version, make_plate):
    path = make_plate(tmp_path / "p.zarr", version, t=2, c=2, size=256)
    info = open_plate(path).field("A/1/0")
    label = create_labels(info, "cyto", chunk_yx=128)
    write_label_region(label, {"t": slice(0, 1)}, np.full((1, 1, 256, 256), 7, "uint32"))
    new = np.asarray(info.open_array(0)[1:2])[..., ::-1]
    assert append_timepoints(info, new) == 3
    grown = open_plate(path).field("A/1/0")
    assert grown.sizes["t"] == 3
    assert np.array_equal(np.asarray(grown.open_array(0)[2:3]), new)
    for k in range(1, len(grown.levels)):  # the pyramid grows too, downsampled alike
        lvl = np.asarray(grown.open_array(k)[2:3])
        f = 2 ** k
        assert np.array_equal(lvl, new[..., ::f, ::f][..., : lvl.shape[-2], : lvl.shape[-1]])
    label = extend_timepoints(open_labels(grown, "cyto"))
    assert all(s[0] == 3 for s in label.shapes)
    data = label.read()
    assert (data[0] == 7).all() and not data[1:].any()
    with pytest.raises(ValueError, match="new timepoints must have shape"):
        append_timepoints(grown, new[..., :100])


# ----------------------------------------------------------------------------- plates


@pytest.mark.parametrize("version", VERSIONS)
def test_plate_metadata_lists_written_wells_in_row_major_order(tmp_path, version):
    path = tmp_path / "p.zarr"
    with create_plate(path, rows=["A", "B"], columns=["1", "2", "3"], ngff_version=version,
                      name="exp") as plate:
        for row, col, field in [("B", "3", 0), ("B", "3", 1), ("A", "2", 0)]:
            info = plate.write_field(row, col, field, np.zeros((1, 2, 64, 64), "uint16"),
                                     channel_names=["mito", "ER"])
            assert info.path == f"{row}/{col}/{field}" and info.ngff_version == version
    opened = open_plate(path)
    assert opened.name == "exp" and opened.ngff_version == version
    assert opened.rows == ("A", "B") and opened.columns == ("1", "2", "3")
    assert opened.wells == ("A/2", "B/3")
    assert opened.field_paths == ("A/2/0", "B/3/0", "B/3/1")
    meta = dict(zarr.open_group(str(path), mode="r").attrs)
    meta = meta["ome"] if version == "0.5" else meta
    assert meta["plate"]["field_count"] == 2
    assert meta["plate"]["acquisitions"] == [{"id": 0, "name": "exp"}]
    assert [(w["rowIndex"], w["columnIndex"]) for w in meta["plate"]["wells"]] == [(0, 1),
                                                                                   (1, 2)]


def test_write_field_reads_the_field_back_once_unless_it_adds_labels(tmp_path, monkeypatch):
    """The field's metadata is read back once (an import's fields), twice with labels; the
    returned info lists the labels written."""
    from structfree_dask.io import _writer

    reads = []
    real = _writer.read_image_info
    monkeypatch.setattr(_writer, "read_image_info", lambda *a: reads.append(a) or real(*a))
    image = np.zeros((1, 1, 64, 64), "uint16")
    with create_plate(tmp_path / "p.zarr", rows=["A"], columns=["1"]) as plate:
        info = plate.write_field("A", "1", 0, image)
        assert len(reads) == 1 and info.labels == ()
        info = plate.write_field("A", "1", 1, image,
                                 labels={"cells": np.ones((1, 64, 64), "uint32")})
        assert len(reads) == 3 and info.labels == ("cells",)


def test_write_field_refuses_what_does_not_fit_the_plate(tmp_path):
    image = np.zeros((1, 1, 64, 64), "uint16")
    with create_plate(tmp_path / "p.zarr", rows=["A"], columns=["1"]) as plate:
        plate.write_field("A", "1", 0, image)
        with pytest.raises(KeyError, match=r"well B/1 is outside the plate's rows \['A'\] and "
                                            r"columns \['1'\]"):
            plate.write_field("B", "1", 0, image)
        with pytest.raises(ValueError, match="field A/1/0 was already written"):
            plate.write_field("A", "1", 0, image)
        with pytest.raises(ValueError, match="axes 'tyx' name 3 axes; data has 4"):
            plate.write_field("A", "1", 1, image, axes="tyx")
    assert open_plate(tmp_path / "p.zarr").field_paths == ("A/1/0",)
    with pytest.raises(ValueError, match="row name must not contain '..'"):
        create_plate(tmp_path / "q.zarr", rows=[".."], columns=["1"])
    with pytest.raises(ValueError, match="ngff_version must be one of 0.4, 0.5; got '0.6'"):
        create_plate(tmp_path / "q.zarr", rows=["A"], columns=["1"], ngff_version="0.6")
    assert not (tmp_path / "q.zarr").exists()


def test_a_plate_without_fields_has_no_plate_metadata(tmp_path):
    with create_plate(tmp_path / "p.zarr", rows=["A"], columns=["1"]):
        pass
    with pytest.raises(MetadataError, match="expected 'plate' or 'multiscales' metadata at the "
                                            "root of .*; found keys none"):
        open_plate(tmp_path / "p.zarr")


def test_create_plate_over_an_existing_store(tmp_path):
    (tmp_path / "p.zarr").mkdir()
    (tmp_path / "p.zarr" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match=r"output .*p\.zarr already exists; choose a new"):
        create_plate(tmp_path / "p.zarr", rows=["A"], columns=["1"])
    assert (tmp_path / "p.zarr" / "keep.txt").read_text() == "x"
    with create_plate(tmp_path / "p.zarr", rows=["A"], columns=["1"], overwrite=True) as plate:
        plate.write_field("A", "1", 0, np.ones((1, 1, 64, 64), "uint16"))
    assert not (tmp_path / "p.zarr" / "keep.txt").exists()
    assert open_plate(tmp_path / "p.zarr").field_paths == ("A/1/0",)


def test_a_plate_is_written_whole_or_not_at_all(tmp_path):
    """A block that raises leaves nothing at the path (and no hidden folder); with overwrite
    the plate that was there stays until the new one is whole."""
    path = tmp_path / "p.zarr"
    with pytest.raises(RuntimeError, match="stopped"), \
            create_plate(path, rows=["A"], columns=["1", "2"]) as plate:
        plate.write_field("A", "1", 0, np.ones((1, 1, 64, 64), "uint16"))
        assert not path.exists()  # written beside it until the end
        raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []
    with create_plate(path, rows=["A"], columns=["1"]) as plate:
        plate.write_field("A", "1", 0, np.ones((1, 1, 64, 64), "uint16"))
    with pytest.raises(KeyboardInterrupt), \
            create_plate(path, rows=["B"], columns=["1"], overwrite=True) as plate:
        plate.write_field("B", "1", 0, np.zeros((1, 1, 64, 64), "uint16"))
        raise KeyboardInterrupt
    assert open_plate(path).field_paths == ("A/1/0",)  # the old plate, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["p.zarr"]
    with create_plate(path, rows=["B"], columns=["1"], overwrite=True) as plate:
        plate.write_field("B", "1", 0, np.zeros((1, 1, 64, 64), "uint16"))
    assert open_plate(path).field_paths == ("B/1/0",)
    assert [p.name for p in tmp_path.iterdir()] == ["p.zarr"]
    # the path taken while the plate was written: refused at the end, nothing left behind
    other = tmp_path / "q.zarr"
    with pytest.raises(FileExistsError, match="already exists"), \
            create_plate(other, rows=["A"], columns=["1"]) as plate:
        plate.write_field("A", "1", 0, np.ones((1, 1, 64, 64), "uint16"))
        other.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr", "q.zarr"]
    assert list(other.iterdir()) == []


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("version", VERSIONS)
def test_create_image_pyramid_scales_and_channels(tmp_path, version):
    data = np.zeros((2, 3, 256, 256), "uint16")
    data[:, 1] = 1000
    data[0, 1, 0, 0] = 40000
    info = create_image(tmp_path / "t.zarr", data, axes="tcyx", ngff_version=version,
                        channel_names=["a", "b", "c"], pixel_size_um=(0.5, 0.25),
                        time_interval_h=0.5, chunk_yx=128)
    assert [lvl.shape for lvl in info.levels] == [(2, 3, 256, 256), (2, 3, 128, 128),
                                                  (2, 3, 64, 64)]
    assert [lvl.scale for lvl in info.levels] == [(0.5, 1.0, 0.5, 0.25), (0.5, 1.0, 1.0, 0.5),
                                                  (0.5, 1.0, 2.0, 1.0)]
    assert info.levels[0].chunks == (1, 1, 128, 128) and info.levels[2].chunks == (1, 1, 64, 64)
    for k in range(3):
        np.testing.assert_array_equal(np.asarray(info.open_array(k)[...]),
                                      data[..., :: 2**k, :: 2**k])
    assert info.channel_names == ("a", "b", "c")
    assert info.units == {"t": "hour", "y": "micrometer", "x": "micrometer"}
    meta = dict(zarr.open_group(str(tmp_path / "t.zarr"), mode="r").attrs)
    meta = meta["ome"] if version == "0.5" else meta
    channels = meta["omero"]["channels"]
    assert [c["color"] for c in channels] == ["00FF00", "FF0000", "0000FF"]
    assert channels[1]["window"] == {"min": 0.0, "max": 65535.0, "start": 0.0, "end": 1000.0}
    assert channels[0]["window"]["end"] == 1.0  # an empty channel still gets a window
    assert meta["multiscales"][0]["name"] == "t"


def test_create_image_refuses_bad_axes_and_names(tmp_path):
    data = np.zeros((2, 64, 64), "uint16")
    with pytest.raises(ValueError, match="axes must be distinct, in t, c, z, y, x order and "
                                         "include y and x; got 'ycx'"):
        create_image(tmp_path / "a.zarr", data, axes="ycx")
    with pytest.raises(ValueError, match="include y and x; got 'tcy'"):
        create_image(tmp_path / "b.zarr", data, axes="tcy")
    with pytest.raises(ValueError, match=r"got 1 channel names for 2 channels: \['a'\]"):
        create_image(tmp_path / "c.zarr", data, axes="cyx", channel_names=["a"])
    info = create_image(tmp_path / "d.zarr", data, axes="cyx",
                        labels={"cyto": np.ones((64, 64), "uint32")})
    assert info.labels == ("cyto",) and len(info.levels) == 1
    with pytest.raises(FileExistsError, match="already exists"):
        create_image(tmp_path / "d.zarr", data, axes="cyx")
    again = create_image(tmp_path / "d.zarr", data[:1], axes="cyx", overwrite=True)
    assert again.shape == (1, 64, 64) and again.labels == ()


def test_append_timepoints_needs_a_t_axis_and_no_links(tmp_path):
    still = create_image(tmp_path / "s.zarr", np.zeros((1, 64, 64), "uint8"), axes="cyx")
    with pytest.raises(ValueError, match=r"has no t axis \(axes cyx\); cannot append"):
        append_timepoints(still, np.zeros((1, 1, 64, 64), "uint8"))
    lapse = create_image(tmp_path / "t.zarr", np.zeros((1, 64, 64), "uint8"), axes="tyx")
    with pytest.raises(ValueError, match=r"must have shape \(k, 64, 64\) in axes tyx; got "
                                         r"\(64, 64\)"):
        append_timepoints(lapse, np.zeros((64, 64), "uint8"))
    assert append_timepoints(lapse, np.full((2, 64, 64), 9, "uint8")) == 3
    assert np.asarray(open_plate(tmp_path / "t.zarr").field("").open_array()[1:]).min() == 9
    outside = tmp_path / "elsewhere"
    (tmp_path / "t.zarr/0").rename(outside)
    os.symlink(outside, tmp_path / "t.zarr/0")
    with pytest.raises(UnsafePathError, match="it is a symbolic link"):
        append_timepoints(lapse, np.zeros((1, 64, 64), "uint8"))


@pytest.mark.parametrize(("axes", "names", "fragment"), [
    ("tcyx", ["a"], "got 1 channel names for 2 channels"),
    ("cyx", None, "axes 'cyx' name 3 axes; data has 4"),
    ("tcxy", None, "in t, c, z, y, x order"),
])
def test_a_bad_image_is_refused_before_anything_is_written(tmp_path, axes, names, fragment):
    from structfree_dask.io import create_image, create_plate

    data = np.zeros((1, 2, 64, 64), np.uint16)
    with pytest.raises(ValueError, match=fragment):
        create_image(tmp_path / "i.zarr", data, axes=axes, channel_names=names)
    assert not (tmp_path / "i.zarr").exists()
    create_image(tmp_path / "i.zarr", data, axes="tcyx", channel_names=["a", "b"])  # a retry
    with create_plate(tmp_path / "p.zarr", rows=["A"], columns=["1"]) as plate:
        with pytest.raises(ValueError, match=fragment):
            plate.write_field("A", "1", 0, data, axes=axes, channel_names=names)
        assert not (tmp_path / "p.zarr" / "A" / "1" / "0").exists()
        plate.write_field("A", "1", 0, data, axes="tcyx", channel_names=["a", "b"])
