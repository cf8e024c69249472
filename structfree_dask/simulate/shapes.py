"""Reporters rendered on given cell shapes: :func:`simulate_on_shapes`.

The simulator's own cells are star-shaped and easier to segment than real cells. Here the
cells (and optionally the nuclei) come from a label image instead, e.g. the annotated masks
of a real plate, and the simulator renders its reporters, optics and camera on them. The
label images stay the ground truth.

* **Nuclei.** Given nuclei are clipped to their cell and take its ID (as the simulator's
  ``gt_nuclei``: a nucleus carries its cell's ID; two nuclei in one cell become one label,
  the larger piece kept); a cell without one stays without (e.g. cut by the field's edge).
  Without given nuclei, every cell gets one drawn as the simulator draws them: an ellipse of
  the cell line's ``nucleus_ratio`` and elongation, here centred near the cell's innermost
  point, aligned with the cell's long axis and sized to fit, clipped to the cell. A cell cut
  by the field's edge is drawn as if it went on beyond the edge as its mirror image, so its
  nucleus has a whole cell's size and is cut by the edge too (or lies wholly beyond it,
  leaving the visible piece without one), as in a field cut from a larger image.
* **Time.** Timepoint 0 is the given shapes, exactly. Later timepoints move them: a slow
  drift of the whole field plus a smooth random deformation (a displacement field on the
  scale of two cell radii, persistent from one timepoint to the next), so every cell keeps
  its ID. Cells pushed out of the field disappear; there are no divisions or deaths.
* **Scale.** Pixels have the imaging mode's size (the source's pixel size is not used): the
  reporters' textures and the optics are those of the mode.

Deterministic for a seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.ndimage as ndi
import skimage.measure

from ..config import LABEL_DTYPE
from .field import SimulatedField, rendered_field, truth_columns, truth_frame, truth_rows
from .geometry import Geometry, stray_fragments
from .options import (
    TIME_INTERVAL_H,
    check_int,
    child_rng,
    resolve_mode,
    resolve_preset,
    resolve_seed,
)
from .population import NORMAL, Cells, draw_expression, draw_shape
from .presets import CellLinePreset
from .render import label_boundary, optics, render_timepoint
from .textures import Textures, freq2, gauss_tf, random_field

__all__ = ["simulate_on_shapes"]

#: Smooth deformation per timepoint (px per cell radius), its persistence and length scale
#: (cell radii), and the drift of the whole field per timepoint (px per cell radius).
_DEFORM_STEP = 0.12
_DEFORM_MEMORY = 0.7
_DEFORM_SCALE = 2.0
_DRIFT_STEP = 0.08


def _check_labels(arr: npt.ArrayLike, name: str) -> npt.NDArray[np.uint32]:
    a = np.asarray(arr)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a (y, x) label image; got shape {a.shape}")
    if a.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected integer labels; got dtype {a.dtype}")
    if a.size and int(a.min()) < 0:
        raise ValueError(f"{name}: expected labels >= 0; got {int(a.min())}")
    if a.size and int(a.max()) > np.iinfo(LABEL_DTYPE).max:
        raise ValueError(f"{name}: labels above {np.iinfo(LABEL_DTYPE).max} do not fit "
                         f"{np.dtype(LABEL_DTYPE)}; got {int(a.max())}")
    if min(a.shape) < 64:
        raise ValueError(f"{name}: expected at least 64 x 64 px, as simulated fields; got "
                         f"{a.shape[0]} x {a.shape[1]}")
    return a.astype(LABEL_DTYPE, copy=True)


def _inner_distance(lab: npt.NDArray[np.uint32]) -> npt.NDArray[np.float32]:
    """Distance (px) of each cell pixel to its cell's edge (touching cells are separate)."""
    inner = (lab > 0) & (label_boundary(lab) == 0)
    out = ndi.distance_transform_edt(inner).astype(np.float32)
    out[lab > 0] += np.float32(1.0)
    return out


