"""Quality checks: when the objects of a (field, timepoint) cannot carry the readout.

Measured per (field, timepoint) while measuring (:func:`unit_metrics`), judged by
:func:`flags` against the thresholds below, kept with the table (attribute
:data:`QUALITY_ATTRIBUTE`) and said by the commands as ``warning: ...`` lines
(:func:`warnings`):

* ``nuclei_like_cells``: the median nucleus covers more than :data:`MAX_NUCLEUS_FRACTION`
  of its cell (a nuclei model that found whole cells: no cytoplasm to compare with);
* ``cells_without_nucleus``: more than :data:`MAX_WITHOUT_NUCLEUS` of the cells have none,
  counted on the cells the check can judge (``cells_checked``): not those cut by the
  field's edge (their nucleus may lie outside it), nor fragments smaller than
  :data:`MIN_CELL_FRACTION` of the median cell (no cell a nucleus could be missing from);
* ``implausible_ratios``: more than :data:`MAX_IMPLAUSIBLE` of the nucleus/cytoplasm
  ratios lie outside :data:`PLAUSIBLE_RATIO`;
* ``count_jump``: the cell count changed by more than a factor :data:`MAX_COUNT_FACTOR`
  from the timepoint before (a focus or segmentation failure);
* ``unregistered``: the stage drift to this timepoint could not be measured (tracks may
  break there; :mod:`.registration`).

Examples
--------
>>> m = {"cells": 110, "cells_checked": 100, "cells_without_nucleus": 40,
...      "nucleus_fraction": 0.95,
...      "ratios": 50, "implausible_ratios": 1}
>>> flags(m)
['nuclei_like_cells', 'cells_without_nucleus']
>>> flags({**m, "cells": 300}, previous_cells=110)[-1]
'count_jump'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["MAX_NUCLEUS_FRACTION", "MAX_WITHOUT_NUCLEUS", "MIN_CELL_FRACTION",
           "PLAUSIBLE_RATIO", "MAX_IMPLAUSIBLE", "MAX_COUNT_FACTOR", "QUALITY_ATTRIBUTE",
           "FLAGS", "unit_metrics", "flags", "field_flags", "warnings", "channel_names"]

#: Largest median nucleus area / cell area of linked cells.
MAX_NUCLEUS_FRACTION = 0.8
#: Largest fraction of cells without a nucleus.
MAX_WITHOUT_NUCLEUS = 0.3
#: Smallest area, as a fraction of the median cell area, of a cell counted by the nucleus
#: check (smaller objects are fragments: 1-5 % of a cell on the simulator's lines).
MIN_CELL_FRACTION = 0.25
#: Plausible nucleus / cytoplasm ratios (inclusive). The ratios are background-corrected:
#: a reporter kept out of the nucleus (mitochondria) gives ratios near 0, scattered below
#: it by noise (CL1's on the simulator's ground-truth objects: 32 of 3823 below -0.1, 5
#: below -0.2); a ratio further below 0 is a nucleus darker than its own background by a
#: fifth of the cytoplasm's signal, which no reporter gives: the background or the
#: objects are wrong.
PLAUSIBLE_RATIO = (-0.2, 20.0)
#: Largest fraction of ratios outside :data:`PLAUSIBLE_RATIO`.
MAX_IMPLAUSIBLE = 0.1
#: Largest factor between the cell counts of consecutive timepoints.
MAX_COUNT_FACTOR = 2.0
#: Table attribute with each timepoint's metrics and flags.
QUALITY_ATTRIBUTE = "structfree_dask_quality"

#: Each flag, and what it means and what to do, for the ``warning: ...`` lines.
FLAGS: dict[str, str] = {
    "nuclei_like_cells": (
        f"nuclei about the size of their cells (median nucleus/cell area above "
        f"{MAX_NUCLEUS_FRACTION}): the nuclei model found whole cells, so there is no "
        "cytoplasm to compare with; segment the nuclei with a model meant for them (a zoo "
        "built with --organelle nuclei, then --zoo)"),
    "cells_without_nucleus": (
        f"more than {MAX_WITHOUT_NUCLEUS:.0%} of the cells (off the field's edge, fragments "
        "left out) have no nucleus: check the nuclei's channels and model"),
    "implausible_ratios": (
        f"more than {MAX_IMPLAUSIBLE:.0%} of the nucleus/cytoplasm ratios outside "
        f"{PLAUSIBLE_RATIO[0]} to {PLAUSIBLE_RATIO[1]}: check the objects and the "
        "background (the channels that raised it follow the field; the report's quality "
        "table counts them per timepoint)"),
    "count_jump": (
        f"the cell count changed more than {MAX_COUNT_FACTOR:g}x from the timepoint before "
        "(out of focus, or a segmentation failure)"),
    "unregistered": (
        "the stage drift to this timepoint could not be measured (an empty or out-of-focus "
        "timepoint): tracks may break there"),
}


def unit_metrics(areas: np.ndarray, touches_edge: np.ndarray, n_nuclei: np.ndarray | None,
                 nucleus_fractions: Sequence[float],
                 ratios: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Return the metrics of one (field, timepoint).

    Parameters
    ----------
    areas, touches_edge, n_nuclei : numpy.ndarray
        Each cell's area (pixels), whether it touches the field's edge, and its nuclei;
        ``n_nuclei`` None where no nuclei were given (no ``cells_without_nucleus``: that
        check judges nuclei that were segmented, not their absence).
    nucleus_fractions : sequence of float
        Nucleus area / cell area of the cells with a nucleus.
    ratios : numpy.ndarray or mapping
        The nucleus/cytoplasm ratios measured (all channels; NaN where a cell has none),
        or each channel's, by name.

    Returns
    -------
    dict
        ``cells``; ``cells_checked``, the cells off the field's edge of at least
        :data:`MIN_CELL_FRACTION` of the median cell area, and ``cells_without_nucleus``,
        those of them without a nucleus; ``nucleus_fraction`` (median); ``ratios`` and
        ``implausible_ratios``; with ratios by channel, ``implausible_channels``: the
        channels with implausible ratios and how many (``"mito: 12 of 60"``, empty when
        none), so that a flag says which channel raised it.

    Examples
    --------
    >>> m = unit_metrics(np.array([400, 380, 10, 420]), np.array([False, False, False, True]),
    ...                  np.array([1, 0, 0, 0]), [0.2], np.array([1.0, 50.0]))
    >>> m["cells"], m["cells_checked"], m["cells_without_nucleus"], m["implausible_ratios"]
    (4, 2, 1, 1)
    >>> unit_metrics(np.array([400, 380]), np.array([False, False]), np.array([1, 1]),
    ...              [0.2, 0.3], {"ER": np.array([0.4, 0.5]),
    ...                           "mito": np.array([-0.9, 0.1])})["implausible_channels"]
    'mito: 1 of 2'
    >>> "cells_without_nucleus" in unit_metrics(np.array([400]), np.array([False]), None,
    ...                                         [], np.array([np.nan]))
    False
    """
    areas = np.asarray(areas, np.float64)
    checked = ~np.asarray(touches_edge, bool)
    if areas.size:
        checked &= areas >= MIN_CELL_FRACTION * float(np.median(areas))
    by_channel = ratios if isinstance(ratios, Mapping) else {"": ratios}
    implausible: dict[str, tuple[int, int]] = {}
    for name, values in by_channel.items():
        v = np.asarray(values, np.float64)
        v = v[np.isfinite(v)]
        implausible[name] = (_implausible(v), int(v.size))
    metrics = {
        "cells": int(areas.size),
        "cells_checked": int(np.count_nonzero(checked)),
        "nucleus_fraction": (float(np.median(nucleus_fractions)) if len(nucleus_fractions)
                             else None),
        "ratios": sum(n for _, n in implausible.values()),
        "implausible_ratios": sum(k for k, _ in implausible.values()),
    }
    if n_nuclei is not None:
        metrics["cells_without_nucleus"] = int(np.count_nonzero(
            checked & (np.asarray(n_nuclei) == 0)))
    if isinstance(ratios, Mapping):
        metrics["implausible_channels"] = ", ".join(
            f"{name}: {k} of {n}" for name, (k, n) in implausible.items() if k)
    return metrics


