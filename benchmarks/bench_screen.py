"""A simulated screen: EC50s and Z' from the package's own objects against the truth.

A plate map (``--compounds`` compounds at 6 doses on a half-log grid, 0.01 to 3.16 uM;
negative and positive controls in duplicate; wells 8 to a row) is simulated with
``simulate_plate(..., plate_map=CSV)`` (widefield, ``--fields`` fields of ``--size`` px per well,
``--timepoints`` timepoints): each compound's true EC50, Hill slope and onset are drawn from
the seed and written with the plate (``tables/screen_truth``, ``tables/screen_truth_wells``).
The objects are segmented from the non-structural reporters only: with ``--zoo DIR`` the
zoo's selections for the line's cells and nuclei (the N/C readout needs real nuclei: the
generalist's "nuclei" over the translocation reporter are not), else the shipped generalist
as in ``bench_cells.py``. Then on one local cluster (2 workers): ``measure_plate`` (cells
and nuclei linked), ``annotate_plate`` and ``screen_plate`` for the translocation
reporter's N/C ratio. Printed:

- per compound, at each timepoint from the one where its response is complete (onset +
  ramp) on: the true EC50, the fitted EC50 (the screen's ``dose_response.parquet``) and
  their ratio, within 2-fold or not; beside it the fit on the true ratios' well medians
  (``tables/screen_truth_wells``: the ceiling of what the doses and cells allow);
- Z' per timepoint from the screen's ``zprime.parquet`` and from the true ratios' well
  medians (the same function, :func:`structfree_dask.screen.tables.z_prime`), judged from
  the timepoint where the positive controls' response is complete on; beside them the
  EC50s and Z' measured on the ground-truth objects (``gt_cyto``, ``gt_nuclei``: what the
  readout gives without segmentation errors) and the controls' means and standard
  deviations behind each Z';
- the screen tables' wall time against the segmentation's (cells + nuclei), and the
  measuring time for reference; the CPU's model and flags.

Run: ``python benchmarks/bench_screen.py [--zoo zoo/] [--line CL1] [--compounds 2]
[--size 256] [--fields 1] [--timepoints 12] [--seed 3] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_engine import _cpu_flags  # the same flags in every speed figure

from structfree_dask import SegmentationConfig, segment, simulate_plate
from structfree_dask.cells.columns import ratio_column
from structfree_dask.cells.plate_measure import measure_plate
from structfree_dask.io import read_plate_table
from structfree_dask.runtime.cluster import close_client, local_client
from structfree_dask.screen import annotate_plate, screen_plate
from structfree_dask.screen.tables import dose_response, z_prime
from structfree_dask.simulate import PRESETS, TIME_INTERVAL_H
from structfree_dask.simulate.screen import CONTROL_ONSET_STEPS, RAMP_STEPS

READOUT = "translocation-reporter"
WIDEFIELD_UM = 0.32
DOSES = [round(10.0 ** e, 4) for e in np.arange(-2.0, 0.75, 0.5)]  # 0.01 .. 3.1623 uM
COLUMNS = 8


def _plate_map(compounds: int, path: Path) -> tuple[int, Path]:
    """Write the plate map CSV; return the plate's rows and the CSV."""
    entries = [("DMSO", "", "", "negative")] * 2 + [("control", "", "", "positive")] * 2
    for k in range(compounds):
        name = f"cpd-{chr(ord('A') + k)}"
        entries += [(f"{name} {d:g} uM", name, f"{d:g}", "sample") for d in DOSES]
    rows = math.ceil(len(entries) / COLUMNS)
    entries += [("empty", "", "", "sample")] * (rows * COLUMNS - len(entries))
    lines = ["well,condition,compound,dose,dose_unit,role"]
    for i, (condition, compound, dose, role) in enumerate(entries):
        well = f"{chr(ord('A') + i // COLUMNS)}{i % COLUMNS + 1}"
        lines.append(f"{well},{condition},{compound},{dose},{'uM' if dose else ''},{role}")
    path.write_text("\n".join(lines) + "\n")
    return rows, path


