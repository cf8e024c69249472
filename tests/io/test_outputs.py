"""structfree_dask.io._outputs: output files and folders outside the plate."""

from __future__ import annotations

import os

import pytest

from structfree_dask.io import check_output_file, check_output_folder, replacing


def test_check_output_file_accepts_a_new_or_existing_file(tmp_path):
    assert check_output_file(tmp_path / "scores.csv", "--csv") == tmp_path / "scores.csv"
    assert check_output_file(str(tmp_path / "scores.csv"), "--csv") == tmp_path / "scores.csv"
    (tmp_path / "old.csv").write_text("kept")
    assert check_output_file(tmp_path / "old.csv", "--csv") == tmp_path / "old.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]  # nothing created
    assert (tmp_path / "old.csv").read_text() == "kept"


def test_check_output_file_says_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="^--csv: expected a file path; got ''$"):
        check_output_file("", "--csv")
    with pytest.raises(IsADirectoryError) as err:
        check_output_file(tmp_path, "--csv")
    assert str(err.value) == f"--csv {tmp_path}: is a folder; expected a file path"
    target = tmp_path / "no" / "such" / "r.html"
    with pytest.raises(FileNotFoundError) as err:
        check_output_file(target, "--performance-report")
    assert str(err.value) == (f"--performance-report {target}: folder {target.parent} does not "
                              "exist; create it first")
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        check_output_file(tmp_path / "file" / "r.csv", "--csv")  # a file is not a folder


def test_check_output_folder_new_or_existing(tmp_path):
    assert check_output_folder(tmp_path / "report", "--output") == tmp_path / "report"
    deep = tmp_path / "a" / "b" / "c"
    assert check_output_folder(deep, "--output") == deep
    assert list(tmp_path.iterdir()) == []  # nothing created, at any depth
    (tmp_path / "there").mkdir()
    assert check_output_folder(str(tmp_path / "there"), "--output") == tmp_path / "there"


def test_check_output_folder_says_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="^--output: expected a folder path; got ''$"):
        check_output_folder("", "--output")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError) as err:
        check_output_folder(tmp_path / "file" / "report", "--output")
    assert str(err.value) == (f"--output {tmp_path / 'file' / 'report'}: {tmp_path / 'file'} "
                              "is a file, not a folder; expected a folder for the output")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(NotADirectoryError, match="dangling is a broken symbolic link$"):
        check_output_folder(tmp_path / "dangling" / "report", "--output")


def test_check_output_folder_outside_the_plate(tmp_path):
    plate = tmp_path / "p.zarr"
    plate.mkdir()
    with pytest.raises(ValueError) as err:
        check_output_folder(plate / "runs" / "r1", "--output", outside=plate)
    assert str(err.value) == (f"--output {plate / 'runs' / 'r1'} is inside the plate {plate}; "
                              "choose a folder outside it")
    os.symlink(plate, tmp_path / "alias")  # the same plate through a link
    with pytest.raises(ValueError, match="is inside the plate"):
        check_output_folder(tmp_path / "alias" / "r1", "--output", outside=plate)
    assert check_output_folder(tmp_path / "r1", "--output", outside=plate) == tmp_path / "r1"
    assert check_output_folder(tmp_path / "p.zarr-runs", "--output", outside=plate)


def test_replacing_publishes_the_file_only_when_complete(tmp_path):
    target = tmp_path / "page.html"
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".page.")
        assert tmp.suffix == ".html" and not target.exists()
        tmp.write_text("<p>one</p>")
    assert target.read_text() == "<p>one</p>"
    with pytest.raises(RuntimeError, match="disk full"):
        with replacing(target) as tmp:
            tmp.write_text("<p>half")
            raise RuntimeError("disk full")
    assert target.read_text() == "<p>one</p>"  # the old file stays, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]  # nothing left behind


def test_replacing_replaces_a_link_not_what_it_points_to(tmp_path):
    elsewhere = tmp_path / "elsewhere.html"
    elsewhere.write_text("not mine")
    os.symlink(elsewhere, tmp_path / "page.html")
    with replacing(tmp_path / "page.html") as tmp:
        tmp.write_text("mine")
    assert not (tmp_path / "page.html").is_symlink()
    assert (tmp_path / "page.html").read_text() == "mine"
    assert elsewhere.read_text() == "not mine"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write whatever the permissions say")
def test_read_only_outputs_are_refused(tmp_path):
    (tmp_path / "old.csv").write_text("x")
    (tmp_path / "old.csv").chmod(0o444)
    with pytest.raises(PermissionError, match="^--csv .*old.csv: the file is not writable$"):
        check_output_file(tmp_path / "old.csv", "--csv")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        with pytest.raises(PermissionError, match=f"folder {locked} is not writable$"):
            check_output_file(locked / "r.csv", "--csv")
        with pytest.raises(PermissionError, match=f"folder {locked} is not writable$"):
            check_output_folder(locked / "a" / "b", "--output")
    finally:
        locked.chmod(0o755)
