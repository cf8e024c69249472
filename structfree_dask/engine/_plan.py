"""Driver side: planning, every check before any write, and the label actions it decides."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._provenance import software_versions
from ..backbones import ModelSpec
from ..config import SegmentationConfig
from ..io import (
    ImageInfo,
    LabelExistsError,
    LabelImage,
    check_label_target,
    check_store,
    check_writable,
    concurrently,
    create_labels,
    extend_timepoints,
    label_group_exists,
    label_record,
    open_complete_labels,
    open_labels,
    open_plate,
    unmark_done,
)
from ..pipeline.segment import check_rescale, field_geometry
from ..runtime.resume import decide_resume
from ..runtime.selection import select_timepoints

logger = logging.getLogger(__name__)


def _one(values: list[Any]) -> Any:
    return values[0] if len(set(values)) == 1 else values


def run_record(cfg: SegmentationConfig, specs: tuple[ModelSpec, ...], channels: tuple[int, ...],
               names: tuple[str, ...]) -> dict[str, Any]:
    """Return the settings a label image records (and a resume must match)."""
    return {
        "kind": "segmentation",
        "organelle": cfg.organelle,
        "model": _one([sp.name for sp in specs]),
        "model_sha256": _one([sp.sha256 for sp in specs]),
        "channels": list(channels),
        "channel_names": list(names),
        "diameter": cfg.diameter or specs[0].diam_mean,
        "fusion": "flow_averaging" if cfg.fusion == "fa" else cfg.fusion,
        "cellprob_threshold": cfg.cellprob_threshold,
        "flow_threshold": cfg.flow_threshold,
        "min_size": cfg.min_size,
        "precision": _one([sp.precision for sp in specs]),
        "software": software_versions(),
    }


_RESUME_KEYS = ("kind", "organelle", "model_sha256", "channels", "diameter", "fusion",
                "cellprob_threshold", "flow_threshold", "min_size", "precision")
#: Keys that records written before they existed lack (not compared then).
_NEWER_KEYS = ("precision",)


@dataclass(frozen=True)
class FieldPlan:
    """What a run does with one field, decided before anything is written.

    ``action`` is ``"create"`` (new label image), ``"recreate"`` (``overwrite`` of
    every timepoint it holds) or ``"resume"`` (keep it; ``redo`` lists the done
    timepoints that ``overwrite`` redoes, ``kept`` those that stay done and are skipped).
    """

    info: ImageInfo
    channels: tuple[int, ...]
    timepoints: tuple[int, ...]
    record: dict[str, Any]
    action: str
    redo: tuple[int, ...] = ()
    kept: tuple[int, ...] = ()


def _settings_diffs(old: dict[str, Any], record: dict[str, Any]) -> str:
    """Return the settings that differ (``"key: old vs new, ..."``), empty where none do.

    A precision still ``auto`` (a plan checked before the run's workers resolve it) is
    compared when the run plans again at theirs.
    """
    diffs = [k for k in _RESUME_KEYS if old.get(k) != record.get(k)
             and not (k in _NEWER_KEYS and k not in old)
             and not (k == "precision" and record.get(k) == "auto")]
    return ", ".join(f"{k}: {old.get(k)!r} vs {record.get(k)!r}" for k in diffs)


def tile_size_of(chunks_yx: tuple[int, int], field_yx: tuple[int, int]) -> int:
    """Return a tile size that gives a label image's chunks on a field of that size.

    The chunks are the tile size clipped to the field: a side shorter than the field's
    is the tile size; where both are clipped, the field's longer side gives them.

    Examples
    --------
    >>> tile_size_of((64, 128), (64, 200))  # a field lower than the tile
    128
    >>> tile_size_of((100, 80), (100, 80))  # a field smaller than the tile both ways
    100
    """
    unclipped = [c for c, n in zip(chunks_yx, field_yx, strict=True) if c < n]
    return unclipped[0] if unclipped else max(field_yx)


def _check_chunks(label: LabelImage, cfg: SegmentationConfig) -> None:
    axes, info = label.image.axes, label.image
    have = tuple(label.chunks[0][axes.index(a)] for a in ("y", "x"))
    want = tuple(min(info.sizes[a], cfg.tile_size) for a in ("y", "x"))
    if have != want:
        made = tile_size_of((have[0], have[1]), (info.sizes["y"], info.sizes["x"]))
        raise LabelExistsError(
            f"label image {label.name!r} in {info.url} is stored in {have[0]}x{have[1]} px "
            f"chunks, made with tile_size {made}; tile_size {cfg.tile_size} would write "
            f"across its chunks. Rerun with tile_size {made} (--tile-size {made}), or "
            "redo every timepoint with overwrite")


def _label_action(info: ImageInfo, cfg: SegmentationConfig, record: dict[str, Any],
                  tps: list[int]) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Decide what happens to ``labels/<name>`` of a field, without writing anything.

    Returns ``(action, redo, kept)`` as in :class:`FieldPlan`; the label image's record
    is read once, here.

    ``overwrite`` works per (field, timepoint): the selected timepoints are redone and
    the others keep their labels and completion records. Settings that differ from
    those of the timepoints kept cannot be applied to part of a label image.

    Raises
    ------
    UnsafePathError
        A symbolic link on the way to, or inside, the label image.
    PermissionError
        The plate cannot be written.
    LabelExistsError
        The label image exists and cannot be resumed or partly redone as asked.
    """
    name = cfg.label_name
    folder = check_label_target(info, name)
    if folder is not None:
        check_writable(folder)
    if not label_group_exists(info, name):  # (a name listed without its group: made anew)
        return "create", (), ()
    label = open_complete_labels(info, name)
    if label is None:  # an interrupted creation: nothing in it to keep
        if cfg.overwrite:
            return "recreate", (), ()
        raise LabelExistsError(
            f"label image {name!r} in {info.url} is incomplete (no multiscales metadata and "
            "no record of its levels: an interrupted creation?); pass --overwrite to "
            "recreate it, or choose another --name")
    old = label_record(label)
    segmentation = old.get("kind") == "segmentation"
    have_t = label.shapes[0][info.axes.index("t")] if "t" in info.axes else 1
    if have_t > info.n_timepoints:
        raise ValueError(f"label image {name!r} of {info.url} has {have_t} timepoints but "
                         f"its image only {info.n_timepoints}")
    done = {int(t) for t in old.get("done", ())} if segmentation else set()
    decision = decide_resume(
        f"label image {name!r} in {info.url}", exists=True, ours=segmentation,
        diffs=_settings_diffs(old, record) if segmentation else "", done=done,
        present=range(have_t), selected=tps, overwrite=cfg.overwrite,
        job="a segmentation run", rename="--name", error=LabelExistsError)
    if decision.action == "resume":
        _check_chunks(label, cfg)
    return decision.action, decision.redo, decision.kept


def apply_label_plan(fp: FieldPlan, cfg: SegmentationConfig) -> LabelImage:
    """Create, recreate or reopen a field's label image as planned."""
    name = cfg.label_name
    if fp.action in ("create", "recreate"):
        return create_labels(fp.info, name, chunk_yx=cfg.tile_size,
                             overwrite=fp.action == "recreate", record=fp.record)
    label = extend_timepoints(open_labels(fp.info, name))  # a growing time-lapse
    if fp.redo:
        unmark_done(label, list(fp.redo))
        logger.info("labels/%s of %s: redoing timepoint(s) %s", name, fp.info.url,
                    list(fp.redo))
    return label


def plan_fields(plate: str, config: SegmentationConfig, specs: tuple[ModelSpec, ...],
                wells: Sequence[str] | None, timepoints: slice | Sequence[int] | None,
                ) -> list[FieldPlan]:
    """Check every selected field of a plate and decide its label action; write nothing.

    Raises as :func:`~structfree_dask.engine.validate` does.
    """
    spec = specs[0]
    check_rescale(config, spec)
    pl = open_plate(plate)
    check_store(pl.store, write=True)  # an object store that refuses writes: stop here
    infos = list(pl.fields(list(wells) if wells is not None else None))
    if not infos:
        raise ValueError(f"no fields selected in {plate}")
    checked = []
    for info in infos:
        channels = tuple(info.channel_index(c) for c in config.channels)
        if len(set(channels)) != len(channels):
            raise ValueError(
                f"channels {list(config.channels)} name the same channel of {info.url} more "
                f"than once ({', '.join(f'{i}={n}' for i, n in enumerate(info.channel_names))}"
                "); each channel is averaged once")
        tps = select_timepoints(info.n_timepoints, timepoints, info.url)
        geometry = field_geometry((info.sizes["y"], info.sizes["x"]), config, spec)
        diameter = config.diameter or spec.diam_mean
        if min(geometry.shape) < diameter:
            raise ValueError(f"field {info.url} is {geometry.shape[0]}x{geometry.shape[1]} px, "
                             f"smaller than one cell diameter ({diameter:g} px)")
        record = run_record(config, specs, channels,
                            tuple(info.channel_names[c] for c in channels))
        checked.append((info, channels, tps, record))
    # each field's label image looked at, the fields at once (round trips on a store)
    actions = concurrently(lambda c: _label_action(c[0], config, c[3], c[2]), checked)
    return [FieldPlan(info, channels, tuple(tps), record, action, redo, kept)
            for (info, channels, tps, record), (action, redo, kept)
            in zip(checked, actions, strict=True)]
