"""Command line interface: a thin layer over the Python API.

Every command has ``--help``. Exit status: 0 done; 1 some (field, timepoint) failed
or the run broke down; 2 bad input (a one-line ``error: ...`` on stderr that names the
file, option or key, what was expected and what was found; nothing is written);
130 interrupted (Ctrl-C: what finished is kept and a rerun resumes); 141 the reader
of the output went away (``| head``). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ..config import CellsSettings, SegmentationConfig, SettingsError
from ._common import (
    Interrupted,
    ProgressBar,
    UsageError,
    add_cluster_options,
    add_settings_options,
    channel_list,
    check_cluster_options,
    cluster_settings,
    given_settings,
    int_list,
    parse_timepoints,
    start_client,
    str_list,
)

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE",
           "EXIT_INTERRUPTED", "EXIT_BROKEN_PIPE"]

logger = logging.getLogger("structfree_dask")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``error: ...`` line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print one line naming the command and the problem, then exit with status 2."""
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------- commands


def _cmd_info(args: argparse.Namespace) -> int:
    from ..io import open_plate, plate_summary

    plate = open_plate(args.plate)
    summary = plate_summary(plate)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['kind']} {summary['store']}  (NGFF {summary['ngff_version']})")
    if summary["kind"] == "plate":
        print(f"wells: {len(summary['wells'])}  ({', '.join(summary['wells'][:12])}"
              f"{' ...' if len(summary['wells']) > 12 else ''})")
    print(f"fields: {len(summary['fields'])}")
    for f in summary["fields"]:
        sizes = " ".join(f"{k}={v}" for k, v in f["sizes"].items())
        px = ", ".join(f"{k}={v:g}" for k, v in f["pixel_size"].items() if k in "zyx")
        source = f"; from {f['source']}" if f.get("source") else ""
        if "t" in f["sizes"] and "t" in f["pixel_size"]:
            px += f"; {f['pixel_size']['t']:.3g} h between timepoints"
        print(f"  {f['path'] or '(image)'}: {sizes}; pixel size {px}; "
              f"channels {', '.join(f'{i}={n}' for i, n in enumerate(f['channels']))}{source}")
        n_t = f["sizes"].get("t", 1)
        for lab in f["labels"]:
            done = lab.get("done")
            state = f"{done}/{n_t} timepoint(s) done" if done is not None else ""
            print(f"    labels/{lab['name']} {state}".rstrip())
        for tab in f["tables"]:
            rows = tab["timepoints"]
            state = f"{rows}/{n_t} timepoint(s) with rows" if rows is not None else ""
            tracks = f"; tracks/{tab['name']}" if tab["tracks"] else ""
            print(f"    tables/{tab['name']} {state}{tracks}".rstrip())
    if summary["measurements"]:
        print(f"measurements: {', '.join(summary['measurements'])}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..simulate import simulate_plate, simulate_plate_from_shapes

    if args.shapes_from is None:
        if args.labels is not None or args.nuclei is not None:
            raise UsageError("--labels and --nuclei name label images of --shapes-from PLATE; "
                             "got no --shapes-from")
        layout = {n: d if getattr(args, n) is None else getattr(args, n)
                  for n, d in (("rows", 1), ("cols", 1), ("fields", 1), ("size", 512))}
        out = simulate_plate(
            args.out, cell_line=args.cell_line, timepoints=args.timepoints, seed=args.seed,
            ngff_version=args.ngff_version, mode=args.mode,
            stage_jitter_px=0 if args.stage_jitter is None else args.stage_jitter,
            defocus_p=0.0 if args.defocus is None else args.defocus,
            motion_scale=1.0 if args.motion_scale is None else args.motion_scale,
            plate_map=args.plate_map, **layout,
        )
        if args.plate_map is not None:  # the plate map the screen was simulated from, stored
            from ..screen.platemap import annotate_plate

            annotate_plate(str(out), args.plate_map)
    else:
        for option in ("stage_jitter", "defocus", "motion_scale", "plate_map"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option.replace('_', '-')}: only for simulated cells; "
                                 "not with --shapes-from PLATE")
        given = [f"--{n}" for n in ("rows", "cols", "fields", "size")
                 if getattr(args, n) is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: with --shapes-from the plate layout and "
                             "field sizes are those of the source plate")
        out = simulate_plate_from_shapes(
            args.out, args.shapes_from, labels=args.labels or "gt_cyto", nuclei=args.nuclei,
            cell_line=args.cell_line, timepoints=args.timepoints, seed=args.seed,
            ngff_version=args.ngff_version, mode=args.mode,
        )
    print(f"wrote {out}")
    return 0


