"""Run the build of a zoo: train each job's model (one Dask task each) and score them.

* :func:`run_training_job` trains one :class:`~structfree_dask.zoo.training.jobs.TrainingJob`
  (from :func:`~structfree_dask.zoo.training.jobs.training_jobs`), scores it and adds it to a
  :class:`Zoo`; :func:`train_model` is the same with a log file per model
  (:func:`model_log_path`) — one job is meant to be one Dask task.
* :func:`build_zoo` runs a list of jobs on a Dask cluster, a bounded number at a time
  (:func:`task_resources` asks for a GPU where the workers have one), then scores every
  pair on the validation and test fields of each split with the Vanilla baseline
  (:func:`~structfree_dask.zoo.scoring.scoring.score_split`) and writes the selection
  (:func:`~structfree_dask.zoo.scoring.scoring.select_from_scores`).

Data: every channel of every training field is its own grayscale sample, and so is
every timepoint (and z plane) (see :mod:`structfree_dask.zoo.scoring.data`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..._provenance import software_versions, utc_now
from ...backbones import ModelSpec, resolve_model
from ...config import STRATEGIES, SegmentationConfig, TrainSettings
from ...io import check_store, filesystem, is_url, join, redact
from ...pipeline.segment import segment_array
from ...runtime.cluster import gpu_resources, stream_outcomes, worker_name
from ...runtime.result import PlateRun
from ..card import ModelCard
from ..registry import Zoo
from ..scoring.data import fold_order, forget_model, load_planes, load_samples, score_planes
from ..scoring.scoring import score_split, select_from_scores
from ..scoring.threshold import (
    CELLPROB_THRESHOLDS,
    FLOW_THRESHOLDS,
    check_cellprob_thresholds,
    check_flow_thresholds,
    choose_thresholds,
)
from ..selection import Selection
from .jobs import TrainingJob
from .train import Progress, finetune

__all__ = [
    "run_training_job",
    "BuildResult",
    "model_log_path",
    "train_model",
    "task_resources",
    "build_zoo",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- training


def run_training_job(
    job: TrainingJob,
    base: ModelSpec | str | Path | None,
    zoo_dir: str | Path,
    settings: TrainSettings | None = None,
    *,
    progress: Progress | None = None,
    device: Any = None,
) -> ModelCard:
    """Fine-tune one job's model, score it, and add it to the zoo.

    Loads every channel of every plane of the training and validation fields as its
    own grayscale sample, runs :func:`~structfree_dask.zoo.training.train.finetune`, scores the
    best weights on the validation and test fields with
    :func:`structfree_dask.engine.segment_array` (FA over the job's channels, at the
    training diameter) and writes ``weights.pth`` + ``card.json``.

    Parameters
    ----------
    job : TrainingJob
    base : ModelSpec, str, Path or None
        Pretrained weights (None: the shipped generalist).
    zoo_dir : str or Path
        The zoo folder, or its URL in an object store (the training then works in a
        local temporary folder, and the model is uploaded by :meth:`Zoo.add`).
    settings : TrainSettings, optional
        How to fine-tune (default: ``TrainSettings()``). With ``overwrite`` False, an
        existing model's card is returned without training (so a re-submitted build
        resumes).
    progress : callable, optional
        See :func:`~structfree_dask.zoo.training.train.finetune`.
    device : torch.device, optional

    Returns
    -------
    ModelCard
        The stored card.
    """
    st = settings or TrainSettings()
    zoo = Zoo(zoo_dir)
    if job.model_id in zoo and not st.overwrite:
        logger.info("model %s is already in %s; not retrained", job.model_id, zoo.where)
        return zoo.get(job.model_id)
    spec = base if isinstance(base, ModelSpec) else resolve_model(base)
    train = load_samples(job.plate, job.split.train, job.channels, job.gt)
    val = load_samples(job.plate, job.split.val, job.channels, job.gt)
    if isinstance(zoo.path, Path):
        work = zoo.path / "models" / f".train-{job.model_id}-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
    else:  # a store: train in a local folder, upload through Zoo.add
        work = Path(tempfile.mkdtemp(prefix=f"structfree-dask-train-{job.model_id}-"))
    try:
        weights = work / "weights.pth"
        result = finetune(spec, train, val, st, seed=job.split.seed, out_path=weights,
                          progress=progress, device=device)
        d = float(st.diameter or result.diameter)
        scoring = SegmentationConfig(model=str(weights), diameter=d)

        def segment(image: np.ndarray) -> np.ndarray:
            return segment_array(image, scoring.replace(channels=tuple(range(len(image)))))

        try:
            val_scores = score_planes(load_planes(job.plate, job.split.val, job.channels,
                                                  job.gt), segment)
            test_scores = score_planes(load_planes(job.plate, job.split.test, job.channels,
                                                   job.gt), segment)
        finally:
            forget_model(weights)
        card = ModelCard(
            model_id=job.model_id, cell_line=job.cell_line, organelle=job.organelle,
            strategy=job.strategy, channels=job.channels, channel_names=job.channel_names,
            base_model=spec.name, base_sha256=spec.sha256, diameter=d,
            diam_mean=result.diam_mean, split=job.split, epochs_run=result.epochs_run,
            best_epoch=result.best_epoch, val_scores=val_scores, test_scores=test_scores,
            training={
                "max_epochs": st.max_epochs, "patience": st.patience, "lr": st.lr,
                "weight_decay": st.weight_decay, "batch_size": st.batch_size,
                "tile_size": st.tile_size, "best_val_loss": result.best_val_loss,
                "initial_val_loss": result.initial_val_loss,
                "stopped_early": result.stopped_early, "n_train": result.n_train,
                "n_val": result.n_val, "train_losses": list(result.train_losses),
                "val_losses": list(result.val_losses), "seconds": result.seconds,
                "seconds_per_sample": result.seconds_per_sample,
            },
            source={"plate": job.plate, "gt": job.gt},
            software=software_versions(),
        )
        stored = zoo.add(card, weights, overwrite=st.overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("model %s: %d epochs (best %d), val F1 %.3f, test F1 %.3f", stored.model_id,
                stored.epochs_run, stored.best_epoch, stored.val_f1, stored.test_f1)
    return stored


# ----------------------------------------------------------------------------- Dask build


def model_log_path(zoo_dir: str | Path, model_id: str) -> Path | str:
    """Return the training log of a model: ``<zoo>/logs/<model_id>.log`` (a URL in a store)."""
    from ...io import check_name

    name = f"{check_name(model_id, 'model_id')}.log"
    if is_url(zoo_dir):
        return join(str(zoo_dir), "logs", name)
    return Path(zoo_dir) / "logs" / name


class _ModelLog:
    """Append time-stamped lines to a model's log file (line-buffered).

    A log at a URL is written to a local temporary file (starting from the log already
    in the store, so a resumed build appends) and uploaded whole when closed: an object
    store cannot append, so the log appears in the store once the training has ended.
    """

    def __init__(self, path: Path | str) -> None:
        self._url: str | None = None
        if not isinstance(path, Path):
            self._url = path
            fs, key = filesystem(path)
            fd, local = tempfile.mkstemp(prefix="structfree-dask-log-", suffix=".log")
            os.close(fd)
            path = Path(local)
            fs.invalidate_cache(key)
            if fs.exists(key):
                fs.get_file(key, str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._fh = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def line(self, text: str) -> None:
        self._fh.write(f"{utc_now()} {text}\n")

    def epoch(self, epoch: int, max_epochs: int, train_loss: float, val_loss: float) -> None:
        self.line(f"epoch {epoch}/{max_epochs} train_loss={train_loss:.5f} "
                  f"val_loss={val_loss:.5f}")

    def close(self) -> None:
        self._fh.close()
        if self._url is None:
            return
        try:
            fs, key = filesystem(self._url)
            fs.put_file(str(self._path), key)
        except Exception as err:  # noqa: BLE001 - a lost log must not fail the training
            logger.warning("could not upload the training log to %s: %s",
                           redact(self._url), err)
        finally:
            self._path.unlink(missing_ok=True)


def _configure_threads() -> None:
    """Give torch the worker's thread budget (as the engine does for its tasks)."""
    from ...engine import worker_device

    worker_device()


