"""What every plate-level run returns: units done, skipped and failed, one way.

Segmentation (:class:`structfree_dask.engine.RunResult`), linking and measuring
(:class:`structfree_dask.cells.plate_measure.CellsResult`), tracking
(:class:`structfree_dask.cells.plate_track.TrackResult`) and the zoo's training
(:class:`structfree_dask.zoo.training.build.BuildResult`) all extend :class:`PlateRun`:
a unit is ``(where, t)``, where ``where`` is a field path (``""`` for a lone image) or a
model ID and ``t`` a timepoint, or None for a unit that spans every timepoint (a field's
tracks, a model); a failure is a :class:`Failure`, ``(where, t, error)``.

Examples
--------
>>> run = PlateRun()
>>> run.done.append(("A/1/0", 0))
>>> run.fail("A/1/0", 1, "ValueError: NaN in channel 2")
>>> run.ok, run.summary()
(False, '1 done, 0 skipped (already done), 1 failed')
>>> [f.line() for f in run.failed]
['A/1/0 t=1: ValueError: NaN in channel 2']
>>> run.failure("A/1/0")
'ValueError: NaN in channel 2'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["Failure", "PlateRun"]


class Failure(NamedTuple):
    """One unit that failed: where (field path or model ID), timepoint, and why."""

    where: str
    t: int | None
    error: str

    def line(self) -> str:
        """Return the failure as one line (``(image)`` for a lone image's empty path)."""
        at = f" t={self.t}" if self.t is not None else ""
        return f"{self.where or '(image)'}{at}: {self.error}"


@dataclass
class PlateRun:
    """Units a run did, skipped (done before) and failed, and why it stopped, if it did.

    Attributes
    ----------
    done, skipped : list of (str, int or None)
        ``(where, t)`` of each unit.
    failed : list of Failure
    seconds : float
        Wall time of the run.
    error : str, optional
        Why the run stopped before its end (None: it did not).
    exception : BaseException, optional
        The exception behind ``error`` (not compared or shown).
    """

    done: list[tuple[str, int | None]] = field(default_factory=list)
    skipped: list[tuple[str, int | None]] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when no unit failed and the run was not stopped."""
        return not self.failed and self.error is None

    def fail(self, where: str, t: int | None, error: str) -> None:
        """Record a failed unit."""
        self.failed.append(Failure(where, t, error))

    def failure(self, where: str, t: int | None = None) -> str | None:
        """Return why the unit at ``where`` (and ``t``, when given) failed (None: it did not)."""
        for f in self.failed:
            if f.where == where and (t is None or f.t == t):
                return f.error
        return None

    def summary(self) -> str:
        """Return ``"N done, M skipped (already done), K failed"``."""
        return (f"{len(self.done)} done, {len(self.skipped)} skipped (already done), "
                f"{len(self.failed)} failed")

    def raise_error(self) -> None:
        """Raise what stopped the run (its own exception), if anything did."""
        if self.exception is not None:
            raise self.exception
        if self.error is not None:
            raise RuntimeError(self.error)
