"""``structfree-dask annotate`` and ``screen``: from per-cell tables to a screen."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from ..config import ScreenSettings
from ._common import (
    Interrupted,
    ProgressBar,
    add_cluster_options,
    add_settings_options,
    check_cluster_options,
    checked_values,
    given_settings,
    start_client,
)

__all__ = ["add_screen_parsers", "print_screen_result"]


def _cmd_annotate(args: argparse.Namespace) -> int:
    from ..screen.platemap import annotate_plate

    given = checked_values(ScreenSettings, {**given_settings(args, ScreenSettings),
                                            "plate_map": args.plate_map})
    done = annotate_plate(args.plate, given["plate_map"],
                          overwrite=given.get("overwrite", ScreenSettings.overwrite))
    state = "written" if done.changed else "unchanged (the plate holds this map already)"
    print(f"tables/plate_map: {state}; {done.summary()}")
    return 0


def print_screen_result(result: Any) -> None:
    """Print where the screen tables are, their rows, and Z' at the last timepoint."""
    rows = ", ".join(f"{name} {n}" for name, n in result.rows.items())
    print(f"screen tables: {result.location}: {result.wells} well(s), {result.timepoints} "
          f"timepoint(s), readouts {', '.join(result.readouts)}; rows: {rows}")
    zp = result.zprime
    if len(zp):
        last = zp[zp["t"] == zp["t"].max()]
        values = [f"{r.readout} {r.z_prime:.3f}" if not math.isnan(r.z_prime)
                  else f"{r.readout} - ({r.zprime_error})" for r in last.itertuples()]
        print(f"Z' at t={int(last['t'].iloc[0])}: {'; '.join(values)}")
    if result.failed_fits:
        print(f"dose-response: {result.failed_fits} of {result.rows.get('dose_response', 0)} "
              "fit(s) failed or are not to be trusted (see fit_error)", file=sys.stderr)


def _cmd_screen(args: argparse.Namespace) -> int:
    from ..runtime.cluster import close_client
    from ..screen.plate_screen import check_screen, screen_plate

    check_cluster_options(args)
    given = checked_values(ScreenSettings, given_settings(args, ScreenSettings))
    readouts = given.get("readouts")
    plan = check_screen(args.plate, args.table, readouts=readouts)  # before a cluster starts
    client = start_client(args)
    progress = ProgressBar(args, "well", "screen")
    try:
        result = screen_plate(args.plate, args.table, readouts=readouts, client=client,
                              progress=progress, plan=plan)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: no screen table was written; rerun the same "
                          "command") from None
    finally:
        progress.close()
        close_client(client)
    print_screen_result(result)
    return 0


def add_screen_parsers(sub: Any) -> None:
    """Add the ``annotate`` and ``screen`` commands."""
    p = sub.add_parser(
        "annotate", help="store a plate map (conditions, compounds, doses, roles) in a plate",
        description="Check a plate map CSV (well, condition, and optional compound, dose, "
                    "dose_unit, role: negative, positive or sample) against the plate's wells "
                    "and store it as the ngio condition table tables/plate_map. Every well "
                    "of the plate needs one row. Storing the same map again writes nothing.")
    p.add_argument("plate", help="OME-Zarr plate (a path or a URL)")
    s = ScreenSettings.settings_fields()["plate_map"].metadata["setting"]
    p.add_argument("--plate-map", required=True, metavar="CSV", help=s.help)
    add_settings_options(p, ScreenSettings, only=("overwrite",))
    p.set_defaults(func=_cmd_annotate)

    p = sub.add_parser(
        "screen", help="screen tables: per well, per condition, Z', dose-response fits",
        description="From a measured, annotated plate: per well x timepoint cell counts and "
                    "readout median and spread, per condition x timepoint over wells, Z' per "
                    "timepoint from the control wells, and per compound x timepoint a "
                    "four-parameter logistic fit (EC50, Hill slope, top, bottom, 95% CIs). "
                    "One task per well on the cluster; written to "
                    "<plate>/measurements/<TABLE>__screen/ (Parquet).")
    p.add_argument("plate", help="OME-Zarr plate (a path or a URL)")
    p.add_argument("--table", required=True, help="measurement table, e.g. cyto_features")
    add_settings_options(p, ScreenSettings, only=("readouts",))
    add_cluster_options(p)
    p.set_defaults(func=_cmd_screen)