def _ellipse(p: Any, d: npt.NDArray[np.float32],
             shape_draw: Cells, k: int) -> npt.NDArray[np.bool_]:
    """Which of the pixels ``p.coords`` (inner distances ``d``) the ``k``-th nucleus covers."""
    yy, xx = p.coords[:, 0], p.coords[:, 1]
    core = int(np.argmax(d))
    a_rel, b_rel = shape_draw["nuc_a"][k], shape_draw["nuc_b"][k]
    r = min(p.equivalent_diameter_area / 2.0, 0.9 * float(d[core]) / max(a_rel, b_rel))
    a, b = max(a_rel * r, 1.0), max(b_rel * r, 1.0)
    theta = math.pi / 2.0 - p.orientation  # long axis, from x towards y
    ey = yy - (yy[core] + shape_draw["nuc_dy"][k] * r)
    ex = xx - (xx[core] + shape_draw["nuc_dx"][k] * r)
    u = (ex * math.cos(theta) + ey * math.sin(theta)) / a
    v = (ey * math.cos(theta) - ex * math.sin(theta)) / b
    inside = u * u + v * v <= 1.0
    inside[core] = True
    return inside


def _beyond_edge(p: Any, shape: tuple[int, ...]
                 ) -> tuple[npt.NDArray[np.uint32], tuple[int, int]]:
    """Return a cell cut by the field edge, continued beyond each side it touches (mirrored).

    The cell is label 1; the pair gives the field coordinates of the array's origin.
    """
    top, left, bottom, right = p.bbox
    h, w = p.image.shape
    pad = ((h * (top == 0), h * (bottom == shape[0])), (w * (left == 0), w * (right == shape[1])))
    whole = np.pad(p.image, pad, mode="symmetric").astype(LABEL_DTYPE)
    return whole, (top - pad[0][0], left - pad[1][0])


def _touches_edge(p: Any,
                  shape: tuple[int, ...]) -> bool:
    top, left, bottom, right = p.bbox
    return top == 0 or left == 0 or bottom == shape[0] or right == shape[1]


def _draw_nuclei(cyto: npt.NDArray[np.uint32], which: npt.NDArray[np.int64],
                 preset: CellLinePreset, rng: np.random.Generator) -> npt.NDArray[np.uint32]:
    """Elliptic nuclei (the simulator's shape draws) for the cells ``which``, in place of none.

    Each ellipse is centred near the cell's innermost point, aligned with its long axis,
    scaled so that it fits (its long semi-axis at most 0.9 of the cell's inner radius),
    clipped to the cell; the nucleus carries the cell's ID. A cell cut by the field edge is
    drawn as if it went on beyond the edge as its mirror image, then clipped to the field:
    its nucleus has the size of a whole cell's and is cut by the edge as the cell is (or
    lies beyond it), not shrunk to fit the visible piece.
    """
    nuc = np.zeros(cyto.shape, dtype=LABEL_DTYPE)
    if not len(which):
        return nuc
    shape_draw = draw_shape(rng, len(which), preset)
    depth = _inner_distance(cyto)
    props = {p.label: p for p in skimage.measure.regionprops(cyto)}
    for k, label in enumerate(which.tolist()):
        p = props[label]
        if not _touches_edge(p, cyto.shape):
            inside = _ellipse(p, depth[p.coords[:, 0], p.coords[:, 1]], shape_draw, k)
            nuc[p.coords[inside, 0], p.coords[inside, 1]] = label
            continue
        whole, (oy, ox) = _beyond_edge(p, cyto.shape)
        q = skimage.measure.regionprops(whole)[0]
        inside = _ellipse(q, _inner_distance(whole)[q.coords[:, 0], q.coords[:, 1]],
                          shape_draw, k)
        yy, xx = q.coords[inside, 0] + oy, q.coords[inside, 1] + ox
        seen = (yy >= 0) & (yy < cyto.shape[0]) & (xx >= 0) & (xx < cyto.shape[1])
        yy, xx = yy[seen], xx[seen]
        mine = cyto[yy, xx] == label
        nuc[yy[mine], xx[mine]] = label
    nuc[stray_fragments(nuc, nuc > 0)] = 0
    return nuc


def _place_nuclei(cyto: npt.NDArray[np.uint32], nuclei: npt.NDArray[np.uint32] | None,
                  preset: CellLinePreset, rng: np.random.Generator) -> npt.NDArray[np.uint32]:
    """Given nuclei clipped to their cells, with the cells' IDs; else one drawn per cell."""
    if nuclei is None:
        ids = np.unique(cyto)
        return _draw_nuclei(cyto, ids[ids > 0].astype(np.int64), preset, rng)
    given = np.where(nuclei > 0, cyto, 0).astype(LABEL_DTYPE)
    given[stray_fragments(given, given > 0)] = 0
    return given


