"""Plan, run and score the fine-tuning jobs of a zoo, one plain function per step.

* :func:`training_jobs` lists the models to train for a cell line and organelle
  (a :class:`TrainingJob` per strategy, channel subset and fold); it writes nothing.
* :func:`run_training_job` trains one of them and adds it to a :class:`Zoo` — one
  job is meant to be one Dask task.
* :func:`score_candidates` scores every (training subset, evaluation subset) pair of
  the models in a zoo on the validation fields, :func:`select_models` keeps the best
  and writes the zoo's selection file.
* :func:`build_zoo` runs a list of jobs on a Dask cluster (one task per model, a log
  file per model), scores every pair on the validation and test fields of each split
  (:func:`score_split`, with the not fine-tuned base model as the Vanilla baseline,
  :func:`score_vanilla`) and writes the selection (:func:`select_from_scores`).

Data: every channel of every training field is its own grayscale sample, and so is
every timepoint (and z plane).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones import ModelSpec, resolve_model
from ..io import ImageInfo, Plate, open_labels, open_plate
from ..metrics import combine, evaluate
from .card import (
    ORGANELLES,
    STRATEGIES,
    ModelCard,
    check_compatible,
    software_versions,
    utc_now,
)
from .evaluate import average_flows, channel_flows, flows_to_labels
from .registry import Zoo
from .select import candidate_pairs, nonempty_subsets, select_best
from .splits import DEFAULT_FRACTIONS, Split, kfold, split_fields
from .train import Progress, _check_tile, finetune

__all__ = [
    "TrainingJob",
    "Plane",
    "training_jobs",
    "load_samples",
    "load_planes",
    "run_training_job",
    "score_planes",
    "score_candidates",
    "select_models",
    "VANILLA",
    "SELECTION_RULE",
    "TrainSettings",
    "BuildResult",
    "score_vanilla",
    "score_split",
    "summarize_scores",
    "select_from_scores",
    "model_log_path",
    "train_model",
    "task_resources",
    "build_zoo",
]

logger = logging.getLogger(__name__)

#: Scores copied from :func:`structfree_dask.metrics.combine` into cards and tables.
SCORE_KEYS = ("f1", "precision", "recall", "aji", "ap_50_95", "mean_matched_jaccard", "tp",
              "fp", "fn", "n_true", "n_pred", "n_images")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(text)).strip("_.") or "x"


@dataclass(frozen=True)
class TrainingJob:
    """One model to fine-tune.

    Attributes
    ----------
    plate : str
        OME-Zarr plate (or image) store with the images and ground truth.
    gt : str
        Label image holding the ground truth of ``organelle``.
    cell_line, organelle, strategy : str
    channels : tuple of int
        Training channels (plate indices); each is fed as its own sample.
    channel_names : tuple of str
    split : Split
        Field ids (plate field paths) for training, validation and test.

    Examples
    --------
    >>> job = TrainingJob("p.zarr", "gt_cyto", "CL 1", "cyto", "mc", (0, 2), ("a", "b"),
    ...                   Split(("f1",), ("f2",), ("f3",), seed=4, fold=1, n_folds=5))
    >>> job.model_id
    'CL_1-cyto-mc-c0_2-s4-f1of5'
    """

    plate: str
    gt: str
    cell_line: str
    organelle: str
    strategy: str
    channels: tuple[int, ...]
    channel_names: tuple[str, ...]
    split: Split

    def __post_init__(self) -> None:
        if self.organelle not in ORGANELLES:
            raise ValueError(f"organelle must be one of {ORGANELLES}; got {self.organelle!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}")
        want = "one channel" if self.strategy == "cw" else "two or more channels"
        if (len(self.channels) == 1) != (self.strategy == "cw") or not self.channels:
            raise ValueError(f"a {self.strategy!r} job trains on {want}; got "
                             f"{list(self.channels)}")
        if len(self.channel_names) != len(self.channels):
            raise ValueError(f"{len(self.channels)} channels but {len(self.channel_names)} "
                             "channel names")

    @property
    def model_id(self) -> str:
        """Id of the model this job makes (a folder name)."""
        parts = [_slug(self.cell_line), self.organelle, self.strategy,
                 "c" + "_".join(str(c) for c in self.channels), f"s{self.split.seed}"]
        if self.split.fold is not None:
            parts.append(f"f{self.split.fold}of{self.split.n_folds}")
        return "-".join(parts)


def _open(plate: str | Path | Plate) -> Plate:
    return plate if isinstance(plate, Plate) else open_plate(str(plate))


def _annotated(pl: Plate, gt: str, wells: Sequence[str] | None) -> list[ImageInfo]:
    infos = list(pl.fields(list(wells) if wells is not None else None))
    annotated = [info for info in infos if gt in info.labels]
    if not annotated:
        found = sorted({name for info in infos for name in info.labels})
        raise ValueError(
            f"no field of {pl.store} has a label image {gt!r} (no annotations for "
            f"training); {len(infos)} field(s) searched, label images found: "
            f"{found or 'none'}"
        )
    if len(annotated) < len(infos):
        logger.info("%d of %d fields have labels/%s; the others are not used",
                    len(annotated), len(infos), gt)
    names = annotated[0].channel_names
    for info in annotated[1:]:
        if info.channel_names != names:
            raise ValueError(f"fields have different channels: {annotated[0].path} has "
                             f"{list(names)}, {info.path} has {list(info.channel_names)}")
    return annotated


def training_jobs(
    plate: str | Path | Plate,
    gt: str,
    organelle: str,
    cell_line: str,
    strategies: Sequence[str] = STRATEGIES,
    subsets: Iterable[Sequence[int | str]] | None = None,
    folds: int | None = None,
    seed: int = 0,
    *,
    wells: Sequence[str] | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> list[TrainingJob]:
    """List the fine-tuning jobs of a cell line and organelle (nothing is written).

    Parameters
    ----------
    plate : str, Path or Plate
    gt : str
        Ground-truth label image name (fields without it are not used).
    organelle : str
        ``"nuclei"`` or ``"cyto"``.
    cell_line : str
    strategies : sequence of str
        ``"cw"`` and/or ``"mc"``.
    subsets : iterable of channel subsets, optional
        Training subsets (channel indices or names): single channels become CW jobs,
        larger subsets MC jobs. Default: every channel (CW) and every subset of two or
        more channels (MC).
    folds : int, optional
        ``k >= 2``: one job per fold of :func:`~structfree_dask.zoo.splits.kfold`;
        default a single 80/10/10 split.
    seed : int
        Seed of the split(s) and of training.
    wells : sequence of str, optional
        Only fields of these wells.
    fractions : (float, float, float)
        Train / validation / test fractions of a single split.

    Returns
    -------
    list of TrainingJob
        By fold, then CW before MC, then channel subset.

    Raises
    ------
    ValueError
        No annotated field, too few fields to split, unknown strategy or organelle, no
        subset left for the strategies.
    KeyError
        A subset names a channel the plate lacks (the message lists its channels).
    """
    if organelle not in ORGANELLES:
        raise ValueError(f"organelle must be one of {ORGANELLES}; got {organelle!r}")
    if isinstance(strategies, str):
        strategies = (strategies,)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ValueError(f"strategies must be some of {list(STRATEGIES)}; got {list(strategies)}")
    pl = _open(plate)
    infos = _annotated(pl, gt, wells)
    first = infos[0]
    names = first.channel_names
    if subsets is None:
        subs = [s for s in nonempty_subsets(range(len(names)))]
    else:
        subs = []
        for s in subsets:
            items = [s] if isinstance(s, int | str) else list(s)
            idx = tuple(sorted({first.channel_index(c) for c in items}))
            if not idx:
                raise ValueError("channel subsets must not be empty")
            if len(idx) != len(items):
                raise ValueError(f"channel subset {items} repeats a channel")
            if idx not in subs:
                subs.append(idx)
    subs = [s for s in subs if ("cw" if len(s) == 1 else "mc") in strategies]
    if not subs:
        raise ValueError(f"no channel subset fits strategies {list(strategies)} "
                         f"(CW needs single channels, MC two or more); plate channels: "
                         f"{list(names)}")
    subs.sort(key=lambda s: (len(s) > 1, len(s), s))
    field_ids = [info.path for info in infos]
    if folds is None or folds == 1:
        splits = [split_fields(field_ids, seed, fractions)]
    else:
        splits = kfold(field_ids, folds, seed)
    jobs = [
        TrainingJob(plate=str(pl.store), gt=gt, cell_line=cell_line, organelle=organelle,
                    strategy="cw" if len(s) == 1 else "mc", channels=s,
                    channel_names=tuple(names[c] for c in s), split=split)
        for split in splits for s in subs
    ]
    logger.info("%d training job(s) for %s/%s: %d split(s) x %d channel subset(s)", len(jobs),
                cell_line, organelle, len(splits), len(subs))
    return jobs


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class Plane:
    """One (field, timepoint, z) plane with ground truth.

    Attributes
    ----------
    field : str
    t, z : int
    image : numpy.ndarray
        ``(c, y, x)`` raw channels, in the order asked for.
    labels : numpy.ndarray
        ``(y, x)`` ground truth.
    """

    field: str
    t: int
    z: int
    image: np.ndarray
    labels: np.ndarray


def _index(info: ImageInfo, t: int, z: int, c: int | None) -> tuple:
    out: list[Any] = []
    for ax in info.axes:
        if ax == "t":
            out.append(t)
        elif ax == "z":
            out.append(z)
        elif ax == "c":
            out.append(0 if c is None else c)
        else:
            out.append(slice(None))
    return tuple(out)


def load_planes(plate: str | Path | Plate, fields: Sequence[str], channels: Sequence[int | str],
                gt: str) -> list[Plane]:
    """Read the planes (every timepoint and z) of some fields, with their ground truth.

    Raises
    ------
    KeyError
        Unknown field or channel, or a field without the ``gt`` label image.
    ValueError
        If ``fields`` or ``channels`` is empty.
    """
    if not fields:
        raise ValueError("no fields given to load")
    if not channels:
        raise ValueError("no channels given to load")
    pl = _open(plate)
    out = []
    for path in fields:
        info = pl.field(path)
        idx = [info.channel_index(c) for c in channels]
        labels = open_labels(info, gt)
        arr = info.open_array(0)
        lab_arr = labels.open_array(0, mode="r")
        for t in range(info.sizes["t"]):
            for z in range(info.sizes["z"]):
                image = np.stack([np.asarray(arr[_index(info, t, z, c)]) for c in idx])
                lab = np.asarray(lab_arr[_index(info, t, z, None)])
                out.append(Plane(path, t, z, image, lab))
    return out


def load_samples(plate: str | Path | Plate, fields: Sequence[str], channels: Sequence[int | str],
                 gt: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grayscale training samples: every channel of every plane is its own sample.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(y, x)`` raw image and ``(y, x)`` labels, by field, timepoint, z, channel.
    """
    return [(plane.image[k], plane.labels) for plane in load_planes(plate, fields, channels, gt)
            for k in range(plane.image.shape[0])]