def train_model(job: TrainingJob, base: ModelSpec | str | Path | None, zoo_dir: str | Path,
                settings: TrainSettings) -> ModelCard:
    """Train one job's model with a log file: the Dask task of :func:`build_zoo`.

    Runs :func:`run_training_job` and appends to :func:`model_log_path`: the job, one
    line per epoch (training and validation loss), and the outcome (or the traceback).

    Parameters
    ----------
    job : TrainingJob
    base : ModelSpec, str, Path or None
        Pretrained weights (None: the shipped generalist).
    zoo_dir : str or Path
    settings : TrainSettings

    Returns
    -------
    ModelCard
        The stored card (the existing one when the model was already in the zoo and
        ``settings.overwrite`` is False).
    """
    _configure_threads()
    log = _ModelLog(model_log_path(zoo_dir, job.model_id))
    try:
        split = job.split
        if job.model_id in Zoo(zoo_dir) and not settings.overwrite:
            log.line(f"{job.model_id} is already in the zoo; not retrained")
            return run_training_job(job, base, zoo_dir, settings)  # its card, as it is
        log.line(f"training {job.model_id} on {worker_name()}: {job.strategy} on channels "
                 f"{list(job.channel_names)}, {len(split.train)}/{len(split.val)}/"
                 f"{len(split.test)} train/val/test fields, base {base or 'generalist'}, "
                 f"max {settings.max_epochs} epochs, patience {settings.patience}")
        started = time.perf_counter()
        card = run_training_job(job, base, zoo_dir, settings, progress=log.epoch)
        log.line(f"done in {time.perf_counter() - started:.1f} s: {card.epochs_run} epoch(s), "
                 f"best epoch {card.best_epoch}, val F1 {card.val_f1:.3f}, "
                 f"test F1 {card.test_f1:.3f}")
        return card
    except BaseException:
        log.line("failed:\n" + traceback.format_exc())
        raise
    finally:
        log.close()


