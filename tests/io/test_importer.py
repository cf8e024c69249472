"""structfree_dask.io._importer: folders of TIFF/PNG fields imported as OME-Zarr plates."""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from structfree_dask.io import import_folder, open_labels, open_plate
from structfree_dask.io._field_files import scan_folder
from structfree_dask.io._file_names import channel_number

from .test_file_metadata import metaseries_tiff
from .test_index_files import cellvoyager_index, harmony_index, image

VERSIONS = ["0.4", "0.5"]


@pytest.mark.parametrize("version", VERSIONS)
def test_import_folder_real_images(tmp_path, version, real_dev, validate):
    REAL_DEV = real_dev
    out = import_folder(REAL_DEV / "Kc167", tmp_path / "kc.zarr", channels=[1, 0],
                        channel_names=["cyto", "nuclear"], ngff_version=version)
    plate = open_plate(out)
    n_images = len(list((REAL_DEV / "Kc167").glob("*_img.png")))  # 3: 400 and 450 px
    assert n_images >= 2 and len(plate.field_paths) == n_images
    info = plate.field(plate.field_paths[0])
    assert info.channel_names == ("cyto", "nuclear") and info.labels == ("gt_cyto",)

    masks = iio.imread(sorted((REAL_DEV / "Kc167").glob("*_masks.png"))[0])
    np.testing.assert_array_equal(open_labels(info, "gt_cyto").read()[0], masks)
    validate(out, same_size_fields=False)


