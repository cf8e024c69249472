"""Screen tables from per-cell rows: wells, conditions, Z' and dose-response fits (pure).

Every table is long: one row per (..., ``t``, ``readout``), where ``readout`` names the
per-cell column summarized (e.g. ``translocation-reporter__nc_ratio``). Values that are
not finite (a cell without cytoplasm has no ratio) are left out of every statistic.

* :func:`well_stats`: per well x timepoint x readout, from the cells: ``n_cells`` (rows),
  ``n`` (cells with a finite value), ``median``, ``q25``, ``q75``, ``mean``, ``sd``.
* :func:`condition_stats`: per condition x timepoint x readout, over its wells' medians:
  ``n_wells``, ``n_cells``, ``mean``, ``sd``, ``median``.
* :func:`z_prime`: per timepoint x readout, from the control wells' medians (each well
  one replicate): Z' = 1 - 3 (sd_pos + sd_neg) / abs(mean_pos - mean_neg) (Zhang et
  al. 1999), sample standard deviations (ddof 1).
* :func:`dose_response`: per compound x timepoint x readout, a four-parameter logistic
  (:func:`four_pl`) fitted to its wells' medians against log10 dose with SciPy's
  ``curve_fit``, with 95 % confidence intervals; ``fit_error`` says why a fit failed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CONDITION_COLUMNS", "DOSE_RESPONSE_COLUMNS", "MIN_DOSES", "WELL_COLUMNS",
           "ZPRIME_COLUMNS", "condition_stats", "dose_response", "fit_four_pl", "four_pl",
           "well_stats", "z_prime", "zprime_value"]

_KEYS = ["well", "row", "column"]
#: Columns of :func:`well_stats` (the plate map's columns follow in the stored table).
WELL_COLUMNS = (*_KEYS, "t", "n_cells", "readout", "n", "median", "q25", "q75", "mean", "sd")
_TREATMENT = ["compound", "dose", "dose_unit", "role"]
#: Columns of :func:`condition_stats`.
CONDITION_COLUMNS = ("condition", *_TREATMENT, "t", "readout", "n_wells", "n_cells", "mean",
                     "sd", "median")
#: Columns of :func:`z_prime`.
ZPRIME_COLUMNS = ("t", "readout", "n_positive", "mean_positive", "sd_positive", "n_negative",
                  "mean_negative", "sd_negative", "z_prime", "zprime_error")
_PARAMS = ("bottom", "top", "log10_ec50", "hill")
#: Columns of :func:`dose_response` (``fit_four_pl``'s keys after the group's).
DOSE_RESPONSE_COLUMNS = (
    "compound", "dose_unit", "t", "readout", "n_wells", "n_doses", "dose_min", "dose_max",
    *(f"{p}{s}" for p in ("bottom", "top", "ec50", "log10_ec50", "hill")
      for s in ("", "_ci_low", "_ci_high")),
    "r_squared", "p_constant", "ec50_in_range", "fit_error")
#: Fewest distinct doses a four-parameter fit takes.
MIN_DOSES = 4
#: Largest p-value of the F-test against a constant response for a dose effect.
FLAT_P = 0.05
#: Most evaluations of the curve in one fit (Levenberg-Marquardt, from the grid's best).
MAX_EVALUATIONS = 5000


def _finite(values: Any) -> np.ndarray:
    out = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return out[np.isfinite(out)]


def well_stats(cells: pd.DataFrame, readouts: Sequence[str],
               keys: pd.DataFrame | None = None) -> pd.DataFrame:
    """Summarize per-cell readouts per well, timepoint and readout.

    Parameters
    ----------
    cells : pandas.DataFrame
        Per-cell rows with ``well``, ``row``, ``column``, ``t`` and the readout columns.
    readouts : sequence of str
        The columns summarized.
    keys : pandas.DataFrame, optional
        The (``well``, ``row``, ``column``, ``t``) to report, rows or not (a timepoint
        without cells: ``n_cells`` 0 and NaN statistics); default those of ``cells``.

    Returns
    -------
    pandas.DataFrame
        :data:`WELL_COLUMNS`, ordered by the keys' order, then readout.

    Examples
    --------
    >>> cells = pd.DataFrame({"well": "A1", "row": "A", "column": "1", "t": [0, 0, 0],
    ...                       "r": [1.0, 2.0, np.inf]})
    >>> well_stats(cells, ["r"])[["n_cells", "n", "median", "sd"]]
       n_cells  n  median        sd
    0        3  2     1.5  0.707107
    """
    if keys is None:
        keys = cells[[*_KEYS, "t"]].drop_duplicates()
    keys = keys[[*_KEYS, "t"]].astype({"well": str, "row": str, "column": str, "t": "int64"})
    keys = keys.drop_duplicates().reset_index(drop=True)
    idx = [*_KEYS, "t"]
    base = cells[[*idx, *readouts]].astype({"well": str, "row": str, "column": str,
                                            "t": "int64"})
    n_cells = base.groupby(idx, sort=False).size().rename("n_cells")
    long = base.melt(id_vars=idx, value_vars=list(readouts), var_name="readout",
                     value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce").astype(float).replace(
        [np.inf, -np.inf], np.nan)
    g = long.groupby([*idx, "readout"], sort=False)["value"]
    stats = pd.DataFrame({"n": g.count(), "median": g.median(), "q25": g.quantile(0.25),
                          "q75": g.quantile(0.75), "mean": g.mean(), "sd": g.std(ddof=1)})
    grid = keys.merge(pd.DataFrame({"readout": list(readouts)}), how="cross")
    out = grid.merge(n_cells.reset_index(), on=idx, how="left")
    out = out.merge(stats.reset_index(), on=[*idx, "readout"], how="left")
    out["n_cells"] = out["n_cells"].fillna(0).astype("int64")
    out["n"] = out["n"].fillna(0).astype("int64")
    return out[list(WELL_COLUMNS)]


def condition_stats(wells: pd.DataFrame) -> pd.DataFrame:
    """Summarize the wells' medians per condition, timepoint and readout.

    Parameters
    ----------
    wells : pandas.DataFrame
        :func:`well_stats` rows with the plate map's columns (``condition``,
        ``compound``, ``dose``, ``dose_unit``, ``role``).

    Returns
    -------
    pandas.DataFrame
        :data:`CONDITION_COLUMNS`: ``n_wells`` (wells with a median), ``n_cells`` (cells
        of all its wells), ``mean``, ``sd`` and ``median`` of the wells' medians; in the
        order conditions first appear.

    Examples
    --------
    >>> wells = pd.DataFrame({"condition": "c", "compound": None, "dose": np.nan,
    ...                       "dose_unit": None, "role": "sample", "t": 0, "readout": "r",
    ...                       "n_cells": [10, 20], "median": [1.0, 3.0]})
    >>> condition_stats(wells)[["condition", "n_wells", "n_cells", "mean", "median"]]
      condition  n_wells  n_cells  mean  median
    0         c        2       30   2.0     2.0
    """
    group = ["condition", "t", "readout"]
    g = wells.groupby(group, sort=False)
    stats = pd.DataFrame({"n_wells": g["median"].count(), "n_cells": g["n_cells"].sum(),
                          "mean": g["median"].mean(), "sd": g["median"].std(ddof=1),
                          "median": g["median"].median()}).reset_index()
    treatment = wells.drop_duplicates("condition")[["condition", *_TREATMENT]]
    out = stats.merge(treatment, on="condition", how="left")
    out["n_cells"] = out["n_cells"].astype("int64")
    return out[list(CONDITION_COLUMNS)]


def zprime_value(positive: Sequence[float], negative: Sequence[float]
                 ) -> tuple[float, str | None]:
    """Z' of two sets of control values: ``(value, None)`` or ``(NaN, why not)``.

    Z' = 1 - 3 (sd_pos + sd_neg) / abs(mean_pos - mean_neg), with sample standard
    deviations (ddof 1); non-finite values are left out.

    Examples
    --------
    >>> zprime_value([9.5, 10.0, 10.5], [0.5, 1.0, 1.5])
    (0.6666666666666667, None)
    >>> zprime_value([10.0], [1.0, 2.0])[1]
    'needs at least 2 positive and 2 negative control wells with a value; got 1 positive, ...'

    """
    pos, neg = _finite(positive), _finite(negative)
    if len(pos) < 2 or len(neg) < 2:
        return math.nan, ("needs at least 2 positive and 2 negative control wells with a "
                          f"value; got {len(pos)} positive, {len(neg)} negative")
    gap = abs(float(pos.mean()) - float(neg.mean()))
    if gap == 0:
        return math.nan, "the positive and negative controls have the same mean"
    return 1.0 - 3.0 * (float(pos.std(ddof=1)) + float(neg.std(ddof=1))) / gap, None


def z_prime(wells: pd.DataFrame) -> pd.DataFrame:
    """Z' per timepoint and readout, from the control wells' medians.

    Parameters
    ----------
    wells : pandas.DataFrame
        :func:`well_stats` rows with the plate map's ``role``.

    Returns
    -------
    pandas.DataFrame
        :data:`ZPRIME_COLUMNS` (:func:`zprime_value`; ``zprime_error`` says why Z' is
        NaN, else it is missing).
    """
    rows = []
    for (t, readout), group in wells.groupby(["t", "readout"], sort=True):
        pos = _finite(group.loc[group["role"] == "positive", "median"])
        neg = _finite(group.loc[group["role"] == "negative", "median"])
        value, error = zprime_value(pos, neg)
        rows.append({"t": t, "readout": readout, "n_positive": len(pos),
                     "mean_positive": pos.mean() if len(pos) else math.nan,
                     "sd_positive": pos.std(ddof=1) if len(pos) > 1 else math.nan,
                     "n_negative": len(neg),
                     "mean_negative": neg.mean() if len(neg) else math.nan,
                     "sd_negative": neg.std(ddof=1) if len(neg) > 1 else math.nan,
                     "z_prime": value, "zprime_error": error})
    return pd.DataFrame(rows, columns=list(ZPRIME_COLUMNS)).astype(
        {"n_positive": "int64", "n_negative": "int64", "zprime_error": object})


def four_pl(x: Any, bottom: float, top: float, log10_ec50: float, hill: float) -> Any:
    """Return the four-parameter logistic at ``x`` = log10 dose.

    ``bottom`` is the response without compound (low doses), ``top`` the response at
    saturating doses (below ``bottom`` for an inhibitor), ``hill`` > 0 the slope.

    Examples
    --------
    >>> float(four_pl(-6.0, 1.0, 3.0, -6.0, 1.0))
    2.0
    """
    with np.errstate(over="ignore"):  # far from the EC50 the power is inf: the curve's end
        return bottom + (top - bottom) / (1.0 + 10.0 ** ((log10_ec50 - np.asarray(x)) * hill))


def _grid_start(x: np.ndarray, y: np.ndarray) -> list[float]:
    """Return the best (bottom, top, log10 EC50, Hill) on a grid, for the fit to start from.

    EC50 from a decade below to a decade above the doses, Hill slopes from 0.2 to 8; at
    each point bottom and top are the least-squares solution (the curve is linear in
    them), so the whole grid is one vectorized computation.
    """
    c, h = np.meshgrid(np.linspace(x.min() - 1, x.max() + 1, 61), np.geomspace(0.2, 8, 25),
                       indexing="ij")
    with np.errstate(over="ignore"):
        s = 1.0 / (1.0 + 10.0 ** ((c[..., None] - x) * h[..., None]))
    n, s1, s2, sy = len(x), s.sum(-1), (s * s).sum(-1), (s * y).sum(-1)
    det = n * s2 - s1 * s1
    with np.errstate(divide="ignore", invalid="ignore"):
        bottom = (s2 * y.sum() - s1 * sy) / det
        span = (n * sy - s1 * y.sum()) / det
        rss = ((y - (bottom[..., None] + span[..., None] * s)) ** 2).sum(-1)
    i = np.unravel_index(np.nanargmin(np.where(np.isfinite(rss), rss, np.nan)), rss.shape)
    return [float(bottom[i]), float(bottom[i] + span[i]), float(c[i]), float(h[i])]


def _canonical(popt: np.ndarray, pcov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the same curve with a Hill slope >= 0 (bottom and top swapped, slope negated)."""
    if popt[3] >= 0:
        return popt, pcov
    j = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, -1]], dtype=float)
    return j @ popt, j @ pcov @ j.T


