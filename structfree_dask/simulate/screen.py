"""Simulated screens: a plate map's treatments as a dose-response of the translocation ratio.

With a plate map (:func:`structfree_dask.simulate.simulate_plate`'s ``plate_map``) each
well's cells get the translocation reporter's nucleus / cytoplasm ratio from the well's
treatment instead of the cell line's own spontaneous response. The well's model ratio at
``t_h`` hours is

    ratio(t) = baseline + window x effect x ramp(t)

where ``baseline`` and ``baseline + window`` are the reporter's ``nc_ratio_start`` and
``nc_ratio_end`` (:class:`~structfree_dask.simulate.presets.ChannelSpec`), ``ramp(t)``
rises linearly from 0 at the onset ``onset_h`` to 1 at ``onset_h + ramp_h`` (and stays
there), and ``effect`` is 0 for a ``negative`` control (and a well without a compound or at
dose 0), 1 for a ``positive`` control and, for a compound at dose ``d``, the Hill curve
:func:`hill` ``d^h / (d^h + EC50^h)``. Each cell's ratio is the model's times
``exp(cell_sd x z)`` with ``z`` a standard normal drawn once per cell: the median over a
well's cells follows the model (the mean a little above it, by ``exp(cell_sd^2 / 2)``).

Each compound's EC50, Hill slope and onset are drawn from the plate's seed
(:func:`draw_compounds`): the EC50 log-uniformly in the middle half (in log10) of the
compound's doses above 0, the slope uniformly in [1, 2.5] and the onset uniformly in
[0.15, 0.4] x the plate's duration; the positive controls' onset is
:data:`CONTROL_ONSET_STEPS` timepoints, and every ramp lasts :data:`RAMP_STEPS` timepoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from .options import TIME_INTERVAL_H
from .presets import CellLinePreset, ChannelSpec, Localization

__all__ = ["CELL_SD", "CONTROL_ONSET_STEPS", "RAMP_STEPS", "CellNoise", "WellResponse",
           "draw_compounds", "hill", "ramp", "translocation_channel", "well_responses",
           "well_truth"]

#: Standard deviation of the per-cell log ratio around the well's model ratio.
CELL_SD = 0.2
#: Timepoints from the first to the positive controls' onset.
CONTROL_ONSET_STEPS = 1
#: Timepoints the response takes to rise from its onset to its full effect.
RAMP_STEPS = 2


def hill(dose: Any, ec50: float, slope: float) -> Any:
    """Return the fraction of the full effect at ``dose``: ``d^h / (d^h + EC50^h)``.

    Examples
    --------
    >>> hill(1.0, 1.0, 2.0), hill(0.0, 1.0, 2.0), round(hill(10.0, 1.0, 1.0), 3)
    (0.5, 0.0, 0.909)
    """
    d = np.asarray(dose, dtype=float)
    out = 1.0 / (1.0 + (ec50 / np.where(d > 0, d, np.nan)) ** slope)
    out = np.where(d > 0, out, 0.0)
    return float(out) if out.ndim == 0 else out


def ramp(t_h: Any, onset_h: float, ramp_h: float) -> Any:
    """Return the response's progress at ``t_h``: 0 before the onset, 1 from ``onset + ramp``.

    Examples
    --------
    >>> [ramp(t, 6.0, 6.0) for t in (0.0, 6.0, 9.0, 12.0, 30.0)]
    [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    out = np.clip((np.asarray(t_h, dtype=float) - onset_h) / max(ramp_h, 1e-9), 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def translocation_channel(preset: CellLinePreset) -> ChannelSpec:
    """Return the cell line's (first) translocation reporter.

    Raises
    ------
    ValueError
        The cell line has none, or its ratio does not change (no window).
    """
    for spec in preset.channels:
        if spec.localization is Localization.TRANSLOCATION:
            if spec.nc_ratio_end == spec.nc_ratio_start:
                raise ValueError(f"plate_map: the translocation reporter {spec.name!r} of "
                                 f"{preset.name} has no window (its ratio stays "
                                 f"{spec.nc_ratio_start})")
            return spec
    raise ValueError(f"plate_map: cell line {preset.name} has no translocation reporter "
                     f"(channels: {', '.join(preset.channel_names)}); a simulated screen "
                     "needs one")


class CellNoise:
    """Standard normals per cell ID, drawn in ID order from one generator (as IDs appear)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._z = np.empty(0, dtype=np.float64)

    def z(self, ids: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
        """Return the draws of ``ids`` (the same ID always gets the same value)."""
        top = int(ids.max(initial=-1)) + 1
        if top > len(self._z):
            self._z = np.concatenate([self._z, self._rng.standard_normal(top - len(self._z))])
        return self._z[ids]


@dataclass(frozen=True)
class WellResponse:
    """A well's treatment as the translocation ratio of its cells (see the module).

    Attributes
    ----------
    effect : float
        Fraction of the window at full onset: 0 (negative), 1 (positive), Hill(dose).
    onset_h, ramp_h : float
        Hours to the onset; hours from the onset to the full effect.
    cell_sd : float
        Standard deviation of the per-cell log ratio.
    """

    effect: float
    onset_h: float
    ramp_h: float
    cell_sd: float = CELL_SD

    def model_ratio(self, spec: ChannelSpec, t_h: Any) -> Any:
        """Return the well's model ratio (the median over its cells) at ``t_h`` hours."""
        window = spec.nc_ratio_end - spec.nc_ratio_start
        return spec.nc_ratio_start + window * self.effect * ramp(t_h, self.onset_h, self.ramp_h)

    def progress(self, spec: ChannelSpec, z: npt.NDArray[np.float64], t_h: float
                 ) -> npt.NDArray[np.float32]:
        """Return the cells' response progress whose translocation ratio is their ratio.

        ``z`` is each cell's standard normal (:class:`CellNoise`); the progress ``p`` is
        the one at which :func:`~structfree_dask.simulate.render.translocation_ratio`
        gives ``model_ratio(t) x exp(cell_sd x z)`` (it may lie outside [0, 1]).
        """
        ratio = self.model_ratio(spec, t_h) * np.exp(self.cell_sd * z)
        p = np.log(ratio / spec.nc_ratio_start) / np.log(spec.nc_ratio_end / spec.nc_ratio_start)
        return p.astype(np.float32)


def draw_compounds(plate_map: pd.DataFrame, rng: np.random.Generator, timepoints: int
                   ) -> pd.DataFrame:
    """Draw each compound's true EC50, Hill slope and onset (see the module).

    Parameters
    ----------
    plate_map : pandas.DataFrame
        A parsed plate map (:func:`structfree_dask.io.parse_plate_map`).
    rng : numpy.random.Generator
        The draws' generator (compounds in order of first appearance).
    timepoints : int
        Timepoints of the plate (the onsets lie within its duration).

    Returns
    -------
    pandas.DataFrame
        One row per compound with a dose > 0: ``compound``, ``dose_unit``, ``dose_min``,
        ``dose_max``, ``n_doses``, ``ec50``, ``log10_ec50``, ``hill``, ``onset_h``,
        ``ramp_h``.

    Examples
    --------
    >>> pm = pd.DataFrame({"compound": ["X"] * 3, "dose": [0.1, 1.0, 10.0],
    ...                    "dose_unit": ["uM"] * 3})
    >>> row = draw_compounds(pm, np.random.default_rng(0), 12).iloc[0]
    >>> bool(0.1 * 10 ** 0.5 <= row["ec50"] <= 10 / 10 ** 0.5), float(row["ramp_h"])
    (True, 6.0)
    """
    duration = max(timepoints - 1, 1) * TIME_INTERVAL_H
    rows = []
    dosed = plate_map[plate_map["compound"].notna() & (plate_map["dose"] > 0)]
    for compound, group in dosed.groupby("compound", sort=False):
        lo, hi = np.log10(group["dose"].min()), np.log10(group["dose"].max())
        span = hi - lo
        log_ec50 = float(rng.uniform(lo + span / 4, hi - span / 4))
        rows.append({"compound": compound, "dose_unit": group["dose_unit"].iloc[0],
                     "dose_min": float(group["dose"].min()),
                     "dose_max": float(group["dose"].max()),
                     "n_doses": int(group["dose"].nunique()),
                     "ec50": 10.0 ** log_ec50, "log10_ec50": log_ec50,
                     "hill": float(rng.uniform(1.0, 2.5)),
                     "onset_h": float(rng.uniform(0.15, 0.4) * duration),
                     "ramp_h": RAMP_STEPS * TIME_INTERVAL_H})
    columns = ["compound", "dose_unit", "dose_min", "dose_max", "n_doses", "ec50",
               "log10_ec50", "hill", "onset_h", "ramp_h"]
    return pd.DataFrame(rows, columns=columns)


def well_responses(plate_map: pd.DataFrame, compounds: pd.DataFrame
                   ) -> dict[str, WellResponse]:
    """Return each well's :class:`WellResponse` (keyed by ``well``, e.g. ``"A1"``).

    Examples
    --------
    >>> pm = pd.DataFrame({"well": ["A1", "A2", "A3"], "compound": [None, None, "X"],
    ...                    "dose": [np.nan, np.nan, 1.0], "role": ["negative", "positive",
    ...                    "sample"]})
    >>> cp = pd.DataFrame({"compound": ["X"], "ec50": [1.0], "hill": [2.0],
    ...                    "onset_h": [9.0], "ramp_h": [6.0]})
    >>> {w: (r.effect, r.onset_h) for w, r in well_responses(pm, cp).items()}
    {'A1': (0.0, 3.0), 'A2': (1.0, 3.0), 'A3': (0.5, 9.0)}
    """
    by_compound = compounds.set_index("compound")
    control_onset = CONTROL_ONSET_STEPS * TIME_INTERVAL_H
    out = {}
    for rec in plate_map.to_dict("records"):
        compound, dose = rec.get("compound"), rec.get("dose")
        if rec["role"] == "positive":
            out[rec["well"]] = WellResponse(1.0, control_onset, RAMP_STEPS * TIME_INTERVAL_H)
        elif rec["role"] == "sample" and compound in by_compound.index and dose == dose \
                and dose > 0:
            c = by_compound.loc[compound]
            out[rec["well"]] = WellResponse(float(hill(dose, c["ec50"], c["hill"])),
                                            float(c["onset_h"]), float(c["ramp_h"]))
        else:
            out[rec["well"]] = WellResponse(0.0, control_onset, RAMP_STEPS * TIME_INTERVAL_H)
    return out


def well_truth(plate_map: pd.DataFrame, responses: dict[str, WellResponse],
               spec: ChannelSpec, ratios: dict[str, Sequence[pd.DataFrame]],
               timepoints: int, column: str) -> pd.DataFrame:
    """Return the true well x timepoint rows: model ratio and the cells' true ratios.

    ``ratios`` maps a well to its fields' truth tables (``t`` and ``column``, the true
    per-cell ratio). Columns: ``well``, ``row``, ``column``, ``t``, ``condition``,
    ``compound``, ``dose``, ``dose_unit``, ``role``, ``effect``, ``model_ratio``,
    ``n_cells``, ``median``, ``mean`` (of the cells' true ratios, all fields).
    """
    rows = []
    for rec in plate_map.to_dict("records"):
        response = responses[rec["well"]]
        parts = [p[["t", column]] for p in ratios.get(rec["well"], [])]
        cells = pd.concat(parts) if parts else pd.DataFrame({"t": [], column: []})
        for t in range(timepoints):
            values = cells.loc[cells["t"] == t, column].to_numpy(dtype=float)
            rows.append({**{k: rec[k] for k in ("well", "row", "column", "condition",
                                                "compound", "dose", "dose_unit", "role")},
                         "t": t, "effect": response.effect,
                         "model_ratio": float(response.model_ratio(spec, t * TIME_INTERVAL_H)),
                         "n_cells": int(len(values)),
                         "median": float(np.median(values)) if len(values) else np.nan,
                         "mean": float(np.mean(values)) if len(values) else np.nan})
    order = ["well", "row", "column", "t", "condition", "compound", "dose", "dose_unit",
             "role", "effect", "model_ratio", "n_cells", "median", "mean"]
    return pd.DataFrame(rows, columns=order)