def _configs(name: str, plate: str, args) -> list:
    if args.zoo:
        from structfree_dask.zoo.use import config_from_zoo

        return [config_from_zoo(args.zoo, name, organelle, plate, name=organelle)
                for organelle in ("cyto", "nuclei")]
    preset = PRESETS[name]
    diameter = preset.cell_diameter_um / WIDEFIELD_UM
    readout = preset.channel_names.index(READOUT)
    return [SegmentationConfig(organelle="cyto", channels=tuple(range(len(preset.channels))),
                               name="cyto", diameter=diameter),
            SegmentationConfig(organelle="nuclei", channels=(readout,), name="nuclei",
                               diameter=diameter * preset.nucleus_ratio)]


def _true_wells(truth_wells: pd.DataFrame, readout: str) -> pd.DataFrame:
    """The true well medians in the shape of the screen's wells table."""
    return truth_wells.assign(readout=readout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", help="segment with this zoo's selections (cells and nuclei)")
    ap.add_argument("--line", default="CL1", help="cell line (default CL1)")
    ap.add_argument("--compounds", type=int, default=2, help="compounds at 6 doses each")
    ap.add_argument("--size", type=int, default=256, help="field side in px")
    ap.add_argument("--fields", type=int, default=1,
                    help="fields per well (default 1; screens image several)")
    ap.add_argument("--timepoints", type=int, default=12)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--keep", help="write the plate into this folder (kept) instead of a "
                                   "temporary one")
    args = ap.parse_args()
    readout = ratio_column(READOUT)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPU cores; CPU: {_cpu_flags()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows, csv = _plate_map(args.compounds, folder / "plate_map.csv")
        plate = str(folder / "screen.zarr")
        t0 = time.perf_counter()
        simulate_plate(plate, cell_line=args.line, rows=rows, cols=COLUMNS,
                       fields=args.fields, timepoints=args.timepoints, size=args.size,
                       seed=args.seed, mode="widefield", plate_map=csv)
        print(f"{args.line} widefield screen: {rows} x {COLUMNS} wells, {args.fields} "
              f"field(s) of {args.size} px per well, {args.timepoints} timepoints; simulated in "
              f"{time.perf_counter() - t0:.0f} s; objects: "
              f"{'zoo ' + args.zoo if args.zoo else 'the shipped generalist'}")
        client = local_client(2)
        try:
            t0 = time.perf_counter()
            for config in _configs(args.line, plate, args):
                segment(plate, config, client=client)
            seg = time.perf_counter() - t0
            t0 = time.perf_counter()
            measure_plate(plate, labels="cyto", nuclei="nuclei", link_labels=True,
                          client=client)
            measuring = time.perf_counter() - t0
            annotate_plate(plate, csv)
            t0 = time.perf_counter()
            screen_plate(plate, "cyto_features", readouts=[READOUT], client=client)
            screening = time.perf_counter() - t0
            measure_plate(plate, labels="gt_cyto", nuclei="gt_nuclei", table="gt_objects",
                          client=client)
            screen_plate(plate, "gt_objects", readouts=[READOUT], client=client)
        finally:
            close_client(client)
        _report(plate, readout, args, seg, measuring, screening)


def _controls(zprime: pd.DataFrame, t: int) -> str:
    r = zprime[zprime["t"] == t].iloc[0]
    return (f"{r['mean_positive']:.3f} / {r['sd_positive']:.3f}, {r['mean_negative']:.3f} / "
            f"{r['sd_negative']:.3f}")


def _report(plate: str, readout: str, args, seg: float, measuring: float,
            screening: float) -> None:
    folder = Path(plate) / "measurements" / "cyto_features__screen"
    fits = pd.read_parquet(folder / "dose_response.parquet")
    zp = pd.read_parquet(folder / "zprime.parquet")
    wells = pd.read_parquet(folder / "wells.parquet")
    gt_folder = Path(plate) / "measurements" / "gt_objects__screen"
    gt_fits = pd.read_parquet(gt_folder / "dose_response.parquet")
    gt_zp = pd.read_parquet(gt_folder / "zprime.parquet")
    gt_fits, gt_zp = gt_fits[gt_fits["readout"] == readout], gt_zp[gt_zp["readout"] == readout]
    truth = read_plate_table(plate, "screen_truth")
    truth_wells = _true_wells(read_plate_table(plate, "screen_truth_wells"), readout)
    true_fits = dose_response(truth_wells)
    true_zp = z_prime(truth_wells)
    fits, zp = fits[fits["readout"] == readout], zp[zp["readout"] == readout]
    cells = wells[wells["readout"] == readout]
    print(f"cells per well and timepoint (ours, with a ratio): median "
          f"{cells['n'].median():.0f}, min {cells['n'].min():.0f}; truth: median "
          f"{truth_wells['n_cells'].median():.0f}")
    print("\n| compound | true EC50 (uM) | Hill | onset (h) | t | fitted EC50 (ours) | ratio | "
          "within 2-fold | on gt objects | fit on the true ratios | fit_error |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    last, within, judged = args.timepoints - 1, [], []
    for c in truth.to_dict("records"):
        first = math.ceil((c["onset_h"] + c["ramp_h"]) / TIME_INTERVAL_H)
        in_range = c["dose_min"] <= c["ec50"] <= c["dose_max"]
        for t in range(first, args.timepoints):
            f = fits[(fits["compound"] == c["compound"]) & (fits["t"] == t)].iloc[0]
            tf = true_fits[(true_fits["compound"] == c["compound"])
                           & (true_fits["t"] == t)].iloc[0]
            gf = gt_fits[(gt_fits["compound"] == c["compound"]) & (gt_fits["t"] == t)].iloc[0]
            ratio = f["ec50"] / c["ec50"]
            ok = bool(np.isfinite(ratio) and 0.5 <= ratio <= 2.0)
            if in_range:
                judged.append((c["compound"], t, ok))
            if t == last:
                within.append(ok)
            print(f"| {c['compound']} | {c['ec50']:.3g} | {c['hill']:.2f} | "
                  f"{c['onset_h']:.1f} | {t} | {f['ec50']:.3g} | {ratio:.2f} | "
                  f"{'yes' if ok else '**no**'} | {gf['ec50']:.3g} ({gf['ec50'] / c['ec50']:.2f}) "
                  f"| {tf['ec50']:.3g} "
                  f"({tf['ec50'] / c['ec50']:.2f}) | {f['fit_error'] or ''} |")
    print(f"EC50 within 2-fold at the last timepoint (t={last}): {sum(within)} of "
          f"{len(within)} compounds; at every timepoint after the complete response: "
          f"{sum(ok for *_, ok in judged)} of {len(judged)} (compound, t)")
    first_z = CONTROL_ONSET_STEPS + RAMP_STEPS
    print(f"\n| t | Z' (ours) | Z' (true ratios) | difference | within 0.1 (t >= {first_z}) "
          "| Z' (gt objects) | ours: pos mean / sd, neg mean / sd | gt objects: the same "
          "| true ratios: the same |")
    print("|---|---|---|---|---|---|---|---|---|")
    diffs = []
    for t in range(args.timepoints):
        ours = float(zp.loc[zp["t"] == t, "z_prime"].iloc[0])
        true = float(true_zp.loc[true_zp["t"] == t, "z_prime"].iloc[0])
        diff = ours - true
        mark = ""
        if t >= first_z:
            diffs.append(abs(diff))
            mark = "yes" if abs(diff) <= 0.1 else "**no**"
        parts = [_controls(table, t) for table in (zp, gt_zp, true_zp)]
        gt = float(gt_zp.loc[gt_zp["t"] == t, "z_prime"].iloc[0])
        print(f"| {t} | {ours:.3f} | {true:.3f} | {diff:+.3f} | {mark} | {gt:.3f} | "
              + " | ".join(parts) + " |")
    print(f"Z' within 0.1 of the truth at {sum(d <= 0.1 for d in diffs)} of {len(diffs)} "
          f"timepoints from t={first_z} on; largest difference {max(diffs):.3f}")
    print(f"\nsegmentation (cells + nuclei) {seg:.1f} s; measuring {measuring:.1f} s; screen "
          f"tables {screening:.1f} s = {screening / seg:.1%} of the segmentation "
          f"({'<=' if screening <= 0.05 * seg else '>'} 5 %)")


if __name__ == "__main__":
    main()