def _pow10(x: float) -> float:
    """10 ** x, infinite (not an overflow) beyond the floats."""
    with np.errstate(over="ignore"):
        return float(np.power(10.0, x))


def _empty_fit() -> dict[str, Any]:
    out: dict[str, Any] = {c: math.nan for c in DOSE_RESPONSE_COLUMNS[8:-2]}
    out.update(ec50_in_range=None, fit_error=None)
    return out


def fit_four_pl(dose: Sequence[float], response: Sequence[float]) -> dict[str, Any]:
    """Fit :func:`four_pl` to responses against log10 dose (SciPy ``curve_fit``).

    Points whose dose is not > 0 or whose response is not finite are left out. The fit
    starts from the best point of a grid of EC50s and Hill slopes (bottom and top solved
    by least squares at each) and is refined by Levenberg-Marquardt (``curve_fit``'s
    default). The 95 % confidence intervals are the estimates +- t(0.975, n - 4) standard
    errors from the covariance of the fit (on log10 EC50; the EC50's interval is its power
    of 10).

    Parameters
    ----------
    dose, response : sequence of float
        One point per well.

    Returns
    -------
    dict
        ``n_wells``, ``n_doses``, ``dose_min``, ``dose_max``; ``bottom``, ``top``,
        ``ec50``, ``log10_ec50`` and ``hill`` with ``_ci_low`` / ``_ci_high``;
        ``r_squared``; ``p_constant`` (F-test of the fit against a constant response);
        ``ec50_in_range`` (within the doses tested); ``fit_error``: None, or why the fit
        failed or is not to be trusted (fewer than :data:`MIN_DOSES` doses, a flat
        response, no convergence, no degrees of freedom or covariance left for the
        intervals). Parameters are NaN where no fit converged.

    Examples
    --------
    >>> dose = np.repeat(10.0 ** np.arange(-9, -4.5, 0.5), 2)
    >>> fit = fit_four_pl(dose, four_pl(np.log10(dose), 1.0, 3.0, -7.0, 1.2))
    >>> round(fit["ec50"] * 1e7, 3), round(fit["hill"], 3), fit["fit_error"]
    (1.0, 1.2, None)
    >>> fit_four_pl([1, 2, 3], [1, 2, 3])["fit_error"]
    'needs at least 4 distinct doses > 0 with a value; got 3'
    """
    from scipy import optimize, stats

    d = np.asarray(dose, dtype=float)
    y = np.asarray(response, dtype=float)
    ok = np.isfinite(d) & (d > 0) & np.isfinite(y)
    x, y = np.log10(d[ok]), y[ok]
    out: dict[str, Any] = {"n_wells": int(len(x)), "n_doses": int(len(np.unique(x))),
                           "dose_min": float(d[ok].min()) if len(x) else math.nan,
                           "dose_max": float(d[ok].max()) if len(x) else math.nan,
                           **_empty_fit()}
    if out["n_doses"] < MIN_DOSES:
        out["fit_error"] = (f"needs at least {MIN_DOSES} distinct doses > 0 with a value; "
                            f"got {out['n_doses']}")
        return out
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 1e-24 * max(1.0, float(np.abs(y).max()) ** 2):
        out["fit_error"] = f"flat response: every well has the value {y[0]:.6g}"
        return out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a covariance not estimated: checked below
            popt, pcov = optimize.curve_fit(four_pl, x, y, p0=_grid_start(x, y),
                                            maxfev=MAX_EVALUATIONS)
    except (RuntimeError, ValueError, optimize.OptimizeWarning) as err:
        out["fit_error"] = f"no convergence: {' '.join(str(err).split())}"
        return out
    popt, pcov = _canonical(popt, pcov)
    rss = float(((y - four_pl(x, *popt)) ** 2).sum())
    for name, value in zip(_PARAMS, popt, strict=True):
        out[name] = float(value)
    out["ec50"] = _pow10(out["log10_ec50"])
    out["ec50_in_range"] = bool(out["dose_min"] <= out["ec50"] <= out["dose_max"])
    out["r_squared"] = 1.0 - rss / total
    dof = len(x) - len(_PARAMS)
    if dof < 1:
        out["fit_error"] = (f"no degrees of freedom left: {len(x)} wells for 4 parameters "
                            "(no confidence intervals; give replicates or more doses)")
        return out
    f = ((total - rss) / (len(_PARAMS) - 1)) / (rss / dof) if rss > 0 else math.inf
    out["p_constant"] = float(stats.f.sf(f, len(_PARAMS) - 1, dof))
    se = np.sqrt(np.diag(pcov))
    if not np.all(np.isfinite(se)):
        out["fit_error"] = ("the covariance of the fit could not be estimated (a parameter "
                            "is not determined by the data); no confidence intervals")
    else:
        q = float(stats.t.ppf(0.975, dof))
        for name, value, s in zip(_PARAMS, popt, se, strict=True):
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = value - q * s, value + q * s
        out["ec50_ci_low"] = _pow10(out["log10_ec50_ci_low"])
        out["ec50_ci_high"] = _pow10(out["log10_ec50_ci_high"])
    if out["p_constant"] > FLAT_P:
        out["fit_error"] = (f"no evidence of a dose-response: the fit is not significantly "
                            f"better than a constant (F-test p = {out['p_constant']:.3g} > "
                            f"{FLAT_P}, {len(x)} wells for 4 parameters; replicates help)")
    return out


