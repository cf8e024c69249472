"""Score a zoo's candidate pairs and the Vanilla baseline, and select the best pair.

* :func:`score_candidates` scores every (training subset, evaluation subset) pair of
  the models in a zoo on the validation fields, :func:`select_models` keeps the best
  and writes the zoo's selection file.
* :func:`score_vanilla` scores the base model, not fine-tuned, with Flow Averaging:
  the Vanilla baseline (:data:`VANILLA`).
* :func:`score_split` scores the candidates and the baseline on the validation and
  test fields of one split (fold).
* :func:`summarize_scores` pools score rows over folds, and
  :func:`select_from_scores` writes the selection by :data:`SELECTION_RULE`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..._provenance import utc_now
from ...backbones import ModelSpec, resolve_model
from ...config import STRATEGIES
from ...evaluation.metrics import evaluate
from ...io import ImageInfo, Plate, open_plate
from ...pipeline.segment import channel_flows, flows_to_labels
from ..card import ModelCard, check_compatible
from ..registry import Zoo
from ..selection import Selection
from ..training.splits import Split
from .data import (
    VANILLA,
    forget_model,
    load_planes,
    pair_key,
    pool_scores,
    summarize_scores,
)
from .select import candidate_pairs, select_best

__all__ = [
    "SELECTION_RULE",
    "score_candidates",
    "select_models",
    "score_vanilla",
    "score_split",
    "select_from_scores",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- selection


def _zoo_models(zoo: Zoo, cell_line: str, organelle: str, strategies: Sequence[str],
                fold: int | None, seed: int | None) -> dict[tuple[int, ...], ModelCard]:
    cards = [c for c in zoo.cards(cell_line, organelle)
             if c.strategy in strategies and c.fold == fold and (seed is None or c.seed == seed)]
    if not cards:
        raise KeyError(f"the zoo {zoo.where} has no {'/'.join(strategies)} model for "
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
    every evaluation subset (see :mod:`structfree_dask.zoo.scoring.predict`).

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
    pl = open_plate(plate)
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
                        batch_size=batch_size)[0]
            for i, pair in enumerate(pairs):
                if pair.strategy == "cw":
                    cards = [models[(c,)] for c in pair.eval_channels]
                    keys = [(models[(c,)].model_id, c) for c in pair.eval_channels]
                else:
                    cards = [models[pair.train_channels]]
                    keys = [(cards[0].model_id, c) for c in pair.eval_channels]
                d = diameter or float(np.mean([card.diameter for card in cards]))
                labels = flows_to_labels(np.stack([flows[k] for k in keys]),
                                         rescale=cards[0].diam_mean / d)
                scores[i].append(evaluate(plane.labels.astype(np.int64),
                                          labels.astype(np.int64)))
    finally:
        for card in models.values():
            forget_model(specs[card.model_id].path)
    rows = []
    for i, pair in enumerate(pairs):
        pooled = pool_scores(scores[i])
        if pair.strategy == "cw":
            ids: Any = {c: models[(c,)].model_id for c in pair.eval_channels}
        else:
            ids = models[pair.train_channels].model_id
        row = {**pair.to_dict(), "eval_channel_names": [names[c] for c in pair.eval_channels],
               "model_ids": ids}
        row.update({f"val_{k}": v for k, v in pooled.items()})
        rows.append(row)
    return rows


def select_models(
    zoo_dir: str | Path | Zoo,
    plate: str | Path | Plate,
    gt: str,
    cell_line: str,
    organelle: str,
    **kwargs: Any,
) -> Selection:
    """Score all candidate pairs, keep the best and write the zoo's selection.

    Parameters
    ----------
    zoo_dir, plate, gt, cell_line, organelle
        As :func:`score_candidates`.
    **kwargs
        Passed on to :func:`score_candidates`.

    Returns
    -------
    Selection
        The stored selection (see :meth:`Zoo.set_selection`), with the score table
        under ``candidates``.
    """
    zoo = zoo_dir if isinstance(zoo_dir, Zoo) else Zoo(zoo_dir)
    table = score_candidates(zoo, plate, gt, cell_line, organelle, **kwargs)
    best = select_best(table)
    if not math.isfinite(best["val_f1"]):  # pragma: no cover - select_best skips these
        raise ValueError("no candidate has a finite validation F1")
    selection = Selection.from_dict({
        "cell_line": cell_line, "organelle": organelle,
        "model_ids": best["model_ids"], "eval_channels": best["eval_channels"],
        "eval_channel_names": best["eval_channel_names"], "strategy": best["strategy"],
        "train_channels": best["train_channels"], "val_f1": best["val_f1"],
        "fold": kwargs.get("fold"), "candidates": table,
    })
    return zoo.set_selection(cell_line, organelle, selection)


# ----------------------------------------------------------------------------- vanilla baseline

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
        base model's name) and the ``prefix``-ed scores of
        :data:`~structfree_dask.zoo.scoring.data.SCORE_KEYS`.

    Raises
    ------
    ValueError
        No field or no subset given.
    KeyError
        Unknown field or channel, or a field without ``gt``.
    """
    if not fields:
        raise ValueError("no fields given to score the Vanilla baseline on")
    pl = open_plate(plate)
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
        flows = {c: channel_flows(plane.image[k], spec, diameter=d, batch_size=batch_size)[0]
                 for k, c in enumerate(used)}
        for s in subs:
            labels = flows_to_labels(np.stack([flows[c] for c in s]),
                                     rescale=spec.diam_mean / d)
            per_subset[s].append(evaluate(plane.labels.astype(np.int64),
                                          labels.astype(np.int64)))
    rows = []
    for s in subs:
        pooled = pool_scores(per_subset[s])
        rows.append({"strategy": VANILLA, "train_channels": [], "eval_channels": list(s),
                     "eval_channel_names": [first.channel_names[c] for c in s],
                     "model_ids": spec.name,
                     **{f"{prefix}{k}": v for k, v in pooled.items()}})
    return rows


# ----------------------------------------------------------------------------- split scores


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
    by_key = {pair_key(r): r for r in test_rows}
    for row in rows:
        test = by_key[pair_key(row)]
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
    subsets = [[names[c] for c in key[2]] for key in dict.fromkeys(pair_key(r) for r in rows)]
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


def select_from_scores(
    zoo_dir: str | Path | Zoo,
    cell_line: str,
    organelle: str,
    rows: Sequence[Mapping[str, Any]],
    **extra: Any,
) -> Selection:
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
    Selection
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
    selection = Selection.from_dict({
        **extra, "cell_line": cell_line, "organelle": organelle,
        "model_ids": best["model_ids"], "strategy": best["strategy"],
        "train_channels": best["train_channels"],
        "train_channel_names": best["train_channel_names"],
        "eval_channels": best["eval_channels"], "eval_channel_names": best["eval_channel_names"],
        "val_f1": best["val_f1"], "val_f1_std": best["val_f1_std"], "test_f1": best["test_f1"],
        "test_f1_std": best["test_f1_std"], "fold": best["fold"], "n_folds": best["n_folds"],
        "rule": SELECTION_RULE, "created": utc_now(), "candidates": [dict(r) for r in rows],
    })
    return zoo.set_selection(cell_line, organelle, selection)