def _geometry(cyto: npt.NDArray[np.uint32], nuc: npt.NDArray[np.uint32]) -> Geometry:
    """Per-pixel geometry of arbitrary shapes, by distance transforms.

    ``dist`` is 0 at a cell's innermost point and 1 at its edge; ``rho`` is 0 at a nucleus'
    innermost point, 1 at its edge, and grows by 1 per nucleus radius outside it (1e3 in
    cells without a nucleus and outside cells), as the simulator's ellipse radius does.
    """
    f32 = np.float32
    n = int(cyto.max()) + 1
    index = np.arange(n)
    depth = _inner_distance(cyto)
    deepest = np.asarray(ndi.maximum(depth, cyto, index), dtype=f32)
    inside = cyto > 0
    dist = np.ones(cyto.shape, dtype=f32)
    dist[inside] = f32(1.0) - (depth[inside] - f32(1.0)) / np.maximum(deepest[cyto[inside]], 1.0)
    dist = np.clip(dist, 0.0, 1.0)
    in_nuc = nuc > 0
    nuc_depth = ndi.distance_transform_edt(in_nuc).astype(f32)
    nuc_deepest = np.asarray(ndi.maximum(nuc_depth, nuc, index), dtype=f32)
    nuc_radius = np.sqrt(np.bincount(nuc.ravel(), minlength=n)[:n] / np.pi).astype(f32)
    rho = np.full(cyto.shape, 1e3, dtype=f32)
    rho[in_nuc] = f32(1.0) - (nuc_depth[in_nuc] - f32(1.0)) / np.maximum(
        nuc_deepest[nuc[in_nuc]], 1.0)
    around = inside & ~in_nuc & (nuc_radius[cyto] > 0)
    gap = ndi.distance_transform_edt(~in_nuc).astype(f32)
    rho[around] = f32(1.0) + gap[around] / nuc_radius[cyto[around]]
    return Geometry(cyto=cyto, nuclei=nuc, dist=dist, rho=rho)


def _motion(shape: tuple[int, int], n_t: int, r_med: float,
            rng: np.random.Generator) -> list[npt.NDArray[np.float32]]:
    """Backward displacement ``(2, y, x)`` of every timepoint (zero at timepoint 0)."""
    f2 = freq2(*shape)
    tf = gauss_tf(f2, _DEFORM_SCALE * r_med)
    deform = np.zeros((2, *shape), dtype=np.float32)
    drift = np.zeros(2)
    out = [deform.copy()]
    for _ in range(1, n_t):
        step = np.stack([random_field(rng, f2, tf, shape) for _ in range(2)])
        deform = np.float32(_DEFORM_MEMORY) * deform + np.float32(_DEFORM_STEP * r_med) * step
        drift += rng.normal(0.0, _DRIFT_STEP * r_med, 2)
        out.append(deform + drift.astype(np.float32)[:, None, None])
    return out


def _warp(lab: npt.NDArray[np.uint32], disp: npt.NDArray[np.float32]) -> npt.NDArray[np.uint32]:
    yy, xx = np.indices(lab.shape, dtype=np.float32)
    return ndi.map_coordinates(lab, [yy - disp[0], xx - disp[1]], order=0, mode="constant",
                               cval=0).astype(LABEL_DTYPE)


def _moved(cyto0: npt.NDArray[np.uint32], nuc0: npt.NDArray[np.uint32],
           disp: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.uint32], ...]:
    """Cells and nuclei moved by ``disp``, one piece per label."""
    cyto, nuc = _warp(cyto0, disp), _warp(nuc0, disp)
    nuc[nuc != cyto] = 0
    stray = stray_fragments(cyto, nuc > 0)
    cyto[stray] = 0
    nuc[stray] = 0
    nuc[stray_fragments(nuc, nuc > 0)] = 0
    return cyto, nuc


def _cells(ids: npt.NDArray[np.int64], preset: CellLinePreset,
           rng: np.random.Generator) -> Cells:
    """Per-cell reporter expression and response, as the simulator draws them."""
    expr, onset, tau, responder = draw_expression(rng, len(ids), preset)
    return {"id": ids, "expr": expr, "onset": onset, "tau": tau, "responder": responder,
            "state": np.full(len(ids), NORMAL, dtype=np.int8)}


