"""The screen's plate view: figures of the screen tables, and their section of the report.

The figures are drawn from the tables :mod:`.plate_screen` writes (or any frames with
their columns; :func:`~.plate_screen.read_screen_tables`), each a matplotlib Figure on an
Agg canvas (no pyplot, no global backend change) with labelled axes and tick labels, so a
notebook shows the same as the report:

* :func:`kinetics_figure`: per condition, the mean of its wells' medians over time (band:
  +- 1 sd over the wells), one panel per compound (its doses from light to dark) with the
  controls in every panel;
* :func:`zprime_figure`: Z' over time, with the 0.5 line (an excellent assay above it);
* :func:`dose_response_figure`: per compound at one timepoint, the wells' medians against
  the dose and the fitted four-parameter logistic, the EC50 and its 95 % interval marked;
* :func:`ec50_figure`: the EC50s over time, with their 95 % intervals;
* :func:`well_figure`: one well's median over time against its condition's and the
  controls'.

:func:`plate_layout_svg` draws the plate layout as inline SVG: wells coloured by
condition (legend beside it), the role as a letter, the dose as text, a quality flag as a
warning sign, each well a link to its page. :func:`screen_addon` makes the section that
``structfree-dask report`` adds to the plate view (:class:`ScreenView`, a
:class:`~structfree_dask.cells.report.ReportAddon`) when the plate has a plate map.
"""

from __future__ import annotations

import html
import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..cells.columns import ratio_column
from ..cells.report import ReportContext

__all__ = ["ScreenView", "condition_colours", "dose_response_figure", "ec50_figure",
           "kinetics_figure", "plate_layout_svg", "readout_label", "screen_addon",
           "well_figure", "zprime_figure"]

logger = logging.getLogger(__name__)

_RATIO_SUFFIX = ratio_column("")
_ROLE_COLOURS = {"negative": "#4d4d4d", "positive": "#c0392b"}
_ROLE_LETTER = {"negative": "N", "positive": "P", "sample": "S"}
_PANELS = 12  # most compound panels in one figure (the first compounds beyond it)
_LEGEND = 30  # most conditions named in the layout's legend


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _esc(value: Any) -> str:
    return html.escape(str(value))


def readout_label(readout: str) -> str:
    """Name a readout column for an axis: a channel's ratio as ``<channel>: N/C ratio``.

    Examples
    --------
    >>> readout_label("translocation-reporter__nc_ratio"), readout_label("area_um2")
    ('translocation-reporter: nucleus/cytoplasm ratio', 'area_um2')
    """
    if readout.endswith(_RATIO_SUFFIX) and len(readout) > len(_RATIO_SUFFIX):
        return f"{readout[: -len(_RATIO_SUFFIX)]}: nucleus/cytoplasm ratio"
    return readout


def _time(ts: Any, step_h: float | None) -> np.ndarray:
    return np.asarray(ts, dtype=float) * (step_h or 1.0)


def _time_axis(ax: Any, ts: Sequence[int], step_h: float | None) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("time (h)" if step_h else "timepoint")
    ts = sorted(set(int(t) for t in ts))
    if 0 < len(ts) <= 12:
        x = _time(ts, step_h)
        ax.set_xticks(x, [f"{round(v, 2):g}" for v in x])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=not step_h))
    if len(ts) == 1:
        x = float(_time(ts, step_h)[0])
        ax.set_xlim(x - 1, x + 1)


def _when(t: int, step_h: float | None) -> str:
    return f"t = {t} ({round(t * step_h, 2):g} h)" if step_h else f"t = {t}"


def _dose_text(dose: Any, unit: Any) -> str:
    if dose is None or not np.isfinite(float(dose)):
        return ""
    return f"{float(dose):g}" + (f" {unit}" if isinstance(unit, str) and unit else "")