def dose_response(wells: pd.DataFrame) -> pd.DataFrame:
    """Fit a four-parameter logistic per compound, timepoint and readout.

    Parameters
    ----------
    wells : pandas.DataFrame
        :func:`well_stats` rows with the plate map's ``compound``, ``dose`` and
        ``dose_unit`` (and ``role``). Each sample well with the compound and a dose > 0
        is one point (its median); wells at dose 0, wells without the compound and the
        controls (role ``negative`` or ``positive``, even when the plate map names their
        compound and dose) are not in its fit.

    Returns
    -------
    pandas.DataFrame
        :data:`DOSE_RESPONSE_COLUMNS` (:func:`fit_four_pl`), in the order compounds first
        appear; empty when no well has a compound and a dose.
    """
    dosed = wells[wells["compound"].notna() & wells["dose"].notna()]
    if "role" in dosed:
        dosed = dosed[dosed["role"].isna() | (dosed["role"] == "sample")]
    rows = []
    for (compound, t, readout), group in dosed.groupby(["compound", "t", "readout"],
                                                       sort=False):
        unit = group["dose_unit"].dropna()
        rows.append({"compound": compound, "dose_unit": unit.iloc[0] if len(unit) else None,
                     "t": t, "readout": readout,
                     **fit_four_pl(group["dose"].to_numpy(), group["median"].to_numpy())})
    out = pd.DataFrame(rows, columns=list(DOSE_RESPONSE_COLUMNS))
    return out.astype({"n_wells": "int64", "n_doses": "int64", "fit_error": object,
                       "ec50_in_range": object})
