"""The models of a configuration and the field geometry they imply."""

from __future__ import annotations

from .. import limits
from ..backbones import ModelSpec, resolve_model
from ..config import SegmentationConfig
from ..io import ImageInfo
from ..pipeline.tiling import FieldGeometry, halo_depth


def resolve_models(config: SegmentationConfig) -> tuple[ModelSpec, ...]:
    """Resolve the model of each channel of a configuration.

    Raises
    ------
    FileNotFoundError
        Unknown model.
    ValueError
        Per-channel models trained at different diameters (``diam_mean``).
    """
    cache: dict[str | None, ModelSpec] = {}
    specs = []
    for m in config.model_names():
        if m not in cache:
            cache[m] = resolve_model(m)
        specs.append(cache[m])
    diams = sorted({sp.diam_mean for sp in specs})
    if len(diams) > 1:
        raise ValueError(f"the channels' models have different diam_mean {diams}; Flow "
                         "Averaging needs one scale")
    return tuple(specs)


def _geometry(info: ImageInfo, cfg: SegmentationConfig, spec: ModelSpec) -> FieldGeometry:
    diameter = cfg.diameter or spec.diam_mean
    halo = cfg.halo if cfg.halo is not None else halo_depth(diameter)
    return FieldGeometry((info.sizes["y"], info.sizes["x"]), tile_size=cfg.tile_size,
                         halo=halo, rescale=spec.diam_mean / diameter)


def _check_rescale(config: SegmentationConfig, spec: ModelSpec) -> None:
    if config.diameter is None:
        return
    lo, hi = limits.RESCALE
    factor = spec.diam_mean / config.diameter
    if not lo <= factor <= hi:
        raise ValueError(
            f"diameter {config.diameter:g} px: the model was trained on cells of "
            f"{spec.diam_mean:g} px, so fields would be rescaled {factor:g}x; expected a "
            f"diameter between {spec.diam_mean / hi:g} and {spec.diam_mean / lo:g} px")
