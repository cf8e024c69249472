"""In-process Flow Averaging with one model per channel, for scoring zoo candidates.

:func:`structfree_dask.engine.segment_array` runs *one* model on every channel. A
channel-wise (CW) candidate runs a *different* model on each channel and averages
the flows. Averaging is linear, and so is the resampling back to the original
pixels, so the flows of each (model, channel) can be computed once
(:func:`channel_flows`) and averaged for every evaluation subset
(:func:`average_flows` + :func:`flows_to_labels`). With a single model this gives the
same labels as ``segment_array`` (untiled, up to float rounding and renumbering).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...backbones import ModelSpec, load_model, pick_device, predict_tiles, resolve_model
from ...pipeline.flows import (
    assemble_flows,
    average_flows,
    region_contribution,
    resample_to_original,
)
from ...pipeline.integrate import DEFAULT_FLOW_THRESHOLD, integrate_flows
from ...pipeline.normalize import normalize, percentile_bounds
from ...pipeline.tiling import FieldGeometry, halo_depth

__all__ = ["channel_flows", "flows_to_labels", "fa_segment", "average_flows", "geometry_for"]

logger = logging.getLogger(__name__)

ModelLike = ModelSpec | str | Path | None


def _spec(model: ModelLike) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else resolve_model(model)


def geometry_for(shape: tuple[int, int], diam_mean: float,
                 diameter: float | None = None) -> FieldGeometry:
    """Return the untiled geometry of ``segment_array``: the whole field is one region.

    Examples
    --------
    >>> g = geometry_for((128, 96), 30.0, 15.0)
    >>> g.regions(), g.rescale
    ([(0, 0)], 2.0)
    """
    d = diameter or diam_mean
    return FieldGeometry((int(shape[0]), int(shape[1])), tile_size=max(shape),
                         halo=halo_depth(d), rescale=diam_mean / d)


def channel_flows(
    image: np.ndarray,
    model: ModelLike,
    *,
    diameter: float | None = None,
    batch_size: int | None = None,
    device: Any = None,
) -> np.ndarray:
    """Flows of one channel with one model, at the original pixels.

    Parameters
    ----------
    image : numpy.ndarray
        ``(y, x)`` raw channel; normalized here by its own 1/99 percentiles.
    model : ModelSpec, str, Path or None
    diameter : float, optional
        Cell diameter in px (default: the model's ``diam_mean``, no rescaling).
    batch_size : int, optional
    device : torch.device, optional

    Returns
    -------
    numpy.ndarray
        ``(3, y, x)`` float32: dY, dX, cell probability logit.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"image must be one (y, x) channel; got shape {img.shape}")
    spec = _spec(model)
    geometry = geometry_for(img.shape, spec.diam_mean, diameter)
    norm = normalize(img, *percentile_bounds(img))[None]
    net = load_model(spec, device or pick_device())

    def predict(tiles: np.ndarray) -> np.ndarray:
        return predict_tiles(net, tiles, batch_size=batch_size)

    region = (0, 0)
    contribution = region_contribution(norm, (0, 0), geometry, region, predict)
    window = geometry.window(region)
    rbox = geometry.rescaled_window(window)
    flows = assemble_flows([contribution], rbox)
    return np.ascontiguousarray(resample_to_original(flows, rbox, window, geometry))


def flows_to_labels(
    flows: np.ndarray,
    *,
    rescale: float = 1.0,
    cellprob_threshold: float = 0.0,
    flow_threshold: float = DEFAULT_FLOW_THRESHOLD,
    min_size: int = 15,
) -> np.ndarray:
    """Integrate averaged flows into labels, with ``segment_array``'s settings.

    Parameters
    ----------
    flows : numpy.ndarray
        ``(3, y, x)`` dY, dX, cell probability.
    rescale : float
        ``diam_mean / diameter`` (flow following runs ``200 / rescale`` steps).
    cellprob_threshold, flow_threshold : float
    min_size : int

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` uint32 labels.
    """
    flows = np.asarray(flows)
    if flows.ndim != 3 or flows.shape[0] != 3:
        raise ValueError(f"flows must be (3, y, x); got shape {flows.shape}")
    area = flows.shape[1] * flows.shape[2]
    return integrate_flows(flows[:2], flows[2], niter=int(round(200 / rescale)),
                           cellprob_threshold=cellprob_threshold,
                           flow_threshold=flow_threshold, min_size=min_size,
                           max_size_px=0.4 * area)


def fa_segment(
    image: np.ndarray,
    models: ModelLike | Sequence[ModelLike],
    *,
    diameter: float | None = None,
    batch_size: int | None = None,
    cellprob_threshold: float = 0.0,
    flow_threshold: float = DEFAULT_FLOW_THRESHOLD,
    min_size: int = 15,
) -> np.ndarray:
    """Segment a ``(c, y, x)`` image with Flow Averaging, one model per channel.

    Parameters
    ----------
    image : numpy.ndarray
        ``(c, y, x)`` raw channels (``(y, x)`` for one).
    models : model or sequence of models
        One model for every channel, or one per channel (CW models). All must share
        ``diam_mean``.
    diameter : float, optional
        Cell diameter in px (default: the models' ``diam_mean``).
    batch_size, cellprob_threshold, flow_threshold, min_size
        As :func:`structfree_dask.engine.segment_array`.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` uint32 labels.

    Raises
    ------
    ValueError
        If the number of models does not match the channels, or their ``diam_mean``
        differ.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3:
        raise ValueError(f"image must be (c, y, x) or (y, x); got shape {np.shape(image)}")
    if isinstance(models, ModelSpec | str | Path) or models is None:
        specs = [_spec(models)] * img.shape[0]  # type: ignore[arg-type]
    else:
        specs = [_spec(m) for m in models]
    if len(specs) != img.shape[0]:
        raise ValueError(f"got {len(specs)} model(s) for {img.shape[0]} channel(s); "
                         "give one model, or one per channel")
    diams = sorted({s.diam_mean for s in specs})
    if len(diams) > 1:
        raise ValueError(f"models to average must share diam_mean; got {diams}")
    flows = average_flows(np.stack([
        channel_flows(img[k], specs[k], diameter=diameter, batch_size=batch_size)
        for k in range(img.shape[0])
    ]))
    rescale = diams[0] / (diameter or diams[0])
    return flows_to_labels(flows, rescale=rescale, cellprob_threshold=cellprob_threshold,
                           flow_threshold=flow_threshold, min_size=min_size)