def _score_task(fold: int | None, **kwargs: Any) -> list[dict[str, Any]]:
    """Score the candidates of one split: a scoring task of :func:`build_zoo`."""
    _configure_threads()
    return score_split(fold=fold, **kwargs)


def task_resources(client: Any) -> dict[str, float] | None:
    """Return ``{"GPU": 1}`` when a worker advertises a ``GPU`` resource, else None.

    Annotating tasks with a resource no worker has would leave them waiting forever, so
    training and scoring tasks ask for a GPU only when some worker was started with
    one (e.g. ``dask worker --resources GPU=1``).

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    dict or None
        The ``resources=`` of :meth:`distributed.Client.submit`.
    """
    return gpu_resources(client)


@dataclass
class BuildResult(PlateRun):
    """Outcome of :func:`build_zoo` (:class:`~structfree_dask.runtime.result.PlateRun`).

    Units are ``(model ID, None)``: trained now (``done``), already in the zoo
    (``skipped``) or failed (``failed``, with the error).

    Attributes
    ----------
    zoo : Path or str
        The zoo folder, or its URL.
    cards : list of ModelCard
        Cards of the jobs' models (trained now or already in the zoo).
    reused : list of str
        Ids of the models that were already in the zoo.
    scores : list of dict
        Score rows of every split (:func:`~structfree_dask.zoo.scoring.scoring.score_split`),
        Vanilla rows included.
    selection : Selection or None
        The stored selection (None when no model was trained).
    """

    zoo: Path | str = ""
    cards: list[ModelCard] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    selection: Selection | None = None

    @property
    def ok(self) -> bool:
        """True when every job succeeded and a selection was written."""
        return not self.failed and self.error is None and self.selection is not None


