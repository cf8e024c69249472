"""structfree_dask.io._field_files: which files of a folder make each field of a plate."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from structfree_dask.io._field_files import FieldFile, scan_folder


def test_scan_folder_pairs_masks_and_numbers_unnamed_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    iio.imwrite(src / "b_img.png", np.zeros((64, 64, 3), "uint8"))
    iio.imwrite(src / "b_masks.png", np.zeros((64, 64), "uint8"))
    iio.imwrite(src / "a.png", np.zeros((64, 64, 3), "uint8"))
    (src / "notes.txt").write_text("not an image")
    assert scan_folder(src) == [
        FieldFile(src / "a.png", None, "A", "1", 0),
        FieldFile(src / "b_img.png", src / "b_masks.png", "A", "2", 0),
    ]


def test_scan_folder_reads_well_names(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("b3-2.tiff", "AA12_s1.TIF", "c007.png"):
        (src / name).write_bytes(b"")  # scanning reads names only
    found = {f.image.name: (f.row, f.col, f.field) for f in scan_folder(src)}
    assert found == {"b3-2.tiff": ("B", "3", 2), "AA12_s1.TIF": ("AA", "12", 1),
                     "c007.png": ("C", "7", 0)}
    (src / "B03_f2.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="b3-2.tiff and B03_f2.tif both map to well B/3 field 2"):
        scan_folder(src)


def test_scan_folder_missing_or_without_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a folder of TIFF/PNG images at .*; "
                                                "not found"):
        scan_folder(tmp_path / "nowhere")
    (tmp_path / "only_masks_masks.png").write_bytes(b"")
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"expected TIFF/PNG images \(\.tif, \.tiff, "
                                                r"\.png\) in .*; found none"):
        scan_folder(tmp_path)


def test_files_of_one_channel_timepoint_and_plane_are_grouped_by_field(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    names = [f"r02c03f01p0{z}-ch{c}sk{t}fk1fl1.tiff" for z in (1, 2) for c in (2, 1)
             for t in (2, 1)]
    for name in [*names, "Plate_B03_s1_w1_thumbA1.tif"]:  # a thumbnail, left out
        (src / name).write_bytes(b"")
    with pytest.raises(ValueError, match="--z-projection max"):
        scan_folder(src)
    (src / "Plate_B03_s1_w1_thumbA1.tif").unlink()
    [field] = scan_folder(src, z_projection="max")
    assert (field.row, field.col, field.field, field.channel_labels) == ("B", "3", 1,
                                                                        ("ch1", "ch2"))
    assert [[p.name for p in files] for files in field.timepoint_files] == [
        ["r02c03f01p01-ch1sk1fk1fl1.tiff", "r02c03f01p01-ch2sk1fk1fl1.tiff"],
        ["r02c03f01p01-ch1sk2fk1fl1.tiff", "r02c03f01p01-ch2sk2fk1fl1.tiff"]]
    assert [p.name for p in field.planes(field.image)] == [
        "r02c03f01p01-ch1sk1fk1fl1.tiff", "r02c03f01p02-ch1sk1fk1fl1.tiff"]
    assert len(field.files) == len(names)
