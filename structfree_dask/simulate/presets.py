"""Reporter channels and cell-line presets of the simulator.

:class:`Localization` (where a reporter sits and whether it changes over time),
:class:`ChannelSpec` (one reporter channel), :class:`CellLinePreset` (morphology, dynamics
and channels of a cell line) and the five presets :data:`PRESETS` (``"CL1"`` .. ``"CL5"``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["PRESETS", "CellLinePreset", "ChannelSpec", "Localization"]


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