def score_planes(planes: Sequence[Plane],
                 segment: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """Segment each plane's ``(c, y, x)`` image and pool the scores against its labels.

    Returns
    -------
    dict
        :data:`SCORE_KEYS` of :func:`structfree_dask.metrics.combine` (IoU 0.5).
    """
    rows = [evaluate(p.labels.astype(np.int64), segment(p.image).astype(np.int64))
            for p in planes]
    pooled = combine(rows)
    return {k: pooled[k] for k in SCORE_KEYS}


def _forget_model(path: str | Path) -> None:
    """Drop a weights file from the backbone's per-process model cache (frees memory)."""
    from ..backbones import cellpose as backbone

    cache = getattr(backbone, "_CACHE", None)
    if isinstance(cache, dict):
        with backbone._LOCK:
            for key in [k for k in cache if k[0] == str(path)]:
                del cache[key]


# ----------------------------------------------------------------------------- training


def run_training_job(
    job: TrainingJob,
    base: ModelSpec | str | Path | None,
    zoo_dir: str | Path,
    max_epochs: int,
    patience: int = 50,
    *,
    lr: float = 5e-4,
    weight_decay: float = 1e-4,
    batch_size: int = 8,
    diameter: float | None = None,
    tile_size: int = 224,
    overwrite: bool = False,
    progress: Progress | None = None,
    device: Any = None,
) -> ModelCard:
    """Fine-tune one job's model, score it, and add it to the zoo.

    Loads every channel of every plane of the training and validation fields as its
    own grayscale sample, runs :func:`~structfree_dask.zoo.train.finetune`, scores the
    best weights on the validation and test fields with
    :func:`structfree_dask.engine.segment_array` (FA over the job's channels, at the
    training diameter) and writes ``weights.pth`` + ``card.json``.

    Parameters
    ----------
    job : TrainingJob
    base : ModelSpec, str, Path or None
        Pretrained weights (None: the shipped generalist).
    zoo_dir : str or Path
    max_epochs, patience : int
    lr, weight_decay : float
    batch_size : int
    diameter : float, optional
        Cell diameter in px (default: measured on the training labels).
    tile_size : int
    overwrite : bool
        Retrain a model already in the zoo. When False, an existing model's card is
        returned without training (so a re-submitted build resumes).
    progress : callable, optional
        See :func:`~structfree_dask.zoo.train.finetune`.
    device : torch.device, optional

    Returns
    -------
    ModelCard
        The stored card.
    """
    zoo = Zoo(zoo_dir)
    if job.model_id in zoo and not overwrite:
        logger.info("model %s is already in %s; not retrained", job.model_id, zoo.path)
        return zoo.get(job.model_id)
    spec = base if isinstance(base, ModelSpec) else resolve_model(base)
    train = load_samples(job.plate, job.split.train, job.channels, job.gt)
    val = load_samples(job.plate, job.split.val, job.channels, job.gt)
    work = zoo.path / "models" / f".train-{job.model_id}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        weights = work / "weights.pth"
        result = finetune(spec, train, val, max_epochs=max_epochs, patience=patience, lr=lr,
                          weight_decay=weight_decay, batch_size=batch_size,
                          seed=job.split.seed, out_path=weights, diameter=diameter,
                          progress=progress, tile_size=tile_size, device=device)
        d = float(diameter or result.diameter)
        from ..engine import segment_array

        def segment(image: np.ndarray) -> np.ndarray:
            return segment_array(image, model=str(weights), diameter=d)

        try:
            val_scores = score_planes(load_planes(job.plate, job.split.val, job.channels,
                                                  job.gt), segment)
            test_scores = score_planes(load_planes(job.plate, job.split.test, job.channels,
                                                   job.gt), segment)
        finally:
            _forget_model(weights)
        card = ModelCard(
            model_id=job.model_id, cell_line=job.cell_line, organelle=job.organelle,
            strategy=job.strategy, channels=job.channels, channel_names=job.channel_names,
            base_model=spec.name, base_sha256=spec.sha256, diameter=d,
            diam_mean=result.diam_mean, split=job.split, epochs_run=result.epochs_run,
            best_epoch=result.best_epoch, val_scores=val_scores, test_scores=test_scores,
            training={
                "max_epochs": max_epochs, "patience": patience, "lr": lr,
                "weight_decay": weight_decay, "batch_size": batch_size,
                "tile_size": tile_size, "best_val_loss": result.best_val_loss,
                "initial_val_loss": result.initial_val_loss,
                "stopped_early": result.stopped_early, "n_train": result.n_train,
                "n_val": result.n_val, "train_losses": list(result.train_losses),
                "val_losses": list(result.val_losses), "seconds": result.seconds,
                "seconds_per_sample": result.seconds_per_sample,
            },
            source={"plate": job.plate, "gt": job.gt},
            software=software_versions(),
        )
        stored = zoo.add(card, weights, overwrite=overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("model %s: %d epochs (best %d), val F1 %.3f, test F1 %.3f", stored.model_id,
                stored.epochs_run, stored.best_epoch, stored.val_f1, stored.test_f1)
    return stored


# ----------------------------------------------------------------------------- selection


def _zoo_models(zoo: Zoo, cell_line: str, organelle: str, strategies: Sequence[str],
                fold: int | None, seed: int | None) -> dict[tuple[int, ...], ModelCard]:
    cards = [c for c in zoo.cards(cell_line, organelle)
             if c.strategy in strategies and c.fold == fold and (seed is None or c.seed == seed)]
    if not cards:
        raise KeyError(f"the zoo {zoo.path} has no {'/'.join(strategies)} model for "
                       f"{cell_line}/{organelle} with fold={fold}"
                       + ("" if seed is None else f", seed={seed}")
                       + f"; it has {len(zoo.ids())} model(s) in all")
    by_channels: dict[tuple[int, ...], ModelCard] = {}
    for card in cards:
        other = by_channels.get(card.channels)
        if other is not None:
            raise ValueError(f"models {other.model_id!r} and {card.model_id!r} both train on "
                             f"channels {list(card.channels)}; pass seed= (or fold=) to "
                             "choose one")
        by_channels[card.channels] = card
    return by_channels


def score_candidates(
    zoo_dir: str | Path | Zoo,
    plate: str | Path | Plate,
    gt: str,
    cell_line: str,
    organelle: str,
    *,
    strategies: Sequence[str] = STRATEGIES,
    fold: int | None = None,
    seed: int | None = None,
    fields: Sequence[str] | None = None,
    diameter: float | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Score every (training subset, evaluation subset) pair of a zoo's models.

    The flows of each (model, channel) are computed once per plane and averaged for
    every evaluation subset (see :mod:`structfree_dask.zoo.evaluate`).

    Parameters
    ----------
    zoo_dir : str, Path or Zoo
    plate : str, Path or Plate
        Plate with the validation fields (channels are matched by name).
    gt : str
        Ground-truth label image.
    cell_line, organelle : str
    strategies : sequence of str
    fold, seed : int, optional
        Which models (cards) to use: those of this fold (None: single split) and seed.
    fields : sequence of str, optional
        Fields to score on (default: the models' validation fields, which must agree).
    diameter : float, optional
        Cell diameter in px (default: each model's training diameter).
    batch_size : int

    Returns
    -------
    list of dict
        One row per candidate: ``strategy``, ``train_channels``, ``eval_channels``
        (the cards' channel indices), ``eval_channel_names``, ``model_ids``
        (``{channel: id}`` for CW, one id for MC), ``val_f1`` and the other
        ``val_*`` scores.

    Raises
    ------
    KeyError
        No matching model in the zoo.
    ValueError
        Models disagree on their validation fields; a model's channels are not in the
        plate.
    """
    zoo = zoo_dir if isinstance(zoo_dir, Zoo) else Zoo(zoo_dir)
    models = _zoo_models(zoo, cell_line, organelle, strategies, fold, seed)
    pl = _open(plate)
    if fields is None:
        vals = {card.split.val for card in models.values()}
        if len(vals) != 1:
            raise ValueError(f"the models of {cell_line}/{organelle} were validated on "
                             f"different fields {sorted(vals)}; pass fields=")
        fields = list(vals.pop())
    first = pl.field(fields[0])
    plate_index: dict[int, int] = {}
    names: dict[int, str] = {}
    for card in models.values():
        for c, p, n in zip(card.channels, check_compatible(card, first.channel_names),
                           card.channel_names, strict=True):
            if plate_index.setdefault(c, p) != p:
                raise ValueError(f"channel {c} of the models maps to two plate channels")
            names[c] = n
    used = sorted(plate_index)
    planes = load_planes(pl, fields, [plate_index[c] for c in used], gt)
    pairs = candidate_pairs(max(used) + 1, strategies, subsets=list(models))
    scores: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(pairs))}
    specs = {card.model_id: resolve_model(zoo.weights_path(card.model_id))
             for card in models.values()}
    logger.info("scoring %d candidate pair(s) of %d model(s) on %d plane(s)", len(pairs),
                len(models), len(planes))
    try:
        for plane in planes:
            flows: dict[tuple[str, int], np.ndarray] = {}
            for card in models.values():
                d = diameter or card.diameter
                for c in card.channels:
                    flows[(card.model_id, c)] = channel_flows(
                        plane.image[used.index(c)], specs[card.model_id], diameter=d,
                        batch_size=batch_size)
            for i, pair in enumerate(pairs):
                if pair.strategy == "cw":
                    cards = [models[(c,)] for c in pair.eval_channels]
                    keys = [(models[(c,)].model_id, c) for c in pair.eval_channels]
                else:
                    cards = [models[pair.train_channels]]
                    keys = [(cards[0].model_id, c) for c in pair.eval_channels]
                d = diameter or float(np.mean([card.diameter for card in cards]))
                labels = flows_to_labels(average_flows(np.stack([flows[k] for k in keys])),
                                         rescale=cards[0].diam_mean / d)
                scores[i].append(evaluate(plane.labels.astype(np.int64),
                                          labels.astype(np.int64)))
    finally:
        for card in models.values():
            _forget_model(specs[card.model_id].path)
    rows = []
    for i, pair in enumerate(pairs):
        pooled = combine(scores[i])
        if pair.strategy == "cw":
            ids: Any = {c: models[(c,)].model_id for c in pair.eval_channels}
        else:
            ids = models[pair.train_channels].model_id
        row = {**pair.to_dict(), "eval_channel_names": [names[c] for c in pair.eval_channels],
               "model_ids": ids}
        row.update({f"val_{k}": pooled[k] for k in SCORE_KEYS})
        rows.append(row)
    return rows


def select_models(
    zoo_dir: str | Path | Zoo,
    plate: str | Path | Plate,
    gt: str,
    cell_line: str,
    organelle: str,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score all candidate pairs, keep the best and write the zoo's selection.

    Parameters
    ----------
    zoo_dir, plate, gt, cell_line, organelle
        As :func:`score_candidates`.
    **kwargs
        Passed on to :func:`score_candidates`.

    Returns
    -------
    dict
        The stored selection (see :meth:`Zoo.set_selection`), with the score table
        under ``candidates``.
    """
    zoo = zoo_dir if isinstance(zoo_dir, Zoo) else Zoo(zoo_dir)
    table = score_candidates(zoo, plate, gt, cell_line, organelle, **kwargs)
    best = select_best(table)
    if not math.isfinite(best["val_f1"]):  # pragma: no cover - select_best skips these
        raise ValueError("no candidate has a finite validation F1")
    selection = {
        "model_ids": best["model_ids"], "eval_channels": best["eval_channels"],
        "eval_channel_names": best["eval_channel_names"], "strategy": best["strategy"],
        "train_channels": best["train_channels"], "val_f1": best["val_f1"],
        "fold": kwargs.get("fold"), "candidates": table,
    }
    return zoo.set_selection(cell_line, organelle, selection)


# ----------------------------------------------------------------------------- vanilla baseline

#: Strategy name of the Vanilla baseline rows (the base model, not fine-tuned).
VANILLA = "vanilla"


def _plate_subsets(info: ImageInfo,
                   subsets: Iterable[Sequence[int | str] | int | str]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for s in subsets:
        items = [s] if isinstance(s, int | str) else list(s)
        idx = tuple(sorted({info.channel_index(c) for c in items}))
        if not idx:
            raise ValueError("evaluation subsets must not be empty")
        if idx not in out:
            out.append(idx)
    if not out:
        raise ValueError("no evaluation subset given")
    return out


def score_vanilla(
    plate: str | Path | Plate,
    gt: str,
    fields: Sequence[str],
    subsets: Iterable[Sequence[int | str] | int | str],
    base: ModelSpec | str | Path | None = None,
    *,
    diameter: float | None = None,
    batch_size: int = 8,
    prefix: str = "val_",
) -> list[dict[str, Any]]:
    """Score the base model, not fine-tuned, with Flow Averaging on evaluation subsets.

    This is the Vanilla baseline: the same model runs on each channel of a subset
    alone and the flows are averaged, as for the zoo's candidates. The flows of each
    (plane, channel) are computed once.

    Parameters
    ----------
    plate : str, Path or Plate
    gt : str
        Ground-truth label image.
    fields : sequence of str
        Fields to score on.
    subsets : iterable of channel subsets
        Evaluation subsets (plate channel indices or names).
    base : ModelSpec, str, Path or None
        The generalist (None: the shipped one).
    diameter : float, optional
        Cell diameter in px (default: the model's ``diam_mean``, no rescaling).
    batch_size : int
    prefix : str
        Prefix of the score columns (``"val_"``, ``"test_"``).

    Returns
    -------
    list of dict
        One row per subset: ``strategy`` (:data:`VANILLA`), ``train_channels`` (empty),
        ``eval_channels`` (plate indices), ``eval_channel_names``, ``model_ids`` (the
        base model's name) and the ``prefix``-ed scores of :data:`SCORE_KEYS`.

    Raises
    ------
    ValueError
        No field or no subset given.
    KeyError
        Unknown field or channel, or a field without ``gt``.
    """
    if not fields:
        raise ValueError("no fields given to score the Vanilla baseline on")
    pl = _open(plate)
    first = pl.field(fields[0])
    subs = _plate_subsets(first, subsets)
    used = sorted({c for s in subs for c in s})
    spec = base if isinstance(base, ModelSpec) else resolve_model(base)
    d = float(diameter or spec.diam_mean)
    per_subset: dict[tuple[int, ...], list[dict[str, Any]]] = {s: [] for s in subs}
    planes = load_planes(pl, fields, used, gt)
    logger.info("Vanilla baseline %s: %d subset(s) on %d plane(s)", spec.name, len(subs),
                len(planes))
    for plane in planes:
        flows = {c: channel_flows(plane.image[k], spec, diameter=d, batch_size=batch_size)
                 for k, c in enumerate(used)}
        for s in subs:
            labels = flows_to_labels(average_flows(np.stack([flows[c] for c in s])),
                                     rescale=spec.diam_mean / d)
            per_subset[s].append(evaluate(plane.labels.astype(np.int64),
                                          labels.astype(np.int64)))
    rows = []
    for s in subs:
        pooled = combine(per_subset[s])
        rows.append({"strategy": VANILLA, "train_channels": [], "eval_channels": list(s),
                     "eval_channel_names": [first.channel_names[c] for c in s],
                     "model_ids": spec.name,
                     **{f"{prefix}{k}": pooled[k] for k in SCORE_KEYS}})
    return rows


# ----------------------------------------------------------------------------- split scores


def _row_key(row: Mapping[str, Any]) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    return (str(row["strategy"]), tuple(int(c) for c in row["train_channels"]),
            tuple(int(c) for c in row["eval_channels"]))


def _shared_split(cards: Iterable[ModelCard]) -> Split:
    cards = list(cards)
    parts = {(c.split.val, c.split.test) for c in cards}
    if len(parts) != 1:
        raise ValueError(f"the models {[c.model_id for c in cards]} were validated or tested on "
                         f"different fields {sorted(parts)}; score them with score_candidates "
                         "and fields=")
    return cards[0].split


def _add_test_scores(rows: list[dict[str, Any]], test_rows: list[dict[str, Any]]) -> None:
    """Copy the ``val_*`` scores of ``test_rows`` into ``rows`` as ``test_*``."""
    by_key = {_row_key(r): r for r in test_rows}
    for row in rows:
        test = by_key[_row_key(row)]
        row.update({"test_" + k[4:]: v for k, v in test.items() if k.startswith("val_")})


def score_split(
    zoo_dir: str | Path | Zoo,
    plate: str | Path | Plate,
    gt: str,
    cell_line: str,
    organelle: str,
    *,
    base: ModelSpec | str | Path | None = None,
    fold: int | None = None,
    seed: int | None = None,
    strategies: Sequence[str] = STRATEGIES,
    diameter: float | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Score every candidate pair and the Vanilla baseline on one split's val and test fields.

    Runs :func:`score_candidates` on the validation and on the test fields of the
    models of one fold (they must share their split), and :func:`score_vanilla` with
    ``base`` on every evaluation subset of the candidates, at the models' mean
    training diameter (so only the weights differ).

    Parameters
    ----------
    zoo_dir, plate, gt, cell_line, organelle
        As :func:`score_candidates`.
    base : ModelSpec, str, Path or None
        The base model the zoo's models were fine-tuned from (None: shipped generalist).
    fold, seed : int, optional
        Which models: those of this fold (None: a single split) and seed.
    strategies : sequence of str
    diameter : float, optional
        Cell diameter in px (default: each model's training diameter).
    batch_size : int

    Returns
    -------
    list of dict
        Candidate rows (as :func:`score_candidates`) then Vanilla rows, each with
        ``val_*`` and ``test_*`` scores, ``train_channel_names``, ``fold`` and ``seed``.
        Channel indices are the cards'.

    Raises
    ------
    KeyError
        No matching model in the zoo.
    ValueError
        The models do not share their validation and test fields.
    """
    zoo = zoo_dir if isinstance(zoo_dir, Zoo) else Zoo(zoo_dir)
    models = _zoo_models(zoo, cell_line, organelle, strategies, fold, seed)
    split = _shared_split(models.values())
    kw: dict[str, Any] = dict(strategies=strategies, fold=fold, seed=seed, diameter=diameter,
                              batch_size=batch_size)
    rows = score_candidates(zoo, plate, gt, cell_line, organelle, fields=split.val, **kw)
    _add_test_scores(rows, score_candidates(zoo, plate, gt, cell_line, organelle,
                                            fields=split.test, **kw))
    names = {c: n for card in models.values()
             for c, n in zip(card.channels, card.channel_names, strict=True)}
    by_name = {n: c for c, n in names.items()}
    subsets = [[names[c] for c in key[2]] for key in dict.fromkeys(_row_key(r) for r in rows)]
    subsets = [list(s) for s in dict.fromkeys(tuple(s) for s in subsets)]
    d = diameter or float(np.mean([card.diameter for card in models.values()]))
    vanilla = score_vanilla(plate, gt, split.val, subsets, base, diameter=d,
                            batch_size=batch_size)
    vanilla_test = score_vanilla(plate, gt, split.test, subsets, base, diameter=d,
                                 batch_size=batch_size, prefix="test_")
    for row, test in zip(vanilla, vanilla_test, strict=True):
        row.update({k: v for k, v in test.items() if k.startswith("test_")})
        row["eval_channels"] = [by_name[n] for n in row["eval_channel_names"]]
    out = rows + vanilla
    for row in out:
        row["train_channel_names"] = [names[int(c)] for c in row["train_channels"]]
        row["fold"] = fold
        row["seed"] = split.seed
    return out


# ------------------------------------------------------------------------- selection from scores

#: How :func:`select_from_scores` chooses (stored with the selection as ``rule``).
SELECTION_RULE = (
    "highest validation F1 at IoU 0.5 (with k-fold CV: the mean over the folds) among the "
    "CW and MC candidates; ties go to fewer evaluation channels, then fewer training "
    "channels, then the lexicographically smallest pair; the selection names the models of "
    "the first fold; Vanilla rows are the baseline and are never selected"
)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of the finite values (std NaN with fewer than two)."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if not finite.size:
        return math.nan, math.nan
    std = float(finite.std()) if finite.size > 1 else math.nan
    return float(finite.mean()), std


def _fold_order(row: Mapping[str, Any]) -> int:
    fold = row.get("fold")
    return -1 if fold is None else int(fold)


def summarize_scores(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pool score rows over folds: one row per (strategy, training, evaluation) subset.

    Parameters
    ----------
    rows : iterable of mapping
        Rows of :func:`score_split` (any number of folds; Vanilla rows included).

    Returns
    -------
    list of dict
        ``strategy``, ``train_channels``, ``eval_channels``, their names, ``val_f1`` and
        ``test_f1`` (means over the folds), ``val_f1_std`` and ``test_f1_std``
        (population std over the folds; NaN with one fold), ``n_folds``, ``folds``, and
        the ``model_ids`` and ``fold`` of the first fold. Sorted Vanilla, CW, MC, then
        by evaluation subset size and channels.

    Examples
    --------
    >>> rows = [{"strategy": "cw", "train_channels": [0], "eval_channels": [0],
    ...          "val_f1": v, "test_f1": t, "fold": f, "model_ids": {0: f"m{f}"}}
    ...         for f, v, t in [(0, 0.6, 0.5), (1, 0.8, 0.7)]]
    >>> [s] = summarize_scores(rows)
    >>> round(s["val_f1"], 3), round(s["test_f1_std"], 3), s["n_folds"], s["model_ids"]
    (0.7, 0.1, 2, {0: 'm0'})
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_row_key(row), []).append(row)
    order = {VANILLA: 0, **{s: i + 1 for i, s in enumerate(STRATEGIES)}}
    out = []
    for key, members in groups.items():
        members = sorted(members, key=_fold_order)
        first = members[0]
        val, val_std = _mean_std([_num(r.get("val_f1")) for r in members])
        test, test_std = _mean_std([_num(r.get("test_f1")) for r in members])
        out.append({
            "strategy": key[0], "train_channels": list(key[1]), "eval_channels": list(key[2]),
            "train_channel_names": list(first.get("train_channel_names", [])),
            "eval_channel_names": list(first.get("eval_channel_names", [])),
            "val_f1": val, "val_f1_std": val_std, "test_f1": test, "test_f1_std": test_std,
            "n_folds": len(members), "folds": [r.get("fold") for r in members],
            "model_ids": first.get("model_ids"), "fold": first.get("fold"),
        })
    out.sort(key=lambda r: (order.get(r["strategy"], 9), len(r["eval_channels"]),
                            r["eval_channels"], len(r["train_channels"]), r["train_channels"]))
    return out


def select_from_scores(
    zoo_dir: str | Path | Zoo,
    cell_line: str,
    organelle: str,
    rows: Sequence[Mapping[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """Choose the best candidate pair by :data:`SELECTION_RULE` and write the selection.

    Parameters
    ----------
    zoo_dir : str, Path or Zoo
    cell_line, organelle : str
    rows : sequence of mapping
        Score rows of :func:`score_split` for one or more folds, Vanilla rows included.
    **extra
        More entries to store with the selection (e.g. ``gt``, ``plate``, ``baseline``).

    Returns
    -------
    dict
        The stored selection: ``model_ids``, ``strategy``, ``train_channels``,
        ``eval_channels`` and their names, ``val_f1`` and ``test_f1`` (means over
        folds), ``fold``, ``n_folds``, ``rule``, the ``extra`` entries and all rows
        under ``candidates``.

    Raises
    ------
    ValueError
        If no CW or MC row has a finite validation F1.
    """
    zoo = zoo_dir if isinstance(zoo_dir, Zoo) else Zoo(zoo_dir)
    summary = [r for r in summarize_scores(rows) if r["strategy"] in STRATEGIES]
    if not summary:
        raise ValueError(f"no CW or MC candidate among the {len(rows)} score row(s) of "
                         f"{cell_line}/{organelle}; nothing to select")
    best = select_best(summary)
    selection = {
        **extra,
        "model_ids": best["model_ids"], "strategy": best["strategy"],
        "train_channels": best["train_channels"],
        "train_channel_names": best["train_channel_names"],
        "eval_channels": best["eval_channels"], "eval_channel_names": best["eval_channel_names"],
        "val_f1": best["val_f1"], "val_f1_std": best["val_f1_std"], "test_f1": best["test_f1"],
        "test_f1_std": best["test_f1_std"], "fold": best["fold"], "n_folds": best["n_folds"],
        "rule": SELECTION_RULE, "created": utc_now(), "candidates": [dict(r) for r in rows],
    }
    return zoo.set_selection(cell_line, organelle, selection)


# ----------------------------------------------------------------------------- Dask build


@dataclass(frozen=True)
class TrainSettings:
    """Training settings shared by every model of a build.

    Attributes
    ----------
    max_epochs, patience : int
        At most ``max_epochs`` epochs; stop after ``patience`` without a lower
        validation loss.
    lr, weight_decay : float
    batch_size : int
        Tiles per optimisation step (and per inference batch when scoring).
    tile_size : int
        Training tile side (multiple of 16, >= 32).
    diameter : float, optional
        Cell diameter in px (default: measured on the training labels).
    overwrite : bool
        Retrain models already in the zoo (default: keep and reuse them).

    Examples
    --------
    >>> TrainSettings(max_epochs=2).job_kwargs()["tile_size"]
    224
    >>> TrainSettings(max_epochs=0)
    Traceback (most recent call last):
    ...
    ValueError: max_epochs must be an integer >= 1; got 0
    """

    max_epochs: int = 500
    patience: int = 50
    lr: float = 5e-4
    weight_decay: float = 1e-4
    batch_size: int = 8
    tile_size: int = 224
    diameter: float | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("max_epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0; got {self.lr}, "
                             f"{self.weight_decay}")
        _check_tile(self.tile_size)
        if self.diameter is not None and not self.diameter > 0:
            raise ValueError(f"diameter must be > 0 px; got {self.diameter}")

    def job_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`run_training_job` (besides epochs and patience)."""
        return {"lr": self.lr, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size, "tile_size": self.tile_size,
                "diameter": self.diameter, "overwrite": self.overwrite}


def model_log_path(zoo_dir: str | Path, model_id: str) -> Path:
    """Return the training log of a model: ``<zoo>/logs/<model_id>.log``."""
    from ..io import check_name

    return Path(zoo_dir) / "logs" / f"{check_name(model_id, 'model_id')}.log"


class _ModelLog:
    """Append time-stamped lines to a model's log file (line-buffered)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def line(self, text: str) -> None:
        self._fh.write(f"{utc_now()} {text}\n")

    def epoch(self, epoch: int, max_epochs: int, train_loss: float, val_loss: float) -> None:
        self.line(f"epoch {epoch}/{max_epochs} train_loss={train_loss:.5f} "
                  f"val_loss={val_loss:.5f}")

    def close(self) -> None:
        self._fh.close()


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "this process"


def _configure_threads() -> None:
    """Give torch the worker's thread budget (as the engine does for its tasks)."""
    from ..engine import _torch_device

    _torch_device()


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
        log.line(f"training {job.model_id} on {_worker_name()}: {job.strategy} on channels "
                 f"{list(job.channel_names)}, {len(split.train)}/{len(split.val)}/"
                 f"{len(split.test)} train/val/test fields, base {base or 'generalist'}, "
                 f"max {settings.max_epochs} epochs, patience {settings.patience}")
        started = time.perf_counter()
        card = run_training_job(job, base, zoo_dir, settings.max_epochs, settings.patience,
                                progress=log.epoch, **settings.job_kwargs())
        log.line(f"done in {time.perf_counter() - started:.1f} s: {card.epochs_run} epoch(s), "
                 f"best epoch {card.best_epoch}, val F1 {card.val_f1:.3f}, "
                 f"test F1 {card.test_f1:.3f}")
        return card
    except BaseException:
        log.line("failed:\n" + traceback.format_exc())
        raise
    finally:
        log.close()


def _score_task(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    _configure_threads()
    return score_split(*args, **kwargs)


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
    from ..cluster import gpu_resources

    return gpu_resources(client)


@dataclass
class BuildResult:
    """Outcome of :func:`build_zoo`.

    Attributes
    ----------
    zoo : Path
    cards : list of ModelCard
        Cards of the jobs' models (trained now or already in the zoo).
    reused : list of str
        Ids of the models that were already in the zoo.
    failed : dict
        ``{model_id: error}`` of the jobs that failed.
    scores : list of dict
        Score rows of every split (:func:`score_split`), Vanilla rows included.
    selection : dict or None
        The stored selection (None when no model was trained).
    seconds : float
    """

    zoo: Path
    cards: list[ModelCard] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    scores: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every job succeeded and a selection was written."""
        return not self.failed and self.selection is not None


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


def _outcome(future: Any) -> tuple[Any, str | None]:
    if future.status == "finished":
        return future.result(), None
    try:
        err: BaseException | None = future.exception()
    except BaseException as exc:  # cancelled futures raise here
        err = exc
    return None, f"{type(err).__name__}: {err}"


def _run_all(client: Any, submitted: dict[Any, str],
             step: Callable[[], None]) -> dict[str, tuple[Any, str | None]]:
    """Wait for futures (``{future: name}``), calling ``step`` after each; cancel on exit."""
    from distributed import as_completed

    out: dict[str, tuple[Any, str | None]] = {}
    try:
        for future in as_completed(list(submitted)):
            out[submitted[future]] = _outcome(future)
            step()
    finally:
        pending = [f for f in submitted if not f.done()]
        if pending:
            client.cancel(pending)
    return out


def build_zoo(
    jobs: Sequence[TrainingJob],
    zoo_dir: str | Path,
    *,
    client: Any,
    base: ModelSpec | str | Path | None = None,
    settings: TrainSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BuildResult:
    """Train a zoo on a Dask cluster, score every pair, and write the selection.

    Each job is one task (:func:`train_model`, ``pure=False``; ``resources={"GPU": 1}``
    when the workers advertise GPUs, see :func:`task_resources`), so the models train in
    parallel; each keeps a log in ``<zoo>/logs/``. Then one task per split (fold) runs
    :func:`score_split` on the models that trained, and :func:`select_from_scores`
    writes the selection. The plate and the zoo must be reachable by the workers at the
    same paths.

    Parameters
    ----------
    jobs : sequence of TrainingJob
        From :func:`training_jobs` (one plate, label image, cell line, organelle and seed).
    zoo_dir : str or Path
    client : distributed.Client
    base : ModelSpec, str, Path or None
        Base model to fine-tune and to score as the Vanilla baseline (None: the shipped
        generalist). Given as a name or path, it is resolved here (to check it and to
        record it with the selection) and again on each worker.
    settings : TrainSettings, optional
    progress : callable, optional
        Called as ``progress(done, total)`` with the finished tasks (training + scoring).

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
    RuntimeError
        If scoring a split failed.
    """
    first = _common(list(jobs))
    settings = settings or TrainSettings()
    spec = base if isinstance(base, ModelSpec) else resolve_model(base)  # fail early
    zoo = Zoo(zoo_dir)
    started = time.perf_counter()
    existing = set() if settings.overwrite else set(zoo.ids())
    folds = sorted({j.split.fold for j in jobs}, key=lambda f: -1 if f is None else f)
    result = BuildResult(zoo=zoo.path, reused=[j.model_id for j in jobs if j.model_id in existing])
    resources = task_resources(client)
    total, done = len(jobs) + len(folds), [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    if progress is not None:
        progress(0, total)
    logger.info("zoo build: %d training task(s) on %s%s", len(jobs), client,
                " (GPU resource)" if resources else "")
    submitted = {client.submit(train_model, job, base, str(zoo.path), settings, pure=False,
                               resources=resources,
                               key=f"zoo-train-{job.model_id}-{uuid.uuid4().hex[:8]}"):
                 job.model_id for job in jobs}
    for model_id, (card, err) in _run_all(client, submitted, step).items():
        if err is None:
            result.cards.append(card)
        else:
            result.failed[model_id] = err
            logger.error("training %s failed: %s (log: %s)", model_id, err,
                         model_log_path(zoo.path, model_id))
    result.cards.sort(key=lambda c: [j.model_id for j in jobs].index(c.model_id))
    if not result.cards:
        result.seconds = time.perf_counter() - started
        return result
    trained_folds = [f for f in folds if any(c.fold == f for c in result.cards)]
    strategies = [s for s in STRATEGIES if any(c.strategy == s for c in result.cards)]
    scoring = {client.submit(_score_task, str(zoo.path), first.plate, first.gt,
                             first.cell_line, first.organelle, base=base, fold=f,
                             seed=first.split.seed, strategies=strategies,
                             diameter=settings.diameter, batch_size=settings.batch_size,
                             pure=False, resources=resources,
                             key=f"zoo-score-f{f}-{uuid.uuid4().hex[:8]}"): str(f)
               for f in trained_folds}
    for _ in range(len(folds) - len(trained_folds)):
        step()
    for fold, (rows, err) in sorted(_run_all(client, scoring, step).items()):
        if err is not None:
            raise RuntimeError(f"scoring the candidates of {first.cell_line}/{first.organelle} "
                               f"(fold {fold}) failed: {err}")
        result.scores.extend(rows)
    result.scores.sort(key=_fold_order)
    result.selection = select_from_scores(
        zoo, first.cell_line, first.organelle, result.scores, gt=first.gt, plate=first.plate,
        seed=first.split.seed,
        baseline={"model": spec.name, "path": spec.path, "sha256": spec.sha256})
    result.seconds = time.perf_counter() - started
    return result