def _implausible(ratios: np.ndarray) -> int:
    """How many of the (finite) ratios lie outside :data:`PLAUSIBLE_RATIO`."""
    low, high = PLAUSIBLE_RATIO
    return int(np.count_nonzero((ratios < low) | (ratios > high)))


def flags(metrics: Mapping[str, Any], previous_cells: int | None = None) -> list[str]:
    """Return the flags (keys of :data:`FLAGS`) the metrics of one (field, timepoint) raise.

    Metrics kept before ``cells_checked`` was measured judge the nuclei on all cells.
    """
    out = []
    fraction = metrics.get("nucleus_fraction")
    if fraction is not None and fraction > MAX_NUCLEUS_FRACTION:
        out.append("nuclei_like_cells")
    cells = int(metrics.get("cells", 0))
    checked = int(metrics.get("cells_checked", cells))
    if checked and metrics.get("cells_without_nucleus", 0) > MAX_WITHOUT_NUCLEUS * checked:
        out.append("cells_without_nucleus")
    n = int(metrics.get("ratios", 0))
    if n and metrics.get("implausible_ratios", 0) > MAX_IMPLAUSIBLE * n:
        out.append("implausible_ratios")
    if previous_cells is not None and (previous_cells or cells):
        low, high = sorted((previous_cells, cells))
        if low == 0 or high / low > MAX_COUNT_FACTOR:
            out.append("count_jump")
    return out


