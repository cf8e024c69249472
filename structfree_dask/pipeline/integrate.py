"""Cellpose flow integration on one window, and the cells a task region owns."""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import (
    DEFAULT_CELLPROB_THRESHOLD,
    DEFAULT_FLOW_THRESHOLD,
    DEFAULT_MIN_SIZE,
    LABEL_DTYPE,
    SegmentationConfig,
)

__all__ = ["Dynamics", "dynamics_for", "integrate_flows", "owned_cells", "cut_cells",
           "FLOW_STEPS", "MAX_SIZE_FRACTION"]

logger = logging.getLogger(__name__)

#: Flow-following steps at the model's own scale (cellpose: ``niter = 200 / rescale``).
FLOW_STEPS = 200
#: Masks larger than this fraction of the *whole field* are removed (cellpose's
#: ``max_size_fraction``).
MAX_SIZE_FRACTION = 0.4


@dataclass(frozen=True)
class Dynamics:
    """How flows become cells in a field: cellpose's dynamics with one run's settings.

    Built by :func:`dynamics_for` (the one rule); ``labels`` integrates a window's
    flows, or fuses per-channel masks for the mask-fusion baselines.
    """

    niter: int
    cellprob_threshold: float = DEFAULT_CELLPROB_THRESHOLD
    flow_threshold: float = DEFAULT_FLOW_THRESHOLD
    min_size: int = DEFAULT_MIN_SIZE
    max_size_px: float | None = None
    fusion: str = "fa"

    def labels(self, flows: np.ndarray, device: Any = None) -> np.ndarray:
        """Integrate ``(3, h, w)`` flows; ``(c, 3, h, w)``: each channel, then fuse masks.

        With ``fusion="fa"`` a ``(c, 3, h, w)`` stack is averaged over channels first.
        """
        flows = np.asarray(flows)
        if flows.ndim == 4 and self.fusion == "fa":
            from .flows import average_flows

            flows = average_flows(flows)
        if flows.ndim == 4:
            from .fusion import fuse_masks

            per_channel = [self.labels(f, device) for f in flows]
            return fuse_masks(per_channel, method=self.fusion, min_size=self.min_size)
        return integrate_flows(
            flows[:2], flows[2], niter=self.niter, cellprob_threshold=self.cellprob_threshold,
            flow_threshold=self.flow_threshold, min_size=self.min_size,
            max_size_px=self.max_size_px, device=device)


def dynamics_for(field_shape: tuple[int, int], rescale: float,
                 config: SegmentationConfig | None = None) -> Dynamics:
    """Return the one dynamics rule's settings: flow steps and largest cell of a field.

    Parameters
    ----------
    field_shape : (int, int)
        The whole field's ``(y, x)`` (the largest cell is a fraction of the field, not
        of a task's window).
    rescale : float
        ``model diameter / cell diameter``.
    config : SegmentationConfig, optional
        Thresholds, smallest cell and fusion (default: the defaults).

    Examples
    --------
    >>> d = dynamics_for((100, 200), 2.0)
    >>> d.niter, d.max_size_px, d.min_size
    (100, 8000.0, 15)
    """
    cfg = config or SegmentationConfig()
    return Dynamics(
        niter=int(round(FLOW_STEPS / rescale)), cellprob_threshold=cfg.cellprob_threshold,
        flow_threshold=cfg.flow_threshold, min_size=cfg.min_size,
        max_size_px=MAX_SIZE_FRACTION * field_shape[0] * field_shape[1], fusion=cfg.fusion)


