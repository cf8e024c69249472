"""Reporter patterns, optics and camera of one simulated timepoint.

:func:`render_timepoint` renders every channel of a timepoint: a unit-brightness
compartment pattern per reporter (static or following the cell's response
:func:`progress`; :func:`translocation_ratio` is the ratio a translocation reporter shows),
scaled by per-cell expression, blurred by the :func:`optics` (Gaussian PSF plus haze, then
vignetting; out of focus, first by a wide Gaussian), with Poisson-Gaussian camera noise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.ndimage as ndi

from .geometry import Geometry
from .options import ImagingMode
from .population import DYING, MITOTIC, Cells
from .presets import CellLinePreset, ChannelSpec, Localization
from .textures import FFT_WORKERS, Textures, freq2, gauss_tf

#: A treatment's response progress of cells: ``(spec, cell IDs, t_h) -> progress``.
ResponseProgress = Callable[[ChannelSpec, npt.NDArray[np.int64], float], npt.NDArray[np.float32]]

__all__ = ["ResponseProgress", "label_boundary", "optics", "progress", "render_timepoint",
           "translocation_ratio"]

_UINT16_MAX = 65535


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def progress(cells: Cells, j: int, t_h: float, spec: ChannelSpec | None = None,
             treated: ResponseProgress | None = None) -> npt.NDArray[np.float32]:
    """Response progress in [0, 1] of every cell in channel ``j`` at ``t_h`` hours.

    With ``treated`` (a well's treatment in a simulated screen), a translocation
    reporter ``spec`` follows the treatment instead of the cell line's own response.
    """
    if treated is not None and spec is not None \
            and spec.localization is Localization.TRANSLOCATION:
        return treated(spec, cells["id"], t_h)
    z = (t_h - cells["onset"][:, j]) / cells["tau"][:, j]
    return (cells["responder"][:, j] * _sigmoid(z)).astype(np.float32)


def translocation_ratio(
    spec: ChannelSpec, prog: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Return a translocation reporter's nucleus / cytoplasm ratio at response ``prog``.

    Geometric interpolation from ``nc_ratio_start`` (``prog`` 0) to ``nc_ratio_end``
    (``prog`` 1); the renderer and the ground-truth table both use it.
    """
    f32 = np.float32
    return f32(spec.nc_ratio_start) * (f32(spec.nc_ratio_end / spec.nc_ratio_start) ** prog)


def label_boundary(lab: npt.NDArray[np.uint32]) -> npt.NDArray[np.float32]:
    """Pixels of a cell that touch a different label (2 px wide at shared boundaries)."""
    b = np.zeros(lab.shape, dtype=bool)
    dy = lab[1:, :] != lab[:-1, :]
    b[1:, :] |= dy
    b[:-1, :] |= dy
    dx = lab[:, 1:] != lab[:, :-1]
    b[:, 1:] |= dx
    b[:, :-1] |= dx
    b &= lab > 0
    return b.astype(np.float32)


def _render_pattern(
    loc: Localization, geo: Geometry, tex: Textures, prog: npt.NDArray[np.float32],
    spec: ChannelSpec, boundary: npt.NDArray[np.float32] | None,
) -> npt.NDArray[np.float32]:
    """Unit-brightness compartment pattern of one channel (before per-cell expression)."""
    f32 = np.float32
    in_cell = (geo.cyto > 0).astype(np.float32)
    is_nuc = (geo.nuclei > 0).astype(np.float32)
    is_cyt = in_cell - is_nuc
    outside_nuc = np.clip(geo.rho - f32(1.0), 0.0, None)
    if loc is Localization.CYTOPLASM:
        pat = is_cyt * (f32(1.0) + f32(0.15) * tex.get("smooth")) + is_nuc * f32(0.15)
    elif loc is Localization.NUCLEI_CYTOPLASM:
        pat = (is_cyt + f32(1.35) * is_nuc) * (f32(1.0) + f32(0.12) * tex.get("smooth"))
    elif loc is Localization.TRANSLOCATION:
        ratio = translocation_ratio(spec, prog)
        nuc_level = f32(2.0) * ratio / (f32(1.0) + ratio)
        cyt_level = f32(2.0) / (f32(1.0) + ratio)
        pat = is_cyt * cyt_level * (f32(1.0) + f32(0.1) * tex.get("smooth")) + (
            is_nuc * nuc_level * (f32(1.0) + f32(0.1) * tex.get("fine"))
        )
    elif loc is Localization.NUCLEI:
        dome = np.sqrt(np.clip(f32(1.0) - geo.rho * geo.rho, 0.0, None))
        chrom = (f32(1.0) + f32(0.2) * tex.get("fine")) * (f32(1.0) - f32(0.5) * tex.get("blob"))
        pat = is_nuc * chrom * (f32(0.6) + f32(0.4) * dome) + is_cyt * f32(0.03)
    elif loc is Localization.ER:
        lam = f32(0.6) + f32(1.4) * prog
        peri = np.exp(-outside_nuc / lam)
        envelope = np.exp(-(((geo.rho - f32(1.0)) / f32(0.15)) ** 2))
        ret = f32(0.35) + f32(0.65) * tex.get("reticular")
        pat = (f32(1.0) + f32(0.8) * prog) * (
            is_cyt * peri * ret + f32(0.8) * envelope * in_cell
        ) + is_nuc * f32(0.05)
    elif loc is Localization.MITOCHONDRIA:
        peri = np.exp(-outside_nuc / f32(2.0))
        texture = (f32(1.0) - prog) * tex.get("filament") + prog * f32(1.2) * tex.get("puncta")
        pat = (f32(1.0) - f32(0.25) * prog) * is_cyt * peri * (f32(0.25) + f32(0.9) * texture)
    elif loc is Localization.MEMBRANE:
        if boundary is None:  # pragma: no cover - internal misuse
            raise ValueError("membrane pattern needs the label boundary map")
        inner = prog * f32(0.6)
        peri = np.exp(-outside_nuc / f32(1.5))
        pat = (f32(1.0) - inner) * boundary + inner * is_cyt * peri * tex.get("puncta") + (
            f32(0.08) * in_cell
        )
    else:  # pragma: no cover - exhaustive
        raise AssertionError(loc)
    if spec.contrast < 1.0:
        c = f32(spec.contrast)
        pat = c * pat + (f32(1.0) - c) * f32(0.45) * in_cell
    return pat.astype(np.float32, copy=False)


def render_timepoint(
    cells: Cells, preset: CellLinePreset, geo: Geometry, t_h: float, tex: Textures,
    mode: ImagingMode, otf: npt.NDArray[np.float32], vignette: npt.NDArray[np.float32],
    noise_rngs: list[np.random.Generator], *, defocus_px: float = 0.0,
    treated: ResponseProgress | None = None,
) -> npt.NDArray[np.uint16]:
    """Render all channels of one timepoint to ``(c, y, x)`` uint16.

    ``cells`` needs ``id``, ``expr``, ``state``, ``onset``, ``tau`` and ``responder``
    (see :class:`~structfree_dask.simulate.population.Population`); ``geo`` holds their
    label images and per-pixel geometry. ``defocus_px`` > 0 renders the timepoint out of
    focus: the signal is first blurred by a Gaussian of that standard deviation in pixels
    (mirrored at the edges, so no light wraps around), then by the optics; the camera's
    noise is the same draw as in focus. ``treated``: the well's treatment (see
    :func:`progress`).
    """
    shape = geo.cyto.shape
    f32 = np.float32
    max_id = int(cells["id"].max()) if len(cells["id"]) else 0
    ids = cells["id"]
    # cells are dome-shaped: thicker (brighter) at the centre than at the edge
    in_cell = (geo.cyto > 0).astype(np.float32)
    thick = (f32(0.4) + f32(0.6) * np.sqrt(np.clip(f32(1.0) - geo.dist**2, 0.0, None))) * in_cell
    state_gain = np.where(cells["state"] == MITOTIC, 1.4, 1.0)
    state_gain = np.where(cells["state"] == DYING, 1.25, state_gain)
    boundary = (
        label_boundary(geo.cyto) if Localization.MEMBRANE in preset.localizations else None
    )
    out = np.empty((len(preset.channels), *shape), dtype=np.uint16)
    for j, spec in enumerate(preset.channels):
        lut_e = np.zeros(max_id + 1, dtype=np.float32)
        lut_e[ids] = cells["expr"][:, j] * state_gain * spec.brightness * mode.photon_scale
        expr_px = lut_e[geo.cyto]
        loc = spec.localization
        if loc.is_dynamic:
            lut_p = np.zeros(max_id + 1, dtype=np.float32)
            lut_p[ids] = progress(cells, j, t_h, spec, treated)
            prog = lut_p[geo.cyto]
        else:
            prog = np.zeros(shape, dtype=np.float32)
        pat = _render_pattern(loc, geo, tex, prog, spec, boundary)
        if loc is Localization.MEMBRANE:  # lateral membranes stay bright at thin cell edges
            signal = expr_px * (f32(0.5) * thick + f32(0.5) * in_cell) * pat
        else:
            signal = expr_px * thick * pat
        if defocus_px > 0.0:  # out of focus: a wide blur on top of the PSF
            signal = ndi.gaussian_filter(signal, defocus_px, mode="reflect")
        # optics: Gaussian PSF (+ haze) applied in Fourier space, then flat-field falloff
        blurred = scipy.fft.irfft2(
            scipy.fft.rfft2(signal, workers=FFT_WORKERS) * otf, s=shape, workers=FFT_WORKERS
        ).astype(np.float32, copy=False)
        electrons = (np.clip(blurred, 0.0, None) + f32(mode.background_e)) * vignette
        rng = noise_rngs[j]
        counts = rng.poisson(electrons).astype(np.float32)
        counts += rng.standard_normal(shape, dtype=np.float32) * f32(mode.read_noise_e)
        adu = counts * f32(mode.gain_adu_per_e) + f32(mode.offset_adu)
        np.clip(np.rint(adu), 0, _UINT16_MAX, out=adu)
        out[j] = adu.astype(np.uint16)
    return out


def optics(
    shape: tuple[int, int], mode: ImagingMode
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Optical transfer function and flat-field falloff of ``mode`` on a field of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        Field size ``(y, x)`` in pixels.
    mode : ImagingMode
        The imaging mode (PSF, haze, vignetting and pixel size).

    Returns
    -------
    otf : numpy.ndarray
        Gaussian PSF plus out-of-focus haze on the half spectrum of :func:`scipy.fft.rfft2`,
        shape ``(y, x // 2 + 1)``, float32.
    vignette : numpy.ndarray
        Multiplicative flat-field falloff, shape ``(y, x)``, float32.

    Examples
    --------
    >>> from structfree_dask.simulate.options import MODES
    >>> otf, vignette = optics((64, 80), MODES["widefield"])
    >>> otf.shape, otf.dtype, vignette.shape, vignette.dtype
    ((64, 41), dtype('float32'), (64, 80), dtype('float32'))
    """
    px = mode.pixel_size_um
    f2 = freq2(*shape)
    otf = (1.0 - mode.haze_weight) * gauss_tf(f2, max(mode.psf_sigma_um / px, 0.5))
    otf += mode.haze_weight * gauss_tf(f2, mode.haze_sigma_um / px)
    otf = otf.astype(np.float32)
    yy = (np.arange(shape[0], dtype=np.float32) - (shape[0] - 1) / 2) / (max(shape) / 2)
    xx = (np.arange(shape[1], dtype=np.float32) - (shape[1] - 1) / 2) / (max(shape) / 2)
    vignette = (1.0 - mode.vignetting * 0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2)).astype(
        np.float32
    )
    return otf, vignette
