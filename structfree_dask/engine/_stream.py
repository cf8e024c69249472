"""Driver side: the units of one or more targets, streamed through one bounded window.

Every target (a plate, its settings and selection) is planned before anything is written
(:mod:`._plan`); one stream then keeps :data:`UNITS_PER_THREAD` units per worker thread in
flight, whichever target they belong to, and submits the next as each finishes. Each unit
carries its target's settings, models and channels; completion records and the label
images' metadata are written per target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import Any

from ..backbones import ModelSpec
from ..config import SegmentationConfig
from ..io import (
    LabelImage,
    completed_timepoints,
    concurrently,
    finalize_labels,
    is_url,
    mark_done,
    redact,
)
from ..runtime.cluster import (
    TASKS_PER_THREAD,
    finished_result,
    gpu_resources,
    in_flight_window,
)
from ..runtime.result import PlateRun
from ._graph import Unit, unit_task
from ._plan import FieldPlan, apply_label_plan

logger = logging.getLogger(__name__)

#: Units in flight per worker thread (the window rule of :func:`.cluster.in_flight_window`):
#: enough to keep every thread busy while finished units are recorded and new ones
#: submitted, few enough that the scheduler and the driver hold a bounded graph whatever
#: the number of units.
UNITS_PER_THREAD = TASKS_PER_THREAD
#: Completion records are written in batches: after this many units of a label image ...
MARK_BATCH = 64
#: ... or when a unit finishes this many seconds after the last record was written (the
#: first unit of a target is recorded at once), and at the end.
MARK_SECONDS = 2.0
#: A field of one region runs as one task (a fused unit); False runs every unit as its
#: graph of tasks (the tests compare the two).
FUSE_SINGLE_REGION = True


@dataclass
class RunResult(PlateRun):
    """What a run (or one target of :func:`~structfree_dask.engine.segment_many`) did.

    The units, failures and ``error`` are :class:`~structfree_dask.runtime.result.PlateRun`'s;
    ``error`` says why this target stopped before its end (``segment_many``; ``segment``
    raises). ``seconds`` runs from the start of the run to this target's end; a target with
    nothing left to do ends when the stream reaches it.
    """

    cells: dict[str, int] = field(default_factory=dict)
    cut_cells: int = 0
    megapixel_channels: float = 0.0
    model_sha256: list[str] = field(default_factory=list)
    #: Seconds from the start of the run to the first finished unit (None: none finished).
    first_unit_seconds: float | None = None
    #: Most units that were in flight at once (the stream's window, all targets together).
    max_in_flight: int = 0
    #: Seconds spent per stage (:data:`~structfree_dask.engine.STAGES`) by the steps of
    #: fused units (fields of one region run as one task), summed over the units ...
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: ... and how many steps of each stage they ran (the graph's tasks of those stages).
    stage_steps: dict[str, int] = field(default_factory=dict)


#: Exception classes (or bases) of a store that does not answer: the standard ones are
#: checked by type; botocore's and aiohttp's by name (neither is a dependency of the engine).
_UNANSWERED = ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
               "ConnectionClosedError", "ClientConnectorError", "ServerDisconnectedError",
               "ServerTimeoutError")


def _unanswered(err: BaseException) -> bool:
    """Whether an error, or one of its causes, is a connection that failed or timed out."""
    seen: BaseException | None = err
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ConnectionError | TimeoutError) or \
                {c.__name__ for c in type(seen).__mro__} & set(_UNANSWERED):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class StoreLostError(RuntimeError):
    """The plate's object store stopped answering the driver mid-run."""


def _as_store_lost(store: str, err: Exception) -> Exception:
    """Return a :class:`StoreLostError` saying what to do for a store that stopped answering.

    Other errors, and errors of plates on local disk, are returned as they are.
    """
    if isinstance(err, StoreLostError) or not is_url(store) or not _unanswered(err):
        return err
    text = " ".join(str(err).split()) or type(err).__name__
    lost = StoreLostError(
        f"the store of {redact(store)} stopped answering mid-run ({text[:300]}); the units "
        "recorded done are kept. When the store answers again, rerun the same command to "
        "resume")
    lost.__cause__ = err
    return lost


