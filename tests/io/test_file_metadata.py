"""structfree_dask.io._file_metadata: the pixel size and channel names image files record."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from structfree_dask.io._file_metadata import (
    read_header,
    recorded_channel_names,
    recorded_pixel_size,
)

DATA = np.zeros((2, 32, 48), "uint16")


@pytest.mark.parametrize(("unit", "per_pixel", "expected"), [
    ("micron", 0.65, 0.65), ("um", 0.5, 0.5), ("\\u00B5m", 0.25, 0.25),  # ImageJ escapes µ
    ("nm", 325.0, 0.325), ("mm", 0.001, 1.0),
])
def test_imagej_resolution_in_its_unit(tmp_path, unit, per_pixel, expected):
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, DATA, imagej=True, resolution=(1 / per_pixel, 1 / per_pixel),
                     metadata={"unit": unit, "axes": "CYX"})
    assert recorded_pixel_size(path) == pytest.approx((expected, expected))


def test_ome_physical_sizes_with_their_units_y_and_x_apart(tmp_path):
    path = tmp_path / "f.ome.tif"
    tifffile.imwrite(path, DATA, ome=True, metadata={
        "axes": "CYX", "PhysicalSizeY": 400.0, "PhysicalSizeYUnit": "nm",
        "PhysicalSizeX": 0.5})  # µm by default
    assert recorded_pixel_size(path) == pytest.approx((0.4, 0.5))


def test_a_resolution_per_centimetre_and_not_per_inch(tmp_path):
    cm, inch = tmp_path / "cm.tif", tmp_path / "inch.tif"
    tifffile.imwrite(cm, DATA[0], resolution=(1e4 / 0.3, 1e4 / 0.3), resolutionunit="CENTIMETER")
    tifffile.imwrite(inch, DATA[0], resolution=(72, 72), resolutionunit="INCH")  # print dpi
    assert recorded_pixel_size(cm) == pytest.approx((0.3, 0.3))
    assert recorded_pixel_size(inch) is None


def test_files_without_a_physical_size(tmp_path):
    plain, png, pixels = tmp_path / "plain.tif", tmp_path / "f.png", tmp_path / "px.tif"
    tifffile.imwrite(plain, DATA[0])
    iio.imwrite(png, DATA[0].astype("uint8"))
    tifffile.imwrite(pixels, DATA, imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "pixel", "axes": "CYX"})  # ImageJ's "no unit"
    ome = tmp_path / "no.ome.tif"
    tifffile.imwrite(ome, DATA, ome=True, metadata={"axes": "CYX"})
    assert [recorded_pixel_size(p) for p in (plain, png, pixels, ome)] == [None] * 4


def test_channel_names_from_ome_and_imagej(tmp_path):
    ome, ij = tmp_path / "f.ome.tif", tmp_path / "ij.tif"
    tifffile.imwrite(ome, DATA, ome=True,
                     metadata={"axes": "CYX", "Channel": {"Name": ["GFP", "mCherry"]}})
    tifffile.imwrite(ij, DATA, imagej=True, metadata={"axes": "CYX", "Labels": ["ER", "mito"]})
    assert recorded_channel_names(ome) == ("GFP", "mCherry")
    assert recorded_channel_names(ij) == ("ER", "mito")


def test_no_channel_names_where_a_file_does_not_give_each(tmp_path):
    plain, unnamed, stack = tmp_path / "p.tif", tmp_path / "u.ome.tif", tmp_path / "z.tif"
    tifffile.imwrite(plain, DATA)
    tifffile.imwrite(unnamed, DATA, ome=True, metadata={"axes": "CYX"})
    # ImageJ labels one per plane of a z-stack: not channel names
    tifffile.imwrite(stack, np.zeros((3, 2, 8, 8), "uint16"), imagej=True,
                     metadata={"axes": "ZCYX", "Labels": ["a", "b", "c", "d", "e", "f"]})
    assert [recorded_channel_names(p) for p in (plain, unnamed, stack)] == [None] * 3


def metaseries_tiff(path, data, um: float | None = 0.65, illumination: str | None = "DAPI",
                    calibrated: str = "on"):
    """Write a TIFF as MetaXpress does: MetaSeries properties in its description."""
    props = [f'<prop id="spatial-calibration-state" type="bool" value="{calibrated}"/>']
    if um is not None:
        props += [f'<prop id="spatial-calibration-{a}" type="float" value="{um}"/>'
                  for a in "xy"]
        props.append('<prop id="spatial-calibration-units" type="string" value="um"/>')
    if illumination is not None:
        props.append(f'<prop id="_IllumSetting_" type="string" value="{illumination}"/>')
    description = ('<MetaData><prop id="Description" type="string" value="a site"/>'
                   f'<PlaneInfo>{"".join(props)}</PlaneInfo><SetInfo/></MetaData>')
    tifffile.imwrite(path, data, description=description, software="MetaSeries",
                     metadata=None)
    return path


def test_metaseries_calibration_and_illumination(tmp_path):
    path = metaseries_tiff(tmp_path / "P_B03_s1_w1.tif", DATA[0])
    header = read_header(path)
    assert header.shape == (32, 48)
    assert header.pixel_size == pytest.approx((0.65, 0.65))
    assert header.channel_names == ("DAPI",)
    # not calibrated, or without an illumination: neither is recorded
    off = metaseries_tiff(tmp_path / "off.tif", DATA[0], calibrated="off", illumination=None)
    assert (read_header(off).pixel_size, read_header(off).channel_names) == (None, None)
    # a MetaSeries file of several planes is not named by one illumination
    assert recorded_channel_names(metaseries_tiff(tmp_path / "two.tif", DATA)) is None


def test_an_unreadable_file_says_so(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="bad.tif: not a readable TIFF/PNG image"):
        read_header(bad)