#: Fields whose file ``import`` lists (the others: ``info``).
IMPORT_LISTED = 8


def _cmd_import(args: argparse.Namespace) -> int:
    from ..io import import_folder, open_plate

    out = import_folder(
        args.folder, args.out, channels=args.channels, channel_names=args.channel_names,
        mask_label=args.mask_label, ngff_version=args.ngff_version,
        pixel_size_um=args.pixel_size, time_interval_h=args.time_interval,
        z_projection=args.z_projection,
    )
    fields = list(open_plate(out).fields())
    wells = {f.path.rsplit("/", 1)[0] for f in fields}
    px = fields[0].pixel_size
    names = ", ".join(fields[0].channel_names) if fields[0].channel_names else "unnamed"
    print(f"wrote {out}: {len(fields)} field(s) in {len(wells)} well(s); channels {names}; "
          f"pixel size y={px['y']:g}, x={px['x']:g} um")
    for f in fields[:IMPORT_LISTED]:
        first, _, more = (f.source or "").partition(", ")  # a field of several files: its first
        print(f"  {first}{' and more' if more else ''} -> {f.path}")
    if len(fields) > IMPORT_LISTED:
        print(f"  ... and {len(fields) - IMPORT_LISTED} more (structfree-dask info {out} "
              "names each field's file)")
    return 0


def _segment_configs(args: argparse.Namespace) -> list[SegmentationConfig]:
    """Return the settings of the organelle, and of the nuclei with --with-nuclei."""
    from ..config import SettingsError
    from ..io import redact

    given = given_settings(args, SegmentationConfig)
    nuclei = args.with_nuclei
    if nuclei is not None and given.get("organelle", SegmentationConfig.organelle) != "cyto":
        raise UsageError("--with-nuclei goes with --organelle cyto (the cells the nuclei "
                         "are linked to)")
    if args.zoo:
        from ..zoo.use import config_from_zoo

        if "model" in given:
            raise UsageError("give either --model or --zoo, not both")
        if not args.cell_line:
            raise UsageError("--zoo needs --cell-line (the zoo's models are per cell line)")
        values, problems = SegmentationConfig.check_mapping(given)
        if problems:
            raise SettingsError(problems)
        organelle = values.pop("organelle", SegmentationConfig.organelle)
        configs = [config_from_zoo(args.zoo, args.cell_line, organelle, args.plate,
                                   channels=values.pop("channels", None), **values)]
        if nuclei is not None:
            shared = {k: v for k, v in values.items() if k not in ("name", "diameter")}
            configs.append(config_from_zoo(args.zoo, args.cell_line, "nuclei", args.plate,
                                           channels=tuple(nuclei) or None, name="nuclei",
                                           **shared))
        for config in configs:
            print(f"zoo {redact(args.zoo)}: {args.cell_line}/{config.organelle} on channels "
                  f"{', '.join(map(str, config.channels))}", file=sys.stderr)
        return configs
    if args.cell_line:
        raise UsageError("--cell-line is only used with --zoo")
    if "channels" not in given:
        raise UsageError("--channels is required (unless --zoo gives them)")
    configs = [SegmentationConfig.from_mapping(given)]
    if nuclei is not None:
        if not nuclei:
            raise UsageError("--with-nuclei needs the nuclei's channels (unless --zoo gives "
                             "them), e.g. --with-nuclei translocation-reporter")
        shared = {k: v for k, v in given.items() if k not in ("name", "diameter", "channels")}
        configs.append(SegmentationConfig.from_mapping(
            {**shared, "organelle": "nuclei", "channels": nuclei, "name": "nuclei"}))
        model = str(configs[-1].model or "generalist")
        if "nuclei" not in model.lower():
            print(f"warning: --with-nuclei segments the nuclei with {model!r}, a model not "
                  "trained for nuclei: without a nuclear stain its 'nuclei' are often whole "
                  "cells (no cytoplasm left to measure). Build a zoo with --organelle nuclei "
                  "(structfree-dask zoo build ... --organelle nuclei) and segment with --zoo",
                  file=sys.stderr)
    if len({c.label_name for c in configs}) < len(configs):
        raise UsageError("the cells and the nuclei would both be labels/nuclei; give the "
                         "cells another --name")
    return configs


