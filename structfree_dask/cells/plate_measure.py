"""Linking and measuring a plate on a Dask cluster, one (field, timepoint) per task.

A task reads its plane region by region (memory bounded by the region size, not the
field size): first the nucleus-by-cell overlaps and cell boxes
(:func:`.linking.region_summary`), then, with the links made, it writes the linked
nuclei and the cytoplasm (every pyramid level) and measures each region's own cells
(those whose box starts in it) on a window that holds them whole. Its table rows are
written last, in one piece, so a (field, timepoint) whose rows exist is complete: runs
resume, and appending timepoints measures only the new ones. The driver validates
everything before the first write and records linking as done in batches.

Measuring after a linking reads the linked nuclei it wrote (``<cells>_nuclei``, whole and
done at that timepoint, linked from the same images) instead of linking again; with
``overwrite`` they are linked afresh from the sources.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..config import DEFAULT_CELLS_REGION, CellsSettings, features_table, linked_names
from ..io import (
    RECORD_KEY,
    ImageInfo,
    LabelImage,
    ParquetStream,
    Plate,
    TableExistsError,
    annotation_fields,
    check_label_target,
    check_table_targets,
    completed_timepoints,
    create_feature_table,
    create_labels,
    downsample_to,
    extend_timepoints,
    feature_table_timepoints,
    finalize_labels,
    label_group_exists,
    label_record,
    list_tables,
    mark_done,
    open_complete_labels,
    open_labels,
    open_plate,
    plate_part_location,
    remove_plate_parts,
    table_attrs,
    table_part_location,
    unmark_done,
    update_table_attrs,
    well_annotations,
    with_annotation,
    write_label_region,
)
from ..runtime.result import PlateRun
from ..runtime.resume import Resume, decide_resume
from ..runtime.selection import select_timepoints
from .columns import ratio_column
from .linking import Linking, cytoplasm, link, linked_nuclei, merge_summaries, region_summary
from .measure import (
    BACKGROUND_GAP_PX,
    READOUT_VERSION,
    WINDOW_MARGIN,
    column_dtypes,
    field_background,
    measure_columns,
)
from .planes import level_shape, plane_index, read_labels, regions
from .quality import QUALITY_ATTRIBUTE, field_flags, unit_metrics
from .quality import warnings as quality_warnings
from .table_rows import arrow_rows, plate_keys, row_schemas, well_of

__all__ = ["CellsPlan", "CellsResult", "check_cells", "check_link_outputs", "check_table_output",
           "linked_names", "link_plate", "measure_plate", "measured_without_nuclei",
           "without_nuclei"]

logger = logging.getLogger(__name__)


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
    #: A linked nucleus image to read (done by an earlier linking) instead of linking again.
    linked: str | None = None
    #: The label images above as the driver opened them (a task need not open them again).
    opened: tuple[LabelImage, ...] = ()
    #: The plate map's values of the field's well (``io.well_annotations``), when the plate
    #: has a map: the plate-level part carries them as columns.
    annotation: dict[str, Any] | None = None
    annotated: bool = False

    @property
    def with_nuclei(self) -> bool:
        """Whether the unit has nuclei: given, or linked by an earlier run."""
        return self.nuclei is not None or self.linked is not None

    def label(self, name: str) -> LabelImage:
        """Return the label image ``name``: as the driver opened it, else opened here."""
        for label in self.opened:
            if label.name == name:
                return label
        return open_labels(self.image, name)


@dataclass
class CellsResult(PlateRun):
    """What a linking or measuring run did (:class:`~structfree_dask.runtime.result.PlateRun`).

    Units are ``(field path, timepoint)``.

    Attributes
    ----------
    counts : dict
        ``"<field>@t<t>"`` -> cells, nuclei and flagged objects of that unit
        (:meth:`.linking.Linking.counts`).
    """

    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Field path -> timepoint -> the quality flags raised (:mod:`.quality`; measuring).
    quality: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    #: Field path -> timepoint -> the channels with implausible ratios (the metrics'
    #: ``implausible_channels``, e.g. ``"mito: 12 of 60"``) where ``implausible_ratios``
    #: was raised.
    implausible: dict[str, dict[int, str]] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """Return one line per quality flag raised, with the (field, timepoint)s.

        The ``implausible_ratios`` line names the channels that raised it.
        """
        return quality_warnings(self.quality, self.implausible)

    def flagged(self) -> dict[str, int]:
        """Return the flagged objects summed over the units of the run.

        Empty when the units done had no nuclei (cells measured without ``nuclei``).
        """
        keys = ("cells_without_nucleus", "cells_with_several_nuclei", "nuclei_outside_cells")
        if self.counts and not any(keys[0] in c for c in self.counts.values()):
            return {}
        return {k: sum(c.get(k, 0) for c in self.counts.values()) for k in keys}


def measured_without_nuclei(plate: Plate, table: str) -> bool:
    """Return whether a plate's table was measured without nuclei (its record says so).

    Judged on the first field that has the table (a table is measured one way: resuming
    with other images is refused); False where no field has it.
    """
    for path in plate.field_paths:
        image = plate.field(path)
        if table in list_tables(image):
            return without_nuclei(table_attrs(image, table))
    return False


def without_nuclei(attrs: Mapping[str, Any]) -> bool:
    """Return whether a feature table's attributes record a measuring without nuclei.

    Examples
    --------
    >>> without_nuclei({"structfree_dask": {"cells": "cyto", "nuclei": None}})
    True
    >>> without_nuclei({"structfree_dask": {"cells": "cyto", "nuclei": "nuclei"}})
    False
    >>> without_nuclei({})  # not a table this package measured
    False
    """
    record = attrs.get(RECORD_KEY)
    return isinstance(record, Mapping) and "nuclei" in record and record["nuclei"] is None


# --------------------------------------------------------------------------------------
# worker side


class _Planes:
    """The label planes a unit reads, each read once when its field is a single region.

    Linking, writing the linked labels and measuring all read the cells and the nuclei (and
    the linked nuclei): a field that fits one region keeps what was read (and linked) for
    the next step; a larger one reads region by region, its memory bounded by the region.
    """

    def __init__(self, unit: _Unit, shape: tuple[int, int]) -> None:
        self.t = unit.t
        self.keep = shape[0] <= unit.region and shape[1] <= unit.region
        self._kept: dict[tuple, np.ndarray] = {}

    def _memo(self, key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
        if not self.keep:
            return make()
        if key not in self._kept:
            self._kept[key] = make()
        return self._kept[key]

    def labels(self, label: LabelImage, ys: slice, xs: slice, level: int = 0) -> np.ndarray:
        """Read (once) a region of a label image's plane."""
        return self._memo(("read", label.name, level, ys.start, ys.stop, xs.start, xs.stop),
                          lambda: read_labels(label, self.t, ys, xs, level))

    def linked(self, nuclei: LabelImage, linking: Linking, ys: slice, xs: slice,
               level: int = 0) -> np.ndarray:
        """Return the nuclei of a region carrying their cells' IDs (linked once)."""
        return self._memo(("linked", level, ys.start, ys.stop, xs.start, xs.stop),
                          lambda: linked_nuclei(self.labels(nuclei, ys, xs, level), linking))


