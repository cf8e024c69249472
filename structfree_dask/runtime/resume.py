"""What a rerun does with an output that exists: create, recreate, or resume and redo.

Every plate job (segmentation, linking, measuring, tracking) writes outputs made of
(field, timepoint) units: a label image, a table of parts. One rule decides, before
anything is written, what happens to such an output:

- absent: it is created;
- written by this kind of job with the same settings: completed timepoints are kept
  and skipped; with ``overwrite`` the *selected* ones are redone, the others kept;
- ``overwrite`` of every timepoint it holds: it is recreated whole;
- anything else (other settings, or not written by this kind of job) would mix two
  things in one output or discard timepoints that were not selected: refused, with
  what to do instead.

``overwrite`` thus works per (field, timepoint) for every kind of unit, and a partial
``overwrite`` never deletes the timepoints that were not selected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Resume", "decide_resume"]


@dataclass(frozen=True)
class Resume:
    """What to do with an output.

    Attributes
    ----------
    action : {"create", "recreate", "resume"}
        Create it, recreate it whole (``overwrite`` of everything it holds), or keep it.
    redo : tuple of int
        With ``"resume"``: completed timepoints that ``overwrite`` redoes.
    kept : tuple of int
        With ``"resume"``: completed timepoints that stay and are skipped.
    """

    action: str
    redo: tuple[int, ...] = ()
    kept: tuple[int, ...] = ()


def decide_resume(what: str, *, exists: bool, ours: bool, diffs: str, done: Iterable[int],
                  present: Iterable[int], selected: Iterable[int], overwrite: bool,
                  job: str, rename: str, error: type[Exception] = FileExistsError) -> Resume:
    """Decide what happens to an output, without writing anything.

    Parameters
    ----------
    what : str
        The output, for messages (``"label image 'cyto' in plate.zarr/A/1/0"``).
    exists : bool
        Whether it exists.
    ours : bool
        Whether it was written by this kind of job (it carries this job's record).
    diffs : str
        The settings that differ from this run's (empty when the same).
    done : iterable of int
        Timepoints recorded as complete (for an output of ours).
    present : iterable of int
        Timepoints that hold data (for an output that is not ours: all of them).
    selected : iterable of int
        The timepoints this run is asked for.
    overwrite : bool
        Whether redoing was asked for.
    job : str
        The kind of job, for messages (``"a segmentation run"``).
    rename : str
        How to choose another output, for messages (``"--name"``).
    error : type
        Exception raised when refused.

    Returns
    -------
    Resume

    Raises
    ------
    error
        When the output exists and cannot be resumed or partly redone as asked.

    Examples
    --------
    >>> decide_resume("table 't'", exists=True, ours=True, diffs="", done={0, 1},
    ...               present={0, 1}, selected=[1], overwrite=True, job="measure",
    ...               rename="--table")
    Resume(action='resume', redo=(1,), kept=(0,))
    >>> decide_resume("table 't'", exists=True, ours=False, diffs="", done=(),
    ...               present={0, 1}, selected=[1], overwrite=True, job="measure",
    ...               rename="--table")
    Traceback (most recent call last):
    ...
    FileExistsError: table 't' was not written by measure; overwriting timepoint(s) [1] alone would discard its other timepoints [0]. Select all its timepoints, or choose another --table
    """  # noqa: E501
    if not exists:
        return Resume("create")
    sel = sorted({int(t) for t in selected})
    held = {int(t) for t in (done if ours else present)}
    kept = sorted(held - set(sel))
    if overwrite and not kept:
        return Resume("recreate")
    if not ours:
        if overwrite:
            raise error(f"{what} was not written by {job}; overwriting timepoint(s) {sel} "
                        f"alone would discard its other timepoints {kept}. Select all its "
                        f"timepoints, or choose another {rename}")
        raise error(f"{what} already exists and was not written by {job}; choose another "
                    f"{rename} or pass --overwrite")
    if diffs:
        if overwrite:
            raise error(f"{what} keeps timepoint(s) {kept} made with other settings ({diffs}); "
                        "overwrite redoes only the selected timepoints, and one output cannot "
                        "mix settings. Select all its timepoints to redo it whole, or choose "
                        f"another {rename}")
        raise error(f"{what} was made with other settings ({diffs}); pass --overwrite to "
                    "redo it")
    redo = tuple(sorted(held & set(sel))) if overwrite else ()
    return Resume("resume", redo, tuple(sorted(held - set(redo))))
