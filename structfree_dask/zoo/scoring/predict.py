"""Predictions of a zoo's models on annotated planes, for scoring and reports.

The model sets a comparison runs (:class:`FAModels`: the selected pair, the per-channel
models of a fusion comparison, the Vanilla generalist), the flows of a plane computed once
per (model, channel, diameter) (:class:`PlaneFlows`), Flow Averaging and per-channel labels
from those flows, and the per-plane scores of FA and the mask fusions
(:func:`method_scores`) that :func:`~structfree_dask.zoo.report.fusion_table` and
:func:`~structfree_dask.zoo.scoring.threshold.threshold_scores` pool.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...backbones import ModelSpec, resolve_model
from ...config import (
    DEFAULT_CELLPROB_THRESHOLD,
    DEFAULT_FLOW_THRESHOLD,
    FUSION_BASELINES,
    SegmentationConfig,
)
from ...evaluation.metrics import evaluate
from ...io import Plate, is_url, open_plate
from ...pipeline.fusion import fuse_masks
from ...pipeline.segment import channel_flows, flows_to_labels
from ..card import ModelCard
from ..registry import Zoo
from ..resolve import resolve_selection
from ..selection import Selection, as_selection
from .data import Plane, load_planes

__all__ = [
    "METHODS",
    "FAModels",
    "PlaneFlows",
    "channel_labels",
    "fa_labels",
    "fusion_models",
    "load_eval_planes",
    "method_scores",
    "reference_card",
    "selected_models",
    "subset_models",
    "threshold_pair",
    "vanilla_models",
]

logger = logging.getLogger(__name__)

#: FA and the mask fusions, in the order of the comparison tables.
METHODS: tuple[str, ...] = ("fa", "simple", "staple", "voting", "majority")


@dataclass(frozen=True)
class FAModels:
    """Models for Flow Averaging: one model per channel (the same one for MC/Vanilla).

    Attributes
    ----------
    label : str
        Name for tables and figure titles.
    channels : tuple of str
        Channel names, matched to a plate by name.
    models : tuple of ModelSpec
        One per channel.
    diameter : float
        Cell diameter in px to segment at.
    """

    label: str
    channels: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    diameter: float

    def __post_init__(self) -> None:
        if not self.channels or len(self.channels) != len(self.models):
            raise ValueError(f"{self.label}: need one model per channel; got "
                             f"{len(self.models)} model(s) for channels {list(self.channels)}")
        if len({m.diam_mean for m in self.models}) > 1:
            raise ValueError(f"{self.label}: models to average must share diam_mean")


def _spec(zoo: Zoo, card: ModelCard) -> ModelSpec:
    return resolve_model(zoo.weights_path(card.model_id))


def reference_card(zoo: Zoo, selection: Selection | Mapping[str, Any]) -> ModelCard:
    """Return the card of the selection's (first) model: its split, fold and ground truth."""
    return zoo.get(as_selection(selection).model_ids[0])


def selected_models(zoo: Zoo, selection: Selection | Mapping[str, Any],
                    plate_channel_names: Sequence[str] | None = None) -> FAModels:
    """Return the selected pair: its model(s) on its evaluation channels.

    The channels, models and diameter are the selection's resolved ones
    (:func:`~structfree_dask.zoo.resolve.resolve`), as ``segment --zoo``
    uses them; ``plate_channel_names`` (optional) checks them against a plate.
    """
    chosen = resolve_selection(zoo, as_selection(selection), plate_channel_names)
    specs: dict[str, ModelSpec] = {}
    for path in chosen.weights:
        if path not in specs:
            specs[path] = resolve_model(path)
    return FAModels(chosen.label, chosen.channels, tuple(specs[p] for p in chosen.weights),
                    chosen.diameter)


def fusion_models(zoo: Zoo, selection: Selection | Mapping[str, Any]) -> FAModels:
    """Per-channel models for the fusion comparison.

    The CW models (of the selection's cell line, organelle, fold and seed) on every
    channel that has one, when there are at least two or the selection is CW; otherwise
    the selected MC model on every channel of its training subset.
    """
    sel = as_selection(selection)
    ref = reference_card(zoo, sel)
    cw = sorted((c for c in zoo.cards(ref.cell_line, ref.organelle, strategy="cw")
                 if c.fold == ref.fold and c.seed == ref.seed), key=lambda c: c.channels)
    if len(cw) >= 2 or (cw and sel.strategy == "cw"):
        return FAModels("CW models", tuple(c.channel_names[0] for c in cw),
                        tuple(_spec(zoo, c) for c in cw),
                        float(np.mean([c.diameter for c in cw])))
    mc = zoo.get(sel.model_ids[0])
    return FAModels(f"MC model {mc.model_id}", mc.channel_names,
                    (_spec(zoo, mc),) * len(mc.channel_names), mc.diameter)


