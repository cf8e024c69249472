"""The ``cells`` step of a job: link, measure, track and report each segmented plate.

For every plate the runner first checks what can be checked before anything is written
(:func:`check_plate`: label images the job does not produce must exist, and when the
job produces none of the inputs, the whole request is checked as
:func:`structfree_dask.cells.plate_measure.check_cells` does); a problem stops the run before it
starts, as bad input. Once the job's segmentation is
done, :func:`run_plate` measures the plate on the job's client (linking and the linked
label images with it), tracks it and writes its report. Each plate has a section of the
run record (:func:`plate_section`); its problems (:func:`section_problems`) make the run
fail like failed segmentation units do. A plate whose input label images did not
segment (an entry's error or failed units) is skipped, with a problem noted.

Inputs that the job segments are measured at the timepoints they are complete in (in
every field), and in the wells every entry producing them selects, so that a
timepoint that is not segmented is never measured (and recorded done) empty.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CellsSettings
from ..io import (
    basename,
    completed_timepoints,
    is_url,
    join,
    open_labels,
    open_plate,
    prune,
    redact,
    upload,
)
from ..workflow import check_cells_steps, run_cells_steps
from .schema import Job

__all__ = ["ReportPlace", "add_to_report", "check_plate", "plate_section", "report_folders",
           "run_plate",
           "section_problems"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportPlace:
    """Where a run writes a plate's report: ``<records>/<folder>/report.html``.

    ``records`` is a local folder or an object store URL (the report is then written to
    a temporary folder and its files uploaded).
    """

    records: str
    folder: str

    @property
    def location(self) -> str:
        """The report folder."""
        return join(self.records, self.folder)


def report_folders(stem: str, plates: Sequence[str]) -> list[str]:
    """Return a report folder name per plate: ``<stem>-report-<plate name>``, each once.

    Examples
    --------
    >>> report_folders("run-1", ["/a/p.zarr", "s3://b/p.ome.zarr", "/c/q.zarr"])
    ['run-1-report-p', 'run-1-report-p-2', 'run-1-report-q']
    """
    out: list[str] = []
    for plate in plates:
        name = basename(plate).removesuffix(".zarr").removesuffix(".ome") or "plate"
        folder, n = f"{stem}-report-{name}", 1
        while folder in out:
            n += 1
            folder = f"{stem}-report-{name}-{n}"
        out.append(folder)
    return out


def plate_section(plate: str, task: CellsSettings) -> dict[str, Any]:
    """Return a plate's empty ``cells`` section of the run record."""
    return {"plate": plate, "labels": task.cells, "nuclei": task.nuclei,
            "table": task.table_name, "done": [], "skipped": [], "failed": [], "cells": 0,
            "flagged": {}, "track": None, "report": None, "errors": [], "seconds": 0.0}


def _error(section: dict[str, Any], step: str, err: BaseException | str) -> None:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    section["errors"].append(f"{step}: {text}")
    logger.error("%s cells (%s): %s", section["plate"], step, text)


def section_problems(section: dict[str, Any]) -> list[str]:
    """Return the problems of a plate's section, one line each."""
    plate, table = section["plate"], section["table"]
    out = [f"{plate} cells {e}" for e in section["errors"]]
    out += [f"{plate} {p or '(image)'} t={t} tables/{table}: {e}"
            for p, t, e in section["failed"]]
    if section["track"]:
        out += [f"{plate} {p or '(image)'} tracks/{table}: {e}"
                for p, e in section["track"]["failed"]]
    return out


def _wells(job: Job) -> tuple[str, ...] | None:
    """Wells every entry producing an input selects (None: all wells)."""
    assert job.cells is not None
    wells: tuple[str, ...] | None = None
    for t in job.tasks:
        if t.label_name in job.cells.inputs and t.wells is not None:
            wells = t.wells if wells is None else tuple(w for w in wells if w in t.wells)
    return wells


def _produced(job: Job) -> set[str]:
    return {t.label_name for t in job.tasks}


def check_plate(job: Job, plate: str) -> None:
    """Check a plate's cells step before anything is written (raises as the cells API does).

    :func:`structfree_dask.workflow.check_cells_steps` with the label images the job
    segments as produced.
    """
    task = job.cells
    assert task is not None
    wells = _wells(job)
    if wells == ():
        raise ValueError(f"{plate}: no well is selected by every segment entry the cells "
                         f"step reads ({', '.join(task.inputs)})")
    check_cells_steps(plate, task, produced=sorted(_produced(job)), wells=wells)


def _segmented_timepoints(plate: str, names: list[str], wells: tuple[str, ...] | None
                          ) -> list[int]:
    """Timepoints at which every named label image is complete in every field."""
    opened = open_plate(plate)
    common: set[int] | None = None
    for path in opened.select(list(wells) if wells else None):
        image = opened.field(path)
        for name in names:
            done = completed_timepoints(open_labels(image, name)) if name in image.labels \
                else set()
            common = done if common is None else common & done
    return sorted(common or ())


