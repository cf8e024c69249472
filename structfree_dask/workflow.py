"""One workflow from a plate to a tracked per-cell table, shared by the CLI and job files.

segment (cells, nuclei) -> link -> measure -> track -> report, any prefix of it, on one
cluster. The command line (``segment ... --with-nuclei CH --measure --track --report DIR``)
and job files (``segment:`` then ``cells:``) compose it the same way, through
:func:`check_cells_steps` (everything checked before the first write) and
:func:`run_cells_steps` (what follows the segmentation).

Linking happens once: with ``link`` the measuring units write the linked label images
from the same links they measure with (one overlap count per unit), instead of a linking
run followed by a measuring run that links again.

The steps and their settings are :class:`~structfree_dask.config.CellsSettings` (the
one schema: job keys, command-line options and Python arguments alike).

Examples
--------
>>> steps = CellsSettings(cells="cyto", nuclei="nuclei", track=True)
>>> steps.table_name, steps.outputs()
('cyto_features', ('cyto_nuclei', 'cyto_cytoplasm'))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import CellsSettings
from .runtime.progress import for_step

__all__ = ["CellsOutcome", "CellsSettings", "check_cells_steps", "run_cells_steps"]


@dataclass
class CellsOutcome:
    """What the cells steps did on one plate.

    Attributes
    ----------
    measured : CellsResult or None
        The linking and measuring run (None: it did not run).
    tracked : TrackResult or None
    report : str or None
        Where the report page is.
    errors : list of (str, str)
        (step, error) of the steps that stopped.
    seconds : float
    """

    measured: Any = None
    tracked: Any = None
    report: str | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no step stopped and no unit failed."""
        return (not self.errors and (self.measured is None or self.measured.ok)
                and (self.tracked is None or self.tracked.ok))


def check_cells_steps(plate: str, steps: CellsSettings, *, produced: Sequence[str] = (),
                      wells: Sequence[str] | None = None,
                      timepoints: slice | Sequence[int] | None = None,
                      overwrite: bool = False) -> None:
    """Check the cells steps of a plate before anything is written (raises as they do).

    Label images in ``produced`` are made by the segmentation that runs first: they need
    not exist yet. The others must; when none is produced, the whole request is checked
    as :func:`structfree_dask.cells.plate_measure.check_cells` does. Linked label images and a table
    from other sources and the channels are checked in every case (the settings' bounds
    when ``steps`` was made).
    """
    from .cells.plate_measure import check_cells, check_link_outputs, check_table_output
    from .io import open_plate

    if not set(produced).intersection(steps.inputs):
        check_cells(plate, labels=steps.cells, nuclei=steps.nuclei,
                    table=steps.table_name if steps.measure else None,
                    link_labels=steps.link,
                    channels=list(steps.channels) if steps.channels else None,
                    wells=wells, timepoints=timepoints, overwrite=overwrite)
        return
    opened = open_plate(plate)
    for path in opened.select(list(wells) if wells else None):
        image = opened.field(path)
        missing = [n for n in steps.inputs if n not in produced and n not in image.labels]
        if missing:
            raise KeyError(f"{plate}: field {path or '(image)'} has no label image "
                           f"{missing[0]!r}; it has {sorted(image.labels) or 'none'}")
    if steps.link and steps.nuclei:
        check_link_outputs(plate, cells=steps.cells, nuclei=steps.nuclei, wells=wells,
                           timepoints=timepoints, overwrite=overwrite)
    if steps.measure:
        check_table_output(plate, cells=steps.cells, nuclei=steps.nuclei,
                           table=steps.table_name,
                           channels=list(steps.channels) if steps.channels else None,
                           wells=wells, timepoints=timepoints, overwrite=overwrite)


def run_cells_steps(plate: str, steps: CellsSettings, *, client: Any,
                    wells: Sequence[str] | None = None,
                    timepoints: slice | Sequence[int] | None = None, overwrite: bool = False,
                    write_report: Callable[[dict[str, int]], str] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> CellsOutcome:
    """Link and measure, then track and report a segmented plate, on one client.

    Parameters
    ----------
    plate : str
    steps : CellsSettings
    client : distributed.Client
        The cluster the segmentation ran on.
    wells, timepoints, overwrite
        As for :func:`structfree_dask.cells.plate_measure.measure_plate`.
    write_report : callable, optional
        ``write_report(flagged) -> location`` when ``steps.report``: where the report goes
        is the caller's (a folder for the command line, the records for a job).
    progress : callable, optional
        ``progress(done, total)`` of the linking or measuring units, then of the tracked
        fields (steps named ``link``, ``measure``, ``track``:
        :func:`.runtime.progress.for_step`).

    Returns
    -------
    CellsOutcome
        A step that raises is recorded in ``errors`` and stops the steps after it (a
        failed tracking still lets the report be written).
    """
    from .cells.plate_measure import link_plate, measure_plate
    from .cells.plate_track import track_plate

    started = time.time()
    out = CellsOutcome()
    if not steps.measure:  # segment -> link
        if steps.link and steps.nuclei:
            try:
                out.measured = link_plate(plate, nuclei=steps.nuclei, cells=steps.cells,
                                          client=client, wells=wells, timepoints=timepoints,
                                          overwrite=overwrite, region=steps.region,
                                          progress=for_step(progress, "link"))
            except Exception as err:  # noqa: BLE001 - recorded for the caller
                out.errors.append(("link", f"{type(err).__name__}: {err}"))
        out.seconds = round(time.time() - started, 3)
        return out
    try:
        out.measured = measure_plate(
            plate, labels=steps.cells, nuclei=steps.nuclei, table=steps.table_name,
            channels=list(steps.channels) if steps.channels else None, client=client,
            wells=wells, timepoints=timepoints, overwrite=overwrite, link_labels=steps.link,
            region=steps.region, progress=for_step(progress, "measure"))
    except Exception as err:  # noqa: BLE001 - recorded for the caller
        out.errors.append(("measure", f"{type(err).__name__}: {err}"))
        out.seconds = round(time.time() - started, 3)
        return out
    if steps.track:
        try:
            out.tracked = track_plate(plate, table=steps.table_name,
                                      tracked_labels=steps.tracked_labels,
                                      max_distance=steps.max_distance, max_gap=steps.max_gap,
                                      divisions=steps.divisions, region=steps.region,
                                      client=client, wells=wells, overwrite=overwrite,
                                      progress=for_step(progress, "track", "field"))
        except Exception as err:  # noqa: BLE001 - recorded; the report still runs
            out.errors.append(("track", f"{type(err).__name__}: {err}"))
    if steps.report and write_report is not None:
        extra = ({"nuclei outside any cell (units measured in this run)":
                  out.measured.flagged()["nuclei_outside_cells"]} if steps.nuclei else {})
        try:
            out.report = write_report(extra)
        except Exception as err:  # noqa: BLE001 - recorded
            out.errors.append(("report", f"{type(err).__name__}: {err}"))
    out.seconds = round(time.time() - started, 3)
    return out
