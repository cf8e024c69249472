"""The ``screen`` step of a job: store the plate map, then compute the screen tables.

Before anything is written (and before a cluster starts) :func:`check_plate` checks the
job's plate map against each plate (:func:`structfree_dask.screen.platemap.check_plate_map`:
every well once, numbers, roles; another map already stored is refused unless
``screen.overwrite``); a problem stops the run as bad input. Once the plate's ``cells``
step is done, :func:`run_plate` stores the map and, with ``screen.tables`` (the default),
computes the screen tables of the measured table on the job's client
(:func:`structfree_dask.screen.plate_screen.screen_plate`). Each plate has a section of the
run record (:func:`plate_section`); its problems (:func:`section_problems`) make the run
fail. The tables are not computed where the cells step did not finish (an error or failed
units): they would summarize part of the plate.
"""

from __future__ import annotations

import logging
from typing import Any

from .schema import Job

__all__ = ["check_plate", "plate_section", "run_plate", "section_problems"]

logger = logging.getLogger(__name__)


def plate_section(plate: str, job: Job) -> dict[str, Any]:
    """Return a plate's empty ``screen`` section of the run record."""
    assert job.screen is not None
    table = job.cells.table_name if job.cells is not None and job.screen.tables else None
    return {"plate": plate, "plate_map": job.screen.plate_map, "annotated": None,
            "table": table, "tables": None, "zprime": None, "failed_fits": None,
            "errors": []}


def _error(section: dict[str, Any], step: str, err: BaseException | str) -> None:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    section["errors"].append(f"{step}: {text}")
    logger.error("%s screen (%s): %s", section["plate"], step, text)


def section_problems(section: dict[str, Any]) -> list[str]:
    """Return the problems of a plate's ``screen`` section, one line each."""
    return [f"{section['plate']} screen {e}" for e in section["errors"]]


def add_to_report(job: Job, section: dict[str, Any], cells: dict[str, Any],
                  place: Any) -> None:
    """Write the plate's report again with its screen pages, once the screen tables exist.

    ``cells`` is the plate's ``cells`` section (its report, written before the screen
    step ran) and ``place`` where that report is (:class:`.cells_step.ReportPlace`).
    """
    from ..screen.view import screen_addon
    from .cells_step import add_to_report as rewrite

    if not section["tables"] or cells.get("report") is None:
        return
    try:
        rewrite(job, cells, place, [screen_addon(section["plate"], section["table"])])
    except Exception as err:  # noqa: BLE001 - recorded; the tables are written
        _error(section, "report", err)


def check_plate(job: Job, plate: str) -> None:
    """Check the job's plate map (and readouts given as channel indices) against a plate.

    Before anything is written. Raises as
    :func:`structfree_dask.screen.platemap.check_plate_map` does, and ``ValueError`` for a
    channel index the plate does not have (names may be columns of a table that does not
    exist yet: they are checked when the tables are computed).
    """
    from ..io import open_plate
    from ..screen.platemap import check_plate_map

    assert job.screen is not None and job.screen.plate_map is not None
    check_plate_map(plate, job.screen.plate_map, overwrite=job.screen.overwrite)
    indices = [r for r in job.screen.readouts or () if isinstance(r, int)]
    if indices and job.screen.tables:
        opened = open_plate(plate)
        channels = opened.field(opened.field_paths[0]).channel_names
        for r in indices:
            if r >= len(channels):
                raise ValueError(f"screen.readouts: {plate} has {len(channels)} channels "
                                 f"({', '.join(channels)}); got channel index {r}")


def run_plate(job: Job, section: dict[str, Any], cells: dict[str, Any] | None,
              client: Any) -> None:
    """Store a plate's map and compute its screen tables; fill its section.

    Parameters
    ----------
    job : Job
        With ``screen``.
    section : dict
        The plate's section (:func:`plate_section`).
    cells : dict or None
        The plate's ``cells`` section of the run record (None: the job has no ``cells``).
    client : distributed.Client
        The job's client.
    """
    from ..screen.plate_screen import screen_plate
    from ..screen.platemap import annotate_plate

    settings = job.screen
    assert settings is not None and settings.plate_map is not None
    plate = section["plate"]
    try:
        done = annotate_plate(plate, settings.plate_map, overwrite=settings.overwrite)
    except Exception as err:  # noqa: BLE001 - recorded; the other plates still run
        _error(section, "annotate", err)
        return
    section["annotated"] = "written" if done.changed else "unchanged"
    if section["table"] is None:
        return
    if cells is not None and (cells["errors"] or cells["failed"]):
        _error(section, "skipped", "the cells step did not finish on this plate (see its "
                                   "problems); the screen tables would summarize part of it")
        return
    readouts = list(settings.readouts) if settings.readouts else None
    try:
        result = screen_plate(plate, section["table"], readouts=readouts, client=client)
    except Exception as err:  # noqa: BLE001 - recorded; the other plates still run
        _error(section, "tables", err)
        return
    section["tables"] = result.location
    section["failed_fits"] = result.failed_fits
    last = result.zprime[result.zprime["t"] == result.zprime["t"].max()]
    section["zprime"] = {r.readout: (None if r.z_prime != r.z_prime else float(r.z_prime))
                         for r in last.itertuples()}
    logger.info("%s: screen tables in %s", plate, result.location)
