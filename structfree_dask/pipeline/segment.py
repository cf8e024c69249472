"""Flow Averaging in this process, without Dask: one field in memory.

The engine runs the same kernels region by region on a cluster; here the whole
field is one region. This is the package's one in-process Flow Averaging, used as
the reference the engine is tested against, by ``segment_array`` for images in
memory, and by the zoo to score its candidates:

* :func:`channel_flows` runs each channel alone through its model and returns the
  flows of every channel at the original pixels, ``(c, 3, y, x)``. Averaging is
  linear, and so is resampling, so the zoo computes the flows of each
  (model, channel) once and averages them for every evaluation subset;
* :func:`flows_to_labels` averages them (``fusion="fa"``) or fuses per-channel masks
  (the baselines), with :func:`~structfree_dask.pipeline.integrate.dynamics_for`;
* :func:`segment_array` is the two in a row for a :class:`SegmentationConfig`.

The model rules shared with the engine are here too: :func:`resolve_models` (one
model per channel, one scale), :func:`field_geometry` and :func:`check_rescale`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import limits
from ..backbones import (
    PRECISIONS,
    ModelSpec,
    load_model,
    pick_device,
    predict_tiles,
    resolve_model,
    resolve_precision,
)
from ..config import SegmentationConfig
from .flows import assemble_flows, region_contribution, resample_to_original
from .integrate import dynamics_for
from .normalize import normalize, percentile_bounds
from .tiling import FieldGeometry, halo_depth

__all__ = [
    "segment_array",
    "channel_flows",
    "flows_to_labels",
    "predictor",
    "resolve_models",
    "field_geometry",
    "check_rescale",
]

ModelLike = ModelSpec | str | Path | None


def resolve_models(config: SegmentationConfig, *,
                   auto: str | None = None) -> tuple[ModelSpec, ...]:
    """Resolve the model of each channel of a configuration.

    The precision is resolved once for the run (every worker runs at it, and the run
    records it): ``config.precision`` where named; where it is ``auto``, ``auto`` if
    given (``fp32``, ``bf16`` or ``fp16``: what the workers of a cluster resolved; or
    ``"auto"``: not resolved yet, for a plan checked before the workers are known),
    else :func:`.backbones.resolve_precision` on this machine's
    :func:`.backbones.pick_device`.

    Raises
    ------
    FileNotFoundError
        Unknown model.
    ValueError
        Per-channel models trained at different diameters (``diam_mean``); an ``auto``
        that is not one of :data:`.backbones.PRECISIONS`.
    """
    cache: dict[str | None, ModelSpec] = {}
    specs = []
    if auto is not None and auto not in PRECISIONS:
        raise ValueError(f"auto: expected one of {', '.join(PRECISIONS)}; got {auto!r}")
    if config.precision != "auto":  # named: no device to ask (nor torch to import)
        precision = config.precision
    elif auto is not None:
        precision = auto
    else:
        precision = resolve_precision("auto", pick_device())
    for m in config.model_names():
        if m not in cache:
            cache[m] = dataclasses.replace(resolve_model(m), precision=precision)
        specs.append(cache[m])
    return _one_scale(specs)


def _one_scale(specs: Sequence[ModelSpec]) -> tuple[ModelSpec, ...]:
    diams = sorted({sp.diam_mean for sp in specs})
    if len(diams) > 1:
        raise ValueError(f"the channels' models have different diam_mean {diams}; Flow "
                         "Averaging needs one scale")
    return tuple(specs)


def field_geometry(shape: tuple[int, int], config: SegmentationConfig, spec: ModelSpec, *,
                   tiled: bool = True) -> FieldGeometry:
    """Return the field's regions, halo and rescale for a configuration and its model.

    ``tiled=False``: the whole field is one region (the in-process reference).

    Examples
    --------
    >>> spec = ModelSpec(name="x", path="x.pth", diam_mean=30.0, sha256="")
    >>> g = field_geometry((128, 96), SegmentationConfig(diameter=15.0), spec, tiled=False)
    >>> g.regions(), g.rescale, g.halo
    ([(0, 0)], 2.0, 38)
    """
    diameter = config.diameter or spec.diam_mean
    halo = config.halo if config.halo is not None else halo_depth(diameter)
    tile = config.tile_size if tiled else max(shape)
    return FieldGeometry((int(shape[0]), int(shape[1])), tile_size=tile, halo=halo,
                         rescale=spec.diam_mean / diameter)


def check_rescale(config: SegmentationConfig, spec: ModelSpec) -> None:
    """Refuse a diameter that would rescale fields beyond ``limits.RESCALE``."""
    if config.diameter is None:
        return
    lo, hi = limits.RESCALE
    factor = spec.diam_mean / config.diameter
    if not lo <= factor <= hi:
        raise ValueError(
            f"diameter {config.diameter:g} px: the model was trained on cells of "
            f"{spec.diam_mean:g} px, so fields would be rescaled {factor:g}x; expected a "
            f"diameter between {spec.diam_mean / hi:g} and {spec.diam_mean / lo:g} px")


def predictor(specs: Sequence[ModelSpec], batch_size: int | None = None,
              device: Any = None) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(tiles)`` for tiles interleaved by channel (tile ``i * c + k``: channel k).

    Channel ``k`` goes through ``specs[k]``; one network when all specs are the same.
    """
    device = device or pick_device()
    if len(set(specs)) == 1:
        net = load_model(specs[0], device)
        return lambda tiles: predict_tiles(net, tiles, batch_size=batch_size,
                                           precision=specs[0].precision)
    nets = [load_model(sp, device) for sp in specs]

    def predict(tiles: np.ndarray) -> np.ndarray:
        c = len(nets)
        out = np.empty((len(tiles), 3, *tiles.shape[1:]), dtype=np.float32)
        for k, net in enumerate(nets):
            out[k::c] = predict_tiles(net, tiles[k::c], batch_size=batch_size,
                                      precision=specs[k].precision)
        return out

    return predict


