"""Segmenting with a zoo: the selected models and channels of a cell line and organelle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import check_store, is_url, open_plate
from .registry import Zoo
from .resolve import resolve

__all__ = ["config_from_zoo"]


def config_from_zoo(zoo: str | Path | Zoo, cell_line: str, organelle: str, plate: str,
                    *, channels: tuple[int | str, ...] | None = None, **options: Any) -> Any:
    """Build the segmentation configuration that uses a zoo's selection on a plate.

    The selection names the evaluation channels and their model(s): one channel-wise
    model per channel (CW) or one multi-channel model for all (MC). Channels are
    matched to the plate **by name** and listed in plate order; the diameter defaults to
    the models' training diameter (averaged over the evaluation channels, as the pair
    was scored), and the flow and cell probability thresholds to the ones chosen with the
    selection (Cellpose's 0.4 and 0 for selections that chose none). See
    :func:`~structfree_dask.zoo.resolve.resolve`.

    Parameters
    ----------
    zoo : str, Path or Zoo
        A zoo folder, or the URL of a zoo in an object store (the configuration then
        names the weights by their URLs; each worker loads a local copy).
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

    if not isinstance(zoo, Zoo) and is_url(zoo):
        check_store(zoo, must_exist=False)  # unreachable, refused, no bucket: one line
    z = zoo if isinstance(zoo, Zoo) else Zoo(zoo)
    info = next(iter(open_plate(plate).fields()))
    chosen = resolve(z, cell_line, organelle, info.channel_names)
    names = list(chosen.channels)
    if channels:
        given = [info.channel_names[info.channel_index(ch)] for ch in channels]
        if sorted(given) != sorted(names):
            raise ValueError(f"the zoo's selection for {cell_line}/{organelle} uses channels "
                             f"{names}; got {given} (leave the channels out with a zoo)")
    options.setdefault("diameter", None)
    if options["diameter"] is None:
        options["diameter"] = chosen.diameter
    for key in ("flow_threshold", "cellprob_threshold"):
        if options.get(key) is None:
            options[key] = getattr(chosen, key)
    return SegmentationConfig(organelle=organelle, channels=chosen.channels,
                              channel_models=chosen.weights, **options)