def _link_unit(unit: _Unit, cells: LabelImage, nuclei: LabelImage | None,
               planes: _Planes) -> Linking:
    ny, nx = level_shape(cells, 0)
    summaries = []
    for ys, xs in regions(ny, nx, unit.region):
        c = planes.labels(cells, ys, xs)
        n = planes.labels(nuclei, ys, xs) if nuclei is not None else np.zeros_like(c)
        summaries.append(region_summary(n, c, (ys.start, xs.start)))
    return link(merge_summaries(summaries))


def _write_linked(unit: _Unit, linking: Linking, cells: LabelImage,
                  nuclei: LabelImage | None, planes: _Planes) -> None:
    """Write the unit's linked nuclei and cytoplasm, every pyramid level.

    A field of one region (its planes kept) makes its smaller levels from the level-0
    planes in memory (:func:`~structfree_dask.io.downsample_to`, as every label pyramid of
    the package is made); a larger one links each level's regions as read.
    """
    assert unit.outputs is not None
    out_nuc, out_cyt = (unit.label(name) for name in unit.outputs)
    whole: tuple[np.ndarray, np.ndarray] | None = None
    if planes.keep:  # level 0 whole, linked once (the planes linking read)
        ny0, nx0 = level_shape(out_nuc, 0)
        c = planes.labels(cells, slice(0, ny0), slice(0, nx0))
        lk = (planes.linked(nuclei, linking, slice(0, ny0), slice(0, nx0))
              if nuclei is not None else np.zeros(c.shape, c.dtype))
        whole = lk, cytoplasm(c, lk)
    for level in range(len(out_nuc.shapes)):
        ny, nx = level_shape(out_nuc, level)
        chunk = out_nuc.chunks[level][unit.image.axes.index("y")]
        size = max(chunk, unit.region // chunk * chunk)
        level_planes = None if whole is None else [downsample_to(a, (ny, nx)) for a in whole]
        for ys, xs in regions(ny, nx, size):
            region = {"t": slice(unit.t, unit.t + 1), "y": ys, "x": xs}
            if level_planes is not None:
                lk, cyt = (a[ys, xs] for a in level_planes)
            else:
                c = planes.labels(cells, ys, xs, level)
                lk = (planes.linked(nuclei, linking, ys, xs, level) if nuclei is not None
                      else np.zeros(c.shape, c.dtype))
                cyt = cytoplasm(c, lk)
            write_label_region(out_nuc, region, lk, level=level)
            write_label_region(out_cyt, region, cyt, level=level)


def _measure_unit(unit: _Unit, linking: Linking, cells: LabelImage,
                  nuclei: LabelImage | None, planes: _Planes) -> dict[str, Any]:
    """Measure the unit's cells region by region, streaming the rows to its table parts.

    A region's rows are written as they are measured (one row group each), so memory does
    not grow with the number of cells in the field; the field's part is closed last.
    Returns the unit's quality metrics (:func:`.quality.unit_metrics`).
    """
    import pyarrow as pa

    assert unit.table is not None
    image = unit.image
    names = [image.channel_names[c] for c in unit.channels]
    ny, nx = level_shape(cells, 0)
    px = image.pixel_size
    boxes = linking.cell_boxes
    image_arr = image.open_array(0)
    schema, plate_schema = row_schemas(tuple(names))
    # with a plate map, the plate's parts end with its columns (io.with_annotation)
    stream_schema = (pa.schema([*plate_schema, *annotation_fields()]) if unit.annotated
                     else plate_schema)
    field_part = table_part_location(image, unit.table, unit.t)
    plate_part = plate_part_location(unit.plate_store, unit.table, image.path, unit.t)
    # a field of one region is read whole once, and measure_columns takes its background from
    # that read; a larger one is sampled first (regular subsample) for the background
    whole = ny <= unit.region and nx <= unit.region
    background = None if whole else _field_background(unit, cells, image_arr, ny, nx)
    fractions: list[np.ndarray] = []
    ratios: dict[str, list[np.ndarray]] = {name: [] for name in names}
    per_cell: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # for the nucleus check
    ratio_names = [ratio_column(n) for n in names]
    with ParquetStream(field_part, schema) as field_out, \
            ParquetStream(plate_part, stream_schema) as plate_out:
        for ys, xs in regions(ny, nx, unit.region):
            own = ((boxes[:, 0] >= ys.start) & (boxes[:, 0] < ys.stop)
                   & (boxes[:, 1] >= xs.start) & (boxes[:, 1] < xs.stop))
            if not own.any():
                continue
            # the owned cells whole, and their background annuli (measure.WINDOW_MARGIN)
            wy = slice(0, ny) if whole else slice(
                max(0, ys.start - WINDOW_MARGIN), min(ny, int(boxes[own, 2].max()) + WINDOW_MARGIN))
            wx = slice(0, nx) if whole else slice(
                max(0, xs.start - WINDOW_MARGIN), min(nx, int(boxes[own, 3].max()) + WINDOW_MARGIN))
            c = planes.labels(cells, wy, wx)
            lk = _linked_region(unit, linking, nuclei, c, wy, wx, planes)
            img = np.stack([image.read(plane_index(image, unit.t, wy, wx, ch), array=image_arr)
                            for ch in unit.channels]) if unit.channels else np.zeros(
                                (0, *c.shape))
            cols = measure_columns(
                c, lk, img, owned=linking.cell_ids[own], channel_names=names,
                pixel_size_um=(px.get("y", 1.0), px.get("x", 1.0)), field_shape=(ny, nx),
                n_nuclei=linking.n_nuclei[own], offset=(wy.start, wx.start),
                background=background)
            cols["t"] = np.full(len(cols["label"]), unit.t, np.int32)
            linked_rows = cols["n_nuclei"] > 0
            per_cell.append((cols["area_px"], cols["touches_edge"], cols["n_nuclei"]))
            fractions.append((cols["nucleus_area_px"] / cols["area_px"])[linked_rows])
            for name, column in zip(names, ratio_names, strict=True):
                ratios[name].append(cols[column])
            plate_rows = arrow_rows(cols, plate_schema, plate_keys(image.path))
            plate_out.write(with_annotation(plate_rows, unit.annotation) if unit.annotated
                            else plate_rows)
            field_out.write(arrow_rows(cols, schema))
        # an empty unit still writes both parts, with every column (no row group)
    areas, edge, n_nuclei = (np.concatenate(c) for c in zip(*per_cell, strict=True)) \
        if per_cell else (np.zeros(0),) * 3
    return unit_metrics(areas, edge, n_nuclei if unit.with_nuclei else None,
                        np.concatenate(fractions) if fractions else np.zeros(0),
                        {name: np.concatenate(v) if v else np.zeros(0)
                         for name, v in ratios.items()})


def _field_background(unit: _Unit, cells: LabelImage, image_arr: Any, ny: int, nx: int
                      ) -> np.ndarray:
    """Each measured channel's background in the unit's plane, from a regular subsample."""
    from ..pipeline.normalize import sample_stride

    s = sample_stride((ny, nx), 1 << 20)
    sy, sx = slice(0, ny, s), slice(0, nx, s)
    c = read_labels(cells, unit.t, sy, sx)
    if not unit.channels:
        return np.zeros(0)
    img = np.stack([unit.image.read(plane_index(unit.image, unit.t, sy, sx, ch), array=image_arr)
                    for ch in unit.channels])
    return field_background(c, img, margin=-(-BACKGROUND_GAP_PX // s))


def _linked_region(unit: _Unit, linking: Linking, nuclei: LabelImage | None, cells: np.ndarray,
                   wy: slice, wx: slice, planes: _Planes) -> np.ndarray:
    """Return the linked nuclei of a window: read where a linking wrote them, else linked."""
    if unit.linked is not None:
        return planes.labels(unit.label(unit.linked), wy, wx)
    if nuclei is None:
        return np.zeros(cells.shape, cells.dtype)
    return planes.linked(nuclei, linking, wy, wx)


def run_unit(unit: _Unit) -> dict[str, Any]:
    """Link (and write the linked labels) and/or measure one (field, timepoint)."""
    cells = unit.label(unit.cells)
    nuclei = unit.label(unit.nuclei) if unit.nuclei else None
    planes = _Planes(unit, level_shape(cells, 0))
    linking = _link_unit(unit, cells, nuclei, planes)
    if unit.outputs is not None:
        _write_linked(unit, linking, cells, nuclei, planes)
    counts: dict[str, Any] = dict(linking.counts())
    if not unit.with_nuclei:  # no nuclei given: none to count or flag
        counts = {"cells": counts["cells"]}
    if unit.table is not None:
        counts["quality"] = _measure_unit(unit, linking, cells, nuclei, planes)
    return counts


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
    if len(channels) == 0:
        raise ValueError("channels: expected at least one channel to measure (by index or "
                         f"name: {', '.join(image.channel_names)}); got none")
    out = tuple(image.channel_index(c) for c in channels)
    if len(set(out)) != len(out):
        raise ValueError(
            f"channels {list(channels)} name the same channel of {image.url} more than once "
            f"({', '.join(f'{i}={n}' for i, n in enumerate(image.channel_names))}); each "
            "channel is measured once")
    return out


def _record_diffs(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k}: {old.get(k)!r} vs {new.get(k)!r}" for k in keys
                     if old.get(k) != new.get(k))


def _table_record(image: ImageInfo, cells: str, nuclei: str | None,
                  channels: Sequence[int]) -> dict[str, Any]:
    """Return what a table records of how it was measured (another record: not resumed)."""
    return {"cells": cells, "nuclei": nuclei,
            "channels": [image.channel_names[c] for c in channels], "readout": READOUT_VERSION}


def _table_decision(image: ImageInfo, table: str, record: dict[str, Any], ts: list[int],
                    overwrite: bool) -> Resume:
    """Decide what happens to the field's table: created, recreated, or kept."""
    exists = table in list_tables(image)
    attrs = table_attrs(image, table) if exists else {}
    ours = isinstance(attrs.get(RECORD_KEY), dict)
    written = feature_table_timepoints(image, table, verify=True) if exists else set()
    return decide_resume(
        f"table {table!r} of field {image.path or image.url!r}", exists=exists, ours=ours,
        diffs=_record_diffs(attrs[RECORD_KEY], record) if ours else "", done=written,
        present=written, selected=ts, overwrite=overwrite, job="a measurement run",
        rename="table name (--table)", error=TableExistsError)


def _link_decision(image: ImageInfo, name: str, linked: dict[str, Any], ts: list[int],
                   overwrite: bool) -> Resume:
    """Decide what happens to one linked label image of the field."""
    check_label_target(image, name)
    if not label_group_exists(image, name):
        return Resume("create")
    label = open_complete_labels(image, name)
    if label is None:  # an interrupted creation: nothing in it to keep
        if overwrite:
            return Resume("recreate")
        raise TableExistsError(f"label image {name!r} of field {image.path or image.url!r} "
                               "is incomplete (an interrupted creation?); pass --overwrite "
                               "to recreate it")
    rec = label_record(label).get("linked")
    ours = isinstance(rec, dict)
    have_t = label.shapes[0][image.axes.index("t")] if "t" in image.axes else 1
    return decide_resume(
        f"label image {name!r} of field {image.path or image.url!r}", exists=True, ours=ours,
        diffs=_record_diffs(rec, linked) if ours else "", done=completed_timepoints(label),
        present=range(have_t), selected=ts, overwrite=overwrite,
        job="linking", rename="cell label image", error=TableExistsError)


@dataclass(frozen=True)
class _Plan:
    """What a run does with one field, decided before anything is written."""

    image: ImageInfo
    channels: tuple[int, ...]
    timepoints: list[int]
    record: dict[str, Any]
    table: Resume | None
    links: tuple[Resume, Resume] | None
    #: Timepoints whose linked nuclei an earlier linking of the same images wrote.
    linked_done: frozenset[int] = frozenset()


def _linked_done(image: ImageInfo, cells: str, nuclei: str) -> frozenset[int]:
    """Return the timepoints whose linked label images a linking of these images finished.

    Both ``<cells>_nuclei`` and ``<cells>_cytoplasm`` must be whole, recorded as linked
    from ``cells`` and ``nuclei``, and done at those timepoints.
    """
    done: set[int] | None = None
    for name in linked_names(cells):
        if name not in image.labels or not label_group_exists(image, name):
            return frozenset()
        label = open_complete_labels(image, name)
        if label is None or label_record(label).get("linked") != {"cells": cells,
                                                                   "nuclei": nuclei}:
            return frozenset()
        ts = set(completed_timepoints(label))
        done = ts if done is None else done & ts
    return frozenset(done or ())


def _check(plate: str, *, cells: str, nuclei: str | None, write_links: bool,
           table: str | None, channels: Sequence[int | str] | None,
           wells: Sequence[str] | None, timepoints: slice | Sequence[int] | None, overwrite: bool
           ) -> tuple[str, list[_Plan]]:
    """Check every field before anything is written; return the plate store and plans."""
    CellsSettings.from_mapping({  # the schema's checks: the messages of CLI and job files
        "cells": cells, "nuclei": nuclei, "table": table, "link": write_links,
        "measure": table is not None,
        "channels": None if channels is None else list(channels)})
    opened = open_plate(plate)
    fields = [opened.field(p) for p in opened.select(list(wells) if wells else None)]
    if not fields:
        raise ValueError(f"no field to process in {plate}")
    plans = []
    linked = {"cells": cells, "nuclei": nuclei}
    for image in fields:
        _check_labels(image, [cells] + ([nuclei] if nuclei else []))
        chans = _resolve_channels(image, channels) if table else ()
        ts = select_timepoints(image.n_timepoints, timepoints, image.url)
        record = _table_record(image, cells, nuclei, chans)
        table_plan = None
        if table:
            check_table_targets(image, table, opened.store)
            table_plan = _table_decision(image, table, record, ts, overwrite)
        links = None
        linked_done: frozenset[int] = frozenset()
        if write_links:
            nuc, cyt = (_link_decision(image, name, linked, ts, overwrite)
                        for name in linked_names(cells))
            links = (nuc, cyt)
        elif table and nuclei and not overwrite:  # measure what an earlier linking wrote
            linked_done = _linked_done(image, cells, nuclei)  # (--overwrite: link afresh)
        plans.append(_Plan(image, chans, ts, record, table_plan, links, linked_done))
    return opened.store, plans


def _kept(plan: _Plan) -> set[int] | None:
    """Return the timepoints of a plan that every output already holds (None: no output)."""
    kept: set[int] | None = None
    for decision in plan.links or ():
        kept = set(decision.kept) if kept is None else kept & set(decision.kept)
    if plan.table is not None:
        written = set(plan.table.kept)
        kept = written if kept is None else kept & written
    return kept


class _Prepared:
    """The units of checked plans, each field's outputs created as its units are taken.

    Iterating creates a field's label images and table (the writes of the run) just
    before handing out its first unit, so the first field's units run while the next
    fields' outputs are created; ``skipped`` and ``outputs`` (per field) hold the
    timepoints skipped and the label images created so far, ``total`` the number of units
    of the whole run.
    """

    def __init__(self, store: str, plans: list[_Plan], *, cells: str, nuclei: str | None,
                 table: str | None, region: int) -> None:
        self.store, self.plans = store, plans
        self.cells, self.nuclei, self.table, self.region = cells, nuclei, table, region
        self.skipped: list[tuple[str, int]] = []
        self.outputs: dict[str, list[LabelImage]] = {}
        #: Units of each field handed out and not finished yet (the caller counts them
        #: down); the first unit of each field.
        self.left: dict[str, int] = {}
        self.first: dict[str, _Unit] = {}
        self.kept = [_kept(plan) for plan in plans]  # timepoints every output holds
        self.total = sum(len([t for t in plan.timepoints if k is None or t not in k])
                         for plan, k in zip(plans, self.kept, strict=True))

    def __iter__(self) -> Iterator[_Unit]:
        annotations = well_annotations(self.store) if self.table is not None else None
        for plan, kept in zip(self.plans, self.kept, strict=True):
            units = self._field(plan, kept, well_of(annotations, plan.image.path),
                                annotations is not None)
            if units:
                self.left[plan.image.path] = len(units)
                self.first[plan.image.path] = units[0]
            yield from units

    def _field(self, plan: _Plan, kept: set[int] | None, annotation: dict[str, Any] | None,
               annotated: bool) -> list[_Unit]:
        """Create one field's outputs; return its units (its skipped timepoints noted)."""
        image, cells, table = plan.image, self.cells, self.table
        linked = {"cells": cells, "nuclei": self.nuclei}
        linked_done = set(plan.linked_done)
        created: list[LabelImage] = []
        if plan.links is not None:
            linked_done = set.intersection(*(set(d.kept) for d in plan.links))
            for name, decision in zip(linked_names(cells), plan.links, strict=True):
                if decision.action == "resume":
                    label = extend_timepoints(open_labels(image, name))
                    if decision.redo:
                        unmark_done(label, list(decision.redo))
                else:
                    label = create_labels(image, name, overwrite=decision.action == "recreate",
                                          record={"linked": linked})
                created.append(label)
        self.outputs[image.path] = created
        if plan.table is not None:
            assert table is not None
            if plan.table.action != "resume":
                columns = list(column_dtypes(plan.record["channels"]))[2:]
                create_feature_table(image, table, reference_label=cells,
                                     overwrite=plan.table.action == "recreate",
                                     measurement_columns=columns, metadata_columns=["t"],
                                     attrs={RECORD_KEY: plan.record})
                remove_plate_parts(self.store, table, image.path)
        sources = [open_labels(image, name) for name in (cells, self.nuclei) if name]
        if plan.linked_done and not plan.links:
            sources.append(open_labels(image, linked_names(cells)[0]))
        opened = tuple(sources + created)
        units = []
        for t in plan.timepoints:
            if kept is not None and t in kept:
                self.skipped.append((image.path, t))
                continue
            done = t in linked_done  # linked earlier: read, not linked or written again
            units.append(_Unit(image, t, cells, self.nuclei,
                               linked_names(cells) if plan.links and not done else None,
                               table, self.store, plan.channels, self.region,
                               linked_names(cells)[0] if done else None, opened,
                               annotation=annotation, annotated=annotated))
        return units


class CellsPlan(NamedTuple):
    """A checked link or measure request: what each field will do (:func:`check_cells`).

    Passed to :func:`link_plate` or :func:`measure_plate` (``plan=``), the run does not
    read the plate's metadata again.
    """

    #: The request it was checked for (refused by a run of another request).
    request: tuple[Any, ...]
    store: str
    fields: list[_Plan]


def _request(plate: str, cells: str, nuclei: str | None, write_links: bool,
             table: str | None, channels: Sequence[int | str] | None,
             wells: Sequence[str] | None, timepoints: slice | Sequence[int] | None,
             overwrite: bool) -> tuple[Any, ...]:
    sel = (timepoints.start, timepoints.stop, timepoints.step) if isinstance(
        timepoints, slice) else None if timepoints is None else tuple(timepoints)
    return (plate, cells, nuclei, bool(write_links), table,
            None if channels is None else tuple(channels),
            None if wells is None else tuple(wells), sel, overwrite)


def check_cells(plate: str, *, labels: str, nuclei: str | None = None,
                table: str | None = None, link_labels: bool = False,
                channels: Sequence[int | str] | None = None,
                wells: Sequence[str] | None = None, timepoints: slice | Sequence[int] | None = None,
                overwrite: bool = False) -> CellsPlan:
    """Check a link or measure request without writing anything (raises as they do).

    ``table`` None with ``link_labels`` checks a :func:`link_plate` request; a table name
    checks a :func:`measure_plate` request. Returns the plan, for the run (``plan=``).
    """
    store, fields = _check(plate, cells=labels, nuclei=nuclei, write_links=link_labels,
                           table=table, channels=channels, wells=wells,
                           timepoints=timepoints, overwrite=overwrite)
    return CellsPlan(_request(plate, labels, nuclei, link_labels, table, channels, wells,
                              timepoints, overwrite), store, fields)


def check_link_outputs(plate: str, *, cells: str, nuclei: str,
                       wells: Sequence[str] | None = None,
                       timepoints: slice | Sequence[int] | None = None,
                       overwrite: bool = False) -> None:
    """Check, before the cells and nuclei exist, that linking them could write its outputs.

    For a run that segments first and links afterwards: the linked label images
    (:func:`linked_names`) must be absent, or this linking's (to resume or, with
    ``overwrite``, to redo the selected timepoints), with no symbolic link on the way.

    Raises
    ------
    structfree_dask.io.TableExistsError
        A linked label image exists from other sources (or is not a linking).
    UnsafePathError
        A symbolic link on the way to, or inside, a linked label image.
    """
    if nuclei == cells:
        raise ValueError(f"nuclei and cells are the same label image {cells!r}")
    opened = open_plate(plate)
    linked = {"cells": cells, "nuclei": nuclei}
    for path in opened.select(list(wells) if wells else None):
        image = opened.field(path)
        ts = select_timepoints(image.n_timepoints, timepoints, image.url)
        for name in linked_names(cells):
            _link_decision(image, name, linked, ts, overwrite)


def check_table_output(plate: str, *, cells: str, nuclei: str | None, table: str,
                       channels: Sequence[int | str] | None = None,
                       wells: Sequence[str] | None = None,
                       timepoints: slice | Sequence[int] | None = None,
                       overwrite: bool = False) -> None:
    """Check, before the label images exist, that measuring could write its table.

    For a run that segments first and measures afterwards: the channels must exist, and
    the table must be absent or this measurement's (same labels, nuclei and channels),
    with no symbolic link on the way to it or to ``measurements/<table>``.

    Raises
    ------
    structfree_dask.io.TableExistsError
        The table exists from other settings (or was not measured here).
    UnsafePathError
        A symbolic link on the way to, or inside, the table or the plate's dataset.
    KeyError, ValueError
        Unknown or repeated channels, an empty timepoint selection.
    """
    opened = open_plate(plate)
    for path in opened.select(list(wells) if wells else None):
        image = opened.field(path)
        chans = _resolve_channels(image, channels)
        ts = select_timepoints(image.n_timepoints, timepoints, image.url)
        record = _table_record(image, cells, nuclei, chans)
        check_table_targets(image, table, opened.store)
        _table_decision(image, table, record, ts, overwrite)


def _plan(plate: str, *, cells: str, nuclei: str | None, write_links: bool,
          table: str | None, channels: Sequence[int | str] | None, wells: Sequence[str] | None,
          timepoints: slice | Sequence[int] | None, overwrite: bool, region: int,
          plan: CellsPlan | None = None) -> _Prepared:
    region = CellsSettings.check_value("region", region)
    if plan is None:
        store, plans = _check(plate, cells=cells, nuclei=nuclei, write_links=write_links,
                              table=table, channels=channels, wells=wells,
                              timepoints=timepoints, overwrite=overwrite)
    elif plan.request != _request(plate, cells, nuclei, write_links, table, channels, wells,
                                  timepoints, overwrite):
        raise ValueError(f"the plan given was checked for another request ({plan.request}); "
                         "check this one with check_cells")
    else:
        store, plans = plan.store, plan.fields
    return _Prepared(store, plans, cells=cells, nuclei=nuclei, table=table, region=region)


def _run(prepared: _Prepared, client: Any,
         progress: Callable[[int, int], None] | None) -> CellsResult:
    from ..runtime.cluster import close_client, local_client, stream_outcomes

    result = CellsResult()
    if not prepared.total:  # nothing to measure: the outputs are still made (or resumed)
        for _ in prepared:
            pass
        result.skipped = list(prepared.skipped)
        return result
    own = client is None
    if own:
        client = local_client()
    by_field: dict[str, list[int]] = {}  # timepoints done, per field not yet recorded
    quality: dict[str, dict[int, dict[str, Any]]] = {}
    try:
        stream = stream_outcomes(client, run_unit, prepared,
                                 key=lambda u: f"cells-{u.image.path.replace('/', '-')}-t{u.t}")
        with closing(stream) as outcomes:
            for i, (unit, (value, error)) in enumerate(outcomes, 1):
                path = unit.image.path
                if error is not None:
                    result.fail(path, unit.t, error)
                    logger.error("%s t=%d failed: %s", path, unit.t, error)
                else:
                    result.done.append((path, unit.t))
                    result.counts[f"{path}@t{unit.t}"] = value
                    by_field.setdefault(path, []).append(unit.t)
                    if "quality" in value:
                        quality.setdefault(path, {})[unit.t] = value["quality"]
                prepared.left[path] -= 1
                if not prepared.left[path]:  # the field's last unit: its records now
                    _record_field(prepared, path, by_field, quality, result)
                if progress is not None:
                    progress(i, prepared.total)
    finally:
        result.skipped = list(prepared.skipped)
        result.done.sort()  # in plate order, not in the order the units finished
        for path in list(prepared.left):  # fields stopped before their last unit ended
            _record_field(prepared, path, by_field, quality, result)
        if own and client is not None:
            close_client(client)
    return result


def _record_field(prepared: _Prepared, path: str, by_field: dict[str, list[int]],
                  quality: dict[str, dict[int, dict[str, Any]]], result: CellsResult) -> None:
    """Record what a field's units did: its linked label images' completion, its quality.

    Called once per field, as soon as its last unit finished (while the next fields run),
    or at the end of the run for a field that did not get there.
    """
    prepared.left.pop(path, None)
    _record_links(prepared.outputs.get(path, []), by_field.pop(path, []))
    new = quality.pop(path, {})
    unit = prepared.first.get(path)
    if not new or unit is None or unit.table is None:
        return
    try:
        _record_quality(unit, new, result)
    except Exception as err:  # noqa: BLE001 - the rows are written; say it, go on
        logger.warning("quality checks of %s not recorded: %s: %s", path,
                       type(err).__name__, err)


def _record_quality(unit: _Unit, new: dict[int, dict[str, Any]], result: CellsResult) -> None:
    """Keep a measured field's quality metrics and flags with its table; fill the result."""
    assert unit.table is not None
    path = unit.image.path
    old = table_attrs(unit.image, unit.table).get(QUALITY_ATTRIBUTE)
    by_t = {int(t): dict(v) for t, v in (old or {}).items()
            if isinstance(v, dict)} if isinstance(old, dict) else {}
    by_t.update({int(t): dict(m) for t, m in new.items()})
    flagged = field_flags(by_t)
    for t, fl in flagged.items():
        by_t[t]["flags"] = fl
    update_table_attrs(unit.image, unit.table,
                       **{QUALITY_ATTRIBUTE: {str(t): m for t, m in sorted(by_t.items())}})
    result.quality[path] = {t: fl for t, fl in flagged.items() if t in new}
    named = {t: str(by_t[t].get("implausible_channels") or "") for t in new
             if "implausible_ratios" in flagged[t]}
    if any(named.values()):
        result.implausible[path] = named


def _record_links(outputs: list[LabelImage], timepoints: list[int]) -> None:
    """Mark a field's linked label images done at the timepoints, and finalize them."""
    if not timepoints:
        return
    for label in outputs:
        mark_done(label, timepoints)
        finalize_labels(label)


def link_plate(plate: str, *, nuclei: str, cells: str, client: Any = None,
               wells: Sequence[str] | None = None, timepoints: slice | Sequence[int] | None = None,
               overwrite: bool = False, region: int = DEFAULT_CELLS_REGION,
               progress: Callable[[int, int], None] | None = None,
               plan: CellsPlan | None = None) -> CellsResult:
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
        Pixels per side a task reads at a time, within ``limits.CELLS_REGION`` (its
        writes are rounded to the label chunks).
    progress : callable, optional
        ``progress(done, total)`` after each (field, timepoint).
    plan : CellsPlan, optional
        What :func:`check_cells` returned for this request: the plate is not read again.

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
    prepared = _plan(plate, cells=cells, nuclei=nuclei, write_links=True, table=None,
                     channels=None, wells=wells, timepoints=timepoints, overwrite=overwrite,
                     region=region, plan=plan)
    return _run(prepared, client, progress)


def measure_plate(plate: str, *, labels: str, nuclei: str | None = None,
                  table: str | None = None, channels: Sequence[int | str] | None = None,
                  client: Any = None, wells: Sequence[str] | None = None,
                  timepoints: slice | Sequence[int] | None = None, overwrite: bool = False,
                  link_labels: bool | None = None, region: int = DEFAULT_CELLS_REGION,
                  progress: Callable[[int, int], None] | None = None,
                  plan: CellsPlan | None = None) -> CellsResult:
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
        nucleus (nucleus and ratio columns are NaN). Where an earlier linking of the same
        cells and nuclei finished the linked label images (:func:`link_plate`), their
        nuclei are the ones measured (read, not linked again), unless ``overwrite``.
    table : str, optional
        Table name (default ``<labels>_features``): ``<field>/tables/<table>`` and
        ``<plate>/measurements/<table>``.
    channels : sequence of int or str, optional
        Channels to measure (default all).
    client, wells, timepoints, overwrite, region, progress, plan
        As for :func:`link_plate`. Timepoints already in the table are skipped (appending
        timepoints measures only the new ones).
    link_labels : bool, optional
        Also write the linked label images (as :func:`link_plate`), from the same links
        the measurements use (default: when ``nuclei`` is given, as everywhere:
        :class:`~structfree_dask.config.CellsSettings`'s ``link``).

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
    name = features_table(labels, table)
    if link_labels is None:
        link_labels = nuclei is not None
    prepared = _plan(plate, cells=labels, nuclei=nuclei, write_links=link_labels, table=name,
                     channels=channels, wells=wells, timepoints=timepoints,
                     overwrite=overwrite, region=region, plan=plan)
    return _run(prepared, client, progress)