class Marks:
    """Completion records of finished units, written in batches per label image."""

    def __init__(self, labels: dict[str, LabelImage]) -> None:
        self.labels = labels
        self.pending: dict[str, list[int]] = {}
        self.last: float | None = None  # when records were last written

    def add(self, path: str, t: int) -> None:
        """Queue a finished (field, timepoint); write the records when a batch is due."""
        self.pending.setdefault(path, []).append(t)
        if self.last is None or len(self.pending[path]) >= MARK_BATCH or \
                time.monotonic() - self.last >= MARK_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write every queued record (the label images' at once)."""

        def mark(item: tuple[str, list[int]]) -> None:
            path, tps = item
            try:
                mark_done(self.labels[path], tps)
            except Exception as err:
                lost = _as_store_lost(self.labels[path].image.store, err)
                if lost is err:
                    raise
                raise lost from err

        concurrently(mark, list(self.pending.items()))
        self.pending.clear()
        self.last = time.monotonic()


class TargetRun:
    """One planned target of a stream: its settings, its fields and what happened to it.

    Parameters
    ----------
    index : int
        Position among the run's targets (makes its task names unique).
    config : SegmentationConfig
    specs : tuple of ModelSpec
        The models of ``config``, resolved.
    plans : list of FieldPlan
        Its fields, checked (:func:`._plan.plan_fields`).
    started : float
        ``time.perf_counter()`` at the start of the run.
    """

    def __init__(self, index: int, config: SegmentationConfig, specs: tuple[ModelSpec, ...],
                 plans: list[FieldPlan], started: float) -> None:
        self.index, self.config, self.specs, self.started = index, config, specs, started
        self.result = RunResult(model_sha256=[sp.sha256 for sp in specs])
        self.labels: dict[str, LabelImage] = {}  # opened as the stream reaches each field
        self.marks = Marks(self.labels)
        self.channels = {fp.info.path: fp.channels for fp in plans}
        self.todo: list[tuple[FieldPlan, list[int]]] = []
        for fp in plans:
            done = set(fp.kept)  # read once, when the field was planned
            self.todo.append((fp, [t for t in fp.timepoints if t not in done]))
            self.result.skipped.extend((fp.info.path, t) for t in fp.timepoints if t in done)
        self.error: Exception | None = None
        self.pending = 0  # units taken and not finished
        self.taken = False  # every unit taken, every label image opened
        self.closed = False
        #: when the stream reached a target with no unit to do (its end; closed later)
        self.reached: float | None = None

    @property
    def total(self) -> int:
        """Units to do."""
        return sum(len(todo) for _, todo in self.todo)

    def finished(self, unit: Unit, outcome: tuple[int, int, dict[str, tuple[int, float]]]
                 ) -> None:
        """Record a unit that finished (its writes are all done)."""
        path, t = unit.info.path, unit.t
        n_cells, n_cut, steps = outcome
        self.marks.add(path, t)
        res = self.result
        res.done.append((path, t))
        res.cells[f"{path}@t{t}"] = int(n_cells)
        res.cut_cells += int(n_cut)
        sizes = unit.info.sizes
        res.megapixel_channels += (sizes["y"] * sizes["x"] * sizes["z"]
                                   * len(self.channels[path])) / 1e6
        for stage, (n, seconds) in steps.items():
            res.stage_steps[stage] = res.stage_steps.get(stage, 0) + int(n)
            res.stage_seconds[stage] = res.stage_seconds.get(stage, 0.0) + float(seconds)
        if res.first_unit_seconds is None:
            res.first_unit_seconds = time.perf_counter() - self.started
        self.pending -= 1

    def failed(self, unit: Unit, err: BaseException | None) -> None:
        """Record a unit whose task failed."""
        self.result.fail(unit.info.path, unit.t, str(err))
        logger.error("failed %s t=%d: %s", unit.info.path, unit.t, err)
        self.pending -= 1

    def stop(self, err: Exception) -> None:
        """Stop taking this target's units (its other units and the other targets go on)."""
        if self.todo:  # a store that stopped answering: said so, with what to do
            err = _as_store_lost(self.todo[0][0].info.store, err)
        self.error = err
        logger.error("target %d (labels/%s): %s: %s", self.index, self.config.label_name,
                     type(err).__name__, err)

    def close(self) -> None:
        """Write the last completion records and the label images' metadata (once)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.marks.flush()
            # the label images of this target, at once (on an object store each is a
            # dozen round trips)
            concurrently(_finalize_done, list(self.labels.values()))
        except Exception as err:  # noqa: BLE001 - this target's error; the others go on
            self.stop(err)
        res = self.result
        res.done.sort()  # in plate order, not in the order the units finished
        # a target with nothing to do ended when the stream reached it, not when another
        # target's unit finished and closed it
        res.seconds = (self.reached or time.perf_counter()) - self.started
        if self.error is not None:
            res.error = f"{type(self.error).__name__}: {self.error}"
            res.exception = self.error
        if res.cut_cells:
            logger.warning("%d cell(s) touched a task window edge; raise --halo to keep them "
                           "whole", res.cut_cells)


def _finalize_done(label: LabelImage) -> None:
    """Write a label image's NGFF metadata if any of its timepoints is complete."""
    if completed_timepoints(label):
        finalize_labels(label)


class UnitStream:
    """The units of a run's targets, in order, produced as they are needed.

    A field's label image is created (or reopened, grown, its timepoints to redo
    unmarked) while the units of the field before it are taken, in a thread of its own
    (one field ahead; the first field's when the first unit is taken), not before the run
    starts: on an object store its dozen requests would otherwise hold up the next unit's
    submission. A target whose label image cannot be made stops there
    (:meth:`TargetRun.stop`); the others go on.
    """

    def __init__(self, runs: list[TargetRun]) -> None:
        self.runs = runs
        self.total = sum(run.total for run in runs)
        self._ahead: ThreadPoolExecutor | None = None  # makes label images ahead, once taking
        self._units = self._generate()

    def _generate(self) -> Iterator[tuple[TargetRun, Unit]]:
        # Not a `with` block: leaving it would wait for the label image being made ahead,
        # and a stream dropped unfinished is closed wherever the garbage collector runs,
        # zarr's own I/O thread among them, which that label image waits on (a deadlock).
        # close() waits for it, in the caller's thread.
        ahead = self._ahead = ThreadPoolExecutor(max_workers=1,
                                                 thread_name_prefix="label-plan")
        try:
            for run in self.runs:
                def plan(k: int, run: TargetRun = run) -> Any:
                    return ahead.submit(apply_label_plan, run.todo[k][0], run.config)

                coming = plan(0) if run.todo else None
                for k, (fp, todo) in enumerate(run.todo):
                    try:
                        label = coming.result()
                    except Exception as err:  # noqa: BLE001 - this target stops; see stop()
                        self.total -= sum(len(left) for _, left in run.todo[k:])
                        run.stop(err)
                        break
                    coming = plan(k + 1) if k + 1 < len(run.todo) else None
                    run.labels[fp.info.path] = label
                    for t in todo:
                        run.pending += 1
                        yield run, Unit(fp.info, label, t)
                run.taken = True
                if not run.total:
                    run.reached = time.perf_counter()
        finally:
            ahead.shutdown(wait=False, cancel_futures=True)

    def take(self) -> tuple[TargetRun, Unit] | None:
        """Return the next unit and its target, or None when every unit was taken."""
        return next(self._units, None)

    def finish(self) -> None:
        """Open the label images of the fields with nothing left to do (to finalize them)."""
        for _ in self._units:
            self.close()
            raise RuntimeError("finish() called with units not taken")

    def close(self) -> None:
        """Stop producing units, and wait for a label image being made ahead.

        The driver calls it when a run ends, however it ends (a stream left to the
        garbage collector does not wait: that label image is finished in the background).
        """
        self._units.close()
        if self._ahead is not None:
            self._ahead.shutdown(wait=True)


def _window(client: Any) -> int:
    """Units to keep in flight: :data:`UNITS_PER_THREAD` per worker thread now."""
    return in_flight_window(client, UNITS_PER_THREAD)


def run_stream(client: Any, stream: UnitStream,
               progress: Callable[[int, int], None] | None) -> None:
    """Keep a bounded number of units in flight; record them as they finish.

    The window follows the cluster (workers that join or leave), re-read every few
    seconds; completion is recorded in batches, always after all of a unit's writes. A
    target is closed (:meth:`TargetRun.close`) as soon as its last unit finished.
    """
    from dask.base import tokenize

    from ..runtime.cluster import stream_futures

    token = tokenize([(asdict(run.config), [sp.sha256 for sp in run.specs])
                      for run in stream.runs], time.time_ns())[:8]
    # network and integration ask for a GPU where workers have one (dask-cuda)
    resources = gpu_resources(client)
    counts = {"submitted": 0, "done": 0, "most": 0}

    def submit(taken: tuple[TargetRun, Unit]) -> Any:
        run, unit = taken
        task = unit_task(unit, run.config, run.specs, run.channels[unit.info.path],
                         f"{token}-{run.index}", resources, fuse=FUSE_SINGLE_REGION)
        counts["submitted"] += 1
        counts["most"] = max(counts["most"], counts["submitted"] - counts["done"])
        return client.compute(task)

    finished = stream_futures(client, submit, iter(stream.take, None), name="units",
                              window=lambda: _window(client))
    try:
        with closing(finished):  # interrupted: the units in flight are cancelled
            for (run, unit), future in finished:
                if future.status == "error":
                    run.failed(unit, future.exception())
                else:
                    run.finished(unit, finished_result(client, future))
                future.release()
                counts["done"] += 1
                if progress is not None:
                    progress(counts["done"], stream.total)
                for other in stream.runs:  # a target whose last unit finished: closed now
                    if other.taken and not other.pending:
                        other.close()
    finally:
        for run in stream.runs:
            run.marks.flush()  # what finished is recorded, whatever happens next
            run.result.max_in_flight = counts["most"]
