"""Command line interface: a thin layer over the Python API.

Every command has ``--help``. Bad input ends with a one-line ``error: ...`` message
on stderr and exit status 2; a failed run ends with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from .tiling import DEFAULT_TILE_SIZE

__all__ = ["main", "build_parser"]

logger = logging.getLogger("structfree_dask")


class UsageError(Exception):
    """Bad input detected by the CLI itself."""


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,2; got {text!r}"
        ) from None


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _timepoints(text: str) -> slice | list[int]:
    """Parse ``3``, ``0:5`` (stop excluded), ``2:`` or ``0,4,8``."""
    try:
        if ":" in text:
            start, _, stop = text.partition(":")
            return slice(int(start) if start else 0, int(stop) if stop else None)
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected timepoints like 3, 0:5, 2: or 0,4,8; got {text!r}"
        ) from None


# --------------------------------------------------------------------------- commands


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import open_plate
    from .report import plate_summary

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
        print(f"  {f['path'] or '(image)'}: {sizes}; pixel size {px}; "
              f"channels {', '.join(f'{i}={n}' for i, n in enumerate(f['channels']))}")
        for lab in f["labels"]:
            done = lab.get("done")
            n_t = f["sizes"].get("t", 1)
            state = f"{done}/{n_t} timepoint(s) done" if done is not None else ""
            print(f"    labels/{lab['name']} {state}".rstrip())
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import simulate_plate

    out = simulate_plate(
        args.out, cell_line=args.cell_line, rows=args.rows, cols=args.cols, fields=args.fields,
        timepoints=args.timepoints, size=args.size, seed=args.seed,
        ngff_version=args.ngff_version, mode=args.mode,
    )
    print(f"wrote {out}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .io import import_folder

    out = import_folder(
        args.folder, args.out, channels=args.channels, channel_names=args.channel_names,
        mask_label=args.mask_label, ngff_version=args.ngff_version,
        pixel_size_um=args.pixel_size,
    )
    print(f"wrote {out}")
    return 0


def _cmd_segment(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from tqdm import tqdm

    from .cluster import close_client, make_client
    from .engine import SegmentationConfig, segment

    if args.scheduler and args.workers:
        raise UsageError("--workers applies to a cluster started here, not to --scheduler")
    channels = tuple(int(c) if c.lstrip("-").isdigit() else c for c in args.channels or ())
    common = dict(name=args.name, diameter=args.diameter, tile_size=args.tile_size,
                  halo=args.halo, batch_size=args.batch_size, overwrite=args.overwrite,
                  fusion=args.fusion, cellprob_threshold=args.cellprob_threshold)
    if args.flow_threshold is not None:
        common["flow_threshold"] = args.flow_threshold
    if args.zoo:
        from .zoo.use import config_from_zoo

        if args.model:
            raise UsageError("give either --model or --zoo, not both")
        if not args.cell_line:
            raise UsageError("--zoo needs --cell-line (the zoo's models are per cell line)")
        config = config_from_zoo(args.zoo, args.cell_line, args.organelle, args.plate,
                                 channels=channels or None, **common)
        print(f"zoo {args.zoo}: {args.cell_line}/{args.organelle} on channels "
              f"{', '.join(map(str, config.channels))}", file=sys.stderr)
    else:
        if args.cell_line:
            raise UsageError("--cell-line is only used with --zoo")
        if not channels:
            raise UsageError("--channels is required (unless --zoo gives them)")
        config = SegmentationConfig(organelle=args.organelle, channels=channels,
                                    model=args.model, **common)
    # validate input before starting a cluster
    from .engine import validate

    validate(args.plate, config, wells=args.wells, timepoints=args.timepoints)
    client = make_client(scheduler=args.scheduler, cluster=args.cluster, workers=args.workers,
                         profile=bool(args.performance_report))
    print(f"dashboard: {client.dashboard_link}", file=sys.stderr)
    bar = tqdm(total=0, unit="field-timepoint", disable=args.no_progress, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        if args.performance_report:
            from distributed import performance_report

            report = performance_report(filename=args.performance_report)
        else:
            report = nullcontext()
        with report:
            result = segment(args.plate, config, client=client, wells=args.wells,
                             timepoints=args.timepoints, progress=progress)
    finally:
        bar.close()
        close_client(client)
    rate = result.megapixel_channels / result.seconds if result.seconds else 0.0
    print(f"labels/{config.label_name}: {len(result.done)} done, {len(result.skipped)} "
          f"skipped (already done), {len(result.failed)} failed; "
          f"{sum(result.cells.values())} cells; {result.seconds:.1f} s "
          f"({rate:.3f} Mpx-channels/s)")
    for path, t, err in result.failed:
        print(f"failed: {path or '(image)'} t={t}: {err}", file=sys.stderr)
    return 0 if result.ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from .job import JobError, load_job
    from .runner import run_job

    try:
        job = load_job(args.job)
    except JobError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = run_job(job)
    print(f"{record['status']}: {record['done']} done, {record['skipped']} skipped, "
          f"{record['failed']} failed in {record['seconds']:.1f} s; record {record['record']}")
    if record.get("workers_lost"):
        print(f"workers lost during the run: {len(record['workers_lost'])} (their tasks "
              "were recomputed)", file=sys.stderr)
    for problem in record["problems"]:
        print(f"failed: {problem}", file=sys.stderr)
    return 0 if record["status"] == "ok" else 1


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_plate, format_table, write_scores

    result = evaluate_plate(args.plate, pred=args.pred, gt=args.gt, wells=args.wells)
    print(format_table(result))
    write_scores(result, json_path=args.json, csv_path=args.csv)
    return 0


# --------------------------------------------------------------------------- parser


def _add_common_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ngff-version", choices=("0.4", "0.5"), default="0.4",
                   help="NGFF version of the new store: 0.4 (zarr v2, widest viewer support) "
                        "or 0.5 (zarr v3)")


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--cluster``, ``--workers`` and ``--no-progress`` to a command."""
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (tcp://... or tls://...)")
    p.add_argument("--cluster", choices=("local", "cuda"), default="local",
                   help="cluster to start when no --scheduler: local (default) or cuda")
    p.add_argument("--workers", type=int, default=None,
                   help="workers of the started cluster (default: one per core / GPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``structfree-dask``."""
    parser = argparse.ArgumentParser(
        prog="structfree-dask",
        description="Segment nuclei and cytoplasm without structural stains, on Dask.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
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
    p.add_argument("--rows", type=int, default=1, help="plate rows (default 1)")
    p.add_argument("--cols", type=int, default=1, help="plate columns (default 1)")
    p.add_argument("--fields", type=int, default=1, help="fields per well (default 1)")
    p.add_argument("--timepoints", type=int, default=1, help="timepoints, every 3 h (default 1)")
    p.add_argument("--size", type=int, default=512, help="field size in px (default 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--mode", choices=("confocal", "widefield"), default="confocal",
                   help="acquisition mode (default confocal)")
    _add_common_output(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("import", help="import a folder of TIFF/PNG fields as a plate",
                       description="Import a folder of TIFF/PNG images, one file per field "
                                   "(optional *_masks label files), into an OME-Zarr plate.")
    p.add_argument("folder", help="folder of .tif/.tiff/.png files")
    p.add_argument("out", help="new plate path (.zarr)")
    p.add_argument("--channels", type=_int_list, default=None,
                   help="channel indices to keep, e.g. 0,1 (default all)")
    p.add_argument("--channel-names", type=_str_list, default=None,
                   help="names of the kept channels, e.g. nuclear,cyto")
    p.add_argument("--mask-label", default="gt_cyto",
                   help="label image name for *_masks files (default gt_cyto)")
    p.add_argument("--pixel-size", type=float, default=1.0, help="pixel size in um (default 1)")
    _add_common_output(p)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("segment", help="segment a plate with Flow Averaging on Dask",
                       description="Run the model on each listed channel alone, average the "
                                   "flows over channels (Flow Averaging), integrate, stitch, "
                                   "and write labels/NAME into the plate.")
    p.add_argument("plate", help="OME-Zarr plate or multiscale image")
    p.add_argument("--organelle", choices=("cyto", "nuclei"), default="cyto",
                   help="what to segment (default cyto); also the default label name")
    p.add_argument("--model", default=None,
                   help="shipped 'generalist' (default), a cellpose built-in name, or a path")
    p.add_argument("--channels", type=_str_list, default=None,
                   help="channels by index or name, e.g. 0,2 or mito,ER (required unless --zoo)")
    p.add_argument("--zoo", default=None,
                   help="model zoo folder: use the models and channels selected for "
                        "--cell-line and --organelle")
    p.add_argument("--cell-line", default=None, help="cell line of the zoo's selection")
    p.add_argument("--fusion", choices=("fa", "voting", "majority", "staple", "simple"),
                   default="fa", help="fa: Flow Averaging (default); or a mask-fusion "
                                      "baseline: each channel segmented alone, masks fused")
    p.add_argument("--flow-threshold", type=float, default=None,
                   help="cellpose's flow-error threshold: masks whose flows disagree more "
                        "with the network's are removed; 0 keeps all (default 0.4, or the "
                        "one chosen with a zoo's selection)")
    p.add_argument("--cellprob-threshold", type=float, default=0.0,
                   help="cell probability threshold, in logits (default 0.0)")
    p.add_argument("--name", default=None, help="label image name (default: the organelle)")
    p.add_argument("--diameter", type=float, default=None,
                   help="cell diameter in px (default: the model's, no rescaling)")
    p.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE,
                   help=f"task region and label chunk size in px (default {DEFAULT_TILE_SIZE})")
    p.add_argument("--halo", type=int, default=None,
                   help="halo in px around each region (default 2 diameters + 8)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="network tiles per forward pass (default: 8 on a GPU, 2 on a CPU)")
    p.add_argument("--wells", type=_str_list, default=None, help="wells, e.g. A/1,B/3")
    p.add_argument("--timepoints", type=_timepoints, default=None,
                   help="timepoints: 3, 0:5 (stop excluded), 2: or 0,4,8 (default all)")
    add_cluster_options(p)
    p.add_argument("--overwrite", action="store_true", help="redo existing labels")
    p.add_argument("--performance-report", default=None, metavar="FILE.html",
                   help="write Dask's performance report")
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser("run", help="run a job file (nightly jobs): segment what is not done",
                       description="Segment every plate, organelle and timepoint of a job "
                                   "file that is not done yet, and write a run record (JSON) "
                                   "and Dask's performance report. Safe to run again at any "
                                   "time. Exit status: 0 all done, 1 something failed, 2 bad "
                                   "job file.")
    p.add_argument("job", help="job file (YAML)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("evaluate", help="score predicted labels against ground truth",
                       description="Precision, recall and F1 at IoU 0.5, aggregated Jaccard, "
                                   "mean matched Jaccard and AP@0.5:0.95 per field/timepoint "
                                   "and overall.")
    p.add_argument("plate", help="OME-Zarr plate or multiscale image")
    p.add_argument("--pred", required=True, help="predicted label image name, e.g. cyto")
    p.add_argument("--gt", required=True, help="ground-truth label image name, e.g. gt_cyto")
    p.add_argument("--wells", type=_str_list, default=None, help="wells, e.g. A/1,B/3")
    p.add_argument("--json", default=None, metavar="FILE", help="write all scores as JSON")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the table as CSV")
    p.set_defaults(func=_cmd_evaluate)

    from .zoo.cli import add_zoo_parser

    add_zoo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when a run failed, 2 for bad input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose < 2:  # read by distributed when it is imported
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("distributed", "tornado", "bokeh"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING) if args.verbose < 2
                                          else logging.DEBUG)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError, TypeError,
            PermissionError, NotADirectoryError, UsageError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"error: {msg}", file=sys.stderr)
        if args.verbose:
            raise
        return 2
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