def _common(jobs: Sequence[TrainingJob]) -> TrainingJob:
    if not jobs:
        raise ValueError("no training jobs given; list them with training_jobs()")
    first = jobs[0]
    for job in jobs[1:]:
        for attr in ("plate", "gt", "cell_line", "organelle"):
            if getattr(job, attr) != getattr(first, attr):
                raise ValueError(f"all jobs of a build must share {attr}: {first.model_id} has "
                                 f"{getattr(first, attr)!r}, {job.model_id} has "
                                 f"{getattr(job, attr)!r}")
        if job.split.seed != first.split.seed:
            raise ValueError(f"all jobs of a build must share the seed; got "
                             f"{first.split.seed} and {job.split.seed}")
    ids = [j.model_id for j in jobs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"jobs make the same model(s) {dupes}; each model id must be unique")
    return first


def build_zoo(
    jobs: Sequence[TrainingJob],
    zoo_dir: str | Path,
    *,
    client: Any,
    base: ModelSpec | str | Path | None = None,
    settings: TrainSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    flow_thresholds: Sequence[float] = FLOW_THRESHOLDS,
    cellprob_thresholds: Sequence[float] = CELLPROB_THRESHOLDS,
) -> BuildResult:
    """Train a zoo on a Dask cluster, score every pair, and write the selection.

    Each job is one task (:func:`train_model`, ``pure=False``; ``resources={"GPU": 1}``
    when the workers advertise GPUs, see :func:`task_resources`), so the models train in
    parallel; each keeps a log in ``<zoo>/logs/``. Tasks are submitted through a bounded
    window, the next as one finishes, so the scheduler holds few tasks whatever the
    number of jobs (:func:`~structfree_dask.runtime.cluster.stream_outcomes`:
    :data:`~structfree_dask.runtime.cluster.TASKS_PER_THREAD` per worker thread, re-read
    as workers join or leave). Once every training has finished, one task per split
    (fold) runs
    :func:`~structfree_dask.zoo.scoring.scoring.score_split` on the models that trained, and
    :func:`~structfree_dask.zoo.scoring.scoring.select_from_scores` writes the selection. A last
    task chooses the selected pair's flow and cell probability thresholds on the
    validation fields (:func:`~structfree_dask.zoo.scoring.threshold.choose_thresholds`).
    The plate and the zoo must be reachable by the workers at the same paths, or be
    URLs of an object store that the workers read and write directly (a zoo at a URL is
    checked for writes before any training; see :meth:`Zoo.add` for how models are written there).

    Parameters
    ----------
    jobs : sequence of TrainingJob
        From :func:`~structfree_dask.zoo.training.jobs.training_jobs` (one plate, label image, cell
        line, organelle and seed).
    zoo_dir : str or Path
    client : distributed.Client
    base : ModelSpec, str, Path or None
        Base model to fine-tune and to score as the Vanilla baseline (None: the shipped
        generalist). Given as a name or path, it is resolved here (to check it and to
        record it with the selection) and again on each worker.
    settings : TrainSettings, optional
    progress : callable, optional
        Called as ``progress(done, total)`` with the finished tasks (training, scoring,
        thresholds).
    flow_thresholds : sequence of float
        Cellpose flow thresholds the selection chooses from.
    cellprob_thresholds : sequence of float
        Cellpose cell probability thresholds (logits) the selection chooses from, with
        the flow threshold. One value in each list: those, no scoring.

    Returns
    -------
    BuildResult
        Failed jobs are reported there, not raised; the selection uses the models that
        trained.

    Raises
    ------
    ValueError
        Jobs that do not belong to one build.
    FileNotFoundError
        If the base model cannot be found.
    StoreError
        A zoo at a URL whose store cannot be reached or refuses writes.
    RuntimeError
        If scoring a split failed.
    """
    first = _common(list(jobs))
    settings = settings or TrainSettings()
    thresholds = check_flow_thresholds(flow_thresholds)
    cellprobs = check_cellprob_thresholds(cellprob_thresholds)
    spec = base if isinstance(base, ModelSpec) else resolve_model(base)  # fail early
    check_store(zoo_dir, write=True, must_exist=False)  # a store: before any training
    zoo = Zoo(zoo_dir)
    started = time.perf_counter()
    existing = set() if settings.overwrite else set(zoo.ids())
    folds = sorted({j.split.fold for j in jobs}, key=lambda f: -1 if f is None else f)
    reused = [j.model_id for j in jobs if j.model_id in existing]
    result = BuildResult(zoo=zoo.path, reused=reused, skipped=[(m, None) for m in reused])
    resources = task_resources(client)
    total, done = len(jobs) + len(folds) + 1, [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    if progress is not None:
        progress(0, total)
    logger.info("zoo build: %d training task(s) on %s%s", len(jobs), client,
                " (GPU resource)" if resources else "")
    train = partial(train_model, base=base, zoo_dir=str(zoo.path), settings=settings)
    with closing(stream_outcomes(client, train, jobs, key=lambda j: f"zoo-train-{j.model_id}",
                                 resources=resources, step=step)) as trained:
        for job, (card, err) in trained:
            if err is None:
                result.cards.append(card)
                if job.model_id not in existing:
                    result.done.append((job.model_id, None))
            else:
                result.fail(job.model_id, None, err)
                logger.error("training %s failed: %s (log: %s)", job.model_id, err,
                             redact(model_log_path(zoo.path, job.model_id)))
    result.cards.sort(key=lambda c: [j.model_id for j in jobs].index(c.model_id))
    if not result.cards:
        result.seconds = time.perf_counter() - started
        return result
    trained_folds = [f for f in folds if any(c.fold == f for c in result.cards)]
    strategies = [s for s in STRATEGIES if any(c.strategy == s for c in result.cards)]
    score = partial(_score_task, zoo_dir=str(zoo.path), plate=first.plate, gt=first.gt,
                    cell_line=first.cell_line, organelle=first.organelle, base=base,
                    seed=first.split.seed, strategies=strategies, diameter=settings.diameter,
                    batch_size=settings.batch_size)
    for _ in range(len(folds) - len(trained_folds)):
        step()
    with closing(stream_outcomes(client, score, trained_folds, key=lambda f: f"zoo-score-f{f}",
                                 resources=resources, step=step)) as scored:
        outcomes = {str(f): outcome for f, outcome in scored}
    for fold, (rows, err) in sorted(outcomes.items()):
        if err is not None:
            raise RuntimeError(f"scoring the candidates of {first.cell_line}/{first.organelle} "
                               f"(fold {fold}) failed: {err}")
        result.scores.extend(rows)
    result.scores.sort(key=fold_order)
    result.selection = select_from_scores(
        zoo, first.cell_line, first.organelle, result.scores, gt=first.gt, plate=first.plate,
        seed=first.split.seed, flow_threshold=thresholds[0], cellprob_threshold=cellprobs[0],
        baseline={"model": spec.name, "path": spec.path, "sha256": spec.sha256})
    if len(thresholds) > 1 or len(cellprobs) > 1:
        result.selection = client.submit(
            choose_thresholds, str(zoo.path), first.cell_line, first.organelle, thresholds,
            cellprobs, plate=first.plate, gt=first.gt, batch_size=settings.batch_size,
            pure=False, resources=resources,
            key=f"zoo-thresholds-{uuid.uuid4().hex[:8]}").result()
    step()
    result.seconds = time.perf_counter() - started
    return result