def _cmd_segment(args: argparse.Namespace) -> int:
    import time

    from ..engine import Target, segment_many, validate
    from ..io import check_output_file
    from ..runtime.cluster import close_client, recording, workers_lost

    check_cluster_options(args)
    if args.performance_report:
        check_output_file(args.performance_report, "--performance-report")
    configs = _segment_configs(args)
    # precision auto of workers elsewhere: theirs, compared with a label image to resume
    # once they answer (before any write)
    auto = None if cluster_settings(args).workers_here else "auto"
    # every check (selection, model, label image, plate writable) before a cluster starts
    plans = [validate(args.plate, config, wells=args.wells, timepoints=args.timepoints,
                      auto=auto)
             for config in configs]  # the plans the run uses: the plate is read once
    steps = _cells_steps(args, configs)
    if steps is not None:  # what follows the segmentation: checked before it starts too
        from ..workflow import check_cells_steps

        check_cells_steps(args.plate, steps, produced=[c.label_name for c in configs],
                          wells=args.wells, timepoints=args.timepoints,
                          overwrite=configs[0].overwrite)
    client = start_client(args, profile=bool(args.performance_report))
    progress = ProgressBar(args, "field-timepoint")
    names = " and ".join(f"labels/{c.label_name}" for c in configs)
    since = time.time()
    try:
        with recording(client, args.performance_report):
            results = segment_many([Target(args.plate, c, args.wells, args.timepoints, p)
                                    for c, p in zip(configs, plans, strict=True)],
                                   client=client, progress=progress.named("segment"))
            cells = _cells_after_segment(args, configs, steps, results, client, progress)
        lost = workers_lost(client, since)
    except KeyboardInterrupt:
        step = progress.step or "segment"
        unit = "field(s)" if progress.unit == "field" else "(field, timepoint) unit(s)"
        finished = (f"{progress.done} of {progress.total} {unit} of the {step} step finished"
                    if progress.total else "no unit of this run finished yet")
        kept = names if step == "segment" else f"{names} and the {step} step's outputs"
        raise Interrupted(
            f"interrupted: {finished}; finished units are recorded in {kept} and kept. "
            "Rerun the same command to resume") from None
    finally:
        progress.close()
        close_client(client)
    if lost:
        print(f"workers lost during the run: {len(lost)} "
              f"({', '.join(str(w['worker']) for w in lost)}); their tasks were given to the "
              "other workers: nothing to redo", file=sys.stderr)
    ok = True
    for config, result in zip(configs, results, strict=True):
        result.raise_error()
        rate = result.megapixel_channels / result.seconds if result.seconds else 0.0
        objects = "nuclei" if config.organelle == "nuclei" else "cells"
        print(f"labels/{config.label_name}: {len(result.done)} done, {len(result.skipped)} "
              f"skipped (already done), {len(result.failed)} failed; "
              f"{sum(result.cells.values())} {objects} in the units done; "
              f"{result.seconds:.1f} s ({rate:.3f} Mpx-channels/s)")
        for failure in result.failed:
            print(f"failed: {failure.line()}", file=sys.stderr)
        ok = ok and result.ok
    if cells is not None:
        _print_cells(steps, cells)
        ok = ok and cells.ok
    elif steps is not None:
        print("cells: not linked or measured (the segmentation did not finish; rerun the "
              "same command)", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


#: Prefix of the parsed names of ``segment``'s cells options (its own settings share names).
_CELLS = "cells_"


def _cells_steps(args: argparse.Namespace, configs: list[SegmentationConfig]) -> Any:
    """Return the workflow's steps after the segmentation (None: segment only)."""
    from ..config import CellsSettings

    given = given_settings(args, CellsSettings, _CELLS)
    measure = args.measure or given.get("track", False) or args.report is not None
    if args.report is not None:
        from ..io import check_output_folder

        check_output_folder(args.report, "--report", outside=args.plate)
    nuclei = configs[1].label_name if len(configs) > 1 else None
    steps = CellsSettings.from_mapping({
        **given, "cells": configs[0].label_name, "nuclei": nuclei, "measure": measure,
        "report": args.report is not None})
    return steps if measure or nuclei is not None else None


def _cells_after_segment(args: argparse.Namespace, configs: list[SegmentationConfig],
                         steps: Any, results: list, client: object,
                         progress: ProgressBar) -> object:
    """Link, measure, track and report once every segmentation is whole (else None)."""
    if steps is None or not all(r.ok and r.error is None for r in results):
        return None
    from ..workflow import run_cells_steps

    def report(flagged: dict[str, int]) -> str:
        from ..cells.report import write_report

        return str(write_report(args.plate, table=steps.table_name, output=args.report,
                                flagged=flagged, readout=steps.readout,
                                well_pages=steps.well_pages))

    return run_cells_steps(args.plate, steps, client=client,
                           wells=args.wells, timepoints=args.timepoints,
                           overwrite=configs[0].overwrite,  # redone cells: redone links
                           write_report=report, progress=progress)


def _print_cells(steps: Any, out: Any) -> None:
    from .cells import print_cells_result, print_track_result

    if out.measured is not None:
        print_cells_result(f"tables/{steps.table_name}" if steps.measure else "linked",
                           out.measured)
    if out.tracked is not None:
        print_track_result("tracks", out.tracked)
    if out.report is not None:
        print(f"report: {out.report}")
    for step, error in out.errors:
        print(f"failed: {step}: {error}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    from ..jobs.runner import run_job
    from ..jobs.schema import JobError, load_job

    try:
        job = load_job(args.job)
    except JobError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    progress = ProgressBar(args, "field-timepoint")
    try:
        record = run_job(job, progress=progress)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: units that finished are recorded in their label "
                          "images and kept; run the job again to resume") from None
    finally:
        progress.close()
    print(f"{record['status']}: {record['done']} done, {record['skipped']} skipped, "
          f"{record['failed']} failed in {record['seconds']:.1f} s; record {record['record']}")
    for section in record.get("cells", []):
        track = section["track"]
        tracks = f"; {track['tracks']} tracks, {track['divisions']} divisions" if track else ""
        report = f"; report {section['report']}" if section["report"] else ""
        print(f"{section['plate']}: tables/{section['table']}: {len(section['done'])} done, "
              f"{len(section['skipped'])} skipped, {len(section['failed'])} failed; "
              f"{section['cells']} cells{tracks}{report}")
    for section in record.get("screen", []):
        tables = f"; screen tables {section['tables']}" if section["tables"] else ""
        print(f"{section['plate']}: tables/plate_map {section['annotated'] or 'not stored'}"
              f"{tables}")
    if record.get("workers_lost"):
        print(f"workers lost during the run: {len(record['workers_lost'])} (their tasks "
              "were recomputed)", file=sys.stderr)
    for problem in record["problems"]:
        print(f"failed: {problem}", file=sys.stderr)
    return 0 if record["status"] == "ok" else 1


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_plate, format_scores, write_scores
    from ..io import check_output_file

    for path, option in ((args.json, "--json"), (args.csv, "--csv")):
        if path:
            check_output_file(path, option)
    result = evaluate_plate(args.plate, pred=args.pred, gt=args.gt, wells=args.wells)
    print(format_scores(result))
    write_scores(result, json_path=args.json, csv_path=args.csv)
    return 0


# --------------------------------------------------------------------------- parser


def _add_common_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ngff-version", choices=("0.4", "0.5"), default="0.4",
                   help="NGFF version of the new store: 0.4 (zarr v2, widest viewer support) "
                        "or 0.5 (zarr v3)")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``structfree-dask``."""
    parser = _Parser(
        prog="structfree-dask",
        description="Segment nuclei and cytoplasm without structural stains, on Dask.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks of errors (for developers)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="wells, fields, timepoints, channels, labels, completion",
                       description="Describe an OME-Zarr plate or image.")
    p.add_argument("plate", help="OME-Zarr plate or multiscale image")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("simulate", help="write a synthetic plate with ground truth",
                       description="Write a synthetic HCS plate with non-structural reporter "
                                   "channels and labels/gt_nuclei, labels/gt_cyto.")
    p.add_argument("out", help="new plate path (.zarr)")
    p.add_argument("--cell-line", default="CL1", help="preset CL1..CL5 (default CL1)")
    p.add_argument("--rows", type=int, default=None, help="plate rows (default 1)")
    p.add_argument("--cols", type=int, default=None, help="plate columns (default 1)")
    p.add_argument("--fields", type=int, default=None, help="fields per well (default 1)")
    p.add_argument("--timepoints", type=int, default=1, help="timepoints, every 3 h (default 1)")
    p.add_argument("--size", type=int, default=None, help="field size in px (default 512)")
    p.add_argument("--shapes-from", default=None, metavar="PLATE",
                   help="render the reporters on the cell shapes of this annotated plate "
                        "(its wells, fields and field sizes) instead of simulated cells")
    p.add_argument("--labels", default=None, metavar="NAME",
                   help="with --shapes-from: its cell label image (default gt_cyto)")
    p.add_argument("--nuclei", default=None, metavar="NAME",
                   help="with --shapes-from: its nucleus label image (default: nuclei drawn "
                        "per cell as the simulator draws them)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--mode", choices=("confocal", "widefield"), default="confocal",
                   help="acquisition mode (default confocal)")
    p.add_argument("--stage-jitter", type=int, default=None, metavar="PX",
                   help="shift every field of view by up to PX pixels (y and x, drawn per "
                        "field and timepoint; timepoint 0 is the reference), as a stage "
                        "revisiting the wells; the shifts go to gt_truth (default 0: none)")
    p.add_argument("--defocus", type=float, default=None, metavar="P",
                   help="render every timepoint after the first out of focus with "
                        "probability P (0-1, drawn per field and timepoint), strongly "
                        "blurred; the labels stay the cells, and gt_truth says which "
                        "timepoints (default 0: none)")
    p.add_argument("--motion-scale", type=float, default=None, metavar="X",
                   help="multiply the cells' own motion by X, 0-100 (e.g. 10 with CL3: small "
                        "cells moving further than their radius between timepoints; "
                        "default 1: the cell line's pace)")
    p.add_argument("--plate-map", default=None, metavar="CSV",
                   help="simulate a screen: the plate map (as for annotate) gives each well's "
                        "translocation ratio (controls; a Hill curve of each compound's dose "
                        "with an EC50 drawn from --seed); the truth goes to "
                        "tables/screen_truth and tables/screen_truth_wells")
    _add_common_output(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("import", help="import a folder of TIFF/PNG fields as a plate",
                       description="Import a folder of TIFF/PNG images, one file per field "
                                   "or one per channel and/or timepoint of each field "
                                   "(Harmony, MetaXpress, CellVoyager names), with optional "
                                   "*_masks label files, into an OME-Zarr plate.")
    p.add_argument("folder", help="folder of .tif/.tiff/.png files")
    p.add_argument("out", help="new plate path (.zarr)")
    p.add_argument("--channels", type=int_list, default=None,
                   help="channel indices to keep, e.g. 0,1 (default all)")
    p.add_argument("--channel-names", type=str_list, default=None,
                   help="names of the kept channels, e.g. nuclear,cyto (default: the names "
                        "the index file (Harmony, MetaXpress) or the files (OME-TIFF, "
                        "ImageJ, MetaSeries) record)")
    p.add_argument("--mask-label", default="gt_cyto",
                   help="label image name for *_masks files (default gt_cyto)")
    p.add_argument("--z-projection", choices=["max"], default=None,
                   help="make the planes of a z-stack (files named by plane) one: max, their "
                        "maximum intensity (default: a z-stack is refused)")
    p.add_argument("--time-interval", type=float, default=None, metavar="HOURS",
                   help="hours between the timepoints of time-lapse fields (files named by "
                        "timepoint; default: a Harmony or CellVoyager index file's, else 1, "
                        "with a warning)")
    p.add_argument("--pixel-size", type=float, default=None,
                   help="pixel size in um (default: the one the files (OME-TIFF, ImageJ, "
                        "MetaSeries) or a Harmony or CellVoyager index file record; else 1, "
                        "with a warning)")
    _add_common_output(p)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("segment", help="segment a plate with Flow Averaging on Dask",
                       description="Run the model on each listed channel alone, average the "
                                   "flows over channels (Flow Averaging), integrate, stitch, "
                                   "and write labels/NAME into the plate. With --measure, "
                                   "--track and --report the same run goes on to a tracked "
                                   "per-cell table and its report, on the same cluster.")
    p.add_argument("plate", help="OME-Zarr plate or multiscale image")
    groups = {title: p.add_argument_group(title) for title in (
        "input", "model", "tiling", "nuclei and cells", "cluster", "output")}
    where = {"organelle": "input", "channels": "input", "model": "model",
             "diameter": "model", "cellprob_threshold": "model", "flow_threshold": "model",
             "min_size": "model", "fusion": "model", "tile_size": "tiling", "halo": "tiling",
             "batch_size": "tiling", "name": "output", "overwrite": "output"}
    add_settings_options(p, SegmentationConfig, groups={k: groups[v] for k, v in where.items()})
    g = groups["input"]
    g.add_argument("--wells", type=str_list, default=None, help="wells, e.g. A/1,B/3")
    g.add_argument("--timepoints", type=parse_timepoints, default=None,
                   help="timepoints: 3, 0:5 (stop excluded), 2: or 0,4,8 (default all)")
    g = groups["model"]
    g.add_argument("--zoo", default=None,
                   help="model zoo folder: use the models and channels selected for "
                        "--cell-line and --organelle")
    g.add_argument("--cell-line", default=None, help="cell line of the zoo's selection")
    g = groups["nuclei and cells"]
    g.add_argument("--with-nuclei", type=channel_list, nargs="?", const=[], default=None,
                   metavar="CHANNELS",
                   help="also segment the nuclei (labels/nuclei) from these channels in the "
                        "same run, with the same --model (with --zoo: the zoo's nuclei "
                        "selection and its models), then link them to the cells "
                        "(labels/NAME_nuclei, labels/NAME_cytoplasm)")
    g.add_argument("--measure", action="store_true",
                   help="then measure every cell (tables/NAME_features and "
                        "measurements/NAME_features; with --with-nuclei, linked once)")
    g.add_argument("--report", default=None, metavar="DIR",
                   help="then write the HTML plate view into DIR (implies --measure)")
    add_settings_options(g, CellsSettings, prefix=_CELLS)
    add_cluster_options(groups["cluster"])
    groups["output"].add_argument("--performance-report", default=None, metavar="FILE.html",
                                  help="write Dask's performance report")
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser("run", help="run a job file (nightly jobs): segment what is not done",
                       description="Segment every plate, organelle and timepoint of a job "
                                   "file that is not done yet, and write a run record (JSON) "
                                   "and Dask's performance report. Safe to run again at any "
                                   "time. Exit status: 0 all done, 1 something failed, 2 bad "
                                   "job file.")
    p.add_argument("job", help="job file (YAML)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress (default: a bar on a terminal, a line every 30 s in a log)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("evaluate", help="score predicted labels against ground truth",
                       description="Precision, recall and F1 at IoU 0.5, aggregated Jaccard, "
                                   "mean matched Jaccard and AP@0.5:0.95 per field/timepoint "
                                   "and overall.")
    p.add_argument("plate", help="OME-Zarr plate or multiscale image")
    p.add_argument("--pred", required=True, help="predicted label image name, e.g. cyto")
    p.add_argument("--gt", required=True, help="ground-truth label image name, e.g. gt_cyto")
    p.add_argument("--wells", type=str_list, default=None, help="wells, e.g. A/1,B/3")
    p.add_argument("--json", default=None, metavar="FILE", help="write all scores as JSON")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the table as CSV")
    p.set_defaults(func=_cmd_evaluate)

    from .cells import add_cells_parsers
    from .screen import add_screen_parsers
    from .zoo import add_zoo_parser

    add_cells_parsers(sub)
    add_screen_parsers(sub)
    add_zoo_parser(sub)
    return parser


#: Exceptions that mean bad input: exit status 2, nothing written (an object store that
#: cannot be used raises ``io.StoreError``, a ConnectionError).
_BAD_INPUT = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
              PermissionError, KeyError, ValueError, TypeError, UsageError, ConnectionError)


def _stdout_to_devnull() -> None:
    """After a broken pipe, send what is still buffered nowhere (no error at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. under pytest)
        pass


