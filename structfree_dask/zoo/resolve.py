"""From a zoo's selection to what segmenting needs: channels, weights, diameter, thresholds.

:func:`resolve` (by cell line and organelle) and :func:`resolve_selection` (a
:class:`~structfree_dask.zoo.selection.Selection` in hand) are the one way from a
selection to models, used by ``segment --zoo``, job files, the report and the
thresholds' choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .card import ModelCard, check_compatible
from .registry import Zoo
from .selection import Selection

__all__ = ["ResolvedSelection", "resolve", "resolve_selection"]


@dataclass(frozen=True)
class ResolvedSelection:
    """What segmenting with a selection needs (see :func:`resolve`).

    Attributes
    ----------
    selection : Selection
    channels : tuple of str
        The evaluation channels' names, in plate order.
    plate_channels : tuple of int
        Their plate indices (the cards' indices when no plate was given).
    model_ids : tuple of str
        The model of each channel (MC: the same one).
    weights : tuple of str
        The weights file of each channel's model in the zoo.
    diameter : float
        Cell diameter in px: the selection's, or the mean of the models' training
        diameters over the evaluation channels.
    flow_threshold : float
        The selection's flow-error threshold.
    cellprob_threshold : float
        The selection's cell probability threshold (logits).
    """

    selection: Selection
    channels: tuple[str, ...]
    plate_channels: tuple[int, ...]
    model_ids: tuple[str, ...]
    weights: tuple[str, ...]
    diameter: float
    flow_threshold: float
    cellprob_threshold: float

    @property
    def label(self) -> str:
        """Short name for tables and figures, e.g. ``selected CW mito+ER``."""
        return f"selected {self.selection.strategy.upper()} {'+'.join(self.channels)}"


def resolve_selection(zoo: str | Path | Zoo, selection: Selection,
                      plate_channel_names: Iterable[str] | None) -> ResolvedSelection:
    """Return a selection's channels, weights, diameter and thresholds on a plate.

    See :func:`resolve`; without ``plate_channel_names`` the cards' channel indices
    are taken as the plate's and nothing is checked.
    """
    z = zoo if isinstance(zoo, Zoo) else Zoo(zoo)
    names = None if plate_channel_names is None else [str(n) for n in plate_channel_names]
    cards: dict[str, ModelCard] = {}
    found: dict[str, tuple[int, ...]] = {}
    entries = []
    for c, model_id in selection.models:
        if model_id not in cards:
            cards[model_id] = card = z.get(model_id)
            z.check_weights(model_id)
            found[model_id] = card.channels if names is None else check_compatible(card, names)
        card = cards[model_id]
        if c not in card.channels:
            raise ValueError(f"model {model_id!r} was trained on channel(s) "
                             f"{list(card.channels)}; the selection of {selection.cell_line}/"
                             f"{selection.organelle} runs it on channel {c}")
        k = card.channels.index(c)
        index = found[model_id][k]
        entries.append((index, card.channel_names[k], model_id, card.diameter))
    entries.sort(key=lambda e: e[0])
    if selection.diameter is not None:
        diameter = float(selection.diameter)
    else:  # the mean over the evaluation channels: the diameter the pair was scored at
        diameter = float(sum(e[3] for e in entries) / len(entries))
    if not (math.isfinite(diameter) and diameter > 0):
        raise ValueError(f"the selection of {selection.cell_line}/{selection.organelle} "
                         f"resolves to diameter {diameter}; its models' cards are broken")
    return ResolvedSelection(
        selection=selection,
        channels=tuple(e[1] for e in entries),
        plate_channels=tuple(e[0] for e in entries),
        model_ids=tuple(e[2] for e in entries),
        weights=tuple(str(z.weights_path(e[2])) for e in entries),
        diameter=diameter,
        flow_threshold=float(selection.flow_threshold),
        cellprob_threshold=float(selection.cellprob_threshold),
    )


def resolve(zoo: str | Path | Zoo, cell_line: str, organelle: str,
            plate_channel_names: Sequence[str] | None) -> ResolvedSelection:
    """Turn a zoo's selection into the models, channels and settings to segment with.

    Parameters
    ----------
    zoo : str, Path or Zoo
    cell_line, organelle : str
    plate_channel_names : sequence of str or None
        The plate's channel names, in plate order. Every model must find the channels it
        was trained on there, by name
        (:func:`~structfree_dask.zoo.card.check_compatible`). None: no plate, the
        cards' channel indices are used.

    Returns
    -------
    ResolvedSelection
        The evaluation channels' names in plate order with each one's model weights,
        the diameter (the selection's, else the mean of the models' training diameters
        over the evaluation channels: the diameter the pair was scored at) and the
        flow and cell probability thresholds.

    Raises
    ------
    KeyError
        No selection for the cell line and organelle, or a selected model is missing.
    ValueError
        The plate lacks a channel a model was trained on (the message names it).
    """
    z = zoo if isinstance(zoo, Zoo) else Zoo(zoo)
    return resolve_selection(z, z.selection(cell_line, organelle), plate_channel_names)
