"""structfree_dask.io._fetch: local, checksummed copies of files at a URL, cached per user.

The URLs are ``file://`` URLs of files in ``tmp_path``: fsspec reads them through the same
code path as an object store, without a network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from structfree_dask.io import CACHE_ENV, cache_dir, local_copy
from structfree_dask.io._fetch import SHA256_DIGITS


@pytest.fixture
def weights(tmp_path) -> tuple[Path, str]:
    """A file in a fake store, and its full SHA-256."""
    source = tmp_path / "store" / "zoo" / "m" / "weights.pth"
    source.parent.mkdir(parents=True)
    content = bytes(range(256)) * 5000  # > 1 MiB: read in several blocks
    source.write_bytes(content)
    return source, hashlib.sha256(content).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert CACHE_ENV == "STRUCTFREE_DASK_CACHE"
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(CACHE_ENV, "")  # empty: as if unset
    assert cache_dir() == tmp_path / "xdg" / "structfree-dask"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "structfree-dask"
    assert not (tmp_path / "home").exists()  # not created here


def test_a_local_path_is_returned_as_it_is(tmp_path, weights):
    source, _ = weights
    assert local_copy(str(source), cache=tmp_path / "cache") == source
    assert not (tmp_path / "cache").exists()


def test_download_is_kept_under_its_checksum(tmp_path, weights):
    source, sha = weights
    cache = tmp_path / "cache"
    got = local_copy(source.as_uri(), cache=cache)
    assert SHA256_DIGITS == 16
    assert got == cache / "weights" / sha[:16] / "weights.pth"
    assert got.read_bytes() == source.read_bytes()
    assert _files(cache) == [f"weights/{sha[:16]}/weights.pth"]  # no temporary file left
    zoo = local_copy(source.as_uri(), sha.upper(), cache=cache, kind="zoo")
    assert zoo == cache / "zoo" / sha[:16] / "weights.pth"


def test_a_cached_copy_is_used_without_asking_the_store(tmp_path, weights):
    source, sha = weights
    cache = tmp_path / "cache"
    first = local_copy(source.as_uri(), sha, cache=cache)
    source.unlink()  # the store no longer has it
    assert local_copy(source.as_uri(), sha[:16], cache=cache) == first
    with pytest.raises(FileNotFoundError, match=f"^no file at {source.as_uri()}$"):
        local_copy(source.as_uri(), cache=cache)  # without a checksum the store is asked


def test_the_default_cache_is_cache_dir(tmp_path, weights, monkeypatch):
    source, sha = weights
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env-cache"))
    got = local_copy(source.as_uri(), sha)
    assert got == tmp_path / "env-cache" / "weights" / sha[:16] / "weights.pth"


def test_a_wrong_checksum_is_an_error_and_keeps_nothing(tmp_path, weights):
    source, sha = weights
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as err:
        local_copy(source.as_uri(), "0" * 64, cache=cache)
    assert str(err.value) == (f"{source.as_uri()} has checksum {sha[:16]}, expected "
                              f"{'0' * 16} (the file changed in the store after its card was "
                              "written?)")
    assert _files(cache) == []
