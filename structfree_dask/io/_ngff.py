"""NGFF version logic, kept in one place.

NGFF 0.4 stores its metadata at the top of the zarr v2 ``.zattrs``; NGFF 0.5 stores
it under ``attributes.ome`` of a zarr v3 ``zarr.json`` with ``ome.version`` in every
OME group. Every other module reads and writes OME metadata through
:func:`read_ome` and :func:`write_ome` and never branches on version strings.
"""

from __future__ import annotations

import logging
from typing import Any

import zarr
from ome_zarr.format import Format, FormatV04, FormatV05, detect_format

__all__ = [
    "SUPPORTED_VERSIONS",
    "format_for",
    "detect_version",
    "read_ome",
    "write_ome",
    "open_group_readonly",
    "array_kwargs",
]

logger = logging.getLogger(__name__)

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.4", "0.5")
_FORMATS: dict[str, Format] = {"0.4": FormatV04(), "0.5": FormatV05()}


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
    try:
        return _FORMATS[str(version)]
    except KeyError:
        raise ValueError(
            f"ngff_version must be one of {', '.join(SUPPORTED_VERSIONS)}; got {version!r}"
        ) from None


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
    default = _FORMATS["0.5"] if _zarr_format(group) == 3 else _FORMATS["0.4"]
    meta = read_ome(group)
    if _zarr_format(group) == 3:
        # detect_format understands the v2-style layout; give it the ome block's version.
        version = meta.get("version")
        if version in _FORMATS:
            return str(version)
    fmt = detect_format(meta, default)
    return str(fmt.version) if fmt.version in _FORMATS else str(default.version)


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
    fmt = format_for(version)
    if fmt.zarr_format == 3:
        ome = read_ome(group)
        ome.update(metadata)
        ome["version"] = fmt.version
        group.attrs["ome"] = ome
    else:
        group.attrs.update(metadata)


def open_group_readonly(path: str, group_path: str = "") -> zarr.Group:
    """Open a zarr group (v2 or v3) read-only.

    Parameters
    ----------
    path : str
        Root of the store.
    group_path : str
        Path of the group inside the store.

    Returns
    -------
    zarr.Group

    Raises
    ------
    FileNotFoundError
        If there is no zarr group there.
    """
    try:
        return zarr.open_group(store=str(path), path=group_path, mode="r")
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
    if format_for(version).zarr_format == 3:
        return {"dimension_names": list(axes)}
    return {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