def simulate_on_shapes(
    cells: npt.ArrayLike,
    preset: CellLinePreset | str = "CL1",
    *,
    nuclei: npt.ArrayLike | None = None,
    timepoints: int = 1,
    seed: int | np.random.SeedSequence = 0,
    mode: str = "confocal",
) -> SimulatedField:
    """Render a cell line's reporters on given cell (and nucleus) shapes.

    Parameters
    ----------
    cells : array_like
        ``(y, x)`` cell label image (0 = background), e.g. the annotated masks of a real
        field; at least 64 px each way.
    preset : CellLinePreset or str
        The cell line whose reporters are rendered (``"CL1"`` .. ``"CL5"``).
    nuclei : array_like, optional
        ``(y, x)`` nucleus label image of the same shape. Default: one drawn per cell (see
        the module's description).
    timepoints : int
        Number of timepoints (at least 1), every 3 h; the shapes drift and deform.
    seed : int or numpy.random.SeedSequence
        Random seed; the same seed gives bitwise identical output.
    mode : {"confocal", "widefield"}
        Imaging mode (optics, camera and pixel size).

    Returns
    -------
    SimulatedField
        As :func:`~structfree_dask.simulate.simulate_field`: at timepoint 0, ``cyto`` is
        ``cells`` and ``nuclei`` the nuclei clipped to them, carrying their cells' IDs; the
        truth table has the cells' true translocation ratios, ``parent_label`` 0 and an empty
        lineage.

    Raises
    ------
    ValueError
        Labels that are not a 2-D non-negative integer image of at least 64 x 64 px, nuclei
        of another shape, an unknown cell line or mode, ``timepoints < 1``.

    Examples
    --------
    >>> cells = np.zeros((64, 64), dtype=np.uint16)
    >>> cells[8:30, 8:40] = 7
    >>> cells[34:60, 20:56] = 9
    >>> f = simulate_on_shapes(cells, "CL5", timepoints=3, seed=1)
    >>> f.image.shape, f.image.dtype, f.channel_names[0]
    ((3, 4, 64, 64), dtype('uint16'), 'mito')
    >>> bool(np.array_equal(f.cyto[0], cells)), sorted(np.unique(f.nuclei[0]).tolist())
    (True, [0, 7, 9])
    >>> sorted(set(f.truth["label"]))
    [7, 9]
    """
    cell_line = resolve_preset(preset)
    cyto0 = _check_labels(cells, "cells")
    given = None if nuclei is None else _check_labels(nuclei, "nuclei")
    if given is not None and given.shape != cyto0.shape:
        raise ValueError(f"nuclei: expected the cells' shape {cyto0.shape}; got {given.shape}")
    n_t = check_int("timepoints", timepoints, 1)
    ss = resolve_seed(seed)
    imaging = resolve_mode(mode)
    shape = cyto0.shape
    ids = np.unique(cyto0)
    ids = ids[ids > 0].astype(np.int64)
    areas = np.bincount(cyto0.ravel())[ids]
    r_med = math.sqrt(float(np.median(areas)) / math.pi) if len(ids) else 8.0

    cell_attrs = _cells(ids, cell_line, child_rng(ss, 0))
    nuc0 = _place_nuclei(cyto0, given, cell_line, child_rng(ss, 1))
    moves = _motion(shape, n_t, r_med, child_rng(ss, 2))
    f2 = freq2(*shape)
    otf, vignette = optics(shape, imaging)
    n_c = len(cell_line.channels)
    image = np.empty((n_t, n_c, *shape), dtype=np.uint16)
    nuc_t = np.empty((n_t, *shape), dtype=LABEL_DTYPE)
    cyto_t = np.empty((n_t, *shape), dtype=LABEL_DTYPE)
    truth_parts = []
    for t in range(n_t):
        cyto, nuc = (cyto0, nuc0) if t == 0 else _moved(cyto0, nuc0, moves[t])
        tex = Textures(child_rng(ss, 3, t), f2, imaging.pixel_size_um, shape)
        noise_rngs = [child_rng(ss, 4, t, j) for j in range(n_c)]
        image[t] = render_timepoint(cell_attrs, cell_line, _geometry(cyto, nuc),
                                    t * TIME_INTERVAL_H, tex, imaging, otf, vignette, noise_rngs)
        cyto_t[t], nuc_t[t] = cyto, nuc
        truth_parts.append(truth_rows(cell_attrs, cell_line, {}, cyto, t, t * TIME_INTERVAL_H))
    return rendered_field(image, nuc_t, cyto_t, cell_line, mode,
                          truth_frame(truth_parts, truth_columns(cell_line)), {})
