"""The track graph of a tracked table as a `geff <https://liveimagetrackingtools.org/geff>`_.

geff's own writer writes the arrays; this module turns the table's rows and links
(:mod:`.track_scores`) into its nodes, edges and properties.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd

from ..io import exists, memory_files, redact, remove_tree, store_files
from .columns import KEYS, TRACK_COLUMNS
from .track_scores import track_links
from .tracking import POSITION_COLUMNS, check_rows

__all__ = ["write_geff"]

logger = logging.getLogger(__name__)

_LABEL, _T = KEYS
_TRACK, _PARENT = TRACK_COLUMNS
_NONE = -1


def write_geff(
    location: str | os.PathLike[str],
    table: pd.DataFrame,
    *,
    pixel_size_um: float | None = None,
    time_interval_h: float | None = None,
    columns: Iterable[str] = (),
    overwrite: bool = False,
    zarr_format: Literal[2, 3] = 2,
) -> None:
    """Write the track graph of a tracked table as a geff (a zarr group), with geff's writer.

    Nodes are the rows (node ID = row position in ``table``) with the properties ``t``
    (timepoint), ``y``, ``x`` (centroid, pixels), ``label``, ``track_id``,
    ``parent_track_id`` and ``lineage_id`` (the track ID of the lineage's first track),
    plus ``columns``; ``track_id`` and ``lineage_id`` are declared as geff's tracklet and
    lineage properties (missing for untracked rows). Edges go from each row to the next
    row of its track and from a mother's last row to each daughter's first row (edge
    property ``division``: True for those).

    Parameters
    ----------
    location : str or path-like
        A local folder or a URL fsspec knows (``s3://bucket/plate.zarr/A/1/0/tracks``).
    table : pandas.DataFrame
        Tracked rows (``t``, ``label``, ``centroid_y``, ``centroid_x``, ``track_id``,
        ``parent_track_id``), e.g. from :func:`.tracking.track_cells`.
    pixel_size_um : float, optional
        Pixel size: the ``y`` and ``x`` axes get it as their scale to micrometres.
    time_interval_h : float, optional
        Hours between timepoints: the ``t`` axis gets it as its scale to hours.
    columns : iterable of str
        More numeric columns of ``table`` to store as node properties.
    overwrite : bool
        Replace whatever is at ``location``; otherwise an existing location is an error.
    zarr_format : {2, 3}
        Zarr format of the geff.

    Raises
    ------
    FileExistsError
        If something is at ``location`` and ``overwrite`` is False.
    ValueError
        Missing columns or duplicate ``(t, label)`` rows.

    Notes
    -----
    ``geff.read`` takes a local path, or for a URL a writable zarr store
    (``zarr.storage.FsspecStore.from_url(url)``): geff 1.3 opens the metadata in append mode,
    which a read-only store refuses.

    Examples
    --------
    >>> import tempfile, geff, pandas as pd
    >>> table = pd.DataFrame({"t": [0, 1, 2, 2], "label": [1, 1, 5, 6],
    ...                       "centroid_y": [4.0, 5.0, 3.0, 7.0],
    ...                       "centroid_x": [4.0, 4.0, 4.0, 4.0],
    ...                       "track_id": [1, 1, 2, 3], "parent_track_id": [-1, -1, 1, 1]})
    >>> where = tempfile.mkdtemp() + "/tracks.geff"
    >>> write_geff(where, table, pixel_size_um=0.65, time_interval_h=0.5)
    >>> graph, meta = geff.read(where)
    >>> graph.number_of_nodes(), graph.number_of_edges(), meta.track_node_props
    (4, 3, {'tracklet': 'track_id', 'lineage': 'lineage_id'})
    """
    from geff.core_io import write_arrays
    from geff_spec import GeffMetadata
    from geff_spec.utils import axes_from_lists

    check_rows(table, "table", TRACK_COLUMNS)
    extra = list(columns)
    missing = [c for c in extra if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the column(s) {missing}")
    text = str(location)
    if exists(text):
        if not overwrite:
            raise FileExistsError(f"{redact(text)} exists (overwrite=True replaces it)")
        remove_tree(text)
    node_ids, edges, division = _graph_arrays(table)
    props = _node_props(table, extra)
    edge_props = {"division": {"values": division, "missing": None}}
    axes = axes_from_lists(
        axis_names=["t", "y", "x"], axis_types=["time", "space", "space"],
        axis_units=["frame", "pixel", "pixel"],
        axis_scales=[time_interval_h, pixel_size_um, pixel_size_um],
        scaled_units=["hour" if time_interval_h else None,
                      *(["micrometer" if pixel_size_um else None] * 2)],
    )
    meta = GeffMetadata(directed=True, axes=axes, node_props_metadata={},
                        edge_props_metadata={},
                        track_node_props={"tracklet": _TRACK, "lineage": "lineage_id"})
    # geff's check of the written structure reads it all back (a quarter of the write):
    # skipped here, where the arrays are ours; the tests read every geff back with geff.read
    # written in memory first, then its files (a few dozen small ones) stored at once
    store_files(text, memory_files(lambda store: write_arrays(
        store, node_ids, props, edges, edge_props, meta,  # type: ignore[arg-type]
        zarr_format=zarr_format, structure_validation=False)))
    logger.debug("wrote a geff of %d nodes and %d edges to %s", len(node_ids), len(edges),
                 redact(text))


def _graph_arrays(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node IDs (row positions), edges ``(n, 2)`` and their division flags."""
    node_ids = np.arange(len(table), dtype=np.uint64)
    key = {(int(t), int(lab)): i for i, (t, lab)
           in enumerate(zip(table[_T].tolist(), table[_LABEL].tolist(), strict=True))}
    links = track_links(table)
    pairs = sorted(links.links) + sorted(links.divisions)
    edges = np.array([(key[a], key[b]) for a, b in pairs], dtype=np.uint64).reshape(-1, 2)
    division = np.r_[np.zeros(len(links.links), bool), np.ones(len(links.divisions), bool)]
    return node_ids, edges, division


def _node_props(table: pd.DataFrame, extra: list[str]) -> dict[str, dict[str, np.ndarray | None]]:
    track = table[_TRACK].to_numpy(dtype=np.int64)
    untracked = track < 1
    props: dict[str, dict[str, np.ndarray | None]] = {
        "t": {"values": table[_T].to_numpy(dtype=np.int64), "missing": None},
        "y": {"values": table[POSITION_COLUMNS[0]].to_numpy(dtype=np.float64), "missing": None},
        "x": {"values": table[POSITION_COLUMNS[1]].to_numpy(dtype=np.float64), "missing": None},
        _LABEL: {"values": table[_LABEL].to_numpy(dtype=np.int64), "missing": None},
        _TRACK: {"values": track, "missing": untracked if untracked.any() else None},
        _PARENT: {"values": table[_PARENT].to_numpy(dtype=np.int64), "missing": None},
        "lineage_id": {"values": _lineage(table),
                       "missing": untracked if untracked.any() else None},
    }
    for c in extra:
        props[c] = {"values": table[c].to_numpy(), "missing": None}
    return props


def _lineage(table: pd.DataFrame) -> np.ndarray:
    """Return the first track ID of each row's lineage (-1 for untracked rows)."""
    pairs = table.loc[table[_TRACK].to_numpy() >= 1, list(TRACK_COLUMNS)].drop_duplicates(_TRACK)
    parent = dict(zip(pairs[_TRACK].tolist(), pairs[_PARENT].tolist(), strict=True))
    root: dict[int, int] = {}
    for track in parent:
        chain: list[int] = []
        cur = track
        while cur in parent and cur not in root and cur not in chain:
            chain.append(cur)
            cur = parent[cur]
        top = root[cur] if cur in root else min(chain) if cur in chain else chain[-1] \
            if chain else track
        for c in chain:
            root[c] = top
    return np.array([root.get(int(t), _NONE) for t in table[_TRACK].tolist()], dtype=np.int64)
