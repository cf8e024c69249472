"""structfree_dask.io._location: local paths and URLs, through one set of functions.

URLs here are ``file://`` URLs into ``tmp_path`` (fsspec's local filesystem behind the
object-store code path); tests/io/test_object_store.py covers a real S3 server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from structfree_dask.io import (
    StoreError,
    as_location,
    basename,
    check_store,
    concurrently,
    exists,
    filesystem,
    is_url,
    join,
    prune,
    redact,
    remove_tree,
    store_files,
    upload,
    write_text,
)


@pytest.mark.parametrize(("location", "url"), [
    ("s3://bucket/plate.zarr", True),
    ("gs://b", True),
    ("file:///data/p.zarr", True),
    ("/data/plate.zarr", False),
    ("plate.zarr", False),
    (Path("/data/plate.zarr"), False),
])
def test_is_url_and_as_location(location, url):
    assert is_url(location) is url
    loc = as_location(location)
    assert loc == (str(location) if url else Path(location))
    assert isinstance(loc, str if url else Path)


@pytest.mark.parametrize(("location", "shown"), [
    ("s3://key:secret@bucket/plate.zarr?token=x", "s3://bucket/plate.zarr"),
    ("s3://user@bucket/p#fragment", "s3://bucket/p"),
    ("https://h:9000/b/p?X-Amz-Signature=abc", "https://h:9000/b/p"),
    ("/data/a:b@c?d", "/data/a:b@c?d"),  # a local path is shown as it is
])
def test_redact_drops_credentials_and_queries(location, shown):
    assert redact(location) == shown


def test_join_and_basename():
    assert join("s3://bucket/plate.zarr/", "/A/1/", "", "0") == "s3://bucket/plate.zarr/A/1/0"
    assert join(Path("/data/p.zarr"), "A/1") == "/data/p.zarr/A/1"
    assert join("/data/p.zarr", "", "/") == "/data/p.zarr"
    assert basename("s3://bucket/runs/plate.zarr/") == "plate.zarr"
    assert basename("s3://bucket") == "bucket" and basename("s3://bucket/") == "bucket"
    assert basename(Path("/data/p.zarr")) == "p.zarr"


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "url"])
def test_exists_write_text_upload_and_remove_tree(tmp_path, as_url):
    def loc(path: Path) -> str | Path:
        return path.as_uri() if as_url else path

    tree = tmp_path / "tree"
    tree.mkdir()
    assert exists(loc(tree)) and not exists(loc(tmp_path / "missing"))
    write_text(loc(tree / "notes.txt"), "é 1\n")
    assert (tree / "notes.txt").read_bytes() == "é 1\n".encode()
    source = tmp_path / "source.bin"
    source.write_bytes(b"\x00\x01")
    upload(source, loc(tree / "copy.bin"))
    assert (tree / "copy.bin").read_bytes() == b"\x00\x01"
    assert exists(loc(tree / "copy.bin"))
    remove_tree(loc(tree))
    assert not tree.exists() and source.exists()
    remove_tree(loc(tree))  # nothing there: nothing happens


def test_concurrently_keeps_the_order_and_raises_after_every_call_ended():
    import threading
    import time

    threads, ran = set(), []

    def work(i: int) -> int:
        threads.add(threading.get_ident())
        time.sleep(0.01 * (5 - i))  # later items end first
        ran.append(i)
        if i in (1, 3):
            raise ValueError(f"item {i}")
        return i * i

    assert concurrently(lambda i: i * i, range(5)) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="item 1"):  # the first in order, not in time
        concurrently(work, range(5))
    assert sorted(ran) == [0, 1, 2, 3, 4] and len(threads) > 1
    assert concurrently(work, [0], threads=1) == [0] and concurrently(work, []) == []


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "url"])
def test_store_files_makes_a_zarr_group_made_in_memory(tmp_path, as_url):
    import zarr

    from structfree_dask.io import group_files

    def build(group):
        group.create_array("0", shape=(4, 4), chunks=(2, 2), dtype="u4", fill_value=0)
        group.attrs["made"] = "in memory"

    where = tmp_path / "g.zarr" / "sub"
    store_files(where.as_uri() if as_url else where, group_files(2, build))
    group = zarr.open_group(str(where), mode="r", zarr_format=2)
    assert group.attrs["made"] == "in memory"
    assert group["0"].shape == (4, 4) and int(group["0"][:].sum()) == 0


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "url"])
def test_prune_removes_only_the_stale_files_it_owns(tmp_path, as_url):
    folder = tmp_path / "report"
    folder.mkdir()
    for name in ("well-A1.html", "well-B9.html", "well-B9.png", "notes.txt"):
        (folder / name).write_text(name)
    (folder / "well-sub").mkdir()
    owned = lambda name: name.startswith("well-")  # noqa: E731
    where = folder.as_uri() if as_url else folder
    assert prune(where, ["well-A1.html"], owned) == ["well-B9.html", "well-B9.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "well-A1.html", "well-sub"]
    assert prune(where, ["well-A1.html"], owned) == []
    assert prune(tmp_path / "missing", [], owned) == []


def test_prune_on_an_object_store(s3_env):
    s3_env("admin")
    base = "s3://plates/prune-test"
    remove_tree(base)
    for name in ("well-A1.html", "well-C3.html", "other.json"):
        write_text(f"{base}/{name}", name)
    assert prune(base, {"well-A1.html"}, lambda n: n.startswith("well-")) == ["well-C3.html"]
    fs, path = filesystem(base)
    fs.invalidate_cache(path)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(path, detail=False)) == [
        "other.json", "well-A1.html"]
    assert prune(f"{base}-missing", [], lambda n: True) == []
    remove_tree(base)


def test_local_writes_create_their_folder(tmp_path):
    write_text(tmp_path / "a" / "b" / "c.txt", "x")
    (tmp_path / "src").write_text("y")
    upload(tmp_path / "src", tmp_path / "d" / "e" / "f.txt")
    assert (tmp_path / "a/b/c.txt").read_text() == "x"
    assert (tmp_path / "d/e/f.txt").read_text() == "y"


def test_filesystem_of_a_url(tmp_path):
    fs, path = filesystem((tmp_path / "p.zarr").as_uri())
    assert path == str(tmp_path / "p.zarr") and fs.protocol[0] == "file"
    with pytest.raises(StoreError) as err:
        filesystem("nosuchproto://key:secret@bucket/p.zarr")
    assert str(err.value).startswith("cannot open nosuchproto://bucket/p.zarr: ")
    assert "secret" not in str(err.value)
    assert issubclass(StoreError, ConnectionError)


def test_check_store(tmp_path):
    check_store(tmp_path / "missing", write=True)  # local paths: left to the local checks
    url = tmp_path.as_uri()
    check_store(url, write=True)
    assert list(tmp_path.iterdir()) == []  # the write probe was deleted
    missing = (tmp_path / "missing").as_uri()
    check_store(missing, must_exist=False)
    with pytest.raises(StoreError) as err:
        check_store(missing)
    assert str(err.value) == (f"expected an OME-Zarr plate or image at {missing}; nothing is "
                              "there")
    blocked = (tmp_path / "a-file").as_uri() + "/p.zarr"  # a file where a folder must be
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StoreError, match=f"^cannot write into {blocked}: the store refused the "
                                         "write \\("):
        check_store(blocked, write=True, must_exist=False)
    check_store(missing, write=True, must_exist=False)  # folders are made as they are needed
    with pytest.raises(StoreError, match="^cannot open nosuchproto://b/p: "):
        check_store("nosuchproto://user:secret@b/p?token=x")


def test_file_urls_write_into_new_folders(tmp_path):
    """A file:// URL behaves as an object store: writes create the folders they need
    (a label image under a file:// plate, a report file), as they do locally."""
    import numpy as np

    from structfree_dask.io import create_labels, open_labels, open_plate, write_label_region
    from structfree_dask.io import write_text as put_text
    from structfree_dask.simulate import simulate_plate

    put_text(f"file://{tmp_path}/new/deeper/note.txt", "kept")
    assert (tmp_path / "new" / "deeper" / "note.txt").read_text() == "kept"
    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=1, timepoints=1, size=64, seed=1)
    info = open_plate(f"file://{path}").field("A/1/0")
    label = create_labels(info, "cyto")
    data = np.arange(64 * 64, dtype="uint32").reshape(1, 1, 64, 64)
    write_label_region(label, {"t": slice(0, 1)}, data.reshape(label.shapes[0]))
    local = open_labels(open_plate(str(path)).field("A/1/0"), "cyto")
    np.testing.assert_array_equal(local.read().ravel(), data.ravel())
