"""Linking and measuring a plate on a Dask cluster, one (field, timepoint) per task.

A task reads its plane region by region (memory bounded by the region size, not the
field size): first the nucleus-by-cell overlaps and cell boxes
(:func:`.linking.region_summary`), then, with the links made, it writes the linked
nuclei and the cytoplasm (every pyramid level) and measures each region's own cells
(those whose box starts in it) on a window that holds them whole. Its table rows are
written last, in one piece, so a (field, timepoint) whose rows exist is complete: runs
resume, and appending timepoints measures only the new ones. The driver validates
everything before the first write and records linking as done in batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io import (
    ImageInfo,
    LabelImage,
    ParquetStream,
    TableExistsError,
    completed_timepoints,
    create_feature_table,
    create_labels,
    feature_table_timepoints,
    filesystem,
    finalize_labels,
    is_url,
    join,
    label_record,
    list_tables,
    mark_done,
    open_labels,
    open_plate,
    plate_dataset,
    plate_part_name,
    table_attrs,
    table_part_location,
    update_table_attrs,
    write_label_region,
    write_parquet,
    write_table_part,
)
from .columns import PLATE_KEYS
from .linking import Linking, cytoplasm, link, linked_nuclei, merge_summaries, region_summary
from .measure import column_dtypes, empty_measurements, measure_cells
from .planes import level_shape, plane_index, read_labels, regions

__all__ = ["CellsResult", "REGION", "check_cells", "linked_names", "link_plate",
           "measure_plate", "table_name", "write_rows"]

logger = logging.getLogger(__name__)

#: Region size (pixels, a multiple of the label chunks) a task reads at a time.
REGION = 1024
_RECORD = "structfree_dask"


def table_name(labels: str, table: str | None = None) -> str:
    """Return the table a measurement writes: ``table``, or ``<labels>_features``.

    Examples
    --------
    >>> table_name("cyto")
    'cyto_features'
    """
    return table or f"{labels}_features"


def linked_names(cells: str) -> tuple[str, str]:
    """Label images linking writes for a cell label image: linked nuclei, cytoplasm.

    Examples
    --------
    >>> linked_names("cyto")
    ('cyto_nuclei', 'cyto_cytoplasm')
    """
    return f"{cells}_nuclei", f"{cells}_cytoplasm"


@dataclass(frozen=True)
class _Unit:
    """One (field, timepoint) of a run and what to do with it."""

    image: ImageInfo
    t: int
    cells: str
    nuclei: str | None
    outputs: tuple[str, str] | None  # linked nuclei, cytoplasm; None: do not write labels
    table: str | None
    plate_store: str
    channels: tuple[int, ...]
    region: int


@dataclass
class CellsResult:
    """What a run did: units done, skipped and failed, and the counts of each unit.

    Attributes
    ----------
    done, skipped : list of (str, int)
        (field path, timepoint).
    failed : list of (str, int, str)
        (field path, timepoint, error).
    counts : dict
        ``"<field>@t<t>"`` -> cells, nuclei and flagged objects of that unit
        (:meth:`.linking.Linking.counts`).
    """

    done: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no unit failed."""
        return not self.failed

    def flagged(self) -> dict[str, int]:
        """Return the flagged objects summed over the units of the run."""
        keys = ("cells_without_nucleus", "cells_with_several_nuclei", "nuclei_outside_cells")
        return {k: sum(c.get(k, 0) for c in self.counts.values()) for k in keys}


# --------------------------------------------------------------------------------------
# worker side


def _link_unit(unit: _Unit, cells: LabelImage, nuclei: LabelImage | None) -> Linking:
    ny, nx = level_shape(cells, 0)
    summaries = []
    for ys, xs in regions(ny, nx, unit.region):
        c = read_labels(cells, unit.t, ys, xs)
        n = read_labels(nuclei, unit.t, ys, xs) if nuclei is not None else np.zeros_like(c)
        summaries.append(region_summary(n, c, (ys.start, xs.start)))
    return link(merge_summaries(summaries))