def field_flags(by_t: Mapping[int, Mapping[str, Any]]) -> dict[int, list[str]]:
    """Return each timepoint's flags, the count jump judged against the timepoint before.

    Examples
    --------
    >>> field_flags({0: {"cells": 10}, 1: {"cells": 11}, 2: {"cells": 40}})
    {0: [], 1: [], 2: ['count_jump']}
    """
    out: dict[int, list[str]] = {}
    before = None
    for t in sorted(by_t):
        out[t] = flags(by_t[t], before)
        before = int(by_t[t].get("cells", 0))
    return out


def warnings(flagged: Mapping[str, Mapping[int, Sequence[str]]],
             channels: Mapping[str, Mapping[int, str]] | None = None) -> list[str]:
    """Return one line per flag raised: what it means, and where (field, timepoints).

    Parameters
    ----------
    flagged : mapping
        Field path -> timepoint -> flags.
    channels : mapping, optional
        Field path -> timepoint -> the metrics' ``implausible_channels``
        (:func:`unit_metrics`): the ``implausible_ratios`` line then names the channels
        that raised it, per field.

    Examples
    --------
    >>> warnings({"A/1/0": {0: ["count_jump"], 3: ["count_jump"]}, "B/1/0": {0: []}})[0]
    'the cell count changed more than 2x ... (A/1/0 t=0,3)'
    >>> print(warnings({"A/1/0": {2: ["implausible_ratios"]}},
    ...                {"A/1/0": {2: "mito: 12 of 60, ER: 7 of 60"}})[0])
    more than 10% of the nucleus/cytoplasm ratios ... (A/1/0 t=2: mito, ER)
    """
    where: dict[str, list[str]] = {}
    for path, by_t in sorted(flagged.items()):
        for name in FLAGS:
            ts = sorted(t for t, fl in by_t.items() if name in fl)
            if ts:
                place = f"{path or '(image)'} t={','.join(map(str, ts))}"
                if name == "implausible_ratios" and channels:
                    found = channels.get(path) or {}
                    names = list(dict.fromkeys(
                        c for t in ts for c in channel_names(found.get(t, ""))))
                    if names:
                        place += f": {', '.join(names)}"
                where.setdefault(name, []).append(place)
    return [f"{FLAGS[name]} ({'; '.join(places)})" for name, places in where.items()]


def channel_names(implausible_channels: str) -> list[str]:
    """Return the channel names of a metrics' ``implausible_channels`` text, in its order.

    Examples
    --------
    >>> channel_names("mito: 12 of 60, ER: 3 of 60"), channel_names("")
    (['mito', 'ER'], [])
    """
    return re.findall(r"(.+?): \d+ of \d+(?:, |$)", implausible_channels or "")