def test_import_named_wells_tiff(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("B03_f1", "B03_f0", "C1_f0"):
        tifffile.imwrite(src / f"{name}.tif", np.ones((3, 64, 64), "uint16"))
    tifffile.imwrite(src / "C1_f0_masks.tif", np.ones((64, 64), "uint16"))
    plate = open_plate(import_folder(src, tmp_path / "o.zarr"))
    assert plate.field_paths == ("B/3/0", "B/3/1", "C/1/0")
    assert plate.field("C/1/0").labels == ("gt_cyto",)
    # each field records its file (field 0 of B/3 is B03_f0, whatever the name order)
    assert [plate.field(p).source for p in plate.field_paths] == [
        "B03_f0.tif", "B03_f1.tif", "C1_f0.tif"]


# ----------------------------------------------------------------------------- importing


def _tiffs(folder: Path, sizes: dict[str, object]) -> Path:
    """Write 2-channel TIFF fields recording pixel sizes: name -> (kind, um) or None."""
    folder.mkdir()
    data = np.zeros((2, 32, 32), "uint16")
    for name, size in sizes.items():
        if size is None:
            tifffile.imwrite(folder / name, data)
        elif size[0] == "imagej":
            tifffile.imwrite(folder / name, data, imagej=True, resolution=(1 / size[1],) * 2,
                             metadata={"unit": size[2], "axes": "CYX"})
        elif size[0] == "ome":
            tifffile.imwrite(folder / name, data, ome=True, metadata={
                "PhysicalSizeX": size[1], "PhysicalSizeY": size[1],
                "PhysicalSizeXUnit": size[2], "PhysicalSizeYUnit": size[2], "axes": "CYX"})
        else:  # a plain TIFF resolution, pixels per centimetre
            tifffile.imwrite(folder / name, data, resolution=(1e4 / size[1],) * 2,
                             resolutionunit="CENTIMETER")
    return folder


@pytest.mark.parametrize(("sizes", "expected"), [
    ({"A1.tif": ("imagej", 0.65, "micron"), "A2.tif": ("imagej", 0.65, "\\u00B5m")}, 0.65),
    ({"A1.tif": ("ome", 325.0, "nm"), "A2.tif": ("ome", 0.325, "µm")}, 0.325),
    ({"A1.tif": ("cm", 0.5), "A2.tif": ("cm", 0.5)}, 0.5),
])
def test_the_pixel_size_the_files_record_is_written(tmp_path, sizes, expected):
    plate = open_plate(import_folder(_tiffs(tmp_path / "src", sizes), tmp_path / "o.zarr"))
    for path in plate.field_paths:
        px = plate.field(path).pixel_size
        assert px["y"] == pytest.approx(expected) and px["x"] == pytest.approx(expected)
    # given, it wins over the files'
    given = open_plate(import_folder(tmp_path / "src", tmp_path / "g.zarr", pixel_size_um=2))
    assert given.field("A/1/0").pixel_size["x"] == 2


def test_no_recorded_pixel_size_is_assumed_with_a_warning(tmp_path, caplog):
    src = _tiffs(tmp_path / "src", {"A1.tif": None, "A2.tif": None})
    plate = open_plate(import_folder(src, tmp_path / "o.zarr"))
    assert plate.field("A/1/0").pixel_size["x"] == 1.0
    assert "record no pixel size: 1 um assumed" in caplog.text


@pytest.mark.parametrize(("sizes", "message"), [
    ({"A1.tif": ("imagej", 0.65, "um"), "A2.tif": ("imagej", 0.5, "um")},
     "A1.tif records the pixel size 0.65 um and A2.tif 0.5 um: a plate has one; give "
     "--pixel-size"),
    ({"A1.tif": ("cm", 0.5), "A2.tif": None}, "A1.tif records the pixel size 0.5 um and "
                                              "A2.tif none: a plate has one"),
    ({"A1.tif": ("imagej", 5000.0, "um")}, "pixel size of the files: expected a finite number "
                                            "between 0.001 and 1000 um"),
])
def test_pixel_sizes_that_disagree_are_refused_before_writing(tmp_path, sizes, message):
    src = _tiffs(tmp_path / "src", sizes)
    with pytest.raises(ValueError, match=re.escape(message)):
        import_folder(src, tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()
    import_folder(src, tmp_path / "o.zarr", pixel_size_um=0.5)  # given: the files' not read


def _per_channel(folder: Path, stems: list[str], value_of=lambda i: i) -> Path:
    """Write one 2D TIFF per stem, the i-th filled with ``value_of(i)``."""
    folder.mkdir()
    for i, stem in enumerate(stems):
        tifffile.imwrite(folder / f"{stem}.tif", np.full((16, 24), value_of(i), "uint16"))
    return folder


@pytest.mark.parametrize("scheme", [
    "r{row:02d}c{col:02d}f{field:02d}p01-ch{ch}sk1fk1fl1",   # Harmony
    "Plate1_{well}_s{field}_w{ch}A1B2C3",                    # MetaXpress
    "Plate1_{well}_T0001F{field:03d}L01A01Z01C{ch:02d}",     # CellVoyager
    "{well}_f{field}_ch{ch}",
])
def test_one_file_per_channel_is_grouped_by_field(tmp_path, scheme):
    wells = [(2, 3, "B03"), (3, 1, "C01")]
    stems, values = [], {}
    for row, col, well in wells:
        for field in (1, 2):
            for ch in (2, 1, 10):  # written out of order: read in channel number order
                stems.append(scheme.format(row=row, col=col, well=well, field=field, ch=ch))
                values[stems[-1]] = 1000 * row + 100 * field + ch
    src = _per_channel(tmp_path / "src", stems, lambda i: values[stems[i]])
    fields = scan_folder(src)
    assert [(f.row, f.col, f.field) for f in fields] == [
        ("B", "3", 1), ("B", "3", 2), ("C", "1", 1), ("C", "1", 2)]
    plate = open_plate(import_folder(src, tmp_path / "o.zarr", channels=[2, 0]))
    assert plate.field_paths == ("B/3/1", "B/3/2", "C/1/1", "C/1/2")
    field = plate.field("C/1/2")
    labels = fields[0].channel_labels
    assert [channel_number(c) for c in labels] == [1, 2, 10]
    assert field.channel_names == (labels[2], labels[0])  # as the names write them
    assert field.open_array(0)[:, 0, 0].tolist() == [3210, 3201]  # (c, y, x)
    assert field.source == ", ".join(p.name for p in fields[3].channel_files)


@pytest.mark.parametrize(("stems", "message"), [
    (["B03_s1_w1", "B03_s1_w2", "C01_s1_w1"],
     "well C/1 field 1 and well B/3 field 1 differ: one has channel w2 and the other not "
     "(every field needs the same channels and timepoints)"),
    (["B03_s1_w1", "B03_s1"], "B03_s1_w1.tif names a channel and B03_s1.tif none"),
    (["B03_t1_w1", "B03_t2_w1", "C01_t1_w1"],
     "well C/1 field 0 and well B/3 field 0 differ: one has channel w1 at timepoint 2"),
    (["B03_t1", "B03"], "B03_t1.tif names a timepoint and B03.tif none"),
    (["r02c03f01p01-ch1sk1fk1fl1", "r02c03f01p02-ch1sk1fk1fl1"],
     "both map to well B/3 field 1 timepoint 1 channel ch1 (a plate field holds one "
     "plane"),
])
def test_channel_files_that_do_not_make_a_plate_are_refused(tmp_path, stems, message):
    src = _per_channel(tmp_path / "src", stems)
    with pytest.raises(ValueError, match=re.escape(message)):
        import_folder(src, tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize("scheme", [
    "r02c03f01p01-ch{ch}sk{t}fk1fl1",                         # Harmony
    "Plate1_B03_T{t:04d}F001L01A01Z01C{ch:02d}",               # CellVoyager
    "B03_f1_t{t}_ch{ch}",
])
def test_a_time_lapse_of_one_file_per_channel_and_timepoint(tmp_path, scheme, caplog):
    stems = [scheme.format(t=t, ch=ch) for t in (3, 1, 2) for ch in (1, 2)]
    values = {scheme.format(t=t, ch=ch): 10 * t + ch for t in (1, 2, 3) for ch in (1, 2)}
    src = _per_channel(tmp_path / "src", stems, lambda i: values[stems[i]])
    plate = open_plate(import_folder(src, tmp_path / "o.zarr", channels=[1]))
    field = plate.field("B/3/1")
    assert field.axes == ("t", "c", "y", "x") and field.n_timepoints == 3
    assert field.open_array(0)[:, 0, 0, 0].tolist() == [12, 22, 32]  # t order, ch2
    assert "give --time-interval" in caplog.text  # 1 h assumed
    timed = open_plate(import_folder(src, tmp_path / "h.zarr", time_interval_h=0.25))
    assert timed.field("B/3/1").pixel_size["t"] == 0.25
    with pytest.raises(ValueError, match="time interval: expected a finite number"):
        import_folder(src, tmp_path / "bad.zarr", time_interval_h=0)


def test_a_time_lapse_of_one_file_per_timepoint(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for t in (1, 2):
        tifffile.imwrite(src / f"B03_t{t}.tif", np.full((2, 16, 24), t, "uint16"))
    field = open_plate(import_folder(src, tmp_path / "o.zarr", time_interval_h=2)
                       ).field("B/3/0")
    assert field.shape == (2, 2, 16, 24) and field.n_timepoints == 2
    assert field.source == "B03_t1.tif, B03_t2.tif"
    (src / "B03_t1_masks.tif").write_bytes((src / "B03_t1.tif").read_bytes())
    with pytest.raises(ValueError, match="label files of time-lapse fields are not imported"):
        import_folder(src, tmp_path / "m.zarr")


@pytest.mark.parametrize("scheme", [
    "r02c03f01p{z:02d}-ch{ch}sk1fk1fl1",                     # Harmony
    "Plate1_B03_T0001F001L01A01Z{z:02d}C{ch:02d}",          # CellVoyager
    "B03_f1_z{z}_ch{ch}",
])
def test_a_z_stack_is_refused_or_projected(tmp_path, scheme):
    stems = [scheme.format(z=z, ch=ch) for z in (1, 2, 3) for ch in (1, 2)]
    peak = {1: 2, 2: 3}  # the plane where each channel is brightest
    src = _per_channel(tmp_path / "src", stems, lambda i: 100 * (
        int(stems[i] == scheme.format(z=peak[1 + i % 2], ch=1 + i % 2))) + i)
    with pytest.raises(ValueError, match="both map to well B/3 field 1 .*channel .*1 .a "
                                         "plate field holds one plane: .*--z-projection max"):
        import_folder(src, tmp_path / "o.zarr")
    field = open_plate(import_folder(src, tmp_path / "o.zarr", z_projection="max")
                       ).field("B/3/1")
    assert field.shape == (2, 16, 24)
    assert field.open_array(0)[:, 0, 0].tolist() == [102, 105]  # planes 2 and 3
    assert field.source.endswith("(maximum intensity projection of 3 planes)")


def test_z_stacks_that_differ_are_refused(tmp_path):
    src = _per_channel(tmp_path / "src", ["B03_z1_ch1", "B03_z2_ch1", "B03_z1_ch2"])
    with pytest.raises(ValueError, match="well B/3 field 0: its channels or timepoints have 1 "
                                         "and 2 planes"):
        import_folder(src, tmp_path / "o.zarr", z_projection="max")
    with pytest.raises(ValueError, match="z projection: expected one of None, max; got 'mean'"):
        import_folder(src, tmp_path / "o.zarr", z_projection="mean")


def test_a_time_lapse_imported_into_an_object_store(tmp_path, s3_env):
    s3_env("admin")
    # five fields, written by several threads at once into the bucket
    stems = [f"{w}_t{t}_ch{c}" for w in ("B03", "B04", "C01", "C02", "D05") for t in (1, 2, 3)
             for c in (1, 2)]
    src = _per_channel(tmp_path / "src", stems, lambda i: i)
    url = "s3://plates/import-timelapse.zarr"
    plate = open_plate(import_folder(src, url, time_interval_h=0.5))
    assert plate.field_paths == ("B/3/0", "B/4/0", "C/1/0", "C/2/0", "D/5/0")
    for k, path in enumerate(plate.field_paths):
        field = plate.field(path)
        assert field.n_timepoints == 3 and field.open_array(0)[:, :, 0, 0].tolist() == [
            [6 * k, 6 * k + 1], [6 * k + 2, 6 * k + 3], [6 * k + 4, 6 * k + 5]]


def test_a_channel_file_of_another_size_or_with_channels_is_refused(tmp_path):
    src = _per_channel(tmp_path / "src", ["B03_w1"])
    tifffile.imwrite(src / "B03_w2.tif", np.zeros((8, 8), "uint16"))
    with pytest.raises(ValueError, match=r"B03_w2.tif is \(8, 8\) \(y, x\) and B03_w1.tif"):
        import_folder(src, tmp_path / "o.zarr")
    tifffile.imwrite(src / "B03_w2.tif", np.zeros((2, 16, 24), "uint16"))
    with pytest.raises(ValueError, match=r"B03_w2.tif: expected one channel \(w2, as its name"):
        import_folder(src, tmp_path / "o.zarr")


def _named(folder: Path, names: dict[str, list[str] | None]) -> Path:
    """Write 3-channel OME-TIFF fields naming their channels: file -> names or None."""
    folder.mkdir()
    for file, channel_names in names.items():
        meta = {"axes": "CYX", **({"Channel": {"Name": channel_names}} if channel_names else {})}
        tifffile.imwrite(folder / file, np.zeros((3, 16, 16), "uint16"), ome=True, metadata=meta)
    return folder


def test_the_channel_names_the_files_record_are_written(tmp_path):
    src = _named(tmp_path / "src", {"A1.tif": ["GFP", "mCherry", "Cy5"],
                                    "A2.tif": ["GFP", "mCherry", "Cy5"]})
    plate = open_plate(import_folder(src, tmp_path / "all.zarr"))
    assert plate.field("A/2/0").channel_names == ("GFP", "mCherry", "Cy5")
    kept = open_plate(import_folder(src, tmp_path / "kept.zarr", channels=[2, 0]))
    assert kept.field("A/1/0").channel_names == ("Cy5", "GFP")
    given = open_plate(import_folder(src, tmp_path / "given.zarr", channel_names=["a", "b", "c"]))
    assert given.field("A/1/0").channel_names == ("a", "b", "c")


@pytest.mark.parametrize(("second", "message"), [
    (["mCherry", "GFP", "Cy5"], "A1.tif records the channel names GFP, mCherry, Cy5 and "
                                "A2.tif mCherry, GFP, Cy5: a plate has one; give "
                                "--channel-names"),
    (None, "A1.tif records the channel names GFP, mCherry, Cy5 and A2.tif none"),
])
def test_channel_names_that_differ_between_files_are_refused(tmp_path, second, message):
    src = _named(tmp_path / "src", {"A1.tif": ["GFP", "mCherry", "Cy5"], "A2.tif": second})
    with pytest.raises(ValueError, match=re.escape(message)):
        import_folder(src, tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()
    named = import_folder(src, tmp_path / "o.zarr", channel_names=["x", "y", "z"])
    assert open_plate(named).field("A/2/0").channel_names == ("x", "y", "z")


# ------------------------------------------------ exports with a microscope's index file


def test_a_harmony_export_is_named_sized_and_timed_by_its_index(tmp_path):
    src = _per_channel(tmp_path / "Images", [f"r02c03f01p01-ch{c}sk{t}fk1fl1"
                                             for t in (1, 2) for c in (1, 2)])
    harmony_index(src, [image(c, name, t=t, MeasurementTimeOffset=900 * (t - 1),
                              resolution="3.25E-07")
                        for t in (1, 2) for c, name in ((1, "HOECHST 33342"), (2, "Alexa 488"))])
    field = open_plate(import_folder(src, tmp_path / "o.zarr")).field("B/3/1")
    assert field.channel_names == ("HOECHST 33342", "Alexa 488")
    assert [field.pixel_size[a] for a in "tyx"] == pytest.approx([0.25, 0.325, 0.325])
    # what the caller gives wins over the index
    given = open_plate(import_folder(src, tmp_path / "g.zarr", channel_names=["a", "b"],
                                     pixel_size_um=0.5, time_interval_h=2)).field("B/3/1")
    assert given.channel_names == ("a", "b")
    assert [given.pixel_size[a] for a in "tyx"] == pytest.approx([2, 0.5, 0.5])


def test_images_or_timepoints_the_index_lists_and_the_folder_lacks_are_said(tmp_path, caplog):
    fields = [f"r02c03f{f:02d}p01-ch{c}sk1fk1fl1" for f in (1, 2, 3) for c in (1, 2)]
    src = _per_channel(tmp_path / "Images", fields[:4])  # field 3 was not copied
    harmony_index(src, [image(c, URL=f"{stem}.tiff") for stem, c in zip(
        fields, (1, 2) * 3, strict=True)])
    for path in src.glob("*.tif"):
        path.rename(path.with_suffix(".tiff"))
    plate = open_plate(import_folder(src, tmp_path / "o.zarr"))
    assert plate.field_paths == ("B/3/1", "B/3/2")
    assert ("Index.idx.xml lists 6 image files and 2 of them are not in the folder "
            "(r02c03f03p01-ch1sk1fk1fl1.tiff, r02c03f03p01-ch2sk1fk1fl1.tiff): the plate is "
            "imported without them") in caplog.text
    caplog.clear()
    plate = metaxpress_plate(tmp_path / "plate", timepoints=2)
    htd = plate / "Plate1.HTD"
    htd.write_text(htd.read_text() + '"TimePoints", 3\r\n')
    import_folder(plate, tmp_path / "m.zarr", time_interval_h=1)
    assert ("Plate1.HTD says 3 timepoints were taken and the folder has 2: the plate is "
            "imported with 2") in caplog.text
    caplog.clear()  # one timepoint's folder, chosen: the others are not missing from it
    import_folder(plate / "TimePoint_2", tmp_path / "t2.zarr")
    assert "timepoints were taken" not in caplog.text


def test_wells_sites_or_channels_an_htd_file_selects_and_the_folder_lacks_are_said(
        tmp_path, caplog):
    plate = metaxpress_plate(tmp_path / "plate", timepoints=1)  # B03 and C01, s1, w1 and w2
    htd = plate / "Plate1.HTD"
    text = htd.read_text()
    htd.write_text(text + '"XWells", 4\r\n"YWells", 3\r\n"WellsSelection1", FALSE\r\n'
                   '"WellsSelection2", FALSE, FALSE, TRUE, FALSE\r\n'
                   '"WellsSelection3", TRUE, FALSE, FALSE, TRUE\r\n'
                   '"Sites", TRUE\r\n"XSites", 2\r\n"YSites", 1\r\n'
                   '"WaveCollect3", 1\r\n"NWavelengths", 3\r\n')
    out = open_plate(import_folder(plate, tmp_path / "o.zarr", time_interval_h=1))
    assert out.field_paths == ("B/3/1", "C/1/1")  # imported with what is there
    assert ("Plate1.HTD says 3 wells were taken, and the folder has no image of 1 of them "
            "(C/4): the plate is imported without them") in caplog.text
    assert ("Plate1.HTD says 2 site(s) were taken in each well and 2 well(s) have fewer in "
            "the folder (B/3 (1), C/1 (1))") in caplog.text
    assert ("Plate1.HTD says channels w1, w2, w3 were taken and the folder has no file of "
            "w3") in caplog.text
    assert "does not say wells" not in caplog.text
    caplog.clear()
    # a selection that matches the folder: nothing said; one that leaves out a well
    # whose images are there: said
    htd.write_text(text + '"XWells", 3\r\n"YWells", 3\r\n"WellsSelection2", FALSE, FALSE, TRUE\r\n'
                   '"WellsSelection3", FALSE\r\n"Sites", FALSE\r\n')
    import_folder(plate, tmp_path / "m.zarr", time_interval_h=1)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "Plate1.HTD does not say wells C/1 were taken, and the folder has images of them: "
        "they are imported (is it the index file of these images?)"]
    caplog.clear()
    htd.write_text(text + '"XWells", 3\r\n"YWells", 3\r\n"WellsSelection2", FALSE, FALSE, TRUE\r\n'
                   '"WellsSelection3", TRUE\r\n"Sites", FALSE\r\n')
    import_folder(plate, tmp_path / "n.zarr", time_interval_h=1)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_an_index_and_files_that_disagree_on_the_pixel_size_are_refused(tmp_path):
    src = tmp_path / "Images"
    src.mkdir()
    for c in (1, 2):
        tifffile.imwrite(src / f"r02c03f01p01-ch{c}sk1fk1fl1.tif", np.zeros((16, 24), "uint16"),
                         resolution=(1e4 / 0.65,) * 2, resolutionunit="CENTIMETER")
    harmony_index(src, [image(c, resolution="3.25E-07") for c in (1, 2)])
    with pytest.raises(ValueError, match=re.escape(
            "r02c03f01p01-ch1sk1fk1fl1.tif records the pixel size 0.65 um and Index.idx.xml "
            "0.325 um: a plate has one; give --pixel-size")):
        import_folder(src, tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()


def test_a_cellvoyager_export_is_sized_and_timed_by_its_measurement_files(tmp_path):
    stems = [f"P_B03_T{t:04d}F001L01A01Z01C{c:02d}" for t in (1, 2) for c in (1, 2)]
    src = _per_channel(tmp_path / "src", stems)
    cellvoyager_index(src, sizes=(0.325, 0.325), times={
        1: "2024-03-01T10:00:00+09:00", 2: "2024-03-01T10:45:00+09:00"})
    field = open_plate(import_folder(src, tmp_path / "o.zarr")).field("B/3/1")
    assert [field.pixel_size[a] for a in "tyx"] == pytest.approx([0.75, 0.325, 0.325])
    assert field.channel_names == ("C01", "C02")  # named as the file names write them


def metaxpress_plate(plate: Path, timepoints: int, planes: int = 0) -> Path:
    """Write a MetaXpress plate folder: an HTD file and TimePoint_<n>[/ZStep_<k>] folders."""
    plate.mkdir()
    (plate / "Plate1.HTD").write_text('"HTSInfoFile", Version 1.0\r\n"NWavelengths", 2\r\n'
                                      '"WaveName1", "DAPI"\r\n"WaveName2", "FITC"\r\n')
    for t in range(1, timepoints + 1):
        for z in range(1, planes + 1) if planes else (0,):
            folder = plate / f"TimePoint_{t}" / (f"ZStep_{z}" if planes else "")
            folder.mkdir(parents=True, exist_ok=True)
            for well in ("B03", "C01"):
                for w, wave in ((1, "DAPI"), (2, "FITC")):
                    metaseries_tiff(folder / f"Plate1_{well}_s1_w{w}A1B2C3.tif",
                                    np.full((16, 24), 100 * t + 10 * z + w, "uint16"),
                                    um=0.65, illumination=wave)
                    metaseries_tiff(folder / f"Plate1_{well}_s1_w{w}_thumbA1B2C3.tif",
                                    np.zeros((4, 6), "uint16"))  # thumbnails: left out
    return plate


def test_ametaxpress_plate_folder_of_timepoint_folders(tmp_path):
    plate = metaxpress_plate(tmp_path / "plate", timepoints=3)
    field = open_plate(import_folder(plate, tmp_path / "o.zarr", time_interval_h=0.5)
                       ).field("C/1/1")
    assert field.n_timepoints == 3 and field.channel_names == ("DAPI", "FITC")
    assert [field.pixel_size[a] for a in "tyx"] == pytest.approx([0.5, 0.65, 0.65])  # TIFFs'
    assert field.open_array(0)[:, :, 0, 0].tolist() == [[101, 102], [201, 202], [301, 302]]
    assert field.source.startswith("TimePoint_1/Plate1_C01_s1_w1A1B2C3.tif, "
                                   "TimePoint_1/Plate1_C01_s1_w2A1B2C3.tif, TimePoint_2/")
    # one timepoint's folder: its plate folder's HTD names the channels
    one = open_plate(import_folder(plate / "TimePoint_2", tmp_path / "t2.zarr")).field("B/3/1")
    assert one.axes == ("c", "y", "x") and one.channel_names == ("DAPI", "FITC")


def test_metaxpress_z_steps_are_planes(tmp_path):
    plate = metaxpress_plate(tmp_path / "plate", timepoints=1, planes=2)
    with pytest.raises(ValueError, match="a plate field holds one plane"):
        import_folder(plate, tmp_path / "o.zarr")
    field = open_plate(import_folder(plate, tmp_path / "o.zarr", z_projection="max")
                       ).field("B/3/1")
    assert field.axes == ("c", "y", "x") and field.open_array(0)[:, 0, 0].tolist() == [121, 122]
    assert field.source.endswith("(maximum intensity projection of 2 planes)")


def test_metaseries_channel_files_without_an_index_are_named_by_their_illumination(tmp_path):
    plate = metaxpress_plate(tmp_path / "plate", timepoints=1)
    (plate / "Plate1.HTD").unlink()
    field = open_plate(import_folder(plate / "TimePoint_1", tmp_path / "o.zarr")).field("B/3/1")
    assert field.channel_names == ("DAPI", "FITC")


def test_an_index_that_names_the_channels_otherwise_than_the_files_is_refused(tmp_path):
    plate = metaxpress_plate(tmp_path / "plate", timepoints=1)  # the TIFFs: DAPI, FITC
    htd = plate / "Plate1.HTD"
    htd.write_text(htd.read_text().replace('"DAPI"', '"dapi"'))  # case aside, the same
    field = open_plate(import_folder(plate, tmp_path / "a.zarr")).field("B/3/1")
    assert field.channel_names == ("dapi", "FITC")  # the index file's
    htd.write_text(htd.read_text().replace('"dapi"', '"FITC"').replace(
        '"WaveName2", "FITC"', '"WaveName2", "DAPI"'))
    with pytest.raises(ValueError, match=re.escape(
            "Plate1.HTD names the channels w1=FITC, w2=DAPI and the files record DAPI, FITC: "
            "channels in another order than the file names say? Give --channel-names")):
        import_folder(plate, tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()
    field = open_plate(import_folder(plate, tmp_path / "o.zarr", channel_names=["DAPI", "FITC"])
                       ).field("B/3/1")
    assert field.channel_names == ("DAPI", "FITC")
    # files that disagree among themselves cannot be checked: the index file names them
    metaseries_tiff(plate / "TimePoint_1" / "Plate1_C01_s1_w1A1B2C3.tif",
                    np.full((16, 24), 111, "uint16"), um=0.65, illumination="Cy5")
    field = open_plate(import_folder(plate, tmp_path / "p.zarr")).field("C/1/1")
    assert field.channel_names == ("FITC", "DAPI")


@pytest.mark.parametrize("threads", [1, 3])
def test_a_file_whose_pixels_cannot_be_read_leaves_no_plate(tmp_path, monkeypatch, threads):
    from structfree_dask.io import _importer

    monkeypatch.setattr(_importer, "IMPORT_THREADS", threads)
    src = _per_channel(tmp_path / "src", [f"B{c:02d}_w1" for c in range(1, 7)],
                       lambda i: i + 1)
    bad = src / "B04_w1.tif"  # its header is whole, its pixels cut short
    bad.write_bytes(bad.read_bytes()[:-400])
    with pytest.raises(ValueError, match="failed to read"):
        import_folder(src, tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists() and sorted(tmp_path.iterdir()) == [src]
    bad.unlink()
    plate = open_plate(import_folder(src, tmp_path / "o.zarr"))  # in order, each its own
    assert [int(plate.field(p).open_array(0)[0, 0, 0]) for p in plate.field_paths] == [
        1, 2, 3, 5, 6]


def test_fields_of_one_well_written_at_once_are_all_listed_in_order(tmp_path, monkeypatch):
    """Fields written by several threads: the well lists every one, in number order."""
    from structfree_dask.io import _importer

    monkeypatch.setattr(_importer, "IMPORT_THREADS", 4)
    src = _per_channel(tmp_path / "src", [f"B03_s{f}_w{w}" for f in range(1, 13) for w in (1, 2)],
                       lambda i: i)
    plate = open_plate(import_folder(src, tmp_path / "o.zarr"))
    assert plate.field_paths == tuple(f"B/3/{f}" for f in range(1, 13))
    assert [plate.field(p).open_array(0)[:, 0, 0].tolist() for p in plate.field_paths] == [
        [2 * i, 2 * i + 1] for i in range(12)]


def test_each_file_header_is_read_once(tmp_path, monkeypatch):
    from structfree_dask.io import _importer

    src = _per_channel(tmp_path / "src", [f"B03_s{f}_w{w}" for f in (1, 2) for w in (1, 2)])
    read: list[str] = []
    real = _importer.read_header

    def counted(path):
        read.append(path.name)
        return real(path)

    monkeypatch.setattr(_importer, "read_header", counted)
    import_folder(src, tmp_path / "o.zarr")
    assert sorted(read) == sorted(p.name for p in src.iterdir())


@pytest.fixture
def rgb_folder(tmp_path):
    """Two 3-channel PNG fields (channels last), one with a mask."""
    src = tmp_path / "src"
    src.mkdir()
    img = np.zeros((64, 48, 3), "uint8")
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30
    iio.imwrite(src / "a.png", img)
    iio.imwrite(src / "b_img.png", img)
    mask = np.zeros((64, 48), "uint8")
    mask[5:10, 5:10] = 4
    iio.imwrite(src / "b_masks.png", mask)
    return src


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"channels": [3]}, "a.png has 3 channels; channel index(es) [3] do not exist"),
    ({"channels": [0, 0]}, "channels [0, 0]: a channel is listed more than once"),
    ({"channels": []}, "channels: expected at least one channel index; got none"),
    ({"channel_names": ["x"]}, "channel names ['x']: expected 3 (one per kept channel); got 1"),
    ({"channel_names": ["x", "x", "y"]}, "expected distinct, non-empty names"),
    ({"pixel_size_um": 0}, "pixel size: expected a finite number between 0.001 and 1000 um; "
                           "got 0"),
    ({"mask_label": "a/b"}, "mask label name must be one path component"),
])
def test_import_checks_everything_before_writing(tmp_path, rgb_folder, kwargs, message):
    with pytest.raises(ValueError) as err:
        import_folder(rgb_folder, tmp_path / "o.zarr", **kwargs)
    assert message in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing written


def test_import_rgb_png_channels_last(tmp_path, rgb_folder):
    out = import_folder(rgb_folder, tmp_path / "o.zarr", channels=[2, 0],
                        channel_names=["far", "near"], pixel_size_um=0.65, name="screen")
    assert out == tmp_path / "o.zarr"
    plate = open_plate(out)
    assert plate.name == "screen" and plate.field_paths == ("A/1/0", "A/2/0")
    info = plate.field("A/2/0")
    assert info.axes == ("c", "y", "x") and info.shape == (2, 64, 48)
    assert info.channel_names == ("far", "near") and info.pixel_size["x"] == 0.65
    assert [int(v) for v in info.read((slice(None), 0, 0))] == [30, 10]
    assert plate.field("A/1/0").labels == () and info.labels == ("gt_cyto",)
    assert open_labels(info, "gt_cyto").read()[0, 7, 7] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.zarr", "src"]  # no partial left
    with pytest.raises(FileExistsError, match="already exists"):
        import_folder(rgb_folder, tmp_path / "o.zarr")


def test_import_refuses_mismatched_files(tmp_path, rgb_folder):
    iio.imwrite(rgb_folder / "b_masks.png", np.zeros((32, 48), "uint8"))
    with pytest.raises(ValueError, match=r"b_masks.png has shape \(32, 48\); its image "
                                         r"b_img.png is \(64, 48\) \(y, x\)"):
        import_folder(rgb_folder, tmp_path / "o.zarr")
    (rgb_folder / "b_masks.png").unlink()
    iio.imwrite(rgb_folder / "c.png", np.zeros((64, 48), "uint8"))  # one channel, not three
    with pytest.raises(ValueError, match="c.png has 1 channels; a.png has 3 \\(every field of "
                                         "a plate has the same channels\\)"):
        import_folder(rgb_folder, tmp_path / "o.zarr")
    (rgb_folder / "c.png").unlink()
    (rgb_folder / "d.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"d.tif: not a readable TIFF/PNG image \("):
        import_folder(rgb_folder, tmp_path / "o.zarr")
    (rgb_folder / "d.tif").unlink()
    tifffile.imwrite(rgb_folder / "e.tif", np.zeros((2, 9, 64, 48), "uint8"))
    with pytest.raises(ValueError, match=r"e.tif: expected a 2D image or a 3D image with up to 8 "
                                         r"channels; found shape \(2, 9, 64, 48\)"):
        import_folder(rgb_folder, tmp_path / "o.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