def _inputs_ready(job: Job, section: dict[str, Any], entries: list[dict[str, Any]]
                  ) -> tuple[bool, list[int] | None]:
    """Whether to measure the plate, and at which timepoints (None: all).

    Not when an input the job produces did not segment on the plate (noted in
    ``section``).
    """
    task = job.cells
    assert task is not None
    produced = [n for n in task.inputs if n in _produced(job)]
    for entry in entries:
        if entry["label"] in produced and (entry["error"] or entry["failed"]):
            _error(section, "skipped", f"labels/{entry['label']} did not segment on this "
                                       "plate (see its problems)")
            return False, None
    if not produced:
        return True, None
    ts = _segmented_timepoints(section["plate"], produced, _wells(job))
    if not ts:
        _error(section, "skipped", f"no timepoint is segmented in {', '.join(produced)}")
        return False, None
    return True, ts


def _write_report(section: dict[str, Any], place: ReportPlace, flagged: dict[str, int],
                  task: CellsSettings, addons: Sequence[Any] = ()) -> str:
    """Write the plate's report at ``place``; return the page's location."""
    from ..cells.report import write_report, written_by_report

    plate, table = section["plate"], section["table"]
    if not is_url(place.records):
        return str(write_report(plate, table=table, output=Path(place.location),
                                flagged=flagged, readout=task.readout,
                                well_pages=task.well_pages, addons=addons))
    with tempfile.TemporaryDirectory() as scratch:
        page = write_report(plate, table=table, output=Path(scratch) / place.folder,
                            flagged=flagged, readout=task.readout,
                            well_pages=task.well_pages, addons=addons)
        written = {f.name for f in page.parent.iterdir() if f.is_file()}
        for name in sorted(written):
            upload(page.parent / name, join(place.location, name))
        stale = prune(place.location, written, written_by_report)
        if stale:
            logger.info("removed %d report files an earlier report left at %s", len(stale),
                        redact(place.location))
        return join(place.location, page.name)


def add_to_report(job: Job, section: dict[str, Any], place: ReportPlace,
                  addons: Sequence[Any]) -> None:
    """Write a plate's report again with sections of another step (the screen's).

    Only where this step wrote a report; ``addons`` are
    :class:`structfree_dask.cells.report.ReportAddon` objects.
    """
    assert job.cells is not None
    if section.get("report") is None:
        return
    section["report"] = _write_report(section, place, section.get("flagged") or {}, job.cells,
                                      addons)


def run_plate(job: Job, section: dict[str, Any], entries: list[dict[str, Any]],
              client: Any, place: ReportPlace,
              progress: Callable[[int, int], None] | None = None) -> None:
    """Measure, track and report one segmented plate; fill its section.

    Parameters
    ----------
    job : Job
        With ``cells``.
    section : dict
        The plate's section (:func:`plate_section`, checked by :func:`check_plate`).
    entries : list of dict
        The run record's segmentation entries of this plate.
    client : distributed.Client
        The job's client.
    place : ReportPlace
        Where the report goes.
    progress : callable, optional
        ``progress(done, total)`` of the measuring units.
    """
    task = job.cells
    assert task is not None
    if section["errors"]:
        return
    ready, timepoints = _inputs_ready(job, section, entries)
    if not ready:
        return
    plate, table = section["plate"], section["table"]
    out = run_cells_steps(plate, task, client=client, wells=_wells(job), timepoints=timepoints,
                          write_report=lambda flagged: _write_report(section, place, flagged,
                                                                     task),
                          progress=progress)
    for step, error in out.errors:
        _error(section, step, error)
    result = out.measured
    if result is not None:
        section["done"] = [[p, t] for p, t in sorted(result.done)]  # not in completion order
        section["skipped"] = [[p, t] for p, t in sorted(result.skipped)]
        section["failed"] = [[p, t, e] for p, t, e in result.failed]
        section["cells"] = int(sum(c.get("cells", 0) for c in result.counts.values()))
        section["flagged"] = result.flagged()
        section["warnings"] = result.warnings()
        for line in section["warnings"]:
            logger.warning("%s: %s", plate, line)
        logger.info("%s tables/%s: %d done, %d skipped, %d failed", plate, table,
                    len(result.done), len(result.skipped), len(result.failed))
    tracked = out.tracked
    if tracked is not None:
        section["track"] = {
            "tracks": sum(v[0] for v in tracked.tracks.values()),
            "divisions": sum(v[1] for v in tracked.tracks.values()),
            "timepoints": [[p, v[2]] for p, v in tracked.tracks.items()],
            "failed": [[p, e] for p, _, e in tracked.failed],
            "unregistered": [[p, t] for p, t in tracked.unregistered()]}
        section.setdefault("warnings", []).extend(tracked.warnings())
    section["report"] = out.report
    section["seconds"] = out.seconds