def _message(err: BaseException) -> str:
    """Return the error's text on one line (a library's lines joined)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when a run failed, 2 for bad input, 130 when interrupted (143 by
        SIGTERM), 141 when the output's reader went away.
    """
    try:
        from ..runtime.interrupts import watch
    except KeyboardInterrupt:  # Ctrl-C before the handlers below are in place
        print("interrupted: nothing was done", file=sys.stderr)
        return EXIT_INTERRUPTED

    with watch() as interrupted_by:
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            from ..runtime.logs import configure

            # WARNING (-v INFO, -vv DEBUG) for ours, distributed's and cellpose's loggers,
            # here and in the workers of a cluster started here
            restore_logging = configure(args.verbose)
        except KeyboardInterrupt:
            print("interrupted: nothing was done", file=sys.stderr)
            return _interrupt_status(interrupted_by())
        except Exception as err:  # noqa: BLE001 - e.g. a malformed Dask configuration file
            if interrupted_by() is not None:  # a module whose import the signal broke
                print("interrupted: nothing was done", file=sys.stderr)
                return _interrupt_status(interrupted_by())
            print(f"error: {_message(err)}", file=sys.stderr)
            return EXIT_USAGE
        try:
            return _run(args, interrupted_by)
        finally:
            restore_logging()