def vanilla_models(selection: Selection | Mapping[str, Any], channels: Sequence[str],
                   diameter: float, fallback: str | None = None) -> FAModels:
    """Return the Vanilla baseline (the base model of the build) on some channels.

    Parameters
    ----------
    selection : Selection or mapping
        A selection; its ``baseline`` names the base model (path, name, checksum).
    channels : sequence of str
    diameter : float
    fallback : str, optional
        Base model to use when the selection records none (e.g. a card's
        ``base_model``); None: the shipped generalist.

    Raises
    ------
    FileNotFoundError
        If the base model recorded with the selection cannot be found.
    """
    baseline = as_selection(selection).baseline or {}
    model = baseline.get("path")
    if not model or not (is_url(model) or Path(model).is_file()):
        model = baseline.get("model", fallback)
    spec = resolve_model(model)
    if baseline.get("sha256") and spec.sha256 != baseline["sha256"]:
        logger.warning("the base model %s has checksum %s; the zoo was built from %s",
                       spec.name, spec.sha256, baseline["sha256"])
    return FAModels("Vanilla", tuple(channels), (spec,) * len(channels), diameter)


# ----------------------------------------------------------------------------- predictions


class PlaneFlows:
    """Flows of one plane, computed once per (model, channel, diameter).

    Parameters
    ----------
    plane : Plane
        The annotated plane; ``plane.image`` is ``(c, y, x)``.
    channels : sequence of str
        Names of ``plane.image``'s channels, in order.
    batch_size : int, optional
        Tiles per network batch (cellpose's default when None).
    """

    def __init__(self, plane: Plane, channels: Sequence[str], batch_size: int | None) -> None:
        self.plane = plane
        self.index = {name: k for k, name in enumerate(channels)}
        self.batch_size = batch_size
        self._cache: dict[tuple[str, str, float], np.ndarray] = {}

    def get(self, spec: ModelSpec, channel: str, diameter: float) -> np.ndarray:
        """Return the ``(3, y, x)`` maps (dY, dX, cell probability) of a model on a channel."""
        key = (spec.path, channel, diameter)
        if key not in self._cache:
            self._cache[key] = channel_flows(self.plane.image[self.index[channel]], spec,
                                             diameter=diameter, batch_size=self.batch_size)[0]
        return self._cache[key]


def _rescale(models: FAModels) -> float:
    return models.models[0].diam_mean / models.diameter


def _config(flow_threshold: float, cellprob_threshold: float) -> SegmentationConfig:
    return SegmentationConfig(flow_threshold=flow_threshold,
                              cellprob_threshold=cellprob_threshold)


def fa_labels(models: FAModels, flows: PlaneFlows,
              flow_threshold: float = DEFAULT_FLOW_THRESHOLD,
              cellprob_threshold: float = DEFAULT_CELLPROB_THRESHOLD) -> np.ndarray:
    """Return Flow Averaging's labels: the models' maps averaged, integrated once."""
    stack = np.stack([flows.get(m, c, models.diameter)
                      for m, c in zip(models.models, models.channels, strict=True)])
    return flows_to_labels(stack, _config(flow_threshold, cellprob_threshold),
                           rescale=_rescale(models))


def channel_labels(models: FAModels, flows: PlaneFlows,
                   flow_threshold: float = DEFAULT_FLOW_THRESHOLD,
                   cellprob_threshold: float = DEFAULT_CELLPROB_THRESHOLD) -> list[np.ndarray]:
    """Return each channel's own labels (its model's maps integrated alone), in order."""
    config = _config(flow_threshold, cellprob_threshold)
    return [flows_to_labels(flows.get(m, c, models.diameter), config, rescale=_rescale(models))
            for m, c in zip(models.models, models.channels, strict=True)]


