"""OME-Zarr plate I/O on real files, for NGFF 0.4 and 0.5."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import zarr

from structfree_dask.io import (
    LabelExistsError,
    MetadataError,
    create_image,
    create_labels,
    create_plate,
    finalize_labels,
    import_folder,
    open_labels,
    open_plate,
    write_label_region,
    write_labels,
)

VERSIONS = ["0.4", "0.5"]


def _plate(path: Path, version: str, *, t: int = 2, c: int = 3, size: int = 128) -> Path:
    rng = np.random.default_rng(0)
    with create_plate(path, rows=["A", "B"], columns=["1", "2"], ngff_version=version,
                      name="test") as plate:
        for row, col in [("A", "1"), ("A", "2"), ("B", "2")]:
            for f in range(2):
                img = rng.integers(0, 4000, (t, c, size, size)).astype("uint16")
                lab = np.zeros((t, size, size), "uint32")
                lab[:, 10:40, 20:50] = 3
                plate.write_field(row, col, f, img, channel_names=["mito", "ER", "memb"][:c],
                                  pixel_size_um=(0.5, 0.5), time_interval_h=3.0,
                                  labels={"gt_cyto": lab})
    return path


def _validate(path: Path, *, same_size_fields: bool = True) -> None:
    import ome_zarr_models
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    group = zarr.open_group(str(path), mode="r")
    ome_zarr_models.open_ome_zarr(group)  # raises when invalid
    # ome_zarr's plate reader builds a mosaic and needs fields of one size
    targets = [path] if same_size_fields else [path / f for f in open_plate(path).field_paths]
    for target in targets:
        nodes = list(Reader(parse_url(str(target)))())
        assert nodes and nodes[0].data


@pytest.mark.parametrize("version", VERSIONS)
def test_plate_roundtrip_and_validation(tmp_path, version):
    path = _plate(tmp_path / "p.zarr", version)
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
    _validate(path)
    label_group = zarr.open_group(str(path), path="B/2/1/labels/gt_cyto", mode="r")
    import ome_zarr_models

    ome_zarr_models.open_ome_zarr(label_group)
    assert plate.select(["A/2"]) == ["A/2/0", "A/2/1"]


@pytest.mark.parametrize("version", VERSIONS)
def test_any_axes_and_level_paths_from_metadata(tmp_path, version):
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
    _validate(tmp_path / "img.zarr")


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


@pytest.mark.parametrize("version", VERSIONS)
def test_labels_region_by_region_and_rerun(tmp_path, version):
    path = _plate(tmp_path / "p.zarr", version, t=3, size=256)
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
    _validate(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_import_folder_real_images(tmp_path, version, real_dev):
    REAL_DEV = real_dev
    out = import_folder(REAL_DEV / "Kc167", tmp_path / "kc.zarr", channels=[1, 0],
                        channel_names=["cyto", "nuclear"], ngff_version=version)
    plate = open_plate(out)
    n_images = len(list((REAL_DEV / "Kc167").glob("*_img.png")))  # 3: 400 and 450 px
    assert n_images >= 2 and len(plate.field_paths) == n_images
    info = plate.field(plate.field_paths[0])
    assert info.channel_names == ("cyto", "nuclear") and info.labels == ("gt_cyto",)
    import imageio.v3 as iio

    masks = iio.imread(sorted((REAL_DEV / "Kc167").glob("*_masks.png"))[0])
    np.testing.assert_array_equal(open_labels(info, "gt_cyto").read()[0], masks)
    _validate(out, same_size_fields=False)


def test_import_named_wells_tiff(tmp_path):
    import tifffile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("B03_f1", "B03_f0", "C1_f0"):
        tifffile.imwrite(src / f"{name}.tif", np.ones((3, 64, 64), "uint16"))
    tifffile.imwrite(src / "C1_f0_masks.tif", np.ones((64, 64), "uint16"))
    plate = open_plate(import_folder(src, tmp_path / "o.zarr"))
    assert plate.field_paths == ("B/3/0", "B/3/1", "C/1/0")
    assert plate.field("C/1/0").labels == ("gt_cyto",)


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
def test_malformed_metadata(tmp_path, version):
    path = _plate(tmp_path / "p.zarr", version)
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
def test_missing_wells_and_fields(tmp_path, what):
    import shutil

    path = _plate(tmp_path / "p.zarr", "0.4")
    shutil.rmtree(path / ("A/2" if what == "well" else "A/2/1"))
    with pytest.raises(MetadataError, match=f"lists {what}"):
        open_plate(path)


def test_unknown_channel_and_well(tmp_path):
    info = open_plate(_plate(tmp_path / "p.zarr", "0.4")).field("A/1/0")
    assert info.channel_index("ER") == 1 and info.channel_index("2") == 2
    with pytest.raises(KeyError, match="0=mito, 1=ER, 2=memb"):
        info.channel_index("DAPI")
    with pytest.raises(KeyError, match="it has 3 channel"):
        info.channel_index(3)
    with pytest.raises(KeyError, match="not in plate"):
        open_plate(tmp_path / "p.zarr").select(["H/12"])


def test_mismatched_label_shape_and_unwritable_output(tmp_path):
    info = open_plate(_plate(tmp_path / "p.zarr", "0.4")).field("A/1/0")
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


def test_source_untouched_by_label_writes(tmp_path):
    path = _plate(tmp_path / "p.zarr", "0.5")

    def snapshot() -> dict[str, bytes]:
        return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*")
                if p.is_file() and "labels" not in p.parts}

    before = snapshot()
    info = open_plate(path).field("A/1/0")
    write_labels(info, "cyto", np.ones((2, 128, 128), "uint32"))
    after = snapshot()
    assert before == after
    json.dumps(after.keys().__len__())


@pytest.mark.parametrize("version", VERSIONS)
def test_append_timepoints_grows_image_and_labels(tmp_path, version):
    from structfree_dask.io import append_timepoints, extend_timepoints

    path = _plate(tmp_path / "p.zarr", version, t=2, c=2, size=256)
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


# ----------------------------------------------------------------------------- malformed JSON

BROKEN_JSON = '{"plate": {"name": }'  # json: Expecting value: line 1 column 20


def _simulated(tmp_path: Path, version: str) -> Path:
    from structfree_dask.simulate import simulate_plate

    return Path(simulate_plate(tmp_path / "p.zarr", size=64, ngff_version=version))


@pytest.mark.parametrize(("version", "rel"), [
    ("0.4", ".zattrs"),                # plate root
    ("0.4", ".zgroup"),
    ("0.4", "A/1/.zattrs"),            # well
    ("0.4", "A/1/0/.zattrs"),          # field
    ("0.4", "A/1/0/0/.zarray"),        # array
    ("0.4", "A/1/0/labels/.zattrs"),   # label group of a field
    ("0.5", "zarr.json"),
    ("0.5", "A/1/0/zarr.json"),
    ("0.5", "A/1/0/0/zarr.json"),
    ("0.5", "A/1/0/labels/zarr.json"),
])
def test_malformed_json_names_the_file(tmp_path, version, rel):
    path = _simulated(tmp_path, version)
    bad = path / rel
    assert bad.is_file()
    bad.write_text(BROKEN_JSON)
    expected = re.escape(f"{bad}: not valid JSON (Expecting value: line 1 column 20)")
    with pytest.raises(MetadataError, match=f"^{expected}$"):
        list(open_plate(path).fields())


def test_malformed_json_in_cli_info(tmp_path, capsys):
    from structfree_dask.cli import main

    path = _simulated(tmp_path, "0.4")
    bad = path / "A/1/0/.zattrs"
    bad.write_text(BROKEN_JSON)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: not valid JSON (Expecting value: line 1 column 20)"]


@pytest.mark.parametrize(("text", "found"), [
    ("", "the file is empty"),
    ("[1, 2]", "expected a JSON object; found an array"),
    ('"x"', "expected a JSON object; found a string"),
])
def test_metadata_that_is_not_an_object(tmp_path, text, found):
    path = _simulated(tmp_path, "0.4")
    (path / "A/1/0/0/.zarray").write_text(text)
    with pytest.raises(MetadataError) as info:
        open_plate(path).field("A/1/0")
    assert str(info.value).startswith(f"{path}/A/1/0/0/.zarray: not valid ")
    assert found in str(info.value)


def test_metadata_errors_helper(tmp_path):
    from structfree_dask.io._ngff import metadata_errors
    from structfree_dask.io._plate import MetadataError as Reexported

    assert Reexported is MetadataError and issubclass(MetadataError, ValueError)
    path = _simulated(tmp_path, "0.5")
    with pytest.raises(KeyError, match="unrelated"):  # other errors pass unchanged
        with metadata_errors(path, "A/1/0"):
            raise KeyError("unrelated")
    with pytest.raises(TypeError, match="unrelated"):  # metadata fine: not ours
        with metadata_errors(path, "A/1/0"):
            raise TypeError("unrelated")
    (path / "A/1/0/labels/zarr.json").write_text("{,}")
    with pytest.raises(MetadataError, match=r"A/1/0/labels/zarr\.json: not valid JSON"):
        with metadata_errors(path, "A/1/0/labels"):
            zarr.open_group(str(path), path="A/1/0/labels", mode="r")
    (path / "A/1/0/labels/zarr.json").write_text("{}")
    with pytest.raises(MetadataError, match="zarr metadata is not valid JSON"):
        with metadata_errors(path, "A/1/0/labels"):  # the file is fixed since: name the folder
            json.loads("{,}")


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
def test_bad_well_path_in_plate_metadata(tmp_path, version, well, found):
    path = _simulated(tmp_path, version)
    _set_plate_wells(path, version, [{"path": well, "rowIndex": 0, "columnIndex": 0}])
    with pytest.raises(MetadataError) as info:
        open_plate(path)
    msg = str(info.value)
    assert msg.startswith(f"plate metadata of {path} lists well {well!r}; expected ROW/COLUMN "
                          "such as 'B/3'")
    assert found in msg


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("entry", ["../../../../outside/gt", "../../x", ".zattrs", "", 5])
def test_bad_entry_in_labels_list(tmp_path, version, entry):
    from structfree_dask.cli import main

    path = _simulated(tmp_path, version)
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
