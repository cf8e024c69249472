"""Deterministic synthetic high-content-screening fields with non-structural reporters.

The simulator produces time-lapse microscopy fields of touching, irregular cells imaged only in
*non-structural* reporter channels (no DAPI, no dedicated cytoplasm stain), together with exact
ground-truth nucleus and whole-cell label images. It is meant for testing and benchmarking
segmentation without structural stains:

* :data:`PRESETS` holds five cell-line presets ``"CL1"`` .. ``"CL5"`` modelled on reporter cell
  lines with three or four channels each. ``"CL5"`` only carries structurally weak reporters
  (mitochondria, ER, membrane and a weak translocation reporter).
* :func:`simulate_field` renders one field (pure numpy/scipy, no I/O), with a per-cell
  ground-truth table (lineage and true translocation ratios, :attr:`SimulatedField.truth`).
* :func:`simulate_plate` renders a whole plate and writes it as OME-Zarr (HCS) with the
  package's plate writer, including ``gt_nuclei`` / ``gt_cyto`` label images and the
  ground-truth table ``gt_truth`` (per field and as a plate-level Parquet dataset).

Model summary
-------------
Cells are seeded in colonies plus a scattered population, relaxed so that neighbours touch,
and rendered as irregular star-shaped regions (random angular harmonics plus a boundary
wobble). The touching region is partitioned by a multiplicatively weighted Voronoi rule, so
neighbouring cells share a boundary. Nuclei are ellipses offset from the cell centre and clipped
to their cell. Over time (one timepoint every 3 h) cells move slowly, grow, round up and divide
(daughters get new IDs) or round up, shrink and disappear (death). Dynamic reporters change per
cell with a sigmoidal time course (translocation ratio, ER spreading, mitochondrial
fragmentation, membrane internalisation). Each channel is blurred with a Gaussian PSF (plus an
out-of-focus haze in widefield mode), and Poisson-Gaussian camera noise is added on top of a
background and camera offset.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import scipy.fft
import skimage.measure
from scipy.spatial import cKDTree

from .config import TRUTH_TABLE, true_ratio_column

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from .io import ImageInfo

__all__ = [
    "IMAGING_MODES",
    "PRESETS",
    "TIME_INTERVAL_H",
    "CellLinePreset",
    "ChannelSpec",
    "Localization",
    "SimulatedField",
    "simulate_field",
    "simulate_plate",
]

logger = logging.getLogger(__name__)

#: Hours between consecutive timepoints (timepoint ``k`` is acquired at ``3 * k`` hours).
TIME_INTERVAL_H: float = 3.0

_MIN_SIZE = 64
_UINT16_MAX = 65535


class Localization(StrEnum):
    """Sub-cellular localisation (and dynamics) of a reporter channel.

    Attributes
    ----------
    CYTOPLASM
        Constant, cytoplasmic reporter; nuclei appear dim.
    NUCLEI_CYTOPLASM
        Constant reporter in nucleus and cytoplasm (nucleus slightly brighter).
    TRANSLOCATION
        Dynamic nucleo-cytoplasmic translocation reporter; the nuclear/cytoplasmic intensity
        ratio changes over time per cell.
    NUCLEI
        Constant nuclear reporter (with chromatin-like texture and dim nucleoli).
    ER
        Dynamic endoplasmic-reticulum reporter: perinuclear reticular texture with a bright
        nuclear envelope; spreads and brightens over time.
    MITOCHONDRIA
        Dynamic mitochondrial reporter: filamentous/punctate cytoplasmic texture that fragments
        over time.
    MEMBRANE
        Dynamic plasma-membrane reporter: rim at the cell boundary that is partially
        internalised into cytoplasmic puncta over time.

    Examples
    --------
    >>> Localization("er") is Localization.ER
    True
    >>> Localization.CYTOPLASM.is_dynamic
    False
    """

    CYTOPLASM = "cytoplasm"
    NUCLEI_CYTOPLASM = "nuclei+cytoplasm"
    TRANSLOCATION = "translocation"
    NUCLEI = "nuclei"
    ER = "er"
    MITOCHONDRIA = "mitochondria"
    MEMBRANE = "membrane"

    @property
    def is_dynamic(self) -> bool:
        """Whether the reporter pattern changes over time."""
        return self in _DYNAMIC


_DYNAMIC = frozenset(
    {Localization.TRANSLOCATION, Localization.ER, Localization.MITOCHONDRIA, Localization.MEMBRANE}
)


def _check_number(
    owner: str, name: str, value: object, *, low: float, high: float = math.inf,
    low_inclusive: bool = True,
) -> None:
    """Raise if ``value`` is not a real number in the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}.{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    ok_low = v >= low if low_inclusive else v > low
    if not (ok_low and v <= high) or math.isnan(v):
        bracket = "[" if low_inclusive else "("
        raise ValueError(f"{owner}.{name} must be in {bracket}{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class ChannelSpec:
    """One reporter channel of a simulated cell line.

    Parameters
    ----------
    name : str
        Channel name written to the image metadata (e.g. ``"mito"``).
    localization : Localization or str
        Where the reporter sits and how it behaves over time (see :class:`Localization`).
    brightness : float
        Typical peak signal of an expressing cell in photoelectrons per pixel in confocal mode.
    heterogeneity : float
        Standard deviation of the log-normal per-cell expression level.
    dark_fraction : float
        Fraction of cells (at seeding) that hardly express the reporter (0-5 % of normal).
    contrast : float
        Structural contrast in (0, 1]: 1 renders the full compartment pattern, smaller values mix
        the pattern with a uniform whole-cell fill (structurally weak reporters).
    nc_ratio_start, nc_ratio_end : float
        Nuclear/cytoplasmic intensity ratio before and after the response (translocation only).
    onset_h, onset_spread_h : float
        Mean and standard deviation of the per-cell response onset in hours (dynamic channels).
    responder_fraction : float
        Fraction of cells that respond at all (dynamic channels).

    Raises
    ------
    ValueError
        If a parameter is out of range or the localisation is unknown.
    TypeError
        If a parameter has the wrong type.

    Examples
    --------
    >>> ch = ChannelSpec("mito", "mitochondria", brightness=500.0)
    >>> ch.localization
    <Localization.MITOCHONDRIA: 'mitochondria'>
    """

    name: str
    localization: Localization
    brightness: float = 800.0
    heterogeneity: float = 0.4
    dark_fraction: float = 0.15
    contrast: float = 1.0
    nc_ratio_start: float = 0.5
    nc_ratio_end: float = 2.5
    onset_h: float = 30.0
    onset_spread_h: float = 12.0
    responder_fraction: float = 0.85

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"ChannelSpec.name must be a non-empty str, got {self.name!r}")
        try:
            loc = Localization(self.localization)
        except ValueError:
            valid = ", ".join(repr(v.value) for v in Localization)
            raise ValueError(
                f"ChannelSpec.localization must be one of {valid}, got {self.localization!r}"
            ) from None
        object.__setattr__(self, "localization", loc)
        owner = f"ChannelSpec({self.name!r})"
        _check_number(owner, "brightness", self.brightness, low=0.0, low_inclusive=False)
        _check_number(owner, "heterogeneity", self.heterogeneity, low=0.0, high=3.0)
        _check_number(owner, "dark_fraction", self.dark_fraction, low=0.0, high=0.99)
        _check_number(owner, "contrast", self.contrast, low=0.0, high=1.0, low_inclusive=False)
        _check_number(owner, "nc_ratio_start", self.nc_ratio_start, low=0.0, low_inclusive=False)
        _check_number(owner, "nc_ratio_end", self.nc_ratio_end, low=0.0, low_inclusive=False)
        _check_number(owner, "onset_h", self.onset_h, low=-math.inf)
        _check_number(owner, "onset_spread_h", self.onset_spread_h, low=0.0)
        _check_number(owner, "responder_fraction", self.responder_fraction, low=0.0, high=1.0)


@dataclass(frozen=True)
class CellLinePreset:
    """Morphology, dynamics and reporter channels of a simulated cell line.

    Parameters
    ----------
    name : str
        Short name (e.g. ``"CL1"``).
    description : str
        Human-readable description.
    channels : tuple of ChannelSpec
        Reporter channels, in image channel order (at least one, unique names).
    cell_diameter_um : float
        Median cell diameter in micrometres.
    diameter_cv : float
        Log-normal spread of cell diameters.
    nucleus_ratio : float
        Median nucleus diameter as a fraction of the cell diameter.
    irregularity : float
        Amplitude of the random angular shape harmonics (0 = round cells).
    confluence : float
        Fraction of the area covered by cells at the first timepoint.
    clustering : float
        Fraction of cells seeded in colonies (the rest is scattered uniformly).
    doubling_time_h : float
        Doubling time of unconstrained growth in hours (slowed by contact inhibition).
    death_rate_per_h : float
        Probability per hour that a cell starts dying.
    motility_um_per_h : float
        Typical cell speed in micrometres per hour.

    Raises
    ------
    ValueError
        If a parameter is out of range, there are no channels or channel names repeat.
    TypeError
        If ``channels`` does not hold :class:`ChannelSpec` objects.

    Examples
    --------
    >>> preset = PRESETS["CL5"]
    >>> preset.channel_names
    ('mito', 'ER', 'membrane', 'translocation-reporter')
    """

    name: str
    description: str
    channels: tuple[ChannelSpec, ...]
    cell_diameter_um: float = 26.0
    diameter_cv: float = 0.2
    nucleus_ratio: float = 0.45
    irregularity: float = 0.2
    confluence: float = 0.55
    clustering: float = 0.7
    doubling_time_h: float = 30.0
    death_rate_per_h: float = 0.004
    motility_um_per_h: float = 0.6

    def __post_init__(self) -> None:
        channels = tuple(self.channels)
        object.__setattr__(self, "channels", channels)
        if not channels:
            raise ValueError(f"CellLinePreset({self.name!r}) needs at least one channel, got 0")
        for ch in channels:
            if not isinstance(ch, ChannelSpec):
                raise TypeError(
                    f"CellLinePreset({self.name!r}).channels must hold ChannelSpec objects, "
                    f"got {type(ch).__name__}"
                )
        names = [ch.name for ch in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"CellLinePreset({self.name!r}) channel names repeat: {names}")
        owner = f"CellLinePreset({self.name!r})"
        _check_number(owner, "cell_diameter_um", self.cell_diameter_um, low=2.0, high=500.0)
        _check_number(owner, "diameter_cv", self.diameter_cv, low=0.0, high=1.0)
        _check_number(owner, "nucleus_ratio", self.nucleus_ratio, low=0.1, high=0.75)
        _check_number(owner, "irregularity", self.irregularity, low=0.0, high=0.4)
        _check_number(owner, "confluence", self.confluence, low=0.0, high=1.0, low_inclusive=False)
        _check_number(owner, "clustering", self.clustering, low=0.0, high=1.0)
        _check_number(owner, "doubling_time_h", self.doubling_time_h, low=1.0)
        _check_number(owner, "death_rate_per_h", self.death_rate_per_h, low=0.0, high=1.0)
        _check_number(owner, "motility_um_per_h", self.motility_um_per_h, low=0.0, high=100.0)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Channel names in image channel order."""
        return tuple(ch.name for ch in self.channels)

    @property
    def localizations(self) -> tuple[Localization, ...]:
        """Channel localisations in image channel order."""
        return tuple(ch.localization for ch in self.channels)


_L = Localization

#: Five reporter cell-line presets, three or four non-structural channels each.
PRESETS: dict[str, CellLinePreset] = {
    "CL1": CellLinePreset(
        name="CL1",
        description=(
            "Epithelial-like reporter line: constant cytoplasmic reporter, nuclear-import "
            "translocation reporter, ER and mitochondria reporters."
        ),
        channels=(
            ChannelSpec("cyto-reporter", _L.CYTOPLASM, brightness=900.0, dark_fraction=0.12),
            ChannelSpec("translocation-reporter", _L.TRANSLOCATION, brightness=700.0,
                        nc_ratio_start=0.4, nc_ratio_end=2.5, dark_fraction=0.15),
            ChannelSpec("ER", _L.ER, brightness=600.0, dark_fraction=0.15),
            ChannelSpec("mito", _L.MITOCHONDRIA, brightness=650.0, dark_fraction=0.12),
        ),
        cell_diameter_um=28.0,
        irregularity=0.2,
        confluence=0.55,
    ),
    "CL2": CellLinePreset(
        name="CL2",
        description=(
            "Fibroblast-like reporter line with large irregular cells: constant nuclear+"
            "cytoplasmic reporter, nuclear-export translocation reporter, membrane reporter."
        ),
        channels=(
            ChannelSpec("nuc-cyto-reporter", _L.NUCLEI_CYTOPLASM, brightness=1000.0,
                        dark_fraction=0.1),
            ChannelSpec("translocation-reporter", _L.TRANSLOCATION, brightness=600.0,
                        nc_ratio_start=2.5, nc_ratio_end=0.5, onset_h=24.0,
                        dark_fraction=0.15),
            ChannelSpec("membrane", _L.MEMBRANE, brightness=550.0, dark_fraction=0.18),
        ),
        cell_diameter_um=32.0,
        diameter_cv=0.25,
        irregularity=0.28,
        confluence=0.5,
        doubling_time_h=36.0,
        motility_um_per_h=1.0,
    ),
    "CL3": CellLinePreset(
        name="CL3",
        description=(
            "Compact, fast-growing reporter line: constant nuclear reporter, constant "
            "cytoplasmic reporter, ER reporter and a translocation reporter."
        ),
        channels=(
            ChannelSpec("nuclear-reporter", _L.NUCLEI, brightness=1200.0, dark_fraction=0.1),
            ChannelSpec("cyto-reporter", _L.CYTOPLASM, brightness=700.0, dark_fraction=0.15),
            ChannelSpec("ER", _L.ER, brightness=500.0, dark_fraction=0.2),
            ChannelSpec("translocation-reporter", _L.TRANSLOCATION, brightness=600.0,
                        nc_ratio_start=0.6, nc_ratio_end=3.0, onset_h=36.0,
                        dark_fraction=0.15),
        ),
        cell_diameter_um=23.0,
        diameter_cv=0.18,
        nucleus_ratio=0.5,
        irregularity=0.15,
        confluence=0.6,
        doubling_time_h=24.0,
    ),
    "CL4": CellLinePreset(
        name="CL4",
        description=(
            "Large flat reporter line: constant nuclear+cytoplasmic reporter, mitochondria, "
            "membrane and ER reporters."
        ),
        channels=(
            ChannelSpec("nuc-cyto-reporter", _L.NUCLEI_CYTOPLASM, brightness=800.0,
                        dark_fraction=0.12),
            ChannelSpec("mito", _L.MITOCHONDRIA, brightness=700.0, dark_fraction=0.15),
            ChannelSpec("membrane", _L.MEMBRANE, brightness=600.0, dark_fraction=0.15),
            ChannelSpec("ER", _L.ER, brightness=500.0, dark_fraction=0.18),
        ),
        cell_diameter_um=34.0,
        diameter_cv=0.22,
        nucleus_ratio=0.4,
        irregularity=0.3,
        confluence=0.5,
        doubling_time_h=40.0,
    ),
    "CL5": CellLinePreset(
        name="CL5",
        description=(
            "Structurally weak reporter line: only mitochondria, ER and membrane reporters and "
            "a weak translocation reporter; no constant nuclear or cytoplasmic signal."
        ),
        channels=(
            ChannelSpec("mito", _L.MITOCHONDRIA, brightness=450.0, contrast=0.7,
                        dark_fraction=0.18),
            ChannelSpec("ER", _L.ER, brightness=400.0, contrast=0.6, dark_fraction=0.18),
            ChannelSpec("membrane", _L.MEMBRANE, brightness=350.0, contrast=0.6,
                        dark_fraction=0.2),
            ChannelSpec("translocation-reporter", _L.TRANSLOCATION, brightness=300.0,
                        contrast=0.6, nc_ratio_start=0.8, nc_ratio_end=1.6,
                        dark_fraction=0.2),
        ),
        cell_diameter_um=28.0,
        irregularity=0.22,
        confluence=0.55,
    ),
}


@dataclass(frozen=True)
class _ImagingMode:
    """Optics and camera model of one imaging mode."""

    pixel_size_um: float
    psf_sigma_um: float
    haze_weight: float
    haze_sigma_um: float
    photon_scale: float
    background_e: float
    read_noise_e: float
    gain_adu_per_e: float
    offset_adu: float
    vignetting: float


_MODES: dict[str, _ImagingMode] = {
    # Binned confocal spinning-disk at 20x: 1.24 um/px, bright, little out-of-focus light.
    "confocal": _ImagingMode(
        pixel_size_um=1.24, psf_sigma_um=0.45, haze_weight=0.03, haze_sigma_um=4.0,
        photon_scale=1.0, background_e=12.0, read_noise_e=2.0, gain_adu_per_e=1.5,
        offset_adu=100.0, vignetting=0.08,
    ),
    # Unbinned widefield at 20x: 0.32 um/px, fewer photons per pixel, out-of-focus haze.
    "widefield": _ImagingMode(
        pixel_size_um=0.32, psf_sigma_um=0.35, haze_weight=0.25, haze_sigma_um=6.0,
        photon_scale=0.2, background_e=20.0, read_noise_e=3.0, gain_adu_per_e=1.0,
        offset_adu=100.0, vignetting=0.25,
    ),
}

#: Valid values of the ``mode`` argument.
IMAGING_MODES: tuple[str, ...] = tuple(_MODES)


@dataclass(frozen=True, eq=False)
class SimulatedField:
    """One simulated time-lapse field with ground truth.

    Parameters
    ----------
    image : numpy.ndarray
        Raw intensities, shape ``(t, c, y, x)``, ``uint16``.
    nuclei : numpy.ndarray
        Ground-truth nucleus labels, shape ``(t, y, x)``, ``uint32``, 0 = background.
    cyto : numpy.ndarray
        Ground-truth whole-cell labels (nucleus included), shape ``(t, y, x)``, ``uint32``.
        A nucleus and its cell share one ID and every nucleus lies inside its cell. Cells cut
        by the field border may have their nucleus outside the field. IDs are unique within a
        timepoint and kept across timepoints while a cell persists; daughters get new IDs.
    channel_names : tuple of str
        Channel names in channel order.
    pixel_size_um : float
        Pixel size in micrometres (same in y and x).
    time_interval_h : float
        Hours between consecutive timepoints.
    cell_line : str
        Name of the cell-line preset.
    mode : str
        Imaging mode (``"confocal"`` or ``"widefield"``).
    localizations : tuple of str
        Localisation of each channel (values of :class:`Localization`).
    truth : pandas.DataFrame
        Per-cell ground truth, one row per (``t``, ``label``) of every cell in ``cyto[t]``
        (cells rendered outside the field are not listed), ordered by ``t`` then ``label``.
        Columns: ``label`` (int64, the cell's ID in ``cyto``), ``t`` (int32),
        ``parent_label`` (int64, the mother's ID for a daughter, else 0; the same on every
        row of a cell; the mother need not appear in the labels) and, for each
        translocation channel, ``true_ratio_column(name)`` (float64, the nucleus /
        cytoplasm ratio the renderer used for that cell at ``t``; see
        :func:`structfree_dask.config.true_ratio_column`).
    lineage : dict of int to int
        Daughter ID -> mother ID for every daughter that appears in ``cyto``.

    Examples
    --------
    >>> f = simulate_field("CL2", size=64, timepoints=1, seed=3)
    >>> f.channel_names
    ('nuc-cyto-reporter', 'translocation-reporter', 'membrane')
    >>> f.times_h.tolist()
    [0.0]
    >>> list(f.truth.columns)
    ['label', 't', 'parent_label', 'translocation-reporter__true_nc_ratio']
    >>> sorted(f.truth["label"]) == sorted(set(np.unique(f.cyto[0])) - {0})
    True
    """

    image: npt.NDArray[np.uint16]
    nuclei: npt.NDArray[np.uint32]
    cyto: npt.NDArray[np.uint32]
    channel_names: tuple[str, ...]
    pixel_size_um: float
    time_interval_h: float = TIME_INTERVAL_H
    cell_line: str = ""
    mode: str = "confocal"
    localizations: tuple[str, ...] = field(default=())
    truth: pd.DataFrame = field(default_factory=lambda: _truth_frame([], _TRUTH_KEYS))
    lineage: dict[int, int] = field(default_factory=dict)

    @property
    def times_h(self) -> npt.NDArray[np.float64]:
        """Acquisition time of each timepoint in hours."""
        return np.arange(self.image.shape[0], dtype=np.float64) * self.time_interval_h


# --------------------------------------------------------------------------------------------
# argument handling


def _resolve_preset(preset: CellLinePreset | str) -> CellLinePreset:
    if isinstance(preset, CellLinePreset):
        return preset
    if isinstance(preset, str):
        if preset in PRESETS:
            return PRESETS[preset]
        valid = ", ".join(repr(k) for k in PRESETS)
        raise ValueError(f"unknown cell line {preset!r}; expected one of {valid}")
    raise TypeError(
        f"preset must be a CellLinePreset or one of {list(PRESETS)}, got {type(preset).__name__}"
    )


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {int(value)}")
    return int(value)


def _resolve_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, tuple | list):
        if len(size) != 2:
            raise ValueError(f"size must be an int or a (y, x) pair, got {len(size)} values")
        return (
            _check_int("size[0]", size[0], _MIN_SIZE),
            _check_int("size[1]", size[1], _MIN_SIZE),
        )
    s = _check_int("size", size, _MIN_SIZE)
    return s, s


def _resolve_seed(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be a non-negative int or numpy.random.SeedSequence, "
            f"got {type(seed).__name__}"
        )
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative int, got {int(seed)}")
    return np.random.SeedSequence(int(seed))


def _resolve_mode(mode: str) -> _ImagingMode:
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(map(repr, _MODES))}")
    return _MODES[mode]


def _rng(ss: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """Return a generator for the child stream ``key`` of ``ss`` (``ss`` is not mutated)."""
    child = np.random.SeedSequence(entropy=ss.entropy, spawn_key=(*ss.spawn_key, *key))
    return np.random.default_rng(child)


# --------------------------------------------------------------------------------------------
# spectral helpers

_FFT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _freq2(h: int, w: int) -> npt.NDArray[np.float32]:
    fy = scipy.fft.fftfreq(h).astype(np.float32)
    fx = scipy.fft.rfftfreq(w).astype(np.float32)
    return fy[:, None] ** 2 + fx[None, :] ** 2


def _gauss_tf(f2: npt.NDArray[np.float32], sigma_px: float) -> npt.NDArray[np.float32]:
    return np.exp(np.float32(-2.0 * math.pi**2 * sigma_px**2) * f2)


def _random_field(
    rng: np.random.Generator, f2: npt.NDArray[np.float32], tf: npt.NDArray[np.float32],
    shape: tuple[int, int],
) -> npt.NDArray[np.float32]:
    """Gaussian random field with transfer function ``tf``, zero mean, unit variance."""
    spec = np.empty(f2.shape, dtype=np.complex64)
    noise = rng.standard_normal((2, *f2.shape), dtype=np.float32)
    spec.real = noise[0] * tf
    spec.imag = noise[1] * tf
    spec[0, 0] = 0.0
    out = scipy.fft.irfft2(spec, s=shape, workers=_FFT_WORKERS).astype(np.float32, copy=False)
    sd = float(out[::4, ::4].std())
    out *= np.float32(1.0 / sd if sd > 0 else 1.0)
    return out


class _Textures:
    """Lazily generated per-timepoint texture fields (all in [0, inf), float32)."""

    def __init__(
        self, rng: np.random.Generator, f2: npt.NDArray[np.float32], px_um: float,
        shape: tuple[int, int],
    ) -> None:
        self._rng = rng
        self._f2 = f2
        self._px = px_um
        self._shape = shape
        self._cache: dict[str, npt.NDArray[np.float32]] = {}

    def _band(self, sigma_um: float) -> npt.NDArray[np.float32]:
        s = max(sigma_um / self._px, 0.25)
        tf = _gauss_tf(self._f2, s) - _gauss_tf(self._f2, 2.0 * s)
        return _random_field(self._rng, self._f2, tf, self._shape)

    def get(self, name: str) -> npt.NDArray[np.float32]:
        if name in self._cache:
            return self._cache[name]
        if name == "smooth":
            out = _random_field(
                self._rng, self._f2, _gauss_tf(self._f2, max(2.5 / self._px, 0.5)), self._shape
            )
        elif name == "fine":
            out = self._band(0.6)
        elif name == "blob":
            out = np.clip(self._band(1.0) - 1.0, 0.0, 1.0)
        elif name == "reticular":
            b = self._band(0.8)
            out = np.exp(-((b / np.float32(0.6)) ** 2))
        elif name == "filament":
            b = self._band(0.5)
            out = np.exp(-((b / np.float32(0.45)) ** 2))
        elif name == "puncta":
            out = np.clip(self._band(0.4) - 0.8, 0.0, None) * np.float32(1.5)
        else:  # pragma: no cover - internal misuse
            raise KeyError(name)
        out = out.astype(np.float32, copy=False)
        self._cache[name] = out
        return out


# --------------------------------------------------------------------------------------------
# cell population

_HARMONICS = np.array([2, 3, 4, 5])
_HARMONIC_WEIGHTS = np.array([1.0, 0.55, 0.35, 0.25])
_NORMAL, _MITOTIC, _DYING = 0, 1, 2
_Cells = dict[str, np.ndarray]


def _draw_shape(rng: np.random.Generator, n: int, preset: CellLinePreset) -> _Cells:
    """Shape and nucleus parameters of ``n`` new cells (sizes excluded)."""
    k = len(_HARMONICS)
    amp = preset.irregularity * _HARMONIC_WEIGHTS * rng.uniform(0.3, 1.0, size=(n, k))
    # keep the shape star-convex and not too spiky
    total = amp.sum(axis=1, keepdims=True)
    amp *= np.minimum(1.0, 0.45 / np.maximum(total, 1e-9))
    a = preset.nucleus_ratio * rng.lognormal(0.0, 0.08, size=n)
    a = np.clip(a, 0.15, 0.6)
    elong = rng.uniform(1.0, 1.5, size=n)
    off = rng.uniform(0.0, 0.12, size=n)
    ang = rng.uniform(0, 2 * np.pi, size=n)
    return {
        "harm_a": amp,
        "harm_phi": rng.uniform(0, 2 * np.pi, size=(n, k)),
        "nuc_a": a * np.sqrt(elong),
        "nuc_b": a / np.sqrt(elong),
        "nuc_theta": rng.uniform(0, np.pi, size=n),
        "nuc_dy": off * np.sin(ang),
        "nuc_dx": off * np.cos(ang),
        "tile_oy": rng.integers(0, 1 << 20, size=n),
        "tile_ox": rng.integers(0, 1 << 20, size=n),
    }


def _draw_expression(
    rng: np.random.Generator, n: int, preset: CellLinePreset
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell expression, response onset (h), response time scale (h) and responder flag."""
    c = len(preset.channels)
    expr = np.empty((n, c))
    onset = np.empty((n, c))
    tau = rng.uniform(3.0, 9.0, size=(n, c))
    responder = np.empty((n, c))
    for j, ch in enumerate(preset.channels):
        e = rng.lognormal(0.0, ch.heterogeneity, size=n)
        dark = rng.random(n) < ch.dark_fraction
        e[dark] = rng.uniform(0.0, 0.05, size=int(dark.sum()))
        expr[:, j] = e
        onset[:, j] = rng.normal(ch.onset_h, ch.onset_spread_h, size=n)
        responder[:, j] = rng.random(n) < ch.responder_fraction
    return expr, onset, tau, responder


def _take(cells: _Cells, idx: np.ndarray) -> _Cells:
    return {k: v[idx] for k, v in cells.items()}


def _concat(a: _Cells, b: _Cells) -> _Cells:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _relax(
    y: np.ndarray, x: np.ndarray, r: np.ndarray, *, iters: int, overlap: float,
    bounds: tuple[float, float, float, float],
) -> None:
    """Push apart cells whose centres are closer than ``overlap * (r_i + r_j)`` (in place)."""
    n = len(y)
    if n < 2:
        return
    reach = 2.0 * overlap * float(r.max())
    for _ in range(iters):
        tree = cKDTree(np.column_stack([y, x]))
        pairs = tree.query_pairs(reach, output_type="ndarray")
        if len(pairs) == 0:
            break
        i, j = pairs[:, 0], pairs[:, 1]
        dy = y[j] - y[i]
        dx = x[j] - x[i]
        dist = np.hypot(dy, dx)
        push = np.clip(overlap * (r[i] + r[j]) - dist, 0.0, None) * 0.5
        moving = push > 0
        if not moving.any():
            break
        i, j, dy, dx, dist, push = i[moving], j[moving], dy[moving], dx[moving], dist[moving], push[
            moving
        ]
        safe = np.maximum(dist, 1e-6)
        uy = np.where(dist > 1e-6, dy / safe, 1.0)
        ux = np.where(dist > 1e-6, dx / safe, 0.0)
        fy = np.bincount(j, push * uy, n) - np.bincount(i, push * uy, n)
        fx = np.bincount(j, push * ux, n) - np.bincount(i, push * ux, n)
        y += 0.8 * fy
        x += 0.8 * fx
        np.clip(y, bounds[0], bounds[1], out=y)
        np.clip(x, bounds[2], bounds[3], out=x)


class _Population:
    """Cell population state and its dynamics (positions and radii in pixels)."""

    def __init__(
        self, preset: CellLinePreset, shape: tuple[int, int], px_um: float,
        rng: np.random.Generator,
    ) -> None:
        self.preset = preset
        self.px = px_um
        h, w = shape
        self.r_med = preset.cell_diameter_um / 2.0 / px_um
        m = 1.2 * self.r_med
        self.bounds = (-m, h - 1 + m, -m, w - 1 + m)
        self.area = (h + 2 * m) * (w + 2 * m)
        mean_r2 = self.r_med**2 * math.exp(2 * preset.diameter_cv**2)
        n = max(1, round(preset.confluence * self.area / (math.pi * mean_r2)))

        n_clustered = round(n * preset.clustering)
        per_colony = 12
        n_col = max(1, round(n_clustered / per_colony))
        centres = np.column_stack([
            rng.uniform(self.bounds[0], self.bounds[1], n_col),
            rng.uniform(self.bounds[2], self.bounds[3], n_col),
        ])
        which = rng.integers(0, n_col, n_clustered)
        spread = self.r_med * math.sqrt(per_colony) * 0.9
        clustered = centres[which] + rng.normal(0.0, spread, size=(n_clustered, 2))
        scattered = np.column_stack([
            rng.uniform(self.bounds[0], self.bounds[1], n - n_clustered),
            rng.uniform(self.bounds[2], self.bounds[3], n - n_clustered),
        ])
        pos = np.concatenate([clustered, scattered])
        y = np.clip(pos[:, 0], self.bounds[0], self.bounds[1])
        x = np.clip(pos[:, 1], self.bounds[2], self.bounds[3])
        r = self._draw_radius(rng, n)
        _relax(y, x, r, iters=30, overlap=0.82, bounds=self.bounds)

        expr, onset, tau, responder = _draw_expression(rng, n, preset)
        cells: _Cells = {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "y": y,
            "x": x,
            "vy": np.zeros(n),
            "vx": np.zeros(n),
            "r": r,
            "r_target": r.copy(),
            "expr": expr,
            "onset": onset,
            "tau": tau,
            "responder": responder,
            "state": np.zeros(n, dtype=np.int8),
            "state_age": np.zeros(n, dtype=np.int16),
            # cells start at a random point of their cycle
            "age_h": rng.uniform(0.0, preset.doubling_time_h, size=n),
        }
        cells.update(_draw_shape(rng, n, preset))
        self.cells = cells
        self.next_id = n + 1
        #: Lineage of every division so far: daughter ID -> mother ID.
        self.parents: dict[int, int] = {}

    def _draw_radius(self, rng: np.random.Generator, n: int) -> np.ndarray:
        r = self.r_med * rng.lognormal(0.0, self.preset.diameter_cv, size=n)
        return np.clip(r, 0.5 * self.r_med, 2.0 * self.r_med)

    def step(self, rng: np.random.Generator, dt_h: float) -> None:
        """Advance the population by ``dt_h`` hours."""
        c = self.cells
        preset = self.preset
        # 1. mitotic cells divide into two daughters with new IDs
        mitotic = c["state"] == _MITOTIC
        if mitotic.any():
            mothers = _take(c, np.flatnonzero(mitotic))
            c = _take(c, np.flatnonzero(~mitotic))
            c = _concat(c, self._daughters(rng, mothers))
        # 2. dying cells shrink for two timepoints, then disappear
        dying = c["state"] == _DYING
        c["state_age"][dying] += 1
        gone = dying & (c["state_age"] >= 3)
        if gone.any():
            c = _take(c, np.flatnonzero(~gone))
        # 3. new fates: contact-inhibited division, random death
        n = len(c["id"])
        if n:
            coverage = float(np.sum(np.pi * c["r"] ** 2)) / self.area
            p_div = (1.0 - 2.0 ** (-dt_h / preset.doubling_time_h)) * 2.0
            p_div *= float(np.clip(1.0 - coverage / 0.95, 0.0, 1.0))
            p_death = 1.0 - math.exp(-dt_h * preset.death_rate_per_h)
            u = rng.random(n)
            normal = c["state"] == _NORMAL
            die = normal & (u < p_death)
            divide = normal & ~die & (c["age_h"] >= 10.0) & (u < p_death + p_div)
            c["state"][die] = _DYING
            c["state_age"][die] = 0
            c["state"][divide] = _MITOTIC
            # 4. growth, slow persistent random motion, contact relaxation
            c["r"] += (c["r_target"] - c["r"]) * 0.4
            step_px = preset.motility_um_per_h * dt_h / self.px
            c["vy"] = 0.6 * c["vy"] + rng.normal(0.0, 0.6 * step_px, n)
            c["vx"] = 0.6 * c["vx"] + rng.normal(0.0, 0.6 * step_px, n)
            c["y"] = np.clip(c["y"] + c["vy"], self.bounds[0], self.bounds[1])
            c["x"] = np.clip(c["x"] + c["vx"], self.bounds[2], self.bounds[3])
            _relax(c["y"], c["x"], c["r"], iters=4, overlap=0.82, bounds=self.bounds)
            c["age_h"] += dt_h
        self.cells = c

    def _daughters(self, rng: np.random.Generator, m: _Cells) -> _Cells:
        nm = len(m["id"])
        n = 2 * nm
        rep = np.repeat(np.arange(nm), 2)
        d = _take(m, rep)
        sign = np.tile([1.0, -1.0], nm)
        axis = np.repeat(rng.uniform(0, 2 * np.pi, nm), 2)
        off = 0.45 * d["r"]
        d["y"] = np.clip(d["y"] + sign * off * np.sin(axis), self.bounds[0], self.bounds[1])
        d["x"] = np.clip(d["x"] + sign * off * np.cos(axis), self.bounds[2], self.bounds[3])
        d["vy"] = sign * 0.3 * off * np.sin(axis)
        d["vx"] = sign * 0.3 * off * np.cos(axis)
        target = d["r_target"] * rng.lognormal(0.0, 0.08, n)
        d["r_target"] = np.clip(target, 0.5 * self.r_med, 2.0 * self.r_med)
        d["r"] = 0.72 * d["r_target"]
        d["id"] = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        self.parents.update(zip(d["id"].tolist(), m["id"][rep].tolist(), strict=True))
        d["expr"] = d["expr"] * rng.lognormal(0.0, 0.12, size=d["expr"].shape)
        d["onset"] = d["onset"] + rng.normal(0.0, 2.0, size=d["onset"].shape)
        d["state"] = np.zeros(n, dtype=np.int8)
        d["state_age"] = np.zeros(n, dtype=np.int16)
        d["age_h"] = np.zeros(n)
        d.update(_draw_shape(rng, n, self.preset))
        return d


# --------------------------------------------------------------------------------------------
# rendering


@dataclass
class _Geometry:
    """Label images and per-pixel geometry of one timepoint."""

    cyto: npt.NDArray[np.uint32]
    nuclei: npt.NDArray[np.uint32]
    dist: npt.NDArray[np.float32]  # normalised distance to the cell centre (1 at the edge)
    rho: npt.NDArray[np.float32]  # normalised nucleus ellipse radius (1 at the nucleus edge)


def _make_tile(rng: np.random.Generator, r_med: float) -> npt.NDArray[np.float32]:
    """Periodic smooth noise tile used for cell-boundary wobble (moves with the cell)."""
    t = 1 << max(7, math.ceil(math.log2(6.0 * r_med)))
    f2 = _freq2(t, t)
    tf = _gauss_tf(f2, max(0.18 * r_med, 1.0))
    return _random_field(rng, f2, tf, (t, t))


_CANDIDATE_BATCH = 1 << 20
_N_ANGLES = 128


def _render_geometry(
    cells: _Cells, shape: tuple[int, int], tile: npt.NDArray[np.float32]
) -> _Geometry:
    """Rasterise cells and nuclei of one timepoint (vectorised over cells and pixels).

    Every cell claims the pixels of its irregular star-shaped region (centred on the nearest
    pixel); where regions overlap, the pixel goes to the cell with the smallest normalised
    distance (a multiplicatively weighted Voronoi partition), so touching cells share a
    boundary.
    """
    h, w = shape
    f32 = np.float32
    tsz = tile.shape[0]
    wobble = 0.07
    n = len(cells["id"])

    # render-time modifiers of mitotic (rounded) and dying (shrinking, rounded) cells
    state = cells["state"]
    r = cells["r"].copy()
    harm = cells["harm_a"].copy()
    nscale = np.ones(n)
    mit = state == _MITOTIC
    r[mit] *= 0.8
    harm[mit] *= 0.15
    nscale[mit] = 1.1
    dying = state == _DYING
    r[dying] *= 0.72 ** (cells["state_age"][dying].astype(float) + 1.0)
    harm[dying] *= 0.3
    nscale[dying] = 0.65
    iy = np.round(cells["y"]).astype(np.int64)
    ix = np.round(cells["x"]).astype(np.int64)
    half = np.ceil(r * (1.0 + harm.sum(axis=1) + 3.0 * wobble) + 1.0).astype(np.int64)
    visible = (iy + half >= 0) & (iy - half < h) & (ix + half >= 0) & (ix - half < w)
    at_border = (iy - half <= 0) | (ix - half <= 0) | (iy + half >= h - 1) | (ix + half >= w - 1)

    # boundary radius of every cell on a table of angles: r * (1 + sum_k a_k cos(k t - phi_k))
    theta = -np.pi + (np.arange(_N_ANGLES) + 0.5) * (2 * np.pi / _N_ANGLES)
    kt = _HARMONICS[None, :, None] * theta[None, None, :] - cells["harm_phi"][:, :, None]
    ripple = np.einsum("nk,nka->na", harm.astype(np.float32), np.cos(kt.astype(np.float32)))
    radius = r.astype(np.float32)[:, None] * (f32(1.0) + ripple)
    group = np.where(visible, (half + 3) // 4 * 4, -1)  # half-widths rounded up to 4 px
    tile_pad = np.pad(tile, ((0, 2 * int(group.max(initial=0)) + 1),) * 2, mode="wrap")
    windows = np.lib.stride_tricks.sliding_window_view

    best = np.full(h * w, np.inf, dtype=np.float32)
    owner = np.full(h * w, -1, dtype=np.int64)
    cand: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for g in np.unique(group[group >= 0]):
        members = np.flatnonzero(group == g)
        size = 2 * int(g) + 1
        off = np.arange(-g, g + 1)
        rr = np.sqrt((off[:, None] ** 2 + off[None, :] ** 2).astype(np.float32))
        ang = np.arctan2(off[:, None], off[None, :]).astype(np.float32)
        aidx = (np.floor((ang + np.pi) * (_N_ANGLES / (2 * np.pi))).astype(np.int64)) % _N_ANGLES
        step = max(1, _CANDIDATE_BATCH // (size * size))
        for c0 in range(0, len(members), step):
            idx = members[c0 : c0 + step]
            rad = np.take(radius[idx], aidx, axis=1)  # (m, size, size)
            wobble_px = windows(tile_pad, (size, size))[
                cells["tile_oy"][idx] % tsz, cells["tile_ox"][idx] % tsz
            ]
            d = rr[None] / rad + f32(wobble) * wobble_px
            py = iy[idx, None] + off[None, :]  # (m, size)
            px = ix[idx, None] + off[None, :]
            ok_y = (py >= 0) & (py < h)
            ok_x = (px >= 0) & (px < w)
            m, ry, rx = np.nonzero((d < 1.0) & ok_y[:, :, None] & ok_x[:, None, :])
            pix = py[m, ry] * w + px[m, rx]
            dd = d[m, ry, rx]
            np.minimum.at(best, pix, dd)
            cand.append((pix, dd, idx[m]))
    # per pixel, the candidate with the smallest normalised distance wins (ties: larger index)
    for pix, dd, cell in cand:
        win = dd == best[pix]
        np.maximum.at(owner, pix[win], cell[win])

    # nuclei: offset ellipses clipped to their own cell
    pix = np.flatnonzero(owner >= 0)
    cell = owner[pix]
    py, px = np.divmod(pix, w)
    rn = r[cell]
    ey = (py - iy[cell] - cells["nuc_dy"][cell] * rn).astype(np.float32)
    ex = (px - ix[cell] - cells["nuc_dx"][cell] * rn).astype(np.float32)
    ct = np.cos(cells["nuc_theta"]).astype(np.float32)[cell]
    st = np.sin(cells["nuc_theta"]).astype(np.float32)[cell]
    a = np.maximum(cells["nuc_a"] * nscale * r, 1.0).astype(np.float32)[cell]
    b = np.maximum(cells["nuc_b"] * nscale * r, 1.0).astype(np.float32)[cell]
    u = (ex * ct + ey * st) / a
    v = (ey * ct - ex * st) / b
    rho = np.sqrt(u * u + v * v)
    inside = rho <= 1.0
    # a cell whose nucleus got clipped away entirely is dropped, unless the field border cuts it
    n_nuc = np.bincount(cell[inside], minlength=n)
    drop = (n_nuc == 0) & ~at_border
    live = ~drop[cell]
    ids = cells["id"].astype(np.uint32)
    cyto = np.zeros(h * w, dtype=np.uint32)
    nuc = np.zeros(h * w, dtype=np.uint32)
    rho_map = np.full(h * w, 1e3, dtype=np.float32)
    cyto[pix[live]] = ids[cell[live]]
    nuc_px = live & inside
    nuc[pix[nuc_px]] = ids[cell[nuc_px]]
    rho_map[pix[live]] = rho[live]
    best[pix[~live]] = np.inf
    cyto = cyto.reshape(shape)
    nuc = nuc.reshape(shape)
    # weighted Voronoi regions can be disconnected: keep one piece per cell (the one holding
    # most of the nucleus, then the largest), likewise one piece per nucleus
    stray = _stray_fragments(cyto, nuc > 0)
    cyto[stray] = 0
    nuc[stray] = 0
    nuc[_stray_fragments(nuc, nuc > 0)] = 0
    best = best.reshape(shape)
    best[stray] = np.inf
    best[~np.isfinite(best)] = 1.0
    rho_map = rho_map.reshape(shape)
    rho_map[stray] = 1e3
    return _Geometry(cyto=cyto, nuclei=nuc, dist=best, rho=rho_map)


def _stray_fragments(
    lab: npt.NDArray[np.uint32], weight: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Mask of the pixels of all but one 4-connected piece of every label.

    The kept piece of a label is the one with the most ``weight`` pixels, then the largest.
    """
    comps = skimage.measure.label(lab, background=0, connectivity=1).ravel()
    n_comp = int(comps.max())
    flat = lab.ravel()
    owner = np.zeros(n_comp + 1, dtype=np.int64)
    owner[comps] = flat
    if len(np.unique(owner[1:])) == n_comp:  # every label is a single piece
        return np.zeros(lab.shape, dtype=bool)
    area = np.bincount(comps, minlength=n_comp + 1)
    heavy = np.bincount(comps, weights=weight.ravel(), minlength=n_comp + 1)
    cand = np.arange(1, n_comp + 1)
    order = np.lexsort((cand, area[cand], heavy[cand], owner[cand]))
    ordered = cand[order]
    last = np.ones(len(ordered), dtype=bool)
    last[:-1] = owner[ordered[1:]] != owner[ordered[:-1]]
    keep = np.zeros(n_comp + 1, dtype=bool)
    keep[0] = True
    keep[ordered[last]] = True
    return ~keep[comps].reshape(lab.shape)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _progress(cells: _Cells, j: int, t_h: float) -> npt.NDArray[np.float32]:
    """Response progress in [0, 1] of every cell in channel ``j`` at ``t_h`` hours."""
    z = (t_h - cells["onset"][:, j]) / cells["tau"][:, j]
    return (cells["responder"][:, j] * _sigmoid(z)).astype(np.float32)


def _translocation_ratio(
    spec: ChannelSpec, prog: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """Return a translocation reporter's nucleus / cytoplasm ratio at response ``prog``.

    Geometric interpolation from ``nc_ratio_start`` (``prog`` 0) to ``nc_ratio_end``
    (``prog`` 1); the renderer and the ground-truth table both use it.
    """
    f32 = np.float32
    return f32(spec.nc_ratio_start) * (f32(spec.nc_ratio_end / spec.nc_ratio_start) ** prog)


def _boundary(lab: npt.NDArray[np.uint32]) -> npt.NDArray[np.float32]:
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
    loc: Localization, geo: _Geometry, tex: _Textures, prog: npt.NDArray[np.float32],
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
        ratio = _translocation_ratio(spec, prog)
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


def _render_timepoint(
    pop: _Population, geo: _Geometry, t_h: float, tex: _Textures, mode: _ImagingMode,
    otf: npt.NDArray[np.float32], vignette: npt.NDArray[np.float32],
    noise_rngs: list[np.random.Generator],
) -> npt.NDArray[np.uint16]:
    """Render all channels of one timepoint to ``(c, y, x)`` uint16."""
    cells = pop.cells
    preset = pop.preset
    shape = geo.cyto.shape
    f32 = np.float32
    max_id = int(cells["id"].max()) if len(cells["id"]) else 0
    ids = cells["id"]
    # cells are dome-shaped: thicker (brighter) at the centre than at the edge
    in_cell = (geo.cyto > 0).astype(np.float32)
    thick = (f32(0.4) + f32(0.6) * np.sqrt(np.clip(f32(1.0) - geo.dist**2, 0.0, None))) * in_cell
    state_gain = np.where(cells["state"] == _MITOTIC, 1.4, 1.0)
    state_gain = np.where(cells["state"] == _DYING, 1.25, state_gain)
    boundary = (
        _boundary(geo.cyto) if Localization.MEMBRANE in preset.localizations else None
    )
    out = np.empty((len(preset.channels), *shape), dtype=np.uint16)
    for j, spec in enumerate(preset.channels):
        lut_e = np.zeros(max_id + 1, dtype=np.float32)
        lut_e[ids] = cells["expr"][:, j] * state_gain * spec.brightness * mode.photon_scale
        expr_px = lut_e[geo.cyto]
        loc = spec.localization
        if loc.is_dynamic:
            lut_p = np.zeros(max_id + 1, dtype=np.float32)
            lut_p[ids] = _progress(cells, j, t_h)
            prog = lut_p[geo.cyto]
        else:
            prog = np.zeros(shape, dtype=np.float32)
        pat = _render_pattern(loc, geo, tex, prog, spec, boundary)
        if loc is Localization.MEMBRANE:  # lateral membranes stay bright at thin cell edges
            signal = expr_px * (f32(0.5) * thick + f32(0.5) * in_cell) * pat
        else:
            signal = expr_px * thick * pat
        # optics: Gaussian PSF (+ haze) applied in Fourier space, then flat-field falloff
        blurred = scipy.fft.irfft2(
            scipy.fft.rfft2(signal, workers=_FFT_WORKERS) * otf, s=shape, workers=_FFT_WORKERS
        ).astype(np.float32, copy=False)
        electrons = (np.clip(blurred, 0.0, None) + f32(mode.background_e)) * vignette
        rng = noise_rngs[j]
        counts = rng.poisson(electrons).astype(np.float32)
        counts += rng.standard_normal(shape, dtype=np.float32) * f32(mode.read_noise_e)
        adu = counts * f32(mode.gain_adu_per_e) + f32(mode.offset_adu)
        np.clip(np.rint(adu), 0, _UINT16_MAX, out=adu)
        out[j] = adu.astype(np.uint16)
    return out


# --------------------------------------------------------------------------------------------
# ground truth

_TRUTH_DTYPES = {"label": np.int64, "t": np.int32, "parent_label": np.int64}
_TRUTH_KEYS = tuple(_TRUTH_DTYPES)


def _truth_columns(preset: CellLinePreset) -> list[str]:
    """Columns of a field's truth table, in order."""
    return [*_TRUTH_KEYS, *(
        true_ratio_column(ch.name) for ch in preset.channels
        if ch.localization is Localization.TRANSLOCATION
    )]


def _truth_rows(
    pop: _Population, cyto: npt.NDArray[np.uint32], t: int, t_h: float
) -> dict[str, np.ndarray]:
    """Truth of the cells in one timepoint's labels, ordered by label (columns -> values)."""
    cells = pop.cells
    labels = np.unique(cyto)
    labels = labels[labels > 0].astype(np.int64)
    index = np.full(int(cells["id"].max(initial=0)) + 1, -1, dtype=np.int64)
    index[cells["id"]] = np.arange(len(cells["id"]))
    rows = index[labels]  # every label is a live cell's ID
    out: dict[str, np.ndarray] = {
        "label": labels,
        "t": np.full(len(labels), t, dtype=np.int32),
        "parent_label": np.array(
            [pop.parents.get(int(i), 0) for i in labels], dtype=np.int64
        ),
    }
    for j, spec in enumerate(pop.preset.channels):
        if spec.localization is Localization.TRANSLOCATION:
            ratio = _translocation_ratio(spec, _progress(cells, j, t_h)[rows])
            out[true_ratio_column(spec.name)] = ratio.astype(np.float64)
    return out


def _truth_frame(parts: list[dict[str, np.ndarray]], columns: Sequence[str]) -> pd.DataFrame:
    """Concatenate per-timepoint truth rows into one DataFrame (typed even when empty)."""
    import pandas as pd

    data = {
        c: np.concatenate([p[c] for p in parts]) if parts
        else np.empty(0, dtype=_TRUTH_DTYPES.get(c, np.float64))
        for c in columns
    }
    return pd.DataFrame(data)


def simulate_field(
    preset: CellLinePreset | str,
    *,
    size: int | tuple[int, int] = 512,
    timepoints: int = 1,
    seed: int | np.random.SeedSequence = 0,
    mode: str = "confocal",
) -> SimulatedField:
    """Simulate one time-lapse field of a reporter cell line with ground-truth labels.

    Parameters
    ----------
    preset : CellLinePreset or str
        The cell line, or the key of one in :data:`PRESETS` (``"CL1"`` .. ``"CL5"``).
    size : int or tuple of int
        Field size in pixels, ``n`` for ``n x n`` or ``(y, x)``; each at least 64.
    timepoints : int
        Number of timepoints (at least 1), one every :data:`TIME_INTERVAL_H` hours.
    seed : int or numpy.random.SeedSequence
        Random seed; the same seed gives bitwise identical output.
    mode : {"confocal", "widefield"}
        Imaging mode. ``"confocal"``: 1.24 um/px, cells about 15-35 px across, bright.
        ``"widefield"``: 0.32 um/px (cells about 4x larger in pixels), fewer photons per pixel,
        out-of-focus haze and stronger vignetting, hence lower SNR.

    Returns
    -------
    SimulatedField
        ``image`` ``(t, c, y, x)`` uint16, ``nuclei`` and ``cyto`` ``(t, y, x)`` uint32, the
        per-cell ground truth ``truth`` (lineage as ``parent_label``, true translocation
        ratios) and ``lineage``, plus metadata.

    Raises
    ------
    ValueError
        Unknown cell line or mode, ``size < 64``, ``timepoints < 1`` or a negative seed.
    TypeError
        Arguments of the wrong type.

    Examples
    --------
    >>> f = simulate_field("CL1", size=64, timepoints=2, seed=1)
    >>> f.image.shape, f.image.dtype, f.cyto.shape, f.cyto.dtype
    ((2, 4, 64, 64), dtype('uint16'), (2, 64, 64), dtype('uint32'))
    >>> bool(np.all((f.nuclei == 0) | (f.nuclei == f.cyto)))
    True
    >>> g = simulate_field("CL1", size=64, timepoints=2, seed=1)
    >>> bool(np.array_equal(f.image, g.image))
    True
    >>> list(f.truth.columns)
    ['label', 't', 'parent_label', 'translocation-reporter__true_nc_ratio']
    >>> len(f.truth) == sum(len(np.unique(c)) - 1 for c in f.cyto)
    True
    """
    cell_line = _resolve_preset(preset)
    shape = _resolve_size(size)
    n_t = _check_int("timepoints", timepoints, 1)
    ss = _resolve_seed(seed)
    imaging = _resolve_mode(mode)
    px = imaging.pixel_size_um

    pop = _Population(cell_line, shape, px, _rng(ss, 0))
    tile = _make_tile(_rng(ss, 1), pop.r_med)
    f2 = _freq2(*shape)
    otf = (1.0 - imaging.haze_weight) * _gauss_tf(f2, max(imaging.psf_sigma_um / px, 0.5))
    otf += imaging.haze_weight * _gauss_tf(f2, imaging.haze_sigma_um / px)
    otf = otf.astype(np.float32)
    yy = (np.arange(shape[0], dtype=np.float32) - (shape[0] - 1) / 2) / (max(shape) / 2)
    xx = (np.arange(shape[1], dtype=np.float32) - (shape[1] - 1) / 2) / (max(shape) / 2)
    vignette = (1.0 - imaging.vignetting * 0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2)).astype(
        np.float32
    )

    n_c = len(cell_line.channels)
    image = np.empty((n_t, n_c, *shape), dtype=np.uint16)
    nuclei = np.empty((n_t, *shape), dtype=np.uint32)
    cyto = np.empty((n_t, *shape), dtype=np.uint32)
    truth_parts: list[dict[str, np.ndarray]] = []
    for t in range(n_t):
        if t > 0:
            pop.step(_rng(ss, 2, t), TIME_INTERVAL_H)
        geo = _render_geometry(pop.cells, shape, tile)
        tex = _Textures(_rng(ss, 3, t), f2, px, shape)
        noise_rngs = [_rng(ss, 4, t, j) for j in range(n_c)]
        image[t] = _render_timepoint(
            pop, geo, t * TIME_INTERVAL_H, tex, imaging, otf, vignette, noise_rngs
        )
        nuclei[t] = geo.nuclei
        cyto[t] = geo.cyto
        truth_parts.append(_truth_rows(pop, geo.cyto, t, t * TIME_INTERVAL_H))
    truth = _truth_frame(truth_parts, _truth_columns(cell_line))
    daughters = np.unique(truth["label"][truth["parent_label"] > 0]).tolist()
    return SimulatedField(
        image=image,
        nuclei=nuclei,
        cyto=cyto,
        channel_names=cell_line.channel_names,
        pixel_size_um=px,
        time_interval_h=TIME_INTERVAL_H,
        cell_line=cell_line.name,
        mode=mode,
        localizations=tuple(loc.value for loc in cell_line.localizations),
        truth=truth,
        lineage={d: pop.parents[d] for d in daughters},
    )


def _row_name(i: int) -> str:
    """Spreadsheet-style row name: 0 -> 'A', 25 -> 'Z', 26 -> 'AA'."""
    name = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        name = chr(ord("A") + rem) + name
    return name


#: Keys in front of the plate-level dataset's rows and their types.
_PLATE_DTYPES = {"well": np.str_, "row": np.str_, "column": np.str_, "field": np.int32}


def _arrow(df: pd.DataFrame) -> pa.Table:
    """Return truth rows as an Arrow table with the full schema (also for zero rows)."""
    import pyarrow as pa

    types = {**_PLATE_DTYPES, **_TRUTH_DTYPES}
    schema = pa.schema(
        [(c, pa.from_numpy_dtype(np.dtype(types.get(c, np.float64)))) for c in df.columns]
    )
    return pa.Table.from_pandas(df, schema=schema, preserve_index=False)


def _write_truth(
    plate: str, info: ImageInfo, where: tuple[str, str, int], truth: pd.DataFrame, n_t: int
) -> None:
    """Write a field's truth as its feature table and into the plate-level dataset.

    ``where`` is the field's ``(row, column, field index)``; every timepoint gets a part,
    also one without cells.
    """
    from structfree_dask.io import (
        create_feature_table,
        join,
        plate_dataset,
        plate_part_name,
        write_parquet,
        write_table_part,
    )

    row, col, fi = where
    ratios = [c for c in truth.columns if c not in _TRUTH_KEYS]
    create_feature_table(
        info, TRUTH_TABLE, reference_label="gt_cyto", measurement_columns=ratios,
        metadata_columns=["t", "parent_label"],
    )
    dataset = plate_dataset(plate, TRUTH_TABLE)
    keys = {"well": f"{row}{col}", "row": row, "column": col, "field": fi}
    for t in range(n_t):
        rows = truth[truth["t"] == t].reset_index(drop=True)
        write_table_part(info, TRUTH_TABLE, t, _arrow(rows))
        keyed = rows.assign(**keys)[[*keys, *rows.columns]]
        write_parquet(_arrow(keyed), join(dataset, plate_part_name(info.path, t)))


def simulate_plate(
    path: str | os.PathLike[str],
    *,
    cell_line: CellLinePreset | str = "CL1",
    rows: int = 1,
    cols: int = 1,
    fields: int = 1,
    timepoints: int = 1,
    size: int | tuple[int, int] = 512,
    seed: int = 0,
    ngff_version: str = "0.4",
    mode: str = "confocal",
) -> pathlib.Path | str:
    """Simulate a plate and write it as an OME-Zarr HCS plate with ground-truth labels.

    Every field is simulated with :func:`simulate_field` using its own seed derived from
    ``(seed, row, col, field)`` and written with :func:`structfree_dask.io.create_plate`;
    ground truth goes to the label images ``gt_nuclei`` and ``gt_cyto``, and the field's
    :attr:`SimulatedField.truth` to the feature table ``gt_truth``
    (:data:`structfree_dask.config.TRUTH_TABLE`, ``<field>/tables/gt_truth``, rows keyed by
    ``gt_cyto`` labels, one Parquet part per timepoint) and to the plate-level dataset
    ``<plate>/measurements/gt_truth/`` (the same rows with ``well``, ``row``, ``column`` and
    ``field`` in front; see :func:`structfree_dask.io.read_plate_dataset`).

    Parameters
    ----------
    path : str or os.PathLike
        Where to create the plate: a new local ``.zarr`` folder, or a URL such as
        ``s3://bucket/plate.zarr``.
    cell_line : CellLinePreset or str
        The cell line, or the key of one in :data:`PRESETS`.
    rows, cols : int
        Plate rows (named ``"A"``, ``"B"``, ...) and columns (named ``"1"``, ``"2"``, ...).
    fields : int
        Fields per well (indexed ``0 .. fields - 1``).
    timepoints : int
        Timepoints per field.
    size : int or tuple of int
        Field size in pixels (see :func:`simulate_field`).
    seed : int
        Plate seed (non-negative).
    ngff_version : str
        OME-NGFF version passed to the plate writer.
    mode : {"confocal", "widefield"}
        Imaging mode (see :func:`simulate_field`).

    Returns
    -------
    pathlib.Path or str
        The plate: a Path for a local plate, the URL for an object store.

    Raises
    ------
    ValueError
        For invalid counts, seeds, cell lines or modes (see :func:`simulate_field`).
    TypeError
        Arguments of the wrong type.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> out = simulate_plate(pathlib.Path(tmp) / "plate.zarr", rows=1, cols=2, size=64)
    >>> out.name
    'plate.zarr'
    >>> from structfree_dask.io import open_plate, read_feature_table, read_plate_dataset
    >>> truth = read_feature_table(open_plate(out).field("A/2/0"), "gt_truth")
    >>> list(truth.columns)
    ['label', 't', 'parent_label', 'translocation-reporter__true_nc_ratio']
    >>> read_plate_dataset(str(out), "gt_truth")["well"].unique().tolist()
    ['A1', 'A2']
    """
    preset = _resolve_preset(cell_line)
    n_rows = _check_int("rows", rows, 1)
    n_cols = _check_int("cols", cols, 1)
    n_fields = _check_int("fields", fields, 1)
    n_t = _check_int("timepoints", timepoints, 1)
    _resolve_size(size)
    _resolve_mode(mode)
    root = np.random.SeedSequence(_check_int("seed", seed, 0))

    from structfree_dask.io import as_location, create_plate

    out = as_location(path)
    row_names = [_row_name(i) for i in range(n_rows)]
    col_names = [str(j + 1) for j in range(n_cols)]
    total = n_rows * n_cols * n_fields
    done = 0
    with create_plate(
        out, rows=row_names, columns=col_names, ngff_version=ngff_version,
        name=f"{preset.name} simulated",
    ) as plate:
        for ri, row in enumerate(row_names):
            for ci, col in enumerate(col_names):
                for fi in range(n_fields):
                    field_seed = np.random.SeedSequence(
                        entropy=root.entropy, spawn_key=(ri, ci, fi)
                    )
                    sim = simulate_field(
                        preset, size=size, timepoints=n_t, seed=field_seed, mode=mode
                    )
                    info = plate.write_field(
                        row, col, fi, sim.image,
                        axes="tcyx",
                        channel_names=list(sim.channel_names),
                        pixel_size_um=(sim.pixel_size_um, sim.pixel_size_um),
                        time_interval_h=sim.time_interval_h,
                        labels={"gt_nuclei": sim.nuclei, "gt_cyto": sim.cyto},
                    )
                    _write_truth(str(out), info, (row, col, fi), sim.truth, n_t)
                    done += 1
                    logger.info(
                        "simulated %s field %s%s/%d (%d/%d): %d cells at t=0",
                        preset.name, row, col, fi, done, total,
                        int(np.count_nonzero(np.unique(sim.cyto[0]))),
                    )
    return out
