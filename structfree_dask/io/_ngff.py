"""NGFF version logic, kept in one place.

NGFF 0.4 stores its metadata at the top of the zarr v2 ``.zattrs``; NGFF 0.5 stores
it under ``attributes.ome`` of a zarr v3 ``zarr.json`` with ``ome.version`` in every
OME group. Every other module reads and writes OME metadata through
:func:`read_ome` and :func:`write_ome` and never branches on version strings.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zarr

if TYPE_CHECKING:  # ome_zarr imported where used: a worker writing labels needs none of it
    from ome_zarr.format import Format

__all__ = [
    "SUPPORTED_VERSIONS",
    "open_array_as",
    "METADATA_FILES",
    "MetadataError",
    "metadata_errors",
    "format_for",
    "zarr_format_for",
    "detect_version",
    "read_ome",
    "write_ome",
    "open_group_readonly",
    "open_group_as",
    "store_options",
    "array_kwargs",
    "group_files",
    "memory_files",
    "open_group_if_any",
]

logger = logging.getLogger(__name__)

#: The zarr format each supported NGFF version is stored in.
_ZARR_FORMATS: dict[str, int] = {"0.4": 2, "0.5": 3}
SUPPORTED_VERSIONS: tuple[str, ...] = tuple(_ZARR_FORMATS)

#: The zarr metadata files a group or array folder may hold (v3, then v2).
METADATA_FILES: tuple[str, ...] = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")


class MetadataError(ValueError):
    """Raised when NGFF metadata is missing, malformed or inconsistent with the data."""


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _file_problem(file: Path) -> str | None:
    """Say what is wrong with one metadata file; None if nothing (or it cannot be read)."""
    try:
        raw = file.read_bytes()
    except OSError:  # absent, a folder or unreadable: zarr reports those itself
        return None
    if not raw.strip():
        return "not valid JSON (the file is empty)"
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError as err:
        return f"not valid JSON (not UTF-8 text: {err.reason} at byte {err.start})"
    except json.JSONDecodeError as err:
        return f"not valid JSON ({err.msg}: line {err.lineno} column {err.colno})"
    except RecursionError:
        return "not valid zarr metadata (nested too deeply to read)"
    if not isinstance(doc, dict):
        return f"not valid zarr metadata (expected a JSON object; found {_json_kind(doc)})"
    attributes = doc.get("attributes", {}) if file.name == "zarr.json" else {}
    if not isinstance(attributes, dict):
        return ("not valid zarr metadata (expected 'attributes' to be a JSON object; "
                f"found {_json_kind(attributes)})")
    return None


def _find_metadata_problem(store: str | os.PathLike, path: str) -> tuple[Path, str] | None:
    """Find the first broken metadata file of ``store/path``, else of its parents."""
    if "://" in str(store):  # an object store: zarr's own message names the group
        return None
    root = Path(store)
    folder = root / path if path else root
    folders = [folder]
    if path:
        folders += [p for p in folder.parents if p == root or root in p.parents]
    for where in folders:
        for name in METADATA_FILES:
            problem = _file_problem(where / name)
            if problem is not None:
                return where / name, problem
    return None


@contextmanager
def metadata_errors(store: str | os.PathLike, path: str = "") -> Iterator[None]:
    """Turn unparsable zarr metadata met in the block into a :class:`MetadataError`.

    Wrap the code that opens a group or array (or tests membership, which opens
    it) at ``path`` inside ``store``. A ``json.JSONDecodeError`` (or a zarr
    metadata error, or the ``TypeError`` zarr raises on a metadata file that is
    JSON but not an object) becomes a :class:`MetadataError` naming the file:
    each candidate file of :data:`METADATA_FILES` in that folder, then in its
    parents up to the store root, is parsed to find the one that fails. Other
    exceptions pass through unchanged.

    Parameters
    ----------
    store : str or path-like
        Root of the store.
    path : str
        Path of the group or array inside the store (``""`` for the root).

    Raises
    ------
    MetadataError
        ``<file>: not valid JSON (Expecting value: line 1 column 19)`` and the like.

    Examples
    --------
    >>> import tempfile, zarr
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp()) / "s.zarr"
    >>> _ = zarr.open_group(str(root), path="A", mode="w", zarr_format=2)
    >>> _ = (root / "A" / ".zattrs").write_text('{"x": }')
    >>> try:
    ...     with metadata_errors(root, "A"):
    ...         zarr.open_group(str(root), path="A", mode="r")
    ... except MetadataError as err:
    ...     print(str(err).replace(str(root), "<store>"))
    <store>/A/.zattrs: not valid JSON (Expecting value: line 1 column 7)
    """
    try:
        yield
    except MetadataError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError,
            zarr.errors.MetadataValidationError) as err:
        found = _find_metadata_problem(store, path)
        if found is not None:
            file, problem = found
            raise MetadataError(f"{file}: {problem}") from err
        if isinstance(err, TypeError):
            raise
        where = f"{store}/{path}" if path else str(store)
        if isinstance(err, zarr.errors.MetadataValidationError):
            raise MetadataError(f"{where}: not valid zarr metadata ({err})") from err
        raise MetadataError(f"{where}: zarr metadata is not valid JSON ({err})") from err


def format_for(version: str) -> Format:
    """Return the ``ome_zarr`` format object of an NGFF version.

    Parameters
    ----------
    version : str
        ``"0.4"`` (zarr v2) or ``"0.5"`` (zarr v3).

    Returns
    -------
    ome_zarr.format.Format

    Raises
    ------
    ValueError
        If the version is not supported.

    Examples
    --------
    >>> format_for("0.5").zarr_format
    3
    """
    return _formats()[_checked_version(version)]


@functools.cache
def _formats() -> dict[str, Format]:
    from ome_zarr.format import FormatV04, FormatV05

    return {"0.4": FormatV04(), "0.5": FormatV05()}


def _checked_version(version: str) -> str:
    if str(version) not in _ZARR_FORMATS:
        raise ValueError(
            f"ngff_version must be one of {', '.join(SUPPORTED_VERSIONS)}; got {version!r}")
    return str(version)


def zarr_format_for(version: str) -> int:
    """Return the zarr format (2 or 3) that an NGFF version is stored in.

    Raises
    ------
    ValueError
        If the version is not supported.

    Examples
    --------
    >>> zarr_format_for("0.4"), zarr_format_for("0.5")
    (2, 3)
    """
    return _ZARR_FORMATS[_checked_version(version)]


def _zarr_format(group: zarr.Group) -> int:
    return int(group.metadata.zarr_format)


def read_ome(group: zarr.Group) -> dict[str, Any]:
    """Return the OME metadata of a group, whatever its NGFF version.

    Parameters
    ----------
    group : zarr.Group

    Returns
    -------
    dict
        ``attributes.ome`` for zarr v3, the top-level attributes for zarr v2.
    """
    attrs = dict(group.attrs)
    if _zarr_format(group) == 3:
        ome = attrs.get("ome", {})
        return dict(ome) if isinstance(ome, dict) else {}
    return attrs


def detect_version(group: zarr.Group) -> str:
    """Return the NGFF version of an OME group (``"0.4"`` or ``"0.5"``).

    The version is read from the metadata (``ome.version`` or the ``version`` of a
    ``multiscales``, ``plate``, ``well`` or ``image-label`` block); a group without
    any falls back on its zarr format (v2 -> 0.4, v3 -> 0.5).

    Parameters
    ----------
    group : zarr.Group

    Returns
    -------
    str
    """
    from ome_zarr.format import detect_format

    formats = _formats()
    default = formats["0.5"] if _zarr_format(group) == 3 else formats["0.4"]
    meta = read_ome(group)
    if _zarr_format(group) == 3:
        # detect_format understands the v2-style layout; give it the ome block's version.
        version = meta.get("version")
        if version in formats:
            return str(version)
    fmt = detect_format(meta, default)
    return str(fmt.version) if fmt.version in formats else str(default.version)


def write_ome(group: zarr.Group, metadata: dict[str, Any], *, version: str) -> None:
    """Merge ``metadata`` into the OME metadata of ``group``, in ``version``'s layout.

    For NGFF 0.5 the ``ome.version`` key is set as well (ome-zarr-py 0.18 omits it
    on ``labels/`` groups, which makes validators reject the whole plate).

    Parameters
    ----------
    group : zarr.Group
        A group opened for writing.
    metadata : dict
        Keys such as ``multiscales``, ``plate``, ``well``, ``labels``, ``image-label``.
    version : str
        The NGFF version of the store.
    """
    if zarr_format_for(version) == 3:
        ome = read_ome(group)
        ome.update(metadata)
        ome["version"] = str(version)
        group.attrs["ome"] = ome
    else:
        group.update_attributes(metadata)  # one write (attrs.update writes per key)


#: s3fs asks for an object's size (HEAD) before reading it whole, to split large objects
#: into concurrent ranges; zarr's chunks and metadata are small: one GET each instead.
S3_STORE_OPTIONS: dict[str, Any] = {"max_concurrency": 1}


def store_options(store: str | os.PathLike) -> dict[str, Any]:
    """Return the keyword arguments zarr's open functions get for a store.

    ``storage_options`` (:data:`S3_STORE_OPTIONS`) for an ``s3://`` URL; nothing for
    another store (fsspec's own configuration applies as well either way).

    Examples
    --------
    >>> store_options("s3://bucket/plate.zarr"), store_options("/data/plate.zarr")
    ({'storage_options': {'max_concurrency': 1}}, {})
    """
    if str(store).startswith(("s3://", "s3a://")):
        return {"storage_options": dict(S3_STORE_OPTIONS)}
    return {}


def open_array_as(store: str | os.PathLike, path: str, mode: str, version: str) -> zarr.Array:
    """Open an existing array of a known NGFF version with zarr, without probing.

    Through :func:`.array_store`: obstore for an ``s3://`` plate where it can, else the
    store as it is (with :func:`store_options`).
    """
    from ._objectstore import array_store

    target = array_store(store, read_only=mode == "r")
    options = store_options(store) if target is store else {}
    return zarr.open_array(store=target, path=path, mode=mode,
                           zarr_format=zarr_format_for(version), **options)


def open_group_as(store: str | os.PathLike, path: str, mode: str, version: str | None
                  ) -> zarr.Group:
    """Open an existing group of a known NGFF version with zarr (``mode`` "r" or "r+").

    Opened as that version's zarr format, without looking for consolidated metadata, with
    :func:`store_options`: 2 requests instead of 8 for a group of version 0.4 on S3. A
    group not found that way (another program's plate whose metadata and zarr format
    disagree) is opened as zarr would, probing. ``version`` None: probing only.
    """
    found = None if version is None else open_group_if_any(store, path, mode, version)
    if found is not None:
        return found
    return zarr.open_group(store=store, path=path, mode=mode, **store_options(store))


def open_group_if_any(store: str | os.PathLike, path: str, mode: str, version: str
                      ) -> zarr.Group | None:
    """Open a group of a known NGFF version as that zarr format; None when there is none.

    Unlike :func:`open_group_as` there is no probing of other formats: on an object store
    the answer costs 2 requests (zarr format 2) or 1 (format 3), whether the group exists
    or not.
    """
    try:
        return zarr.open_group(store=store, path=path, mode=mode, use_consolidated=False,
                               zarr_format=zarr_format_for(version),
                               **store_options(store))
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None


def memory_files(write: Callable[[Any], None]) -> dict[str, bytes]:
    """Return the files that ``write(store)`` makes in an empty in-memory zarr store.

    ``write`` is given a ``zarr.storage.MemoryStore`` (zarr, or a writer such as geff's,
    writes there); the result maps each file's key to its bytes, for
    :func:`~structfree_dask.io.store_files`, which stores them one request each, without
    zarr's existence checks of every parent group.

    Examples
    --------
    >>> files = memory_files(lambda s: zarr.create_array(s, shape=(2,), dtype="u1"))
    >>> sorted(files)
    ['zarr.json']
    """
    from zarr.storage import MemoryStore

    memory: dict[str, Any] = {}
    write(MemoryStore(memory))
    return {key: buffer.to_bytes() for key, buffer in memory.items()}


def group_files(zarr_format: int, build: Callable[[zarr.Group], None]) -> dict[str, bytes]:
    """Return the files of a zarr group that ``build`` makes, made by zarr in memory.

    ``build(group)`` adds arrays (without data) and attributes to an empty group
    (:func:`memory_files`).

    Examples
    --------
    >>> files = group_files(2, lambda g: g.create_array("0", shape=(4,), dtype="u4"))
    >>> sorted(files)
    ['.zattrs', '.zgroup', '0/.zarray', '0/.zattrs']
    """
    return memory_files(
        lambda store: build(zarr.open_group(store=store, mode="w", zarr_format=zarr_format)))


def open_group_readonly(path: str, group_path: str = "", version: str | None = None
                        ) -> zarr.Group:
    """Open a zarr group (v2 or v3) read-only.

    Parameters
    ----------
    path : str
        Root of the store.
    group_path : str
        Path of the group inside the store.
    version : str, optional
        Its NGFF version, when known (:func:`open_group_as`).

    Returns
    -------
    zarr.Group

    Raises
    ------
    FileNotFoundError
        If there is no zarr group there.
    MetadataError
        If a metadata file of the group is not valid JSON (see :func:`metadata_errors`).
    """
    with metadata_errors(path, group_path):
        try:
            return open_group_as(str(path), group_path, "r", version)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError) as err:
            where = f"{path}/{group_path}" if group_path else str(path)
            raise FileNotFoundError(f"expected a zarr group at {where}; found none") from err


def array_kwargs(version: str, axes: tuple[str, ...]) -> dict[str, Any]:
    """Return the keyword arguments for ``zarr.Group.create_array`` in a version's layout.

    NGFF 0.5 arrays carry ``dimension_names``; NGFF 0.4 arrays use ``/`` as the chunk
    key separator, as the specification recommends.

    Examples
    --------
    >>> array_kwargs("0.5", ("y", "x"))
    {'dimension_names': ['y', 'x']}
    """
    if zarr_format_for(version) == 3:
        return {"dimension_names": list(axes)}
    return {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