def _treatments(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per condition (its compound, dose, unit, role), in the order they appear."""
    cols = [c for c in ("condition", "compound", "dose", "dose_unit", "role") if c in frame]
    return frame.drop_duplicates("condition")[cols].reset_index(drop=True)


def condition_colours(frame: pd.DataFrame) -> dict[str, str]:
    """Colour each condition by its role, compound and dose.

    Controls are grey (negative) and red (positive), a compound's doses one hue from light
    (low) to dark (high), other conditions from a qualitative map.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows with ``condition``, ``compound``, ``dose`` and ``role`` (a plate map, or the
        ``wells`` or ``conditions`` table).

    Returns
    -------
    dict
        condition -> colour (``#rrggbb``), in the order conditions first appear.

    Examples
    --------
    >>> pm = pd.DataFrame({"condition": ["DMSO", "X 1", "X 10"], "compound": [None, "X", "X"],
    ...                    "dose": [np.nan, 1.0, 10.0], "role": ["negative", "sample", "sample"]})
    >>> list(condition_colours(pm))
    ['DMSO', 'X 1', 'X 10']
    >>> condition_colours(pm)["DMSO"]
    '#4d4d4d'
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    hues = ["Blues", "Oranges", "Greens", "Purples", "YlOrBr", "PuRd", "GnBu", "BuPu"]
    other = colormaps["tab20"]
    t = _treatments(frame)
    out: dict[str, str] = {}
    compounds = [c for c in t["compound"].dropna().unique()]
    n_other = 0
    for row in t.itertuples(index=False):
        role, compound = getattr(row, "role", "sample"), getattr(row, "compound", None)
        if role in _ROLE_COLOURS:
            out[row.condition] = _ROLE_COLOURS[role]
        elif isinstance(compound, str) and compound:
            doses = np.sort(t.loc[t["compound"] == compound, "dose"].dropna().unique())
            k = compounds.index(compound)
            dose = float(row.dose) if row.dose is not None else math.nan
            pos = (int(np.searchsorted(doses, dose)) / max(1, len(doses) - 1)
                   if np.isfinite(dose) and len(doses) > 1 else 0.6)
            out[row.condition] = to_hex(colormaps[hues[k % len(hues)]](0.35 + 0.6 * pos))
        else:
            out[row.condition] = to_hex(other(n_other % 20))
            n_other += 1
    return out


def _readout_rows(frame: pd.DataFrame, readout: str) -> pd.DataFrame:
    return frame[frame["readout"] == readout] if "readout" in frame else frame


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, textwrap.fill(text, 50), ha="center", va="center",
            transform=ax.transAxes, fontsize=9, color="0.3")


# ----------------------------------------------------------------------------- figures


def kinetics_figure(conditions: pd.DataFrame, readout: str, step_h: float | None = None,
                    colours: Mapping[str, str] | None = None) -> Any:
    """Draw each condition's readout over time: mean of its wells' medians, band +- 1 sd.

    One panel per compound (at most 12: the first ones), its doses from light to dark and
    the controls (dashed) in every panel; conditions without a compound that are not
    controls share a last panel.

    Parameters
    ----------
    conditions : pandas.DataFrame
        The ``conditions`` screen table.
    readout : str
        The readout column (rows of other readouts are left out).
    step_h : float, optional
        Hours between timepoints (else time in timepoints).
    colours : mapping, optional
        condition -> colour (default :func:`condition_colours`).
    """
    rows = _readout_rows(conditions, readout)
    colours = dict(colours or condition_colours(conditions))
    t = _treatments(rows) if len(rows) else _treatments(conditions)
    controls = t[t["role"].isin(["negative", "positive"])]["condition"].tolist()
    compounds = [c for c in t["compound"].dropna().unique()
                 if c in set(t.loc[~t["condition"].isin(controls), "compound"])][:_PANELS]
    others = t[~t["condition"].isin(controls) & t["compound"].isna()]["condition"].tolist()
    panels: list[tuple[str, list[str]]] = [
        (f"{c}", t[(t["compound"] == c) & ~t["condition"].isin(controls)]
         .sort_values("dose")["condition"].tolist()) for c in compounds]
    if others or not panels:
        panels.append(("other conditions" if panels else "conditions", others))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(max(7.0, 4.6 * ncols + 0.4), 3.8 * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, sharey=True)).ravel()
    ts = sorted(int(v) for v in rows["t"].unique()) if len(rows) else [0]
    for ax, (title, names) in zip(axes, panels, strict=False):
        for name in [*controls, *names]:
            sub = rows[rows["condition"] == name].sort_values("t")
            if sub.empty:
                continue
            x = _time(sub["t"], step_h)
            mean = sub["mean"].to_numpy(dtype=float)
            sd = np.nan_to_num(sub["sd"].to_numpy(dtype=float))
            style = "--" if name in controls else "-"
            ax.fill_between(x, mean - sd, mean + sd, color=colours.get(name, "C0"), alpha=0.15,
                            lw=0)
            ax.plot(x, mean, style, marker="o", ms=3.5, lw=1.5, color=colours.get(name, "C0"),
                    label=name)
        ax.set_title(title, fontsize=10)
        _time_axis(ax, ts, step_h)
        ax.set_ylabel(textwrap.fill(readout_label(readout), 32), fontsize=9)
        ax.tick_params(labelleft=True, labelsize=8)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="best", ncols=1 + len(ax.lines) // 8)
        else:
            _no_data(ax, "no condition with a value")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(textwrap.fill("per condition over time: mean of the wells' medians (band: "
                               "+- 1 sd over the wells; dashed: controls)",
                               int(15 * (4.6 * ncols + 0.4))), fontsize=10)
    return fig


