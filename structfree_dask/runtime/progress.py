"""Progress counters of the plate-level steps, and the steps' names.

A step (segmenting, linking, measuring, tracking) reports its progress as
``progress(done, total)``. A counter that follows several steps, such as the command
line's bar, can also be told which step a count belongs to: it then has a
``named(step)`` method returning the step's own ``progress(done, total)``.
:func:`for_step` gives a step that counter, and any other callable unchanged.

Examples
--------
>>> seen = []
>>> for_step(lambda done, total: seen.append((done, total)), "measure")(1, 4)
>>> seen
[(1, 4)]
>>> class Named:
...     def named(self, step, unit=None):
...         return lambda done, total: seen.append((step, done, total))
>>> for_step(Named(), "track")(2, 4)
>>> seen[-1]
('track', 2, 4)
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "for_step"]

#: ``progress(done, total)``: the units of a step done so far, of how many.
Progress = Callable[[int, int], None]


def for_step(progress: Progress | None, step: str, unit: str | None = None
             ) -> Progress | None:
    """Return the counter of one named step (None: no counter).

    Parameters
    ----------
    progress : callable or None
        ``progress.named(step, unit)`` where it names its steps, else ``progress`` itself.
    step : str
        What the step does, as a user reads it (``segment``, ``measure``).
    unit : str, optional
        What the step counts, where it is not the counter's own (``field``).
    """
    named = getattr(progress, "named", None)
    return named(step, unit) if callable(named) else progress