def _write_linked(unit: _Unit, linking: Linking, cells: LabelImage,
                  nuclei: LabelImage | None) -> None:
    assert unit.outputs is not None
    out_nuc, out_cyt = (open_labels(unit.image, name) for name in unit.outputs)
    for level in range(len(out_nuc.shapes)):
        ny, nx = level_shape(out_nuc, level)
        chunk = out_nuc.chunks[level][unit.image.axes.index("y")]
        size = max(chunk, unit.region // chunk * chunk)
        for ys, xs in regions(ny, nx, size):
            c = read_labels(cells, unit.t, ys, xs, level)
            n = read_labels(nuclei, unit.t, ys, xs, level) if nuclei is not None else None
            lk = linked_nuclei(n, linking) if n is not None else np.zeros(c.shape, c.dtype)
            region = {"t": slice(unit.t, unit.t + 1), "y": ys, "x": xs}
            write_label_region(out_nuc, region, lk, level=level)
            write_label_region(out_cyt, region, cytoplasm(c, lk), level=level)


def _measure_unit(unit: _Unit, linking: Linking, cells: LabelImage,
                  nuclei: LabelImage | None) -> None:
    """Measure the unit's cells region by region, streaming the rows to its table parts.

    A region's rows are written as they are measured (one row group each), so memory does
    not grow with the number of cells in the field; the field's part is closed last.
    """
    import pyarrow as pa

    assert unit.table is not None
    image = unit.image
    names = [image.channel_names[c] for c in unit.channels]
    ny, nx = level_shape(cells, 0)
    px = image.pixel_size
    boxes = linking.cell_boxes
    image_arr = image.open_array(0)
    empty = empty_measurements(names)
    schema = pa.Schema.from_pandas(empty, preserve_index=False)
    plate_schema = pa.schema(
        [pa.field(k, pa.int32() if k == "field" else pa.string()) for k in PLATE_KEYS]
        + list(schema))
    field_part = table_part_location(image, unit.table, unit.t)
    plate_part = join(plate_dataset(unit.plate_store, unit.table),
                      plate_part_name(image.path, unit.t))
    with ParquetStream(field_part, schema) as field_out, \
            ParquetStream(plate_part, plate_schema) as plate_out:
        for ys, xs in regions(ny, nx, unit.region):
            own = ((boxes[:, 0] >= ys.start) & (boxes[:, 0] < ys.stop)
                   & (boxes[:, 1] >= xs.start) & (boxes[:, 1] < xs.stop))
            if not own.any():
                continue
            wy = slice(ys.start, int(boxes[own, 2].max()))
            wx = slice(xs.start, int(boxes[own, 3].max()))
            c = read_labels(cells, unit.t, wy, wx)
            n = read_labels(nuclei, unit.t, wy, wx) if nuclei is not None else None
            lk = linked_nuclei(n, linking) if n is not None else np.zeros(c.shape, c.dtype)
            img = np.stack([np.asarray(image_arr[plane_index(image, unit.t, wy, wx, ch)])
                            for ch in unit.channels]) if unit.channels else np.zeros(
                                (0, *c.shape))
            df = measure_cells(
                c, lk, img, owned=linking.cell_ids[own], channel_names=names,
                pixel_size_um=(px.get("y", 1.0), px.get("x", 1.0)), field_shape=(ny, nx),
                n_nuclei=linking.n_nuclei[own], offset=(wy.start, wx.start))
            df["t"] = np.int32(unit.t)
            plate_out.write(pa.Table.from_pandas(_with_plate_keys(df, image.path),
                                                 preserve_index=False))
            field_out.write(pa.Table.from_pandas(df, preserve_index=False))
        # an empty unit still writes both parts, with every column (no row group)


def _with_plate_keys(df: Any, field_path: str) -> Any:
    keys = _plate_keys(field_path)
    out = df.copy()
    for i, k in enumerate(PLATE_KEYS):
        value = keys[k]
        out.insert(i, k, np.full(len(df), value, np.int32 if k == "field" else object))
        if k != "field":
            out[k] = out[k].astype(str)
    return out


def _plate_keys(field_path: str) -> dict[str, Any]:
    parts = field_path.split("/") if field_path else ["", "", "0"]
    row, column, fld = (parts + ["", "", "0"])[:3]
    return {"well": f"{row}{column}", "row": row, "column": column, "field": int(fld)}


def write_rows(image: ImageInfo, table: str, plate_store: str, t: int, df: Any) -> None:
    """Write one (field, timepoint)'s rows: the plate-level part, then the field's part.

    The field's part is written last: it is the record that the unit is complete.
    """
    import pyarrow as pa

    location = join(plate_dataset(plate_store, table), plate_part_name(image.path, t))
    write_parquet(pa.Table.from_pandas(_with_plate_keys(df, image.path), preserve_index=False),
                  location)
    write_table_part(image, table, t, pa.Table.from_pandas(df, preserve_index=False))


def run_unit(unit: _Unit) -> dict[str, int]:
    """Link (and write the linked labels) and/or measure one (field, timepoint)."""
    cells = open_labels(unit.image, unit.cells)
    nuclei = open_labels(unit.image, unit.nuclei) if unit.nuclei else None
    linking = _link_unit(unit, cells, nuclei)
    if unit.outputs is not None:
        _write_linked(unit, linking, cells, nuclei)
    if unit.table is not None:
        _measure_unit(unit, linking, cells, nuclei)
    return linking.counts()


# --------------------------------------------------------------------------------------
# driver side


def _check_labels(image: ImageInfo, names: Sequence[str]) -> list[LabelImage]:
    out = []
    for name in names:
        if name not in image.labels:
            raise KeyError(f"field {image.path or image.store!r} has no label image {name!r}; "
                           f"it has {sorted(image.labels) or 'none'}")
        out.append(open_labels(image, name))
    if image.sizes["z"] > 1:
        raise ValueError(f"field {image.path!r} has {image.sizes['z']} z planes; linking and "
                         "measuring need 2-D fields (z of size 1)")
    first = out[0]
    for other in out[1:]:
        if other.shapes != first.shapes:
            raise ValueError(
                f"label images {first.name!r} and {other.name!r} of field {image.path!r} "
                f"differ in shape: {first.shapes[0]} and {other.shapes[0]}")
    if first.shapes[0][image.axes.index("y")] != image.sizes["y"] or (
            first.shapes[0][image.axes.index("x")] != image.sizes["x"]):
        raise ValueError(f"label image {first.name!r} does not match its field's size")
    return out


def _resolve_channels(image: ImageInfo, channels: Sequence[int | str] | None) -> tuple[int, ...]:
    if channels is None:
        return tuple(range(image.sizes["c"]))
    return tuple(image.channel_index(c) for c in channels)


def _table_state(image: ImageInfo, table: str, record: dict[str, Any], overwrite: bool
                 ) -> bool:
    """Whether the field's table exists as this run's (to append to); raise if taken."""
    if table not in list_tables(image):
        return False
    attrs = table_attrs(image, table)
    if overwrite:
        return False
    if attrs.get(_RECORD) != record:
        raise TableExistsError(
            f"table {table!r} of field {image.path!r} exists and was not measured with these "
            f"settings ({attrs.get(_RECORD)} vs {record}); pass overwrite=True (--overwrite) "
            "to replace it, or choose another table name")
    return True


def _remove_plate_parts(plate_store: str, table: str, field_path: str) -> None:
    location = plate_dataset(plate_store, table)
    prefix = plate_part_name(field_path, 0).rsplit("-t", 1)[0] + "-t"
    if is_url(location):
        fs, path = filesystem(location)
        if fs.exists(path):
            for p in fs.ls(path, detail=False):
                if p.rsplit("/", 1)[-1].startswith(prefix):
                    fs.rm(p)
        return
    from pathlib import Path

    folder = Path(location)
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(prefix):
                p.unlink()


def _timepoints(image: ImageInfo, timepoints: slice | Sequence[int] | None) -> list[int]:
    n = image.n_timepoints
    if isinstance(timepoints, slice):
        return list(range(n))[timepoints]
    ts = list(range(n)) if timepoints is None else [int(t) for t in timepoints]
    bad = [t for t in ts if not 0 <= t < n]
    if bad:
        raise ValueError(f"timepoints {bad} out of range: field {image.path!r} has {n}")
    return ts


_Plan = tuple[ImageInfo, tuple[int, ...], list[int], dict[str, Any], bool]


def _check(plate: str, *, cells: str, nuclei: str | None, write_links: bool,
           table: str | None, channels: Sequence[int | str] | None,
           wells: Sequence[str] | None, timepoints: slice | Sequence[int] | None, overwrite: bool
           ) -> tuple[str, list[_Plan]]:
    """Check every field before anything is written; return the plate store and plans."""
    opened = open_plate(plate)
    fields = [opened.field(p) for p in opened.select(list(wells) if wells else None)]
    if not fields:
        raise ValueError(f"no field to process in {plate}")
    plans = []
    for image in fields:
        _check_labels(image, [cells] + ([nuclei] if nuclei else []))
        chans = _resolve_channels(image, channels) if table else ()
        ts = _timepoints(image, timepoints)
        record = {"cells": cells, "nuclei": nuclei,
                  "channels": [image.channel_names[c] for c in chans]}
        appending = _table_state(image, table, record, overwrite) if table else False
        if write_links:
            for name in linked_names(cells):
                if name in image.labels and not overwrite:
                    rec = label_record(open_labels(image, name))
                    if rec.get("linked") != {"cells": cells, "nuclei": nuclei}:
                        raise TableExistsError(
                            f"label image {name!r} of field {image.path!r} exists and is not "
                            f"the linking of {cells!r} and {nuclei!r}; pass overwrite=True "
                            "(--overwrite) to replace it")
        plans.append((image, chans, ts, record, appending))
    return opened.store, plans


def _prepare(store: str, plans: list[_Plan], *, cells: str, nuclei: str | None,
             write_links: bool, table: str | None, overwrite: bool, region: int
             ) -> tuple[list[_Unit], list[tuple[str, int]], list[LabelImage]]:
    """Create the outputs of checked plans; return units to run, skipped, outputs."""
    units, skipped, outputs = [], [], []
    for image, chans, ts, record, appending in plans:
        done: set[int] = set()
        if write_links:
            linked = {"cells": cells, "nuclei": nuclei}
            outs = []
            for name in linked_names(cells):
                if name in image.labels and not overwrite:
                    outs.append(open_labels(image, name))
                else:
                    outs.append(create_labels(image, name, overwrite=overwrite,
                                              record={"linked": linked}))
            outputs.extend(outs)
            done = completed_timepoints(outs[0]) & completed_timepoints(outs[1])
        if table:
            if not appending:
                columns = list(column_dtypes(record["channels"]))[2:]
                create_feature_table(image, table, reference_label=cells, overwrite=overwrite,
                                     measurement_columns=columns, metadata_columns=["t"])
                _mark_table(image, table, record)
                _remove_plate_parts(store, table, image.path)
            written = feature_table_timepoints(image, table)
            done = (done & written) if write_links else written
        for t in ts:
            if t in done:
                skipped.append((image.path, t))
            else:
                units.append(_Unit(image, t, cells, nuclei,
                                   linked_names(cells) if write_links else None, table,
                                   store, chans, region))
    return units, skipped, outputs


def check_cells(plate: str, *, labels: str, nuclei: str | None = None,
                table: str | None = None, link_labels: bool = False,
                channels: Sequence[int | str] | None = None,
                wells: Sequence[str] | None = None, timepoints: slice | Sequence[int] | None = None,
                overwrite: bool = False) -> None:
    """Check a link or measure request without writing anything (raises as they do).

    ``table`` None with ``link_labels`` checks a :func:`link_plate` request; a table name
    checks a :func:`measure_plate` request.
    """
    _check(plate, cells=labels, nuclei=nuclei, write_links=link_labels, table=table,
           channels=channels, wells=wells, timepoints=timepoints, overwrite=overwrite)


def _plan(plate: str, *, cells: str, nuclei: str | None, write_links: bool,
          table: str | None, channels: Sequence[int | str] | None, wells: Sequence[str] | None,
          timepoints: slice | Sequence[int] | None, overwrite: bool, region: int
          ) -> tuple[list[_Unit], list[tuple[str, int]], list[LabelImage]]:
    store, plans = _check(plate, cells=cells, nuclei=nuclei, write_links=write_links,
                          table=table, channels=channels, wells=wells,
                          timepoints=timepoints, overwrite=overwrite)
    return _prepare(store, plans, cells=cells, nuclei=nuclei, write_links=write_links,
                    table=table, overwrite=overwrite, region=region)


def _mark_table(image: ImageInfo, table: str, record: dict[str, Any]) -> None:
    update_table_attrs(image, table, **{_RECORD: record})


def _run(plate: str, units: list[_Unit], skipped: list[tuple[str, int]],
         outputs: list[LabelImage], client: Any,
         progress: Callable[[int, int], None] | None) -> CellsResult:
    from ..engine.cluster import close_client, local_client, stream_outcomes

    result = CellsResult(skipped=list(skipped))
    own = client is None
    if own and units:
        client = local_client()
    by_field: dict[str, list[int]] = {}
    try:
        stream = stream_outcomes(client, run_unit, units,
                                 key=lambda u: f"cells-{u.image.path.replace('/', '-')}-t{u.t}")
        with closing(stream) as outcomes:
            for i, (unit, (value, error)) in enumerate(outcomes, 1):
                if error is not None:
                    result.failed.append((unit.image.path, unit.t, error))
                    logger.error("%s t=%d failed: %s", unit.image.path, unit.t, error)
                else:
                    result.done.append((unit.image.path, unit.t))
                    result.counts[f"{unit.image.path}@t{unit.t}"] = value
                    by_field.setdefault(unit.image.path, []).append(unit.t)
                if progress is not None:
                    progress(i, len(units))
    finally:
        result.done.sort()  # in plate order, not in the order the units finished
        _record_links(outputs, by_field)
        if own and client is not None:
            close_client(client)
    return result


def _record_links(outputs: list[LabelImage], by_field: dict[str, list[int]]) -> None:
    for label in outputs:
        ts = by_field.get(label.image.path)
        if ts:
            mark_done(label, ts)
            finalize_labels(label)


def link_plate(plate: str, *, nuclei: str, cells: str, client: Any = None,
               wells: Sequence[str] | None = None, timepoints: slice | Sequence[int] | None = None,
               overwrite: bool = False, region: int = REGION,
               progress: Callable[[int, int], None] | None = None) -> CellsResult:
    """Link the nuclei to the cells of a plate and write linked nuclei and cytoplasm.

    Writes ``labels/<cells>_nuclei`` (each nucleus with its cell's ID) and
    ``labels/<cells>_cytoplasm`` (cell minus nucleus) into every field
    (:func:`linked_names`); the sources are never modified.

    Parameters
    ----------
    plate : str
        OME-Zarr plate (a path or a URL).
    nuclei, cells : str
        Label images of the nuclei and of the cells.
    client : distributed.Client, optional
        Where to run (default: a local cluster for this call).
    wells : sequence of str, optional
        Wells such as ``["A/1"]`` (default all).
    timepoints : sequence of int, optional
        Default all; timepoints already linked are skipped.
    overwrite : bool
        Replace linked label images made from something else.
    region : int
        Pixels per side a task reads at a time (a multiple of the label chunks).
    progress : callable, optional
        ``progress(done, total)`` after each (field, timepoint).

    Returns
    -------
    CellsResult

    Raises
    ------
    KeyError
        A label image is missing.
    ValueError
        Label images of different shapes, z stacks, timepoints out of range.
    structfree_dask.io.TableExistsError
        The output label images exist from other sources and ``overwrite`` is False.
    """
    units, skipped, outputs = _plan(plate, cells=cells, nuclei=nuclei, write_links=True,
                                    table=None, channels=None, wells=wells,
                                    timepoints=timepoints, overwrite=overwrite, region=region)
    return _run(plate, units, skipped, outputs, client, progress)


def measure_plate(plate: str, *, labels: str, nuclei: str | None = None,
                  table: str | None = None, channels: Sequence[int | str] | None = None,
                  client: Any = None, wells: Sequence[str] | None = None,
                  timepoints: slice | Sequence[int] | None = None, overwrite: bool = False,
                  link_labels: bool = False, region: int = REGION,
                  progress: Callable[[int, int], None] | None = None) -> CellsResult:
    """Measure every cell of a plate into per-field tables and a plate-level dataset.

    Parameters
    ----------
    plate : str
        OME-Zarr plate (a path or a URL).
    labels : str
        The cell label image; its IDs key the rows.
    nuclei : str, optional
        The nucleus label image: each nucleus is linked to the cell holding most of it
        and nucleus / cytoplasm intensities are measured. Without it, cells have no
        nucleus (nucleus and ratio columns are NaN).
    table : str, optional
        Table name (default ``<labels>_features``): ``<field>/tables/<table>`` and
        ``<plate>/measurements/<table>``.
    channels : sequence of int or str, optional
        Channels to measure (default all).
    client, wells, timepoints, overwrite, region, progress
        As for :func:`link_plate`. Timepoints already in the table are skipped (appending
        timepoints measures only the new ones).
    link_labels : bool
        Also write the linked label images (as :func:`link_plate`).

    Returns
    -------
    CellsResult

    Raises
    ------
    KeyError
        A label image or channel is missing.
    ValueError
        Label images of different shapes, z stacks, timepoints out of range.
    structfree_dask.io.TableExistsError
        The table exists from other settings and ``overwrite`` is False.
    """
    name = table_name(labels, table)
    units, skipped, outputs = _plan(plate, cells=labels, nuclei=nuclei,
                                    write_links=link_labels, table=name, channels=channels,
                                    wells=wells, timepoints=timepoints, overwrite=overwrite,
                                    region=region)
    return _run(plate, units, skipped, outputs, client, progress)
