"""structfree_dask.io._safepath: writes stay inside the plate (no links, no way out)."""

from __future__ import annotations

import os

import pytest

from structfree_dask.io import UnsafePathError, check_writable, checked_tree, is_inside
from structfree_dask.io._safepath import check_no_links, checked_path, is_local


def test_is_local():
    assert is_local("/data/plate.zarr") and is_local("plate.zarr")
    assert not is_local("s3://bucket/plate.zarr")


def test_is_inside_resolves_links(tmp_path):
    plate = tmp_path / "p.zarr"
    (plate / "runs").mkdir(parents=True)
    (tmp_path / "reports").mkdir()
    assert is_inside(plate, plate) and is_inside(plate / "runs" / "new", plate)
    assert is_inside(str(plate / "runs"), str(plate))
    assert not is_inside(tmp_path / "reports", plate)
    assert not is_inside(tmp_path / "p.zarr-copy", plate)  # a prefix is not a parent
    assert not is_inside(plate / ".." / "reports", plate)
    os.symlink(tmp_path / "reports", plate / "runs" / "out")  # inside by name only
    assert not is_inside(plate / "runs" / "out", plate)
    os.symlink(plate, tmp_path / "alias")  # outside by name only
    assert is_inside(tmp_path / "alias" / "runs", plate)
    assert not is_inside("s3://b/p.zarr/x", "s3://b/p.zarr")
    assert not is_inside(plate, "s3://b/p.zarr") and not is_inside("s3://b/x", plate)


def test_checked_path_accepts_plain_names(tmp_path):
    assert checked_path(str(tmp_path), "A/1/0/labels/cyto") == tmp_path / "A/1/0/labels/cyto"
    assert checked_path(str(tmp_path), "") == tmp_path
    assert checked_path(str(tmp_path), "/A//1/") == tmp_path / "A" / "1"  # empty parts skipped
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.parametrize("part", ["..", "."])
def test_checked_path_refuses_dots(tmp_path, part):
    with pytest.raises(UnsafePathError) as err:
        checked_path(str(tmp_path), f"A/{part}/cyto")
    assert str(err.value) == (f"refusing to write to {tmp_path}/A/{part}/cyto: {part!r} is not "
                              "a plain name inside the plate")
    assert isinstance(err.value, PermissionError)


def test_checked_path_refuses_links_but_not_a_linked_root(tmp_path):
    plate = tmp_path / "p.zarr"
    (plate / "A" / "1").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, plate / "A" / "2")
    with pytest.raises(UnsafePathError) as err:
        checked_path(str(plate), "A/2/0/labels")
    assert str(err.value).startswith(f"refusing to write through {plate / 'A' / '2'}: it is a "
                                     f"symbolic link (to {outside}); this package writes only "
                                     "inside the plate's own folders")
    os.symlink(plate, tmp_path / "alias.zarr")  # the root is what the user named
    assert checked_path(str(tmp_path / "alias.zarr"), "A/1") == tmp_path / "alias.zarr/A/1"


def test_checked_tree_looks_inside_too(tmp_path):
    (tmp_path / "measurements" / "t" / "sub").mkdir(parents=True)
    (tmp_path / "measurements" / "t" / "sub" / "part.parquet").write_bytes(b"x")
    assert checked_tree(str(tmp_path), "measurements/t") == tmp_path / "measurements/t"
    assert checked_tree(str(tmp_path), "measurements/new") == tmp_path / "measurements/new"
    assert checked_tree("s3://bucket/p.zarr", "measurements/t") is None  # no links there
    target = tmp_path / "elsewhere.parquet"
    target.write_bytes(b"y")
    link = tmp_path / "measurements" / "t" / "sub" / "other.parquet"
    os.symlink(target, link)
    with pytest.raises(UnsafePathError) as err:
        checked_tree(str(tmp_path), "measurements/t")
    assert str(err.value).startswith(f"refusing to write into {tmp_path / 'measurements/t'}: "
                                     f"{link} is a symbolic link (to {target})")
    with pytest.raises(UnsafePathError, match="is a symbolic link"):
        check_no_links(tmp_path / "measurements")
    check_no_links(tmp_path / "missing")  # nothing there: nothing to refuse


def test_check_writable_on_a_writable_plate(tmp_path):
    (tmp_path / "p.zarr").mkdir()
    (tmp_path / "p.zarr" / ".zattrs").write_text("{}")
    assert check_writable(tmp_path / "p.zarr") is None
    assert check_writable(tmp_path / "p.zarr" / "A" / "1" / "labels") is None  # nearest folder
    assert sorted(p.name for p in (tmp_path / "p.zarr").iterdir()) == [".zattrs"]  # no mkdir


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write whatever the permissions say")
def test_check_writable_refuses_read_only_plates(tmp_path):
    plate = tmp_path / "p.zarr"
    plate.mkdir()
    (plate / ".zattrs").write_text("{}")
    (plate / ".zattrs").chmod(0o444)
    with pytest.raises(PermissionError, match=f"^cannot write {plate / '.zattrs'}: it is "
                                              "read-only for this user$"):
        check_writable(plate)
    plate.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as err:
            check_writable(plate / "A" / "1")
        assert str(err.value).startswith(f"cannot write into {plate}: the plate is read-only "
                                         "for this user")
    finally:
        plate.chmod(0o755)
