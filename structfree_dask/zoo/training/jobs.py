"""Plan the fine-tuning jobs of a zoo: one :class:`TrainingJob` per model to train.

:func:`training_jobs` lists the models to train for a cell line and organelle (a
:class:`TrainingJob` per strategy, channel subset and fold) from the annotated fields
of a plate; it reads the plate's metadata and writes nothing. The jobs are run by
:mod:`structfree_dask.zoo.training.build`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...config import ORGANELLES, STRATEGIES
from ...io import ImageInfo, Plate, open_plate
from ..scoring.select import nonempty_subsets
from .splits import DEFAULT_FRACTIONS, Split, kfold, split_fields

__all__ = ["TrainingJob", "training_jobs"]

logger = logging.getLogger(__name__)


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
        ``k >= 2``: one job per fold of :func:`~structfree_dask.zoo.training.splits.kfold`;
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
    pl = open_plate(plate)
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
