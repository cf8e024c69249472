"""The client that reads and writes the arrays of a plate on S3: obstore where it can.

Workers read an image chunk and write a label chunk for every unit; on an object store each
is a request, and with the store near the workers a request is mostly CPU spent in the
client: s3fs (botocore on an asyncio loop) took 1.1 ms of a process's CPU per small GET,
obstore (Rust's ``object_store``, which zarr 3 opens as ``zarr.storage.ObjectStore``)
0.1 ms. :func:`array_store` gives the arrays of an ``s3://`` plate an obstore-backed zarr
store when

* obstore is installed (it comes with the ``s3`` extra),
* the store's settings are all in AWS's environment variables (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, optionally ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``,
  ``AWS_REGION`` / ``AWS_DEFAULT_REGION``), and fsspec has no ``s3`` configuration of its
  own (which obstore would not see: profiles, config files, ``FSSPEC_S3_*``),
* and :data:`S3_CLIENT_VARIABLE` is not ``fsspec``;

otherwise the URL itself (s3fs). Groups, metadata and tables always go through fsspec.
obstore's errors become the standard ones (:func:`translated`): a refused request a
``PermissionError``, a store that does not answer a ``ConnectionError``, with the first
line of obstore's message.

Examples
--------
>>> array_store("/data/plate.zarr", read_only=True)
'/data/plate.zarr'
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from zarr.storage import ObjectStore

__all__ = ["S3_CLIENT_VARIABLE", "CLIENTS", "RETRIES", "TranslatedStore", "array_store",
           "s3_client", "translated"]

#: Environment variable choosing the client of an S3 plate's arrays (:data:`CLIENTS`).
S3_CLIENT_VARIABLE = "STRUCTFREE_DASK_S3_CLIENT"
#: Its values: ``auto`` (the default: obstore where usable), ``obstore``, ``fsspec``.
CLIENTS = ("auto", "obstore", "fsspec")

#: The AWS variables an obstore client is made from (a change makes a new client).
_AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
        "AWS_REGION", "AWS_DEFAULT_REGION")
#: Words of obstore's messages for a request that got no answer.
_UNANSWERED = ("error sending request", "connection refused", "connection reset",
               "timed out", "operation timed out")

#: How obstore retries a request that failed: as s3fs does (5 retries), for 30 s at most
#: (obstore's own default, 10 retries for up to 3 minutes, held a unit that long when the
#: store stopped answering).
RETRIES: dict[str, Any] = {
    "max_retries": 5, "retry_timeout": timedelta(seconds=30),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5),
                "base": 2.0}}

_LOCK = threading.Lock()
_STORES: dict[tuple, Any] = {}


def s3_client(url: str) -> str:
    """Return ``"obstore"`` or ``"fsspec"``: the client of the arrays at ``url``.

    Raises
    ------
    ValueError
        :data:`S3_CLIENT_VARIABLE` holds something else than one of :data:`CLIENTS`.
    ImportError
        It says ``obstore`` and obstore is not installed.
    """
    choice = os.environ.get(S3_CLIENT_VARIABLE, "auto").strip().lower() or "auto"
    if choice not in CLIENTS:
        raise ValueError(f"{S3_CLIENT_VARIABLE}={choice!r}: expected one of {', '.join(CLIENTS)}")
    if not str(url).startswith(("s3://", "s3a://")) or choice == "fsspec":
        return "fsspec"
    try:
        import obstore  # noqa: F401
    except ImportError:
        if choice == "obstore":
            raise ImportError(f"{S3_CLIENT_VARIABLE}=obstore, but obstore is not installed: "
                              "pip install obstore") from None
        return "fsspec"
    if choice == "obstore":
        return "obstore"
    import fsspec.config

    env = os.environ
    in_env = bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"))
    return "obstore" if in_env and not fsspec.config.conf.get("s3") else "fsspec"


def array_store(store: str | os.PathLike[str], *, read_only: bool) -> Any:
    """Return what zarr opens the arrays of ``store`` with.

    An obstore-backed zarr store for an ``s3://`` URL whose client is obstore
    (:func:`s3_client`), one per process for each URL, mode and AWS environment; the
    store itself otherwise.
    """
    if not isinstance(store, str) or s3_client(store) != "obstore":
        return store
    key = (store, read_only, *(os.environ.get(name) for name in _AWS))
    with _LOCK:
        found = _STORES.get(key)
        if found is None:
            found = _STORES[key] = _make(store, read_only)
    return found


def _translating(name: str) -> Any:
    """Return zarr's ``ObjectStore.<name>``, its obstore errors made standard."""
    inner = getattr(ObjectStore, name)

    async def method(self: ObjectStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return await inner(self, *args, **kwargs)
        except Exception as err:
            raise translated(err) from err

    method.__name__ = method.__qualname__ = name
    method.__doc__ = inner.__doc__
    return method


class TranslatedStore(ObjectStore):  # type: ignore[misc,type-arg]
    """zarr's obstore-backed store whose errors are the standard ones (:func:`translated`)."""

    get = _translating("get")
    get_partial_values = _translating("get_partial_values")
    exists = _translating("exists")
    set = _translating("set")
    delete = _translating("delete")


def _make(url: str, read_only: bool) -> TranslatedStore:
    from obstore.store import S3Store

    parts = urlsplit(url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    s3 = S3Store(parts.netloc, prefix=parts.path.strip("/") or None,
                 client_options={"allow_http": endpoint.startswith("http://")},
                 retry_config=RETRIES)
    return TranslatedStore(s3, read_only=read_only)


def translated(err: BaseException) -> BaseException:
    """Return obstore's error as the standard error it stands for (others as they are).

    A missing object is a ``FileNotFoundError`` (as obstore raises it); a refused request
    becomes a ``PermissionError``, one that got no answer a ``ConnectionError``, any other
    an ``OSError``, each with the first line of obstore's message.

    Examples
    --------
    >>> translated(KeyError("x"))
    KeyError('x')
    """
    names = {c.__name__ for c in type(err).__mro__}
    if "BaseError" not in names or isinstance(err, FileNotFoundError):
        return err
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "NotFoundError" in names:
        return FileNotFoundError(text)
    if names & {"PermissionDeniedError", "UnauthenticatedError"}:
        return PermissionError(text)
    if any(word in str(err).lower() for word in _UNANSWERED):
        return ConnectionError(text)
    return OSError(text)