def zprime_figure(zprime: pd.DataFrame, readout: str, step_h: float | None = None) -> Any:
    """Draw Z' over time from the ``zprime`` table, with the 0.5 and 0 lines.

    A timepoint without Z' (fewer than 2 control wells with a value on either side, or
    controls of equal means) has no point; the reason is given under the axes. Values
    below -1 are drawn at -1 (open markers).
    """
    rows = _readout_rows(zprime, readout).sort_values("t")
    fig = _figure(6.0, 3.6)
    ax = fig.subplots()
    x = _time(rows["t"], step_h)
    z = rows["z_prime"].to_numpy(dtype=float)
    low = np.isfinite(z) & (z < -1)
    ax.axhline(0.5, color="tab:green", ls="--", lw=1, label="0.5: excellent above")
    ax.axhline(0.0, color="0.5", ls=":", lw=1, label="0: control bands overlap below")
    if np.isfinite(z).any():
        ax.plot(x, np.where(low, -1.0, z), "-", color="C0", lw=1.2)
        ax.plot(x[~low], z[~low], "o", color="C0", ms=5, label="Z'")
        if low.any():
            ax.plot(x[low], np.full(low.sum(), -1.0), "v", mfc="white", color="C0", ms=6,
                    label="Z' < -1 (drawn at -1)")
    ax.set_ylim(-1.08 if np.nanmin(np.where(np.isfinite(z), z, 0), initial=0) < -0.2
                else -0.3, 1.05)
    _time_axis(ax, rows["t"].tolist() or [0], step_h)
    ax.set_ylabel("Z'")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    missing = rows[~np.isfinite(z)]
    title = f"Z' from the control wells' medians\n{readout_label(readout)}"
    if len(missing):
        reasons = missing["zprime_error"].dropna().unique()
        title += (f"\nno Z' at {len(missing)} of {len(rows)} timepoint(s): "
                  + textwrap.shorten("; ".join(map(str, reasons)), 90))
    if rows.empty:
        _no_data(ax, "no Z' table rows for this readout")
    ax.set_title(title, fontsize=9)
    return fig


def _fit_text(fit: pd.Series) -> str:
    unit = fit.get("dose_unit") or ""
    if np.isfinite(float(fit.get("ec50", np.nan))):
        text = f"EC50 = {fit['ec50']:.3g} {unit}"
        if np.isfinite(float(fit.get("ec50_ci_low", np.nan))):
            text += f" [{fit['ec50_ci_low']:.2g}, {fit['ec50_ci_high']:.2g}]"
        text += f", Hill {fit['hill']:.2g}, R² {fit['r_squared']:.2f}"
    else:
        text = "no fit"
    err = fit.get("fit_error")
    if isinstance(err, str) and err:
        text += "\n" + textwrap.shorten(err, 70)
    return text


