"""structfree_dask.io._file_names: a file's well, field, timepoint and channel from its name."""

from __future__ import annotations

import pytest

from structfree_dask.io._file_names import FileName, channel_number, parse_name


@pytest.mark.parametrize(("stem", "expected"), [
    # Harmony (Operetta, Opera Phenix): rows and columns as numbers
    ("r02c03f01p01-ch1sk1fk1fl1", FileName("B", "3", 1, "ch1", "p01", 1)),
    ("r32c48f12p03-ch4sk72fk1fl1", FileName("AF", "48", 12, "ch4", "p03", 72)),
    # MetaXpress (ImageXpress): site optional, an id after the wavelength
    ("Plate1_B03_s2_w1A1B2C3D4-5E6F", FileName("B", "3", 2, "w1", "")),
    ("MyPlate_2024_H12_w3", FileName("H", "12", 0, "w3", "")),
    # CellVoyager
    ("AssayPlate_B03_T0005F004L01A01Z01C02", FileName("B", "3", 4, "C02", "Z01", 5)),
    # a well name first
    ("B03_f2", FileName("B", "3", 2, None, "")), ("B3-1", FileName("B", "3", 1, None, "")),
    ("C1", FileName("C", "1", 0, None, "")), ("B03_f2_ch1", FileName("B", "3", 2, "ch1", "")),
    ("B03_c1", FileName("B", "3", 0, "c1", "")),
    ("B03_f2_t3", FileName("B", "3", 2, None, "", 3)),
    ("B03_s1_t12_w2", FileName("B", "3", 1, "w2", "", 12)),
    ("B03_t0_ch1", FileName("B", "3", 0, "ch1", "", 0)),
    ("B03_f1_DAPI", FileName("B", "3", 1, None, "")),
    # a plate name that reads as a well does not hide the vendor's well after it
    ("P1_B03_s1_w1", FileName("B", "3", 1, "w1", "")),
    ("P1_B03_T0001F001L01A01Z01C01", FileName("B", "3", 1, "C01", "Z01", 1)),
    ("B03_s2_w1A1B2C3D4", FileName("B", "3", 2, "w1", "")),
])
def test_names_of_the_field(stem, expected):
    assert parse_name(stem) == expected


@pytest.mark.parametrize("stem", ["095_img", "a", "field00", "image-7", "r00c01f01p01-ch1"])
def test_names_that_give_no_well(stem):
    assert parse_name(stem) is None


def test_channels_in_number_order():
    assert sorted(["ch10", "ch2", "ch1"], key=channel_number) == ["ch1", "ch2", "ch10"]
    assert channel_number("C01") == 1 and channel_number("w4") == 4