def integrate_flows(
    dP: np.ndarray,
    cellprob: np.ndarray,
    *,
    niter: int = FLOW_STEPS,
    cellprob_threshold: float = DEFAULT_CELLPROB_THRESHOLD,
    flow_threshold: float = DEFAULT_FLOW_THRESHOLD,
    min_size: int = DEFAULT_MIN_SIZE,
    max_size_px: float | None = None,
    device: Any = None,
) -> np.ndarray:
    """Turn (dY, dX) flows and cell probability into instances with cellpose's dynamics.

    Parameters
    ----------
    dP : numpy.ndarray
        ``(2, h, w)`` flows.
    cellprob : numpy.ndarray
        ``(h, w)`` cell probability logits.
    niter : int
        Flow-following iterations (cellpose: ``200 / rescale``).
    cellprob_threshold, flow_threshold : float
        As in cellpose.
    min_size : int
        Masks smaller than this are removed (holes are filled).
    max_size_px : float, optional
        Masks larger than this many pixels are removed (cellpose removes masks over
        40 % of the *whole field*; pass that, not a fraction of the window).
    device : torch.device, optional
        Where to run the dynamics (GPU when available).

    Returns
    -------
    numpy.ndarray
        ``(h, w)`` uint32 labels, consecutive from 1.
    """
    import torch

    if dP.shape[0] != 2 or dP.shape[1:] != cellprob.shape:
        raise ValueError(f"dP must be (2, h, w) and cellprob (h, w); got {dP.shape}, "
                         f"{cellprob.shape}")
    device = device or torch.device("cpu")
    # numba kernels compiled (or loaded) on import; cellpose's dynamics only on a GPU
    kernels = (_FLOWCHECK, _MASKS) if device.type == "cpu" else ("cellpose.dynamics", _MASKS)
    for module in kernels:
        if module not in sys.modules:
            _import_on_clean_stack(module)
    from .masks import fill_holes_and_remove_small_masks
    area = float(cellprob.size)
    frac = MAX_SIZE_FRACTION if max_size_px is None else min(1.0, max_size_px / area)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        if device.type == "cpu":
            masks = _cpu_masks(dP, cellprob, niter=int(niter), threshold=cellprob_threshold,
                               flow_threshold=flow_threshold, max_size_fraction=frac)
        else:
            from cellpose import dynamics

            masks = dynamics.compute_masks(
                dP, cellprob, niter=int(niter), cellprob_threshold=cellprob_threshold,
                flow_threshold=flow_threshold, max_size_fraction=frac, device=device,
            )
    masks = fill_holes_and_remove_small_masks(masks, min_size=min_size)
    return masks.astype(LABEL_DTYPE, copy=False)


_FLOWCHECK = f"{__package__}.flowcheck"
_MASKS = f"{__package__}.masks"

#: A pixel whose flow step stays below this (px, both axes) is at its sink: it stops.
SETTLED_STEP = 1e-4
#: Flow steps between two looks for pixels that have settled.
SETTLE_CHECK_STEPS = 10


def _cpu_masks(dP: np.ndarray, cellprob: np.ndarray, *, niter: int, threshold: float,
               flow_threshold: float, max_size_fraction: float) -> np.ndarray:
    """Cellpose's ``compute_masks`` on the CPU, with settled pixels stopped early.

    The same steps as ``cellpose.dynamics.compute_masks`` (interpolated flow following
    with ``map_coordinates``, then ``get_masks_torch`` and ``remove_bad_flow_masks``, as
    cellpose writes them in :mod:`.masks`, the last one's diffusion kernel as a plain
    loop in :mod:`.flowcheck`, bitwise), except that a pixel whose step was below
    :data:`SETTLED_STEP` at one of the looks every :data:`SETTLE_CHECK_STEPS` steps is
    not moved further: most pixels reach their sink in the first quarter of the steps
    (2.5x faster flow following, masks bitwise cellpose's on the real windows measured:
    benchmarks/README.md).
    """
    import torch

    from .flowcheck import remove_bad_flow_masks
    from .masks import masks_from_sinks

    shape = cellprob.shape
    inside = cellprob > threshold
    inds = np.nonzero(inside)
    if len(inds[0]) == 0:
        return np.zeros(shape, "uint16")
    flows = (dP * inside / 5.0).astype(np.float32)
    p = _follow_settling(flows, inds, niter)
    mask = masks_from_sinks(torch.from_numpy(p).to(dtype=torch.int), inds, shape,
                            max_size_fraction=max_size_fraction)
    if mask.max() > 0 and flow_threshold is not None and flow_threshold > 0:
        mask = remove_bad_flow_masks(mask, dP, flow_threshold)
    if mask.max() < 2**16 and mask.dtype != "uint16":
        mask = mask.astype("uint16")
    return mask


