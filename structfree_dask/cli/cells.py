"""``structfree-dask link``, ``measure``, ``track``, ``report``: cells over time."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import CellsSettings
from ._common import (
    Interrupted,
    ProgressBar,
    add_cluster_options,
    add_settings_options,
    check_cluster_options,
    checked_values,
    given_settings,
    parse_timepoints,
    start_client,
    str_list,
)

__all__ = ["add_cells_parsers", "print_cells_result", "print_track_result"]


def _run_cells(args: argparse.Namespace, what: str, step: str, call: Any) -> int:
    from ..runtime.cluster import close_client

    client = start_client(args)
    progress = ProgressBar(args, "field-timepoint", step)
    try:
        result = call(client, progress)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {progress.done} of {progress.total} (field, "
                          f"timepoint) unit(s) finished and are kept in {what}; rerun the "
                          "same command to resume") from None
    finally:
        progress.close()
        close_client(client)
    print_cells_result(what, result)
    return 0 if result.ok else 1


def print_cells_result(what: str, result: Any) -> None:
    """Print what a linking or measuring run did, and each failed unit on stderr."""
    flagged = result.flagged()
    cells = sum(c.get("cells", 0) for c in result.counts.values())
    nuclei = (f"flagged: {flagged['cells_without_nucleus']} cell(s) without nucleus, "
              f"{flagged['cells_with_several_nuclei']} with several, "
              f"{flagged['nuclei_outside_cells']} nucleus/nuclei outside any cell"
              if flagged else "no nuclei given (nucleus columns empty)")
    print(f"{what}: {len(result.done)} done, {len(result.skipped)} skipped (already done), "
          f"{len(result.failed)} failed; {cells} cells in the units done; {nuclei}")
    for failure in result.failed:
        print(f"failed: {failure.line()}", file=sys.stderr)
    for line in result.warnings():
        print(f"warning: {line}", file=sys.stderr)


def _cmd_link(args: argparse.Namespace) -> int:
    from ..cells.plate_measure import check_cells, link_plate

    check_cluster_options(args)
    steps = CellsSettings.from_mapping({"cells": args.cells, "nuclei": args.nuclei,
                                        "link": True, "measure": False,
                                        **given_settings(args, CellsSettings)})
    plan = check_cells(args.plate, labels=args.cells, nuclei=args.nuclei, link_labels=True,
                       wells=args.wells, timepoints=args.timepoints, overwrite=args.overwrite)
    what = " and ".join(f"labels/{n}" for n in steps.outputs())
    return _run_cells(args, what, "link", lambda client, progress: link_plate(
        args.plate, nuclei=args.nuclei, cells=args.cells, client=client, wells=args.wells,
        timepoints=args.timepoints, overwrite=args.overwrite, region=steps.region,
        progress=progress, plan=plan))


def _cmd_measure(args: argparse.Namespace) -> int:
    from ..cells.plate_measure import check_cells, measure_plate

    check_cluster_options(args)
    steps = CellsSettings.from_mapping({"cells": args.labels, "nuclei": args.nuclei,
                                        **given_settings(args, CellsSettings)})
    channels = list(steps.channels) if steps.channels else None
    plan = check_cells(args.plate, labels=args.labels, nuclei=args.nuclei,
                       table=steps.table_name, link_labels=bool(steps.link), channels=channels,
                       wells=args.wells, timepoints=args.timepoints, overwrite=args.overwrite)
    return _run_cells(args, f"tables/{steps.table_name}", "measure",
                      lambda client, progress: measure_plate(
        args.plate, labels=args.labels, nuclei=args.nuclei, table=steps.table_name,
        channels=channels, client=client, wells=args.wells, timepoints=args.timepoints,
        overwrite=args.overwrite, link_labels=steps.link, region=steps.region,
        progress=progress, plan=plan))


def _cmd_track(args: argparse.Namespace) -> int:
    from ..cells.plate_track import check_tracks, track_plate
    from ..runtime.cluster import close_client

    check_cluster_options(args)
    given = checked_values(CellsSettings, given_settings(args, CellsSettings))
    tracking = {k: given[k] for k in ("tracked_labels", "max_distance", "max_gap", "divisions",
                                      "region") if k in given}
    plan = check_tracks(args.plate, args.table, args.wells, overwrite=args.overwrite,
                        **{k: v for k, v in tracking.items() if k != "region"})
    client = start_client(args)
    progress = ProgressBar(args, "field", "track")
    try:
        result = track_plate(args.plate, table=args.table, client=client, wells=args.wells,
                             overwrite=args.overwrite, progress=progress, plan=plan,
                             **tracking)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: fields that finished keep their tracks; rerun the "
                          "same command to track the others") from None
    finally:
        progress.close()
        close_client(client)
    print_track_result(f"tables/{args.table}", result)
    return 0 if result.ok else 1


def print_track_result(what: str, result: Any) -> None:
    """Print what a tracking run did, and each failed field on stderr."""
    tracks = sum(v[0] for v in result.tracks.values())
    divisions = sum(v[1] for v in result.tracks.values())
    print(f"{what}: {len(result.tracks)} field(s) tracked, {len(result.failed)} failed; "
          f"{tracks} tracks, {divisions} divisions")
    for failure in result.failed:
        print(f"failed: {failure.line()}", file=sys.stderr)
    for line in result.warnings():
        print(f"warning: {line}", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> int:
    from ..cells.report import write_report
    from ..screen.view import screen_addon

    given = checked_values(CellsSettings, given_settings(args, CellsSettings))
    screen = screen_addon(args.plate, args.table, timepoint=args.screen_timepoint)
    page = write_report(args.plate, table=args.table, labels=args.labels,
                        readout=given.get("readout"), output=args.output,
                        well_pages=given.get("well_pages", CellsSettings.well_pages),
                        addons=[screen] if screen is not None else [])
    print(f"report: {page}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("plate", help="OME-Zarr plate or multiscale image (a path or a URL)")
    p.add_argument("--wells", type=str_list, default=None, help="wells, e.g. A/1,B/3")
    p.add_argument("--timepoints", type=parse_timepoints, default=None,
                   help="timepoints, e.g. 0,1,2 or 0:10 (default all; done ones are skipped)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs made from other labels or settings")
    add_cluster_options(p)


def add_cells_parsers(sub: Any) -> None:
    """Add the ``link``, ``measure``, ``track`` and ``report`` commands."""
    p = sub.add_parser(
        "link", help="link nuclei to cells; write linked nuclei and cytoplasm labels",
        description="Each nucleus goes to the cell that holds most of it. Writes "
                    "labels/<CELLS>_nuclei (a nucleus carries its cell's ID) and "
                    "labels/<CELLS>_cytoplasm (cell minus nucleus). Cells without nucleus, "
                    "with several, and nuclei outside any cell are counted.")
    _common(p)
    p.add_argument("--nuclei", required=True, help="nucleus label image, e.g. nuclei")
    p.add_argument("--cells", required=True, help="cell label image, e.g. cyto")
    add_settings_options(p, CellsSettings, only=("region",))
    p.set_defaults(func=_cmd_link)

    p = sub.add_parser(
        "measure", help="per-cell measurement tables (ngio feature tables + Parquet dataset)",
        description="Per cell and timepoint: area, centroid (px and um), shape, and for every "
                    "channel mean / median / integrated intensity in nucleus, cytoplasm and "
                    "whole cell, and the nucleus/cytoplasm ratio. Written to "
                    "<field>/tables/<TABLE> and <plate>/measurements/<TABLE>.")
    _common(p)
    p.add_argument("--labels", required=True, help="cell label image whose IDs key the rows")
    p.add_argument("--nuclei", default=None,
                   help="nucleus label image to link (without it: the nucleus and ratio "
                        "columns are empty)")
    add_settings_options(p, CellsSettings, only=("table", "channels", "link", "region"),
                         options={"channels": "--channels"})
    p.set_defaults(func=_cmd_measure)

    p = sub.add_parser(
        "track", help="track measured cells over time (laptrack; geff export)",
        description="Per field: tracks with divisions from the measured centroids "
                    "(track_id, parent_track_id in the tables), the track graph as geff in "
                    "<field>/tracks/<TABLE>, and with --tracked-labels a label image "
                    "<LABELS>_tracked in which a cell keeps its ID over time. Tracked "
                    "timepoints keep their IDs when new ones are appended.")
    p.add_argument("plate", help="OME-Zarr plate or multiscale image (a path or a URL)")
    p.add_argument("--table", required=True, help="measurement table, e.g. cyto_features")
    p.add_argument("--wells", type=str_list, default=None, help="wells, e.g. A/1,B/3")
    add_settings_options(p, CellsSettings, only=("tracked_labels", "max_distance", "max_gap",
                                                  "divisions", "region"))
    p.add_argument("--overwrite", action="store_true",
                   help="track every timepoint again when a tracking setting changed; replace "
                        "a tracked label image made from something else")
    add_cluster_options(p)
    p.set_defaults(func=_cmd_track)

    p = sub.add_parser(
        "report", help="an offline HTML view of a measured plate",
        description="Cells per well per timepoint, the translocation readout per well over "
                    "time, field thumbnails with outlines and flagged objects, as an HTML "
                    "page with PNGs in a local folder (never in the plate). A plate with a "
                    "plate map (annotate) also gets the screen's view: the layout by "
                    "condition, and from its screen tables (screen) the conditions over "
                    "time, Z' over time, dose-response curves and EC50s over time.")
    p.add_argument("plate", help="OME-Zarr plate (a path or a URL)")
    p.add_argument("--table", required=True, help="measurement table, e.g. cyto_features")
    p.add_argument("--labels", default=None,
                   help="label image outlined in thumbnails (default: the table's)")
    add_settings_options(p, CellsSettings, only=("readout", "well_pages"))
    p.add_argument("--output", default=None,
                   help="folder of the page (default <plate name>-report beside a local plate, "
                        "in the current folder for a URL)")
    p.add_argument("--screen-timepoint", type=int, default=None, metavar="T",
                   help="timepoint of the screen's dose-response curves (default the last)")
    p.set_defaults(func=_cmd_report)
