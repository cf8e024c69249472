"""structfree_dask.io._plate: opening plates and images read-only, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from structfree_dask.io import (
    AXIS_ORDER,
    MetadataError,
    Plate,
    create_image,
    open_labels,
    open_plate,
    read_image_info,
)

VERSIONS = ["0.4", "0.5"]


@pytest.mark.parametrize("version", VERSIONS)
def test_plate_roundtrip_and_validation(tmp_path, version, make_plate, validate):
    path = make_plate(tmp_path / "p.zarr", version)
    plate = open_plate(path)
    assert plate.kind == "plate" and plate.ngff_version == version
    assert plate.wells == ("A/1", "A/2", "B/2")
    assert plate.field_paths == ("A/1/0", "A/1/1", "A/2/0", "A/2/1", "B/2/0", "B/2/1")
    info = plate.field("B/2/1")
    assert info.axes == ("t", "c", "y", "x")
    assert info.channel_names == ("mito", "ER", "memb")
    assert info.pixel_size["y"] == 0.5 and info.pixel_size["t"] == 3.0
    assert info.n_timepoints == 2 and info.labels == ("gt_cyto",)
    xa = info.to_xarray()
    assert xa.dims == ("t", "c", "y", "x") and list(xa.c.values) == ["mito", "ER", "memb"]
    assert float(xa.y[1] - xa.y[0]) == 0.5
    assert xa.sel(c="ER").isel(t=1).shape == (128, 128)
    lab = open_labels(info, "gt_cyto")
    assert lab.shapes[0] == (2, 1, 128, 128) and len(lab.shapes) == len(info.levels)
    assert lab.read()[1, 0, 20, 30] == 3
    validate(path)
    label_group = zarr.open_group(str(path), path="B/2/1/labels/gt_cyto", mode="r")
    import ome_zarr_models

    ome_zarr_models.open_ome_zarr(label_group)
    assert plate.select(["A/2"]) == ["A/2/0", "A/2/1"]


def test_level_path_not_zero(tmp_path):
    path = tmp_path / "s.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("s0", shape=(2, 32, 32), chunks=(1, 32, 32), dtype="uint8")
    root.create_array("s1", shape=(2, 16, 16), chunks=(1, 16, 16), dtype="uint8")
    root.attrs["multiscales"] = [{
        "version": "0.4", "axes": [{"name": "c", "type": "channel"},
                                   {"name": "y", "type": "space"},
                                   {"name": "x", "type": "space"}],
        "datasets": [{"path": p, "coordinateTransformations": [{"type": "scale",
                                                                "scale": [1, s, s]}]}
                     for p, s in (("s0", 1.0), ("s1", 2.0))]}]
    info = open_plate(path).field("")
    assert [lvl.path for lvl in info.levels] == ["s0", "s1"]
    assert info.levels[1].scale == (1.0, 2.0, 2.0)


# ----------------------------------------------------------------------------- bad input


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="path not found"):
        open_plate(tmp_path / "missing.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="found no zarr group"):
        open_plate(tmp_path / "empty")
    zarr.open_group(str(tmp_path / "bare.zarr"), mode="w")
    with pytest.raises(MetadataError, match="expected 'plate' or 'multiscales'"):
        open_plate(tmp_path / "bare.zarr")


@pytest.mark.parametrize("version", VERSIONS)
def test_malformed_metadata(tmp_path, version, make_plate):
    path = make_plate(tmp_path / "p.zarr", version)
    group = zarr.open_group(str(path), path="A/1/0", mode="r+")
    attrs = dict(group.attrs)
    ome = attrs["ome"] if version == "0.5" else attrs
    del ome["multiscales"][0]["axes"]
    if version == "0.5":
        group.attrs["ome"] = ome
    else:
        group.attrs.put(ome)
    with pytest.raises(MetadataError, match="no 'axes'"):
        open_plate(path).field("A/1/0")


@pytest.mark.parametrize("what", ["well", "field"])
def test_missing_wells_and_fields(tmp_path, what, make_plate):
    import shutil

    path = make_plate(tmp_path / "p.zarr", "0.4")
    shutil.rmtree(path / ("A/2" if what == "well" else "A/2/1"))
    with pytest.raises(MetadataError, match=f"lists {what}"):
        open_plate(path)


def test_unknown_channel_and_well(tmp_path, make_plate):
    info = open_plate(make_plate(tmp_path / "p.zarr", "0.4")).field("A/1/0")
    assert info.channel_index("ER") == 1 and info.channel_index("2") == 2
    with pytest.raises(KeyError, match="0=mito, 1=ER, 2=memb"):
        info.channel_index("DAPI")
    with pytest.raises(KeyError, match="it has 3 channel"):
        info.channel_index(3)
    with pytest.raises(KeyError, match="not in plate"):
        open_plate(tmp_path / "p.zarr").select(["H/12"])


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(("name", "message"), [
    ("", "label name must not be empty; got ''"),
    (".zattrs", "label name must not start with '.' (hidden files and zarr metadata such as "
                ".zattrs are reserved); got '.zattrs'"),
    (".hidden", "must not start with '.'"),
    ("a/b", "label name must be one path component, without '/' or '\\'; got 'a/b'"),
    ("a\\b", "without '/' or '\\'"),
    ("/abs", "without '/' or '\\'"),
    ("..", "label name must not contain '..'; got '..'"),
    ("a..b", "must not contain '..'"),
    ("a\nb", "label name must not contain control characters; got 'a\\nb'"),
    ("tab\there", "control characters"),
    ("x" * 256, "label name must be at most 255 characters long; got 256 characters"),
    (5, "label name must be a string; got int 5"),
    (None, "must be a string; got NoneType None"),
])
def test_check_name_says_the_problem(name, message):
    from structfree_dask.io import check_name

    with pytest.raises(ValueError) as info:
        check_name(name, "label name")
    assert message in str(info.value)
    if name not in ("a/b", "a\\b", "/abs"):
        assert "'/'" not in str(info.value)


@pytest.mark.parametrize("name", ["nuclei", "A", "12", "gt_cyto-2", "a.b", "x" * 255, "é"])
def test_check_name_accepts_plain_names(name):
    from structfree_dask.io import check_name

    assert check_name(name, "label name") == name


def _set_plate_wells(path: Path, version: str, wells: list) -> None:
    root = zarr.open_group(str(path), mode="r+")
    if version == "0.5":
        ome = dict(root.attrs["ome"])
        ome["plate"] = dict(ome["plate"], wells=wells)
        root.attrs["ome"] = ome
    else:
        root.attrs["plate"] = dict(root.attrs["plate"], wells=wells)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("well", "found"), [
    ("/A/1", "found an absolute path"),
    ("A", "found 1 path component(s)"),
    ("A/1/0", "found 3 path component(s)"),
    ("A/", "column name must not be empty"),
    ("A/..", "column name must not contain '..'"),
    ("A/.zattrs", "column name must not start with '.'"),
    (7, "found int 7"),
])
def test_bad_well_path_in_plate_metadata(tmp_path, version, well, found, simulated):
    path = simulated(version)
    _set_plate_wells(path, version, [{"path": well, "rowIndex": 0, "columnIndex": 0}])
    with pytest.raises(MetadataError) as info:
        open_plate(path)
    msg = str(info.value)
    assert msg.startswith(f"plate metadata of {path} lists well {well!r}; expected ROW/COLUMN "
                          "such as 'B/3'")
    assert found in msg


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("entry", ["../../../../outside/gt", "../../x", ".zattrs", "", 5])
def test_bad_entry_in_labels_list(tmp_path, version, entry, simulated):
    from structfree_dask.cli import main

    path = simulated(version)
    group = zarr.open_group(str(path), path="A/1/0/labels", mode="r+")
    if version == "0.5":
        ome = dict(group.attrs["ome"])
        ome["labels"] = [*ome["labels"], entry]
        group.attrs["ome"] = ome
    else:
        group.attrs["labels"] = [*group.attrs["labels"], entry]
    with pytest.raises(MetadataError) as info:
        open_plate(path).field("A/1/0")
    msg = str(info.value)
    assert msg.startswith(f"labels list of {path}/A/1/0/labels has an invalid entry {entry!r}: "
                          "label name must ")
    assert main(["info", str(path)]) == 2
    assert not (tmp_path / "outside").exists()


# ----------------------------------------------------------------------------- images


def _image(path: Path, version: str = "0.4"):
    data = np.arange(2 * 3 * 64 * 64, dtype="uint16").reshape(2, 3, 64, 64)
    return create_image(path, data, axes="tcyx", ngff_version=version,
                        channel_names=["a", "b", "c"], pixel_size_um=(0.25, 0.5),
                        time_interval_h=2.0), data


def test_a_standalone_image_is_a_plate_of_one_field(tmp_path):
    _image(tmp_path / "i.zarr")
    plate = open_plate(tmp_path / "i.zarr")
    assert plate == Plate(str(tmp_path / "i.zarr"), "image", "0.4", None, (), (), (), ("",))
    assert open_plate(plate) is plate
    assert plate.select() == [""] and [i.path for i in plate.fields()] == [""]
    with pytest.raises(KeyError, match="is a single image, not a plate; it has no wells"):
        plate.select(["A/1"])
    with pytest.raises(KeyError, match="field 'A/1/0' is not in"):
        plate.field("A/1/0")
    assert plate.field("").url == str(tmp_path / "i.zarr")


@pytest.mark.parametrize("version", VERSIONS)
def test_image_info_sizes_units_and_planes(tmp_path, version):
    info, data = _image(tmp_path / "i.zarr", version)
    assert info == read_image_info(str(tmp_path / "i.zarr"))
    assert info.ngff_version == version and info.shape == (2, 3, 64, 64)
    assert info.sizes == {"t": 2, "c": 3, "z": 1, "y": 64, "x": 64}
    assert list(info.sizes) == list(AXIS_ORDER)
    assert info.units == {"t": "hour", "y": "micrometer", "x": "micrometer"}
    assert info.pixel_size == {"t": 2.0, "c": 1.0, "y": 0.25, "x": 0.5}
    assert info.dtype == np.dtype("uint16")
    index = info.plane_index(1, 0, 2)
    assert index == (1, 2, slice(None), slice(None))
    np.testing.assert_array_equal(info.read(index), data[1, 2])
    assert info.plane_index(0, 0) == (0, 0, slice(None), slice(None))  # channel 0
    xa = info.to_xarray()
    assert xa.name == "i.zarr" and xa.attrs["ngff_version"] == version
    assert list(xa.t.values) == [0.0, 2.0] and float(xa.x[1]) == 0.5


def test_damaged_chunk_names_image_channel_timepoint_and_chunk(tmp_path):
    info, _ = _image(tmp_path / "i.zarr")
    (tmp_path / "i.zarr/0/1/2/0/0").write_bytes(b"not a compressed chunk")
    with pytest.raises(OSError) as err:
        info.read(info.plane_index(1, 0, 2))
    assert str(err.value).startswith(
        f"cannot read {tmp_path / 'i.zarr'} (t=1, channel 2 (c), y=0:64, x=0:64; "
        "chunk (1, 2, 0, 0) of the array 0): ")
    assert info.read(info.plane_index(1, 0, 1)).shape == (64, 64)  # other chunks still read


def _multiscales(path: Path, axes: list[str], scale: list[float], shape: tuple) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", shape=shape, chunks=shape, dtype="uint8")
    root.attrs["multiscales"] = [{
        "version": "0.4", "axes": [{"name": a, "type": "space"} for a in axes],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": scale},
            {"type": "translation", "translation": [5.0] * len(scale)}]}]}]


@pytest.mark.parametrize(("axes", "scale", "shape", "message"), [
    (["x", "y"], [1, 1], (8, 8), "must be in t, c, z, y, x order; found ['x', 'y']"),
    (["y", "y"], [1, 1], (8, 8), "must be distinct names among t, c, z, y, x"),
    (["q", "y", "x"], [1, 1, 1], (2, 8, 8), "including y and x; found ['q', 'y', 'x']"),
    (["z", "y"], [1, 1], (8, 8), "including y and x"),
    (["y", "x"], [1, 1, 1], (8, 8), "scale transform has 3 values; expected 2 (one per axis)"),
    (["c", "y", "x"], [1, 1, 1], (8, 8), "has 2 dimensions; the axes ['c', 'y', 'x'] need 3"),
])
def test_bad_multiscales_metadata(tmp_path, axes, scale, shape, message):
    _multiscales(tmp_path / "s.zarr", axes, scale, shape)
    with pytest.raises(MetadataError) as err:
        read_image_info(str(tmp_path / "s.zarr"))
    assert message in str(err.value)


def test_translation_gives_physical_coordinates(tmp_path):
    _multiscales(tmp_path / "s.zarr", ["y", "x"], [0.5, 2.0], (4, 4))
    info = read_image_info(str(tmp_path / "s.zarr"))
    assert info.levels[0].translation == (5.0, 5.0) and info.channel_names == ("0",)
    xa = info.to_xarray()
    assert list(xa.y.values) == [5.0, 5.5, 6.0, 6.5] and list(xa.x.values) == [5, 7, 9, 11]


def test_missing_dataset_array(tmp_path):
    _multiscales(tmp_path / "s.zarr", ["y", "x"], [1, 1], (4, 4))
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")
    ms = root.attrs["multiscales"]
    ms[0]["datasets"][0]["path"] = "full"
    root.attrs["multiscales"] = ms
    with pytest.raises(MetadataError, match="lists dataset 'full' but no such array exists"):
        read_image_info(str(tmp_path / "s.zarr"))
