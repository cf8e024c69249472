"""What to segment and how: :class:`SegmentationConfig` and its vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

from . import limits
from .io import check_name
from .pipeline.fusion import FUSION_METHODS
from .pipeline.integrate import DEFAULT_FLOW_THRESHOLD
from .pipeline.tiling import DEFAULT_TILE_SIZE

__all__ = ["SegmentationConfig", "ORGANELLES", "FUSIONS"]

ORGANELLES = ("cyto", "nuclei")
#: "fa" (Flow Averaging) and the mask-fusion baselines.
FUSIONS = ("fa", *FUSION_METHODS)


@dataclass(frozen=True)
class SegmentationConfig:
    """What to segment and how.

    Parameters
    ----------
    organelle : str
        ``"cyto"`` or ``"nuclei"``.
    channels : tuple of int or str
        Channels fed to the model one at a time, then flow-averaged.
    model : str, optional
        ``None`` (shipped generalist), a cellpose built-in name or a weights path.
    name : str, optional
        Label image name (default: the organelle).
    diameter : float, optional
        Cell diameter in pixels (default: the model's, i.e. no rescaling).
    tile_size : int
        Task region side in pixels; also the label chunk size.
    halo : int, optional
        Halo in pixels (default: 2 diameters + 8).
    batch_size : int, optional
        Network tiles per forward pass (default: 8 on a GPU, 2 on a CPU, where small
        passes are faster and lighter; see
        :func:`~structfree_dask.backbones.default_batch_size`).
    cellprob_threshold, flow_threshold : float
    min_size : int
    overwrite : bool
    fusion : str
        ``"fa"`` (Flow Averaging, the method) or a mask-fusion baseline: ``"voting"``,
        ``"majority"``, ``"staple"``, ``"simple"`` (each channel integrated alone, then
        the masks fused; see :mod:`structfree_dask.pipeline.fusion`).
    channel_models : tuple of str, optional
        One model per channel (weights paths or names), e.g. a zoo's channel-wise
        models; exclusive with ``model``.
    """

    organelle: str = "cyto"
    channels: tuple[int | str, ...] = (0,)
    model: str | None = None
    name: str | None = None
    diameter: float | None = None
    tile_size: int = DEFAULT_TILE_SIZE
    halo: int | None = None
    batch_size: int | None = None
    cellprob_threshold: float = 0.0
    flow_threshold: float = DEFAULT_FLOW_THRESHOLD
    min_size: int = 15
    overwrite: bool = False
    fusion: str = "fa"
    channel_models: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.organelle not in ORGANELLES:
            raise ValueError(f"organelle must be one of {', '.join(ORGANELLES)}; "
                             f"got {self.organelle!r}")
        if not self.channels:
            raise ValueError("channels must name at least one channel")
        repeated = sorted({str(c) for c in self.channels if list(self.channels).count(c) > 1})
        if repeated:
            raise ValueError(f"channels: {', '.join(repeated)} listed more than once in "
                             f"{list(self.channels)}; each channel is averaged once")
        if self.name is not None:
            check_name(self.name, "label name")
        if self.diameter is not None:
            limits.check_number("diameter", self.diameter, (1e-3, 1e5), unit="px")
        limits.check_number("tile_size", self.tile_size, limits.TILE_SIZE, integer=True,
                            unit="px")
        if self.halo is not None:
            limits.check_number("halo", self.halo, limits.HALO, integer=True, unit="px")
        if self.batch_size is not None:
            limits.check_number("batch_size", self.batch_size, limits.BATCH_SIZE,
                                integer=True)
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}; got {self.fusion!r}")
        limits.check_number("flow_threshold", self.flow_threshold, limits.FLOW_THRESHOLD)
        limits.check_number("cellprob_threshold", self.cellprob_threshold,
                            limits.CELLPROB_THRESHOLD)
        limits.check_number("min_size", self.min_size, limits.MIN_SIZE, integer=True,
                            unit="px")
        if self.channel_models is not None:
            if self.model is not None:
                raise ValueError("give either model or channel_models, not both")
            if len(self.channel_models) != len(self.channels):
                raise ValueError(f"channel_models names {len(self.channel_models)} model(s) "
                                 f"for {len(self.channels)} channel(s); expected one per channel")

    def model_names(self) -> list[str | None]:
        """Return the model of each channel (None: the shipped generalist)."""
        if self.channel_models is not None:
            return list(self.channel_models)
        return [self.model] * len(self.channels)

    @property
    def label_name(self) -> str:
        """Name of the label image written."""
        return self.name or self.organelle