def _specs(models: ModelLike | Sequence[ModelLike], n: int) -> tuple[ModelSpec, ...]:
    if models is None or isinstance(models, ModelSpec | str | Path):
        one = models if isinstance(models, ModelSpec) else resolve_model(models)
        return (one,) * n
    specs = [m if isinstance(m, ModelSpec) else resolve_model(m) for m in models]
    if len(specs) != n:
        raise ValueError(f"got {len(specs)} model(s) for {n} channel(s); give one model, "
                         "or one per channel")
    return _one_scale(specs)


def _as_channels(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3:
        raise ValueError(f"image must be (c, y, x) or (y, x); got shape {np.shape(image)}")
    return img


def channel_flows(
    image: np.ndarray,
    models: ModelLike | Sequence[ModelLike] = None,
    *,
    diameter: float | None = None,
    halo: int | None = None,
    batch_size: int | None = None,
    device: Any = None,
) -> np.ndarray:
    """Flows of each channel alone through its model, at the original pixels.

    Parameters
    ----------
    image : numpy.ndarray
        ``(c, y, x)`` raw channels (``(y, x)`` for one); each is normalized by its own
        1/99 percentiles.
    models : model or sequence of models
        One model for every channel, or one per channel (e.g. a zoo's CW models); a
        :class:`~structfree_dask.backbones.ModelSpec`, a name, a weights path or None
        (the shipped generalist). All must share ``diam_mean``.
    diameter : float, optional
        Cell diameter in px (default: the models' ``diam_mean``, no rescaling).
    halo : int, optional
        Unused by one region; kept for the same geometry as the engine's.
    batch_size : int, optional
    device : torch.device, optional

    Returns
    -------
    numpy.ndarray
        ``(c, 3, y, x)`` float32: dY, dX and cell probability logit of each channel.
    """
    img = _as_channels(image)
    specs = _specs(models, img.shape[0])
    cfg = SegmentationConfig(channels=tuple(range(img.shape[0])), diameter=diameter,
                             halo=halo, batch_size=batch_size)
    check_rescale(cfg, specs[0])
    geometry = field_geometry(img.shape[1:], cfg, specs[0], tiled=False)
    norm = np.stack([normalize(img[k], *percentile_bounds(img[k])) for k in range(len(img))])
    region = (0, 0)
    con = region_contribution(norm, (0, 0), geometry, region,
                              predictor(specs, batch_size, device), separate=True)
    window = geometry.window(region)
    rbox = geometry.rescaled_window(window)
    flows = resample_to_original(assemble_flows([con], rbox), rbox, window, geometry)
    return np.ascontiguousarray(flows)


def flows_to_labels(flows: np.ndarray, config: SegmentationConfig | None = None, *,
                    rescale: float = 1.0, device: Any = None) -> np.ndarray:
    """Turn flows into labels with the one dynamics rule.

    Parameters
    ----------
    flows : numpy.ndarray
        ``(3, y, x)`` flows, or ``(c, 3, y, x)`` per channel: averaged first
        (``config.fusion == "fa"``) or integrated one by one and the masks fused.
    config : SegmentationConfig, optional
        Thresholds, smallest cell, fusion (default: the defaults).
    rescale : float
        ``diam_mean / diameter`` (flow following runs ``200 / rescale`` steps).

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` uint32 labels.
    """
    flows = np.asarray(flows)
    if flows.ndim not in (3, 4) or flows.shape[-3] != 3:
        raise ValueError(f"flows must be (3, y, x) or (c, 3, y, x); got shape {flows.shape}")
    return dynamics_for(flows.shape[-2:], rescale, config).labels(flows, device)


def segment_array(image: np.ndarray, config: SegmentationConfig | None = None) -> np.ndarray:
    """Segment an in-memory image in this process (no Dask), with Flow Averaging.

    Parameters
    ----------
    image : numpy.ndarray
        ``(c, y, x)`` channels (``(y, x)`` for one).
    config : SegmentationConfig, optional
        How to segment; its ``channels`` are indices into the image's first axis
        (default: every channel of the image, the shipped generalist, the defaults).
        ``tile_size`` is not used: the whole image is one region.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` uint32 labels, consecutive IDs.

    Examples
    --------
    >>> import numpy as np
    >>> from structfree_dask import SegmentationConfig, segment_array
    >>> labels = segment_array(np.zeros((2, 64, 64), "uint16"),
    ...                        SegmentationConfig(channels=(0, 1), diameter=20))
    >>> labels.shape, labels.dtype, int(labels.max())
    ((64, 64), dtype('uint32'), 0)
    """
    img = _as_channels(image)
    cfg = config or SegmentationConfig(channels=tuple(range(img.shape[0])))
    bad = [c for c in cfg.channels if isinstance(c, str) or c >= img.shape[0]]
    if bad:
        raise ValueError(f"channels: an array's channels are indices 0 to {img.shape[0] - 1}; "
                         f"got {bad}")
    specs = resolve_models(cfg)
    check_rescale(cfg, specs[0])
    flows = channel_flows(img[list(cfg.channels)], specs, diameter=cfg.diameter,
                          halo=cfg.halo, batch_size=cfg.batch_size)
    rescale = specs[0].diam_mean / (cfg.diameter or specs[0].diam_mean)
    return flows_to_labels(flows, cfg, rescale=rescale)