def _interrupt_status(signum: int | None) -> int:
    import signal

    return 128 + signal.SIGTERM if signum == signal.SIGTERM else EXIT_INTERRUPTED


def _run(args: argparse.Namespace, interrupted_by: Callable[[], int | None]) -> int:
    from ..runtime.interrupts import raise_if_interrupted

    tracebacks = args.debug or args.verbose > 0
    try:
        status = int(args.func(args) or 0)
        raise_if_interrupted()  # a Ctrl-C that a library swallowed still stops the command
        # a reader that went away (| head) is noticed here, not at exit
        # ("Exception ignored ... BrokenPipeError" and exit status 120)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except (Interrupted, KeyboardInterrupt) as err:
        return _interrupted(err, tracebacks, interrupted_by())
    except Exception as err:  # noqa: BLE001 - never a traceback unless --debug
        if interrupted_by() is not None:
            # a library that turned the signal's KeyboardInterrupt into an error of its
            # own (an import it broke: "PyCapsule_Import could not import module ...")
            return _interrupted(err, tracebacks, interrupted_by())
        if tracebacks:  # the status never depends on how much is shown
            traceback.print_exc()
        if isinstance(err, _BAD_INPUT):
            for line in (err.lines if isinstance(err, SettingsError) else [_message(err)]):
                print(f"error: {line}", file=sys.stderr)  # every problem, one line each
            return EXIT_USAGE
        expected = isinstance(err, RuntimeError | OSError)  # a run that broke down
        print(f"error: {'' if expected else type(err).__name__ + ': '}{_message(err)}"
              + ("" if expected or tracebacks else " (--debug shows the traceback)"),
              file=sys.stderr)
        return EXIT_FAILED


def _interrupted(err: BaseException, tracebacks: bool, signum: int | None) -> int:
    """Say that the command was interrupted (one line) and return the signal's status."""
    text = str(err) if isinstance(err, Interrupted) else (
        "interrupted: what finished is kept; rerun the same command to resume")
    if tracebacks:
        traceback.print_exception(err)
    print(text, file=sys.stderr)
    return _interrupt_status(signum)

