"""Command line interface: a thin layer over the Python API.

Every command has ``--help``. Bad input ends with a one-line ``error: ...`` message
on stderr and exit status 2; a failed run ends with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

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
            state = f"{done}/{f['sizes']['t']} timepoints done" if done is not None else ""
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


# --------------------------------------------------------------------------- parser


def _add_common_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ngff-version", choices=("0.4", "0.5"), default="0.4",
                   help="NGFF version of the new store: 0.4 (zarr v2, widest viewer support) "
                        "or 0.5 (zarr v3)")


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
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
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
