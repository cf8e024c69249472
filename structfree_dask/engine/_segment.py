"""Driver side: :func:`segment`, :func:`segment_many` (targets in one stream), :func:`validate`."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from typing import Any, NamedTuple

from ..config import SegmentationConfig
from ..pipeline.segment import resolve_models
from ._plan import FieldPlan, plan_fields
from ._precision import cluster_precision
from ._stream import RunResult, TargetRun, UnitStream, run_stream

logger = logging.getLogger(__name__)


class Target(NamedTuple):
    """One target of :func:`segment_many`: a plate, its settings and its selection.

    ``wells`` and ``timepoints`` as in :func:`segment` (None: all). ``plans``: what
    :func:`validate` returned for this plate, settings and selection (the plate is then
    not read again; None: planned when the run starts).
    """

    plate: str
    config: SegmentationConfig
    wells: Sequence[str] | None = None
    timepoints: slice | Sequence[int] | None = None
    plans: Sequence[FieldPlan] | None = None


def validate(
    plate: str, config: SegmentationConfig, *, wells: Sequence[str] | None = None,
    timepoints: slice | Sequence[int] | None = None, auto: str | None = None,
) -> list[FieldPlan]:
    """Check a run's input without writing anything; return its plan.

    Everything that can be known before work starts is checked here, for every
    selected field, so that a bad input stops the run before anything is created.

    ``precision: auto`` is resolved on this machine unless ``auto`` says what it is
    (``fp32``, ``bf16``, ``fp16``), or is ``"auto"``: left to the workers of the run
    (which resolve it, :func:`cluster_precision`; the plan is checked at their precision
    again as the run starts, and a label image to resume is compared with it then).

    Raises
    ------
    KeyError, ValueError, FileNotFoundError, LabelExistsError
        Unknown well, channel or timepoint; an empty selection; a channel given
        twice; a model file that is not Cellpose weights; a diameter that would
        rescale fields beyond :data:`~structfree_dask.limits.RESCALE`; a field
        smaller than one cell; a label image that cannot be resumed or redone as
        asked.
    PermissionError
        A read-only plate, or a symbolic link on the way to the label image
        (:class:`~structfree_dask.io.UnsafePathError`).
    """
    return plan_fields(plate, config, resolve_models(config, auto=auto), wells,
                       timepoints)


def _prepare(targets: list[Target], started: float,
             auto: str | None = None) -> list[TargetRun | Exception]:
    """Plan and check every target before anything is written; a failure is its entry.

    ``auto``: what ``precision: auto`` is on the workers (None: on this machine).
    """
    out: list[TargetRun | Exception] = []
    writes: dict[tuple[str, str], int] = {}  # (plate, label name) -> target writing it
    for i, target in enumerate(targets):
        key = (os.path.realpath(target.plate), target.config.label_name)
        try:
            if key in writes:
                raise ValueError(f"labels/{key[1]} of {target.plate} is written by target "
                                 f"{writes[key]} of this run already")
            specs = resolve_models(target.config, auto=auto)
            plans = None if target.plans is None else _at_precision(
                list(target.plans), specs[0].precision, target.config.label_name)
            if plans is None:
                plans = plan_fields(target.plate, target.config, specs, target.wells,
                                    target.timepoints)
        except Exception as err:  # noqa: BLE001 - this target's error; the others still run
            out.append(err)
            continue
        writes[key] = i
        out.append(TargetRun(i, target.config, specs, plans, started))
    return out


def _at_precision(plans: list[FieldPlan], precision: str,
                  name: str) -> list[FieldPlan] | None:
    """Return plans checked at another (or a still open) precision made for ``precision``.

    Plans that only create label images have nothing recorded to compare a precision
    with: their records take it. Others are planned again (None), the label images they
    keep compared with it.
    """
    if not plans or plans[0].record.get("precision") == precision:
        return plans
    if all(fp.action == "create" for fp in plans):
        return [dataclasses.replace(fp, record={**fp.record, "precision": precision})
                for fp in plans]
    logger.info("labels/%s: planned again at precision %s (checked at %s before)", name,
                precision, plans[0].record.get("precision"))
    return None


def _stream_targets(targets: list[Target], client: Any,
                    progress: Callable[[int, int], None] | None) -> list[TargetRun | Exception]:
    started = time.perf_counter()
    auto = None  # a cluster made here runs on this machine: auto is resolved here
    if client is not None and any(t.config.precision == "auto" for t in targets):
        if not client.nthreads():  # no worker yet: bad input said before waiting for one
            checked = _prepare(targets, started, "auto")
            if not any(isinstance(p, TargetRun) for p in checked):
                return checked
        auto = cluster_precision(client)  # the workers' hardware runs the network
    prepared = _prepare(targets, started, auto)  # every check before any write
    runs = [p for p in prepared if isinstance(p, TargetRun)]
    # closed however the run ends: no label image left half made behind it
    with closing(UnitStream(runs)) as stream:
        if stream.total:
            own_client = client is None
            if own_client:
                from ..runtime.cluster import local_client

                client = local_client()
            try:
                run_stream(client, stream, progress)
            finally:
                if own_client:
                    from ..runtime.cluster import close_client

                    close_client(client)
        stream.finish()
    for run in runs:  # those not closed as their last unit finished
        run.close()
    return prepared


def segment_many(
    targets: Iterable[Target | tuple[Any, ...]],
    *,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[RunResult]:
    """Segment several targets (plate, settings, wells, timepoints) as one stream of units.

    Every target is planned and checked before anything is written; then the units of
    all targets go through one bounded window (the cluster does not drain between
    plates), each with its target's settings, models and channels. Completion records and
    the label images' metadata are written per target, a target's as soon as its last
    unit finished.

    Parameters
    ----------
    targets : iterable of Target or tuple
        ``(plate, config[, wells[, timepoints]])`` each, as :func:`segment` takes them.
    client : distributed.Client, optional
        Where to run; ``precision: auto`` is then resolved on its workers
        (:func:`cluster_precision`). Default: a local cluster made for this call
        (loopback only), ``auto`` resolved on this machine.
    progress : callable, optional
        Called as ``progress(done, total)`` each time a (field, timepoint) of any target
        finishes.

    Returns
    -------
    list of RunResult
        One per target, in order. A target whose checks failed (unknown well or channel,
        a label image that cannot be resumed, ...), or whose label image could not be
        made, has ``error`` set (``"Type: message"``) and ``ok`` False; the others ran.
        ``max_in_flight`` is the stream's, all targets together.
    """
    out = []
    for item in _stream_targets([Target(*t) for t in targets], client, progress):
        if isinstance(item, TargetRun):
            out.append(item.result)
        else:
            logger.error("%s: %s", type(item).__name__, item)
            out.append(RunResult(error=f"{type(item).__name__}: {item}"))
    return out


def segment(
    plate: str,
    config: SegmentationConfig,
    *,
    client: Any = None,
    wells: Sequence[str] | None = None,
    timepoints: slice | Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Segment a plate (or a standalone image) and write ``labels/<name>`` into it.

    The one-target case of :func:`segment_many`, except that a target's error is raised.

    Parameters
    ----------
    plate : str
        OME-Zarr plate or multiscale image.
    config : SegmentationConfig
    client : distributed.Client, optional
        Where to run; ``precision: auto`` is then resolved on its workers
        (:func:`cluster_precision`). Default: a local cluster made for this call
        (loopback only), ``auto`` resolved on this machine.
    wells : sequence of str, optional
        Wells such as ``["A/1", "B/3"]`` (default all).
    timepoints : slice or sequence of int, optional
        Default all.
    progress : callable, optional
        Called as ``progress(done, total)`` each time a (field, timepoint) finishes.

    Returns
    -------
    RunResult

    Raises
    ------
    KeyError
        Unknown well or channel.
    FileNotFoundError
        Unknown model.
    LabelExistsError
        The label image exists (from something else, or other settings) and
        ``overwrite`` is False.
    """
    (item,) = _stream_targets([Target(plate, config, wells, timepoints)], client, progress)
    if isinstance(item, Exception):
        raise item
    item.result.raise_error()
    return item.result
