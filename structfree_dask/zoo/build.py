"""Plan, run and score the fine-tuning jobs of a zoo, one plain function per step.

* :func:`training_jobs` lists the models to train for a cell line and organelle
  (a :class:`TrainingJob` per strategy, channel subset and fold); it writes nothing.
* :func:`run_training_job` trains one of them and adds it to a :class:`Zoo` — one
  job is meant to be one Dask task.
* :func:`score_candidates` scores every (training subset, evaluation subset) pair of
  the models in a zoo on the validation fields, :func:`select_models` keeps the best
  and writes the zoo's selection file.

Data: every channel of every training field is its own grayscale sample, and so is
every timepoint (and z plane).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones import ModelSpec, resolve_model
from ..io import ImageInfo, Plate, open_labels, open_plate
from ..metrics import combine, evaluate
from .card import ORGANELLES, STRATEGIES, ModelCard, check_compatible, software_versions
from .evaluate import average_flows, channel_flows, flows_to_labels
from .registry import Zoo
from .select import candidate_pairs, nonempty_subsets, select_best
from .splits import DEFAULT_FRACTIONS, Split, kfold, split_fields
from .train import Progress, finetune

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
