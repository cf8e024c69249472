"""Bounds of the numbers a run accepts, and one check for all of them.

Every setting that comes from a user (command line, job file, Python call) is
checked against these bounds before anything is created, with a message that names
the setting, what was expected and what was found. The bounds are wide: they exist
to refuse unit slips (a diameter of 0.001 px rescales a field 30 000 times) and
values that are not numbers at all (NaN, infinity), not to second-guess a choice.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "TILE_SIZE",
    "HALO",
    "BATCH_SIZE",
    "WORKERS",
    "THREADS",
    "RESCALE",
    "FLOW_THRESHOLD",
    "CELLPROB_THRESHOLD",
    "MIN_SIZE",
    "SCHEDULER_TIMEOUT",
    "MAX_DISTANCE",
    "PIXEL_SIZE",
    "TIME_INTERVAL",
    "MAX_GAP",
    "CELLS_REGION",
    "WELL_PAGES",
    "check_number",
    "number_problem",
]

#: (minimum, maximum) of task region side in pixels (also the label chunk size).
TILE_SIZE = (64, 16384)
#: (minimum, maximum) halo in pixels.
HALO = (0, 4096)
#: (minimum, maximum) network tiles per forward pass.
BATCH_SIZE = (1, 4096)
#: (minimum, maximum) workers of a cluster started by this package.
WORKERS = (1, 4096)
#: (minimum, maximum) threads per worker.
THREADS = (1, 1024)
#: (minimum, maximum) rescale factor ``model diameter / cell diameter``: cells from
#: 10x smaller to 20x larger than the model's training diameter.
RESCALE = (0.05, 10.0)
#: (minimum, maximum) of cellpose's flow-error threshold (0: no flow check).
FLOW_THRESHOLD = (0.0, 100.0)
#: (minimum, maximum) of the cell probability threshold, in logits.
CELLPROB_THRESHOLD = (-100.0, 100.0)
#: (minimum, maximum) smallest cell kept, in pixels.
MIN_SIZE = (0, 1_000_000)
#: (minimum, maximum) seconds to wait for a scheduler to answer.
SCHEDULER_TIMEOUT = (0.1, 3600.0)
#: (minimum, maximum) largest move of a tracked cell between timepoints, in pixels.
MAX_DISTANCE = (0.001, 100_000.0)
#: (minimum, maximum) pixel size of an imported image, in micrometres (1 nm to 1 mm).
PIXEL_SIZE = (0.001, 1000.0)
#: (minimum, maximum) time between the timepoints of an imported time-lapse, in hours
#: (a tenth of a second to a year).
TIME_INTERVAL = (1 / 36000, 8760.0)
#: (minimum, maximum) timepoints a track may skip where its cell was missed.
MAX_GAP = (0, 100)
#: (minimum, maximum) side in pixels of the regions a linking, measuring or tracking task
#: reads at a time.
CELLS_REGION = (64, 16384)
#: (minimum, maximum) wells of a report with a page of their own.
WELL_PAGES = (0, 100_000)


def _plain(v: float) -> str:
    """``1000000`` rather than ``1e+06`` for whole bounds; ``%g`` otherwise."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def number_problem(value: Any, bounds: tuple[float, float], *, integer: bool = False,
                   unit: str = "") -> str | None:
    """Return what is wrong with a number, or None when it is within ``bounds``.

    Parameters
    ----------
    value : Any
        The value given.
    bounds : tuple of float
        Inclusive (minimum, maximum).
    integer : bool
        Whether the value must be a whole number.
    unit : str
        Unit named in the message (e.g. ``"px"``).

    Returns
    -------
    str or None
        ``"expected ...; got ..."`` or None.

    Examples
    --------
    >>> number_problem(512, TILE_SIZE, integer=True) is None
    True
    >>> number_problem(float("nan"), (0, 1))
    'expected a finite number between 0 and 1; got nan'
    >>> number_problem(2.5, (1, 8), integer=True)
    'expected a whole number between 1 and 8; got 2.5'
    """
    lo, hi = bounds
    kind = "a whole number" if integer else "a finite number"
    u = f" {unit}" if unit else ""
    expected = f"expected {kind} between {_plain(lo)} and {_plain(hi)}{u}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np

            if isinstance(value, np.integer | np.floating):
                value = value.item()
            else:
                return f"{expected}; got {value!r}"
        except ImportError:  # pragma: no cover - numpy is a dependency
            return f"{expected}; got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{expected}; got {value}"
    if integer and value != int(value):
        return f"{expected}; got {value}"
    if not lo <= value <= hi:
        try:
            return f"{expected}; got {value:g}"
        except OverflowError:  # an integer too large to be a float
            return f"{expected}; got a number of {len(str(value))} digits"
    return None


def check_number(name: str, value: Any, bounds: tuple[float, float], *, integer: bool = False,
                 unit: str = "") -> Any:
    """Return ``value`` when :func:`number_problem` finds nothing wrong, else raise.

    Raises
    ------
    ValueError
        ``"<name>: expected ...; got ..."``.

    Examples
    --------
    >>> check_number("tile_size", 32, TILE_SIZE, integer=True)
    Traceback (most recent call last):
    ...
    ValueError: tile_size: expected a whole number between 64 and 16384; got 32
    """
    problem = number_problem(value, bounds, integer=integer, unit=unit)
    if problem is not None:
        raise ValueError(f"{name}: {problem}")
    return value
