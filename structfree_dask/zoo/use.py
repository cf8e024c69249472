"""Segmenting with a zoo: the selected models and channels of a cell line and organelle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import open_plate
from .card import check_compatible
from .registry import Zoo
from .scoring.threshold import DEFAULT_FLOW_THRESHOLD

__all__ = ["config_from_zoo"]


def config_from_zoo(zoo: str | Path | Zoo, cell_line: str, organelle: str, plate: str,
                    *, channels: tuple[int | str, ...] | None = None, **options: Any) -> Any:
    """Build the segmentation configuration that uses a zoo's selection on a plate.

    The selection names the evaluation channels and their model(s): one channel-wise
    model per channel (CW) or one multi-channel model for all (MC). Channels are
    matched to the plate **by name**; the diameter defaults to the models' training
    diameter, and the flow threshold to the one chosen with the selection (Cellpose's
    0.4 for selections that chose none).

    Parameters
    ----------
    zoo : str, Path or Zoo
    cell_line, organelle : str
    plate : str
        The plate to segment (its channel names are checked).
    channels : tuple, optional
        Must be the selection's channels when given (they come from the zoo).
    **options
        Other :class:`~structfree_dask.config.SegmentationConfig` fields (``name``,
        ``tile_size``, ``fusion``, ...).

    Returns
    -------
    SegmentationConfig

    Raises
    ------
    KeyError
        No selection for the cell line and organelle (the message lists those there are).
    ValueError
        The plate lacks a channel the models were trained on; ``channels`` differ from
        the selection's.
    """
    from ..config import SegmentationConfig

    z = zoo if isinstance(zoo, Zoo) else Zoo(zoo)
    sel = z.selection(cell_line, organelle)
    info = next(iter(open_plate(plate).fields()))
    eval_channels = [int(c) for c in sel["eval_channels"]]
    if sel["strategy"] == "cw":
        ids = {int(c): str(m) for c, m in sel["model_ids"].items()}
        cards = {c: z.get(ids[c]) for c in eval_channels}
    else:
        card = z.get(str(sel["model_ids"]))
        cards = {c: card for c in eval_channels}
    names: list[str] = []
    for c in eval_channels:
        card = cards[c]
        check_compatible(card, info.channel_names)
        names.append(card.channel_names[card.channels.index(c)])
    if channels:
        given = [info.channel_names[info.channel_index(ch)] for ch in channels]
        if sorted(given) != sorted(names):
            raise ValueError(f"the zoo's selection for {cell_line}/{organelle} uses channels "
                             f"{names}; got {given} (leave the channels out with a zoo)")
    weights = tuple(str(z.weights_path(cards[c].model_id)) for c in eval_channels)
    diameters = sorted({cards[c].diameter for c in eval_channels})
    options.setdefault("diameter", None)
    if options["diameter"] is None:
        options["diameter"] = float(sum(diameters) / len(diameters))
    if options.get("flow_threshold") is None:
        options["flow_threshold"] = float(sel.get("flow_threshold", DEFAULT_FLOW_THRESHOLD))
    return SegmentationConfig(organelle=organelle, channels=tuple(names),
                              channel_models=weights, **options)