def dose_response_figure(wells: pd.DataFrame, dose_response: pd.DataFrame, readout: str,
                         t: int | None = None, step_h: float | None = None) -> Any:
    """Draw each compound's dose-response at one timepoint, with the fitted curve.

    Points: the wells' medians against the dose (log axis, in the compound's unit); line:
    the four-parameter logistic of ``dose_response`` where its parameters are finite;
    the EC50 as a dotted line and its 95 % interval shaded; the controls' mean as
    horizontal lines. The fit's failure (``fit_error``) is printed in the panel's title.

    Parameters
    ----------
    wells, dose_response : pandas.DataFrame
        The ``wells`` and ``dose_response`` screen tables.
    readout : str
    t : int, optional
        The timepoint (default the last one).
    step_h : float, optional
        Hours between timepoints (named in the title).
    """
    from .tables import four_pl

    rows = _readout_rows(wells, readout)
    fits = _readout_rows(dose_response, readout)
    ts = sorted(int(v) for v in rows["t"].unique())
    t = ts[-1] if t is None and ts else (0 if t is None else int(t))
    here = rows[rows["t"] == t]
    dosed = here[here["compound"].notna() & (pd.to_numeric(here["dose"]) > 0)
                 & ~here["role"].isin(["negative", "positive"])]  # controls: lines
    compounds = list(dict.fromkeys(dosed["compound"]))[:_PANELS]
    ncols = max(1, min(3, len(compounds)))
    nrows = max(1, math.ceil(len(compounds) / ncols))
    fig = _figure(4.6 * ncols + 0.4, 3.6 * nrows + 0.5)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    controls = {role: here.loc[here["role"] == role, "median"].astype(float).mean()
                for role in ("negative", "positive")}
    for ax, compound in zip(axes, compounds, strict=False):
        sub = dosed[dosed["compound"] == compound]
        dose = sub["dose"].to_numpy(dtype=float)
        unit = sub["dose_unit"].dropna().iloc[0] if sub["dose_unit"].notna().any() else ""
        points = sub["median"].to_numpy(dtype=float)
        ax.plot(dose, points, "o", color="C0", ms=5, label="well medians")
        fit = fits[(fits["compound"] == compound) & (fits["t"] == t)]
        fit = fit.iloc[0] if len(fit) else pd.Series(dtype=object)
        params = [float(fit.get(k, np.nan)) for k in ("bottom", "top", "log10_ec50", "hill")]
        lo, hi = np.log10(dose.min()) - 0.5, np.log10(dose.max()) + 0.5
        if np.all(np.isfinite(params)):
            xs = np.linspace(lo, hi, 200)
            ax.plot(10 ** xs, four_pl(xs, *params), "-", color="C1", lw=1.5, label="4PL fit")
            ec50 = 10 ** params[2]
            if 10 ** lo <= ec50 <= 10 ** hi:
                ax.axvline(ec50, color="C1", ls=":", lw=1, label="EC50")
            low, high = float(fit.get("ec50_ci_low", np.nan)), float(fit.get("ec50_ci_high",
                                                                              np.nan))
            if np.isfinite(low) and np.isfinite(high):
                ax.axvspan(max(low, 10 ** lo), min(high, 10 ** hi), color="C1", alpha=0.12,
                           lw=0, label="EC50 95 % CI")
        for role, colour in _ROLE_COLOURS.items():
            if np.isfinite(controls[role]):
                ax.axhline(controls[role], color=colour, ls="--", lw=1, label=f"{role} mean")
        ax.set_xscale("log")
        ax.set_xlim(10 ** lo, 10 ** hi)
        seen = np.array([*points, *controls.values()], dtype=float)
        seen = seen[np.isfinite(seen)]
        if seen.size:  # the data's range: a curve that runs off it is cut
            margin = max(0.15 * float(np.ptp(seen)), 1e-3 * max(1.0, float(abs(seen).max())))
            ax.set_ylim(float(seen.min()) - margin, float(seen.max()) + margin)
        ax.set_xlabel(f"dose ({unit})" if unit else "dose")
        ax.set_ylabel(textwrap.fill(readout_label(readout), 32), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.set_title(f"{compound}: " + _fit_text(fit) if len(fit) else f"{compound}: no fit",
                     fontsize=8)
        ax.legend(fontsize=6, loc="best")
    if not compounds:
        axes[0].set_xlabel("dose")
        axes[0].set_ylabel(readout_label(readout))
        _no_data(axes[0], "no well with a compound at a dose > 0 at this timepoint")
    for ax in axes[max(1, len(compounds)):]:
        ax.set_axis_off()
    fig.suptitle(f"dose-response at {_when(t, step_h)}", fontsize=10)
    return fig


def ec50_figure(dose_response: pd.DataFrame, readout: str, step_h: float | None = None
                ) -> Any:
    """Draw each compound's EC50 over time (log axis) with its 95 % interval.

    Filled markers: good fits; open markers: fits with a ``fit_error`` whose EC50 is still
    finite (not to be trusted); timepoints without an EC50, or with one more than a decade
    beyond the doses tested, have no point (the title counts the latter); the axis spans
    the doses tested and a decade on each side.
    """
    rows = _readout_rows(dose_response, readout).sort_values("t")
    fig = _figure(6.4, 3.8)
    ax = fig.subplots()
    drawn, beyond = False, 0
    units = set()
    span = (float(rows["dose_min"].min()) / 10, float(rows["dose_max"].max()) * 10)
    for k, (compound, sub) in enumerate(rows.groupby("compound", sort=False)):
        colour = f"C{k % 10}"
        x = _time(sub["t"], step_h)
        ec50 = sub["ec50"].to_numpy(dtype=float)
        window = ((sub["dose_min"].to_numpy(float) / 10 <= ec50)
                  & (ec50 <= sub["dose_max"].to_numpy(float) * 10))
        beyond += int((np.isfinite(ec50) & ~window).sum())
        ok = np.isfinite(ec50) & (ec50 > 0) & window
        good = ok & sub["fit_error"].isna().to_numpy()
        unit = sub["dose_unit"].dropna().iloc[0] if sub["dose_unit"].notna().any() else ""
        units.add(unit)
        if ok.any():
            drawn = True
            low = sub["ec50_ci_low"].to_numpy(dtype=float)
            high = sub["ec50_ci_high"].to_numpy(dtype=float)
            ci = ok & np.isfinite(low) & np.isfinite(high)
            ax.vlines(x[ci], np.maximum(low[ci], span[0]), np.minimum(high[ci], span[1]),
                      color=colour, lw=1.5, alpha=0.6)
            ax.plot(x[ok], ec50[ok], "-", color=colour, lw=1)
            if good.any():
                ax.plot(x[good], ec50[good], "o", color=colour, ms=5,
                        label=f"{compound} ({unit})" if unit else str(compound))
            if (ok & ~good).any():
                ax.plot(x[ok & ~good], ec50[ok & ~good], "o", mfc="white", color=colour, ms=5,
                        label=f"{compound}: fit flagged")
    ts = rows["t"].tolist() or [0]
    _time_axis(ax, ts, step_h)
    unit = next(iter(units)) if len(units) == 1 else "each compound's unit"
    ax.set_ylabel(f"EC50 ({unit})" if unit else "EC50")
    ax.grid(alpha=0.3, which="both")
    if drawn:
        ax.set_yscale("log")
        ax.set_ylim(*span)
        ax.legend(fontsize=7, loc="best")
    else:
        _no_data(ax, "no EC50 fitted at any timepoint (see the fits' errors in the table "
                     "below)" if len(rows) else "no compound with doses in the plate map")
    ax.set_title(f"EC50 over time (bars: 95 % CI)\n{readout_label(readout)}"
                 + (f"\n{beyond} EC50(s) beyond a decade of the doses not drawn"
                    if beyond else ""), fontsize=9)
    return fig


def well_figure(wells: pd.DataFrame, conditions: pd.DataFrame, readout: str, well: str,
                step_h: float | None = None, colours: Mapping[str, str] | None = None) -> Any:
    """Draw one well's median over time against its condition's and the controls' means.

    The well's band is its cells' quartiles; its condition's, +- 1 sd over its wells.
    """
    rows = _readout_rows(wells, readout)
    mine = rows[rows["well"] == well].sort_values("t")
    cond = _readout_rows(conditions, readout)
    colours = dict(colours or condition_colours(conditions))
    fig = _figure(6.4, 3.6)
    ax = fig.subplots()
    name = mine["condition"].iloc[0] if len(mine) else None
    shown = [name] if name is not None else []
    shown += [c for c in cond.loc[cond["role"].isin(["negative", "positive"]), "condition"]
              .unique() if c != name]
    for c in shown:
        sub = cond[cond["condition"] == c].sort_values("t")
        x = _time(sub["t"], step_h)
        mean, sd = sub["mean"].to_numpy(dtype=float), np.nan_to_num(sub["sd"].to_numpy(float))
        colour = colours.get(c, "0.5")
        if c == name:
            ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
        ax.plot(x, mean, "--", color=colour, lw=1.2, label=f"{c} (condition mean)")
    if len(mine):
        x = _time(mine["t"], step_h)
        ax.fill_between(x, mine["q25"].to_numpy(float), mine["q75"].to_numpy(float),
                        color="C0", alpha=0.25, lw=0, label=f"well {well}: cells' quartiles")
        ax.plot(x, mine["median"].to_numpy(float), "-o", color="C0", ms=4, lw=1.6,
                label=f"well {well}: median")
    else:
        _no_data(ax, f"well {well} has no row in the screen table")
    _time_axis(ax, rows["t"].tolist() or [0], step_h)
    ax.set_ylabel(textwrap.fill(readout_label(readout), 32), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"well {well} against its condition and the controls", fontsize=9)
    return fig


# ----------------------------------------------------------------------------- the layout


def plate_layout_svg(plate_map: pd.DataFrame, rows: Sequence[str], cols: Sequence[str],
                     pages: Mapping[tuple[str, str], str] | None = None,
                     flags: Mapping[tuple[str, str], Sequence[str]] | None = None,
                     colours: Mapping[str, str] | None = None) -> str:
    """Draw the plate layout as inline SVG: wells coloured by condition, linked to pages.

    Each well shows its role's letter (N negative, P positive, S sample) and its dose; a
    well with a quality flag has a warning sign in its corner; its tooltip names the
    condition, compound, dose, role and flags. A well with a page is a link to it. The
    legend beside it names each condition's colour (at most 30; the others counted).

    Parameters
    ----------
    plate_map : pandas.DataFrame
        One row per well: ``row``, ``column``, ``condition``, ``compound``, ``dose``,
        ``dose_unit``, ``role`` (the stored plate map, or the ``wells`` table).
    rows, cols : sequence of str
        The plate layout.
    pages : mapping, optional
        (row, column) -> the file of the well's page.
    flags : mapping, optional
        (row, column) -> the quality flags raised in the well.
    colours : mapping, optional
        condition -> colour (default :func:`condition_colours`).

    Returns
    -------
    str
        An ``<svg>`` element (no namespace URL: inline in HTML5).

    Examples
    --------
    >>> pm = pd.DataFrame({"row": ["A", "A"], "column": ["1", "2"], "condition": ["a", "b"],
    ...                    "compound": [None, None], "dose": [np.nan, np.nan],
    ...                    "dose_unit": [None, None], "role": ["negative", "positive"]})
    >>> svg = plate_layout_svg(pm, ["A"], ["1", "2"], pages={("A", "1"): "well-A-1.html"})
    >>> svg.count('<a href="well-A-1.html" class="well">'), svg.count("<rect")
    (1, 4)
    """
    pages, flags = pages or {}, flags or {}
    wells = plate_map.drop_duplicates(["row", "column"]).astype({"row": str, "column": str})
    colours = dict(colours or condition_colours(wells))
    size, pad, left, top = 46, 3, 26, 22
    width = left + len(cols) * size
    height = top + len(rows) * size
    legend = list(colours)[:_LEGEND]
    legend_x = width + 24
    legend_w = 24 + 8 * max([len(str(c)) for c in legend] + [8])
    total_w = legend_x + legend_w
    total_h = max(height, 20 + 18 * (len(legend) + 2)) + 4
    out = [f'<svg class="layout" width="{total_w}" height="{total_h}" '
           f'viewBox="0 0 {total_w} {total_h}" role="img" '
           'style="font-family:sans-serif;font-size:12px">',
           "<title>plate layout coloured by condition</title>"]
    for j, c in enumerate(cols):
        out.append(f'<text x="{left + j * size + size / 2}" y="{top - 6}" '
                   f'text-anchor="middle">{_esc(c)}</text>')
    for i, r in enumerate(rows):
        out.append(f'<text x="{left - 8}" y="{top + i * size + size / 2 + 4}" '
                   f'text-anchor="end">{_esc(r)}</text>')
    by_pos = {(w.row, w.column): w for w in wells.itertuples(index=False)}
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            x, y = left + j * size + pad, top + i * size + pad
            w = by_pos.get((r, c))
            inner = size - 2 * pad
            if w is None:
                out.append(f'<rect x="{x}" y="{y}" width="{inner}" height="{inner}" rx="4" '
                           'fill="#eeeeee" stroke="#cccccc"><title>'
                           f"{_esc(r + c)}: not in the plate map</title></rect>")
                continue
            fill = colours.get(w.condition, "#dddddd")
            raised = list(flags.get((r, c), []))
            tip = (f"{r}{c}: {w.condition}"
                   + (f"; {w.compound} {_dose_text(w.dose, w.dose_unit)}"
                      if isinstance(w.compound, str) and w.compound else "")
                   + f"; role {w.role}"
                   + (f"; quality flags: {', '.join(raised)}" if raised else "")
                   + ("; click for the well's page" if (r, c) in pages else ""))
            dark = _dark(fill)
            ink = "#ffffff" if dark else "#000000"
            cell = [f'<rect x="{x}" y="{y}" width="{inner}" height="{inner}" rx="4" '
                    f'fill="{fill}" stroke="#333333" stroke-width="0.6"/>',
                    f'<text x="{x + inner / 2}" y="{y + 17}" text-anchor="middle" '
                    f'fill="{ink}" font-weight="bold">'
                    f"{_ROLE_LETTER.get(str(w.role), '?')}</text>"]
            dose = _dose_text(w.dose, None)
            if dose:
                cell.append(f'<text x="{x + inner / 2}" y="{y + 32}" text-anchor="middle" '
                            f'fill="{ink}" font-size="10">{_esc(dose)}</text>')
            if raised:
                cell.append(f'<text x="{x + inner - 1}" y="{y + 11}" text-anchor="end" '
                            'font-size="12" fill="#d35400">&#9888;</text>')
            body = f"<title>{_esc(tip)}</title>" + "".join(cell)
            if (r, c) in pages:
                out.append(f'<a href="{_esc(pages[r, c])}" class="well">{body}</a>')
            else:
                out.append(f"<g>{body}</g>")
    out.append(f'<text x="{legend_x}" y="14" font-weight="bold">condition</text>')
    for k, name in enumerate(legend):
        y = 22 + 18 * k
        out.append(f'<rect x="{legend_x}" y="{y}" width="13" height="13" '
                   f'fill="{colours[name]}" stroke="#333333" stroke-width="0.5"/>'
                   f'<text x="{legend_x + 18}" y="{y + 11}">{_esc(name)}</text>')
    if len(colours) > len(legend):
        out.append(f'<text x="{legend_x}" y="{22 + 18 * len(legend) + 11}">and '
                   f"{len(colours) - len(legend)} more</text>")
    out.append("</svg>")
    return "".join(out)


def _dark(colour: str) -> bool:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


# ----------------------------------------------------------------------------- the section


def _table_html(frame: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if not np.isfinite(v) else f"{v:.4g}"
        return "" if v is None or v is pd.NA else _esc(v)

    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_FLEX = '<div style="display:flex;flex-wrap:wrap;gap:0 2em;align-items:flex-start">'


def _img(name: str, alt: str) -> str:
    return f'<p><img src="{_esc(name)}" alt="{_esc(alt)}"></p>'


class ScreenView:
    """The screen's section of the report (a :class:`~structfree_dask.cells.report.ReportAddon`).

    Parameters
    ----------
    plate_map : pandas.DataFrame
        The stored plate map (:func:`~.platemap.load_plate_map`).
    tables : dict or None
        The screen tables (:func:`~.plate_screen.read_screen_tables`); None when they were
        not computed (the section then says how to compute them).
    table : str
        The measurement table they summarize.
    readout : str, optional
        The readout column shown (default: the report's channel's ratio where the tables
        have it, else their first readout).
    timepoint : int, optional
        The dose-response's timepoint (default the last).
    """

    def __init__(self, plate_map: pd.DataFrame, tables: dict[str, pd.DataFrame] | None,
                 table: str, readout: str | None = None, timepoint: int | None = None) -> None:
        self.plate_map, self.tables, self.table = plate_map, tables, table
        self.readout, self.timepoint = readout, timepoint
        self.colours = condition_colours(plate_map)
        self._well_figures = True

    def _choose_readout(self, channel: str | None) -> str | None:
        assert self.tables is not None
        found = list(dict.fromkeys(self.tables["wells"]["readout"]))
        if self.readout is not None:
            if self.readout not in found:
                raise ValueError(f"the screen tables of {self.table!r} have no readout "
                                 f"{self.readout!r}; readouts: {', '.join(found) or 'none'}")
            return self.readout
        if channel and ratio_column(channel) in found:
            return ratio_column(channel)
        return found[0] if found else None

    def sections(self, ctx: ReportContext) -> list[tuple[str, str]]:
        """Return the screen's sections of the plate's page (writes the figures)."""
        layout = plate_layout_svg(self.plate_map, ctx.rows, ctx.cols, ctx.pages, ctx.flags,
                                  self.colours)
        note = ('<p class="note">Wells coloured by condition; N negative control, P positive '
                "control, S sample, the number the dose; &#9888; a quality flag (see Quality "
                "checks). Click a well for its page; hover for its treatment.</p>")
        out = [("Screen: plate layout", note + layout)]
        if self.tables is None:
            out.append(("Screen", '<p class="note">The plate has a plate map but no screen '
                        f"tables of {_esc(self.table)}: compute them with <code>structfree-dask "
                        f"screen PLATE --table {_esc(self.table)}</code> and write the report "
                        "again.</p>"))
            return out
        self.readout = self._choose_readout(ctx.channel)
        if self.readout is None:
            out.append(("Screen", '<p class="note">The screen tables have no rows.</p>'))
            return out
        tb, r, step = self.tables, self.readout, ctx.step_h
        ts = sorted(int(v) for v in tb["wells"]["t"].unique())
        t = self.timepoint if self.timepoint is not None else (ts[-1] if ts else 0)
        if ts and t not in ts:
            raise ValueError(f"timepoint {t} is not in the screen tables (timepoints "
                             f"{ts[0]}-{ts[-1]})")
        kin = ctx.save(kinetics_figure(tb["conditions"], r, step, self.colours),
                       "screen-kinetics.png")
        zp = ctx.save(zprime_figure(tb["zprime"], r, step), "screen-zprime.png")
        dr = ctx.save(dose_response_figure(tb["wells"], tb["dose_response"], r, t, step),
                      "screen-dose-response.png")
        ec = ctx.save(ec50_figure(tb["dose_response"], r, step), "screen-ec50.png")
        zrows = _readout_rows(tb["zprime"], r)[["t", "n_positive", "n_negative", "z_prime",
                                                 "zprime_error"]]
        fits = _readout_rows(tb["dose_response"], r)
        fits_t = fits[fits["t"] == t][["compound", "dose_unit", "n_wells", "n_doses", "ec50",
                                       "ec50_ci_low", "ec50_ci_high", "hill", "r_squared",
                                       "fit_error"]]
        where = f"measurements/{self.table}__screen/"
        out.append((f"Screen: {readout_label(r)}", (
            f'<p class="note">From the screen tables ({_esc(where)}: wells, conditions, '
            "zprime, dose_response; docs/screen.md). Each well is one replicate: its cells "
            "summarized by their median first.</p>"
            + _FLEX + "<div><h3>Per condition over time</h3>"
            + _img(kin, "per-condition time courses") + "</div>"
            + "<div><h3>Z' over time</h3>" + _img(zp, "Z' over time")
            + f"<details><summary>Z' per timepoint</summary>{_table_html(zrows)}</details>"
            + "</div></div>" + _FLEX
            + f"<div><h3>Dose-response at {_esc(_when(t, step))}</h3>"
            + _img(dr, "dose-response curves") + "</div>"
            + "<div><h3>EC50 over time</h3>" + _img(ec, "EC50 over time") + "</div></div>"
            + "<h3>Fits at this timepoint</h3>"
            + (_table_html(fits_t) if len(fits_t) else
               '<p class="note">No compound with doses in the plate map.</p>'))))
        return out

    def well_sections(self, ctx: ReportContext, row: str, column: str
                      ) -> list[tuple[str, str]]:
        """Return the screen's section of one well's page: its treatment and its readout."""
        well = f"{row}{column}"
        pm = self.plate_map.astype({"row": str, "column": str})
        mine = pm[(pm["row"] == row) & (pm["column"] == column)]
        if mine.empty:
            return [("Treatment", '<p class="note">This well is not in the plate map.</p>')]
        w = mine.iloc[0]
        facts = pd.DataFrame({"what": ["condition", "compound", "dose", "role"],
                              "value": [w["condition"], w["compound"] or "none",
                                        _dose_text(w["dose"], w["dose_unit"]) or "none",
                                        w["role"]]})
        body = _table_html(facts)
        raised = ctx.flags.get((row, column))
        if raised:
            body += (f"<p>&#9888; quality flags in this well: {_esc(', '.join(raised))} "
                     "(see Quality checks below).</p>")
        if self.tables is not None and self.readout is not None:
            name = ctx.save(well_figure(self.tables["wells"], self.tables["conditions"],
                                        self.readout, well, ctx.step_h, self.colours),
                            f"screen-well-{row}-{column}.png".replace("/", "_"))
            body += _img(name, f"well {well} against its condition")
        return [("Treatment", body)]


def screen_addon(plate: str, table: str, *, readout: str | None = None,
                 timepoint: int | None = None) -> ScreenView | None:
    """Return the screen's section of a plate's report, or None without a plate map.

    Parameters
    ----------
    plate : str
        The plate (a path or URL).
    table : str
        The measurement table of the report (its screen tables are
        ``<plate>/measurements/<table>__screen``).
    readout : str, optional
        The readout column shown (see :class:`ScreenView`).
    timepoint : int, optional
        The dose-response's timepoint (default the last).
    """
    from .plate_screen import read_screen_tables
    from .platemap import load_plate_map

    plate_map = load_plate_map(str(plate))
    if plate_map is None:
        return None
    try:
        tables: dict[str, pd.DataFrame] | None = read_screen_tables(str(plate), table)
    except FileNotFoundError:
        tables = None
    return ScreenView(plate_map, tables, table, readout=readout, timepoint=timepoint)