def threshold_pair(threshold: float | tuple[float, float]) -> tuple[float, float]:
    """Return ``(flow, cell probability)`` thresholds of a flow threshold or of a pair.

    Examples
    --------
    >>> threshold_pair(0.6), threshold_pair((0.8, -1))
    ((0.6, 0.0), (0.8, -1.0))
    """
    if isinstance(threshold, tuple):
        flow, cellprob = threshold
        return float(flow), float(cellprob)
    return float(threshold), DEFAULT_CELLPROB_THRESHOLD


def subset_models(models: FAModels, subset: Sequence[int]) -> FAModels:
    """Return the models of some channels (indices into ``models.channels``)."""
    return FAModels(models.label, tuple(models.channels[k] for k in subset),
                    tuple(models.models[k] for k in subset), models.diameter)


def load_eval_planes(zoo: Zoo, selection: Selection | Mapping[str, Any],
                     plate: str | Path | Plate,
                     channels: Sequence[str], gt: str | None,
                     fields: Sequence[str] | None) -> list[Plane]:
    """Load annotated planes of some fields, with the channels given by name.

    Parameters
    ----------
    zoo : Zoo
    selection : Selection or mapping
        Its reference card gives the default fields and ground truth.
    plate : str, Path or Plate
    channels : sequence of str
        Channel names, looked up in the plate's metadata.
    gt : str, optional
        Ground-truth label image; default: the one recorded with the selection or card.
    fields : sequence of str, optional
        Default: the test fields of the reference card's split.

    Raises
    ------
    KeyError
        No ground truth given or recorded, or a channel the plate lacks.
    """
    pl = plate if isinstance(plate, Plate) else open_plate(str(plate))
    sel = as_selection(selection)
    ref = reference_card(zoo, sel)
    fields = list(fields or ref.split.test)
    gt = gt or sel.gt or ref.source.get("gt")
    if not gt:
        raise KeyError("no ground-truth label name recorded with the selection; pass gt=")
    info = pl.field(fields[0])
    return load_planes(pl, fields, [info.channel_index(c) for c in channels], gt)


def method_scores(models: FAModels, planes: Sequence[Plane],
                  subsets: Sequence[tuple[int, ...]], batch_size: int | None,
                  thresholds: Sequence[float | tuple[float, float]] = (DEFAULT_FLOW_THRESHOLD,),
                  methods: Sequence[str] = METHODS,
                  ) -> dict[tuple[str, tuple[int, ...], Any], list[dict[str, Any]]]:
    """Per-plane scores of FA and the mask fusions per channel subset and threshold.

    Each plane's flows are computed once and reused for every subset and threshold;
    the channels are integrated alone only when a mask fusion is among ``methods``.

    Parameters
    ----------
    models : FAModels
        One model per channel.
    planes : sequence of Plane
        Annotated planes with ``models.channels`` as their channels.
    subsets : sequence of tuple of int
        Channel subsets (indices into ``models.channels``).
    batch_size : int, optional
    thresholds : sequence of float or of (float, float)
        Cellpose flow-error thresholds, or (flow-error, cell probability) pairs (a flow
        threshold alone: cell probability 0).
    methods : sequence of str
        Among :data:`METHODS`.

    Returns
    -------
    dict
        ``{(method, subset, threshold): [scores of each plane]}``, scores as
        :func:`structfree_dask.evaluation.metrics.evaluate` gives them.

    Raises
    ------
    ValueError
        A method not in :data:`METHODS`.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; expected some of {list(METHODS)}")
    rows: dict[tuple[str, tuple[int, ...], Any], list[dict[str, Any]]] = {
        (m, c, t): [] for m in methods for c in subsets for t in thresholds}
    fusions = [m for m in FUSION_BASELINES if m in methods]
    for plane in planes:
        flows = PlaneFlows(plane, models.channels, batch_size)
        truth = plane.labels.astype(np.int64)
        for threshold in thresholds:
            pair = threshold_pair(threshold)
            per_channel = channel_labels(models, flows, *pair) if fusions else []
            for subset in subsets:
                preds = {}
                if "fa" in methods:
                    preds["fa"] = fa_labels(subset_models(models, subset), flows, *pair)
                preds.update({m: fuse_masks([per_channel[k] for k in subset], method=m)
                              for m in fusions})
                for method, labels in preds.items():
                    rows[(method, subset, threshold)].append(
                        evaluate(truth, labels.astype(np.int64)))
    return rows
