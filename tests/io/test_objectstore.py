"""io._objectstore: the arrays of an S3 plate through obstore, with standard errors.

Against the same SeaweedFS server as tests/io/test_object_store.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.cli import main
from structfree_dask.io import open_plate, remove_tree
from structfree_dask.io._objectstore import translated

from .test_object_store import SIM, _labels


def test_obstores_errors_read_as_the_standard_ones():
    from obstore.exceptions import GenericError, NotFoundError, PermissionDeniedError

    refused = translated(PermissionDeniedError("The operation lacked the necessary "
                                               "privileges\n\nDebug source: ..."))
    assert isinstance(refused, PermissionError) and str(refused) == (
        "The operation lacked the necessary privileges")
    lost = translated(GenericError("Generic S3 error: ... HTTP error: error sending request"))
    assert isinstance(lost, ConnectionError)
    other = translated(GenericError("Generic S3 error: the body was cut short"))
    assert type(other) is OSError
    missing = FileNotFoundError("no such key")  # as obstore raises it: zarr's fill value
    assert translated(missing) is missing
    assert isinstance(translated(NotFoundError("no such key")), FileNotFoundError)
    assert isinstance(translated(ValueError("x")), ValueError)


def test_without_obstore_auto_falls_back_and_asking_for_it_says_how_to_install(monkeypatch):
    import sys

    from structfree_dask.io import S3_CLIENT_VARIABLE, s3_client

    monkeypatch.setitem(sys.modules, "obstore", None)  # as if not installed: import fails
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv(S3_CLIENT_VARIABLE, "auto")
    assert s3_client("s3://plates/p.zarr") == "fsspec"
    monkeypatch.setenv(S3_CLIENT_VARIABLE, "obstore")
    with pytest.raises(ImportError, match=f"^{S3_CLIENT_VARIABLE}=obstore, but obstore is not "
                                          "installed: pip install obstore$"):
        s3_client("s3://plates/p.zarr")
    assert s3_client("/data/p.zarr") == "fsspec"  # a local plate needs no S3 client


def test_the_arrays_client_is_obstore_where_it_can_be(s3_env, monkeypatch):
    """obstore for an s3:// plate whose settings are AWS's variables, s3fs otherwise and
    when asked; both read the same pixels and labels."""
    import fsspec.config

    from structfree_dask.io import S3_CLIENT_VARIABLE, array_store, clear_array_cache, s3_client
    from structfree_dask.io._objectstore import TranslatedStore

    s3_env("admin")
    url = "s3://plates/client.zarr"
    remove_tree(url)
    assert main(["simulate", url, *SIM]) == 0
    assert s3_client(url) == "obstore" and s3_client("/data/p.zarr") == "fsspec"
    assert array_store(url, read_only=True) is array_store(url, read_only=True)
    clear_array_cache()
    info = open_plate(url).field("A/1/0")
    image = info.open_array(0)
    assert isinstance(image.store, TranslatedStore)
    pixels = np.asarray(image[...])
    labels = _labels(url, "gt_cyto")
    monkeypatch.setenv(S3_CLIENT_VARIABLE, "fsspec")
    clear_array_cache()
    assert s3_client(url) == "fsspec" and array_store(url, read_only=True) == url
    assert not isinstance(info.open_array(0).store, TranslatedStore)
    assert np.array_equal(np.asarray(info.open_array(0)[...]), pixels)
    assert all(np.array_equal(a, labels[k]) for k, a in _labels(url, "gt_cyto").items())
    monkeypatch.setenv(S3_CLIENT_VARIABLE, "auto")
    monkeypatch.setitem(fsspec.config.conf, "s3", {"anon": False})  # fsspec's own settings
    assert s3_client(url) == "fsspec"
    monkeypatch.delitem(fsspec.config.conf, "s3")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")  # credentials from elsewhere (a profile)
    assert s3_client(url) == "fsspec"
    monkeypatch.setenv(S3_CLIENT_VARIABLE, "rust")
    with pytest.raises(ValueError, match="expected one of auto, obstore, fsspec"):
        s3_client(url)
    clear_array_cache()


def test_obstore_errors_are_the_standard_ones(s3_env, monkeypatch):
    """A write the store refuses is a PermissionError, a store that does not answer a
    ConnectionError, each in one line."""
    from structfree_dask.io import clear_array_cache, open_array_as

    s3_env("admin")
    url = "s3://plates/errors.zarr"
    remove_tree(url)
    assert main(["simulate", url, *SIM]) == 0
    path = f"{open_plate(url).field('A/1/0').path}/labels/gt_cyto/0"
    s3_env("reader")
    array = open_array_as(url, path, "r+", "0.4")
    with pytest.raises(PermissionError) as refused:
        array[..., :8, :8] = 1
    assert "\n" not in str(refused.value) and "privileges" in str(refused.value)
    s3_env("admin", AWS_ENDPOINT_URL="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ConnectionError) as unanswered:
        open_array_as(url, path, "r", "0.4")
    assert "\n" not in str(unanswered.value)
    clear_array_cache()