def _follow_settling(flows: np.ndarray, inds: tuple[np.ndarray, ...], niter: int) -> np.ndarray:
    """Return the final ``(2, n)`` positions of the pixels ``inds`` after ``niter`` steps.

    cellpose's CPU ``steps_interp`` (Euler steps of the interpolated flows, clipped to the
    image), on the pixels still moving only (:func:`.masks.follow`).
    """
    from .masks import follow

    start = np.stack([inds[0], inds[1]]).astype(np.float32)
    return follow(np.ascontiguousarray(flows, dtype=np.float32), start, int(niter),
                  SETTLE_CHECK_STEPS, np.float32(SETTLED_STEP))


def _import_on_clean_stack(module: str) -> None:
    """Import a module on a new thread and wait for it.

    cellpose.dynamics, :mod:`.masks` and :mod:`.flowcheck` compile numba kernels when
    first imported, and numba keeps a traceback of that import's stack: imported from
    inside a Dask task it pinned the task's inputs (flows, flow-sum files) for the
    worker's lifetime. A fresh thread's stack holds nothing; a failed import is raised
    again by the caller's own import.
    """
    thread = threading.Thread(target=importlib.import_module, args=(module,),
                              name="structfree-import", daemon=True)
    thread.start()
    thread.join()


def owned_cells(
    labels: np.ndarray, origin: tuple[int, int], bounds: tuple[int, int, int, int]
) -> tuple[np.ndarray, int]:
    """Keep the cells whose centroid lies in a region; renumber them 1..n.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(h, w)`` labels of a window.
    origin : (int, int)
        Field coordinates of ``labels[0, 0]``.
    bounds : (int, int, int, int)
        Owned area ``(y0, y1, x0, x1)`` in field coordinates.

    Returns
    -------
    kept : numpy.ndarray
        uint32 labels holding only the owned cells, numbered 1..n in the order of their IDs.
    n : int
        Number of owned cells.

    Examples
    --------
    >>> lab = np.zeros((6, 6), "uint32"); lab[0:2, 0:2] = 5; lab[4:6, 4:6] = 7
    >>> kept, n = owned_cells(lab, (0, 0), (0, 3, 0, 3))
    >>> n, int(kept.max()), int(kept[5, 5])
    (1, 1, 0)
    """
    flat = labels.ravel()
    if flat.dtype == np.uint64:  # bincount counts int64 (label IDs stay far below 2**63)
        flat = flat.astype(np.int64)
    nmax = int(flat.max(initial=0))
    if nmax == 0:
        return np.zeros_like(labels, dtype=LABEL_DTYPE), 0
    yy, xx = np.divmod(np.arange(flat.size), labels.shape[1])
    counts = np.bincount(flat, minlength=nmax + 1).astype(np.float64)
    cy = np.bincount(flat, weights=yy, minlength=nmax + 1)
    cx = np.bincount(flat, weights=xx, minlength=nmax + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = cy / counts + origin[0]
        cx = cx / counts + origin[1]
    y0, y1, x0, x1 = bounds
    keep = (counts > 0) & (cy >= y0) & (cy < y1) & (cx >= x0) & (cx < x1)
    keep[0] = False
    ids = np.flatnonzero(keep)
    lut = np.zeros(nmax + 1, dtype=LABEL_DTYPE)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=LABEL_DTYPE)
    kept = lut[labels]
    return kept, int(len(ids))


def cut_cells(kept: np.ndarray, origin: tuple[int, int], field_shape: tuple[int, int]) -> int:
    """Count kept cells touching a window edge that is not a field edge."""
    h, w = kept.shape
    edges = []
    if origin[0] > 0:
        edges.append(kept[0])
    if origin[0] + h < field_shape[0]:
        edges.append(kept[-1])
    if origin[1] > 0:
        edges.append(kept[:, 0])
    if origin[1] + w < field_shape[1]:
        edges.append(kept[:, -1])
    if not edges:
        return 0
    ids = np.unique(np.concatenate(edges))
    return int((ids > 0).sum())
