"""Which timepoints a run is asked for: one reading of a selection for every plate job."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["describe_selection", "select_timepoints"]


def describe_selection(timepoints: slice | Sequence[int] | None) -> str:
    """Return a selection as the user wrote it (``2:5``, ``[0, 3]``).

    Examples
    --------
    >>> describe_selection(slice(1, None)), describe_selection([0, 3])
    ('1:', '[0, 3]')
    """
    if isinstance(timepoints, slice):
        start = "" if timepoints.start is None else timepoints.start
        stop = "" if timepoints.stop is None else timepoints.stop
        return f"{start}:{stop}"
    return str(list(timepoints or []))


def select_timepoints(n: int, timepoints: slice | Sequence[int] | None, where: str) -> list[int]:
    """Resolve a selection of timepoints of data that has ``n``: sorted, each once.

    Parameters
    ----------
    n : int
        Timepoints the data has.
    timepoints : slice, sequence of int or None
        ``None`` selects all; a slice is applied to ``range(n)``; listed timepoints must
        exist.
    where : str
        The data, for messages (``"plate.zarr/A/1/0"``).

    Raises
    ------
    ValueError
        A listed timepoint that does not exist, or a selection of none.

    Examples
    --------
    >>> select_timepoints(4, [3, 1, 3], "f"), select_timepoints(4, slice(2, None), "f")
    ([1, 3], [2, 3])
    >>> select_timepoints(2, slice(1, 0), "f")
    Traceback (most recent call last):
    ...
    ValueError: timepoints 1:0 select none of the 2 timepoint(s) of f (0..1)
    """
    if timepoints is None:
        chosen = list(range(n))
    elif isinstance(timepoints, slice):
        chosen = list(range(n))[timepoints]
    else:
        bad = [t for t in timepoints if not 0 <= int(t) < n]
        if bad:
            raise ValueError(f"timepoint(s) {bad} do not exist; {where} has {n} (0..{n - 1})")
        chosen = sorted({int(t) for t in timepoints})
    if not chosen:
        raise ValueError(f"timepoints {describe_selection(timepoints)} select none of the "
                         f"{n} timepoint(s) of {where} (0..{n - 1})")
    return chosen
