"""Cells over time: readout fidelity, tracking, and the cost of measuring and tracking.

On simulated widefield time-lapses (CL1, CL5; 2 wells, 12 timepoints), the objects are
segmented from the non-structural reporters only (the shipped generalist with Flow
Averaging: cells over every channel, nuclei over the translocation reporter), linked,
measured and tracked on a local cluster. Printed, per line:

- readout fidelity: per-cell N/C ratio of the translocation reporter on our objects
  (cells matched to the truth at IoU >= 0.5, cells touching the field edge left out) vs
  the simulator's true ratio: Pearson r and the median absolute relative error; the same
  on the ground-truth objects (the ceiling);
- tracking: precision / recall / F1 of frame-to-frame links and of divisions against the
  simulator's lineage, on ground-truth masks and on our masks. Divisions are scored on
  those in view (the mother in the labels at her last timepoint and both daughters at the
  next one: a division whose second daughter is born outside the field, or shows only
  later, cannot be seen as one); the jitter table also gives the recall on every division
  of the lineage;
- cost: measuring + tracking time as a fraction of the segmentation time of the plate, on
  workers that have imported laptrack (a fresh worker process imports it once, in about a
  second: printed apart).

With ``--zoo DIR`` the objects are segmented with a model zoo instead: its selections for
the line's cells and nuclei (the non-structural reporters only, Flow Averaging over the
selected channels). A selection the zoo lacks is built first, on a training plate of the
same line simulated with other seeds (``--train-seed``; 2 wells of ``--train-fields``
fields, 4 of the timepoints, spread over the time course; channel-wise models on every
channel, ``--epochs`` epochs of ``--tile-size`` px tiles), so the scored plate is never
trained on. The build's training time is printed, apart from the segmentation time.

With ``--jitter 0,5,10,15``: tracking through stage drift. For each line and jitter
level, a plate simulated with that much stage jitter (``simulate --stage-jitter``; same
seed, so the population differs only by the larger world it is drawn in), its ground-truth
masks measured and tracked (the drift registered from the masks), and link and division
precision / recall / F1 against the lineage, with the drift measured against the
simulator's truth (largest error in px) and the registration's time. With several seeds
(``--seed 7-18 --skip-readout``) each seed's table, then per line and level the scores of
all its plates pooled (true / false / missed divisions summed), the worst plate, and how
many plates fall below a division F1 of 0.85.

With ``--motion 5,10``: cells faster than their radius (``simulate --motion-scale``; 256
px, 8 timepoints, seed 4, no jitter): link precision / recall / F1 on ground-truth masks,
the median step over the median radius and the default distance limit.

Then the peak memory of one measuring task (a fresh process) on a 1024 px and an 8192 px
field (the latter tiled from the former), and their ratio.

Run: ``python benchmarks/bench_cells.py [--size 384] [--timepoints 12] [--seed 7] [--skip-memory]
[--zoo DIR [--epochs 20] [--tile-size 128]] [--jitter 0,5,10,15] [--motion 5,10]
[--skip-readout] [--lines CL1,CL5]``; ``--seed 7-18 --skip-readout --jitter 0,5,10,15`` for
the jitter tables over twelve plates per level.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from structfree_dask import SegmentationConfig, open_plate, segment, simulate_plate
from structfree_dask.cells.columns import ratio_column, true_ratio_column
from structfree_dask.cells.plate_measure import measure_plate
from structfree_dask.cells.plate_track import track_plate
from structfree_dask.cells.report import quality_rows
from structfree_dask.cells.track_scores import (
    LinkScores,
    link_scores,
    match_labels,
    track_links,
)
from structfree_dask.io import open_labels, read_feature_table, read_plate_dataset
from structfree_dask.runtime.cluster import close_client, local_client
from structfree_dask.simulate import PRESETS

READOUT = "translocation-reporter"
WIDEFIELD_UM = 0.32


def _truth_links(truth: pd.DataFrame) -> tuple[set, set]:
    """Frame-to-frame links (a cell's consecutive rows) and divisions from the lineage."""
    links, divisions = set(), set()
    rows = truth.sort_values(["label", "t"])
    for label, g in rows.groupby("label"):
        ts = g["t"].tolist()
        links |= {((a, label), (b, label)) for a, b in zip(ts, ts[1:], strict=False)}
    first = rows.groupby("label")["t"].min()
    last = rows.groupby("label")["t"].max()
    parents = rows.groupby("label")["parent_label"].first()
    for daughter, mother in parents.items():
        if mother > 0 and mother in last.index:
            divisions.add(((int(last[mother]), int(mother)), (int(first[daughter]), daughter)))
    return links, divisions


def _matches(image, pred: str, gt: str) -> dict:
    p, g = open_labels(image, pred).read()[:, 0], open_labels(image, gt).read()[:, 0]
    out = {}
    for t in range(p.shape[0]):
        for pl, tl in match_labels(g[t], p[t]).items():
            out[(t, int(pl))] = int(tl)
    return out


def _object_f1(plate: str, pred: str, gt: str) -> float:
    """F1 at IoU 0.5 of a label image against the truth, counts pooled over all planes."""
    from structfree_dask.evaluation.metrics import match_scores, pooled_f1

    counts = []
    opened = open_plate(plate)
    for path in opened.field_paths:
        image = opened.field(path)
        p, g = open_labels(image, pred).read()[:, 0], open_labels(image, gt).read()[:, 0]
        counts += [(s.tp, s.fp, s.fn) for s in map(match_scores, g, p)]
    return float(pooled_f1(np.sum(counts, axis=0)))


def _in_view(divisions: set, present: set) -> set:
    """The divisions seen as such: the mother in the labels at her last timepoint and both
    daughters at the next one (nodes are ``(field, (t, label))``, as in ``present``).

    A daughter the lineage has but the labels show only later (born outside the field, or
    hidden under a neighbour at first) cannot be linked to her mother frame to frame.
    """
    daughters: dict = {}
    for mother, daughter in divisions:
        daughters.setdefault(mother, []).append(daughter)
    return {(m, d) for m, ds in daughters.items() for d in ds
            if m in present and len(ds) == 2
            and all(x in present and x[1][0] == m[1][0] + 1 for x in ds)}


def _edge_cells(image) -> set:
    """``(t, label)`` of the ground-truth cells that touch the field's edge."""
    labels = open_labels(image, "gt_cyto").read()[:, 0]
    out = set()
    for t, plane in enumerate(labels):
        rim = np.concatenate([plane[0], plane[-1], plane[:, 0], plane[:, -1]])
        out |= {(t, int(lb)) for lb in np.unique(rim) if lb}
    return out


class _Tracking(NamedTuple):
    """What :func:`_tracking` scored: links, divisions in view, divisions on all; and the
    division links predicted and in view, and the nodes at the field's edge (ground-truth
    masks with ``at_edge``; else empty)."""

    links: LinkScores
    divisions: LinkScores
    every: LinkScores
    div_pred: set
    div_in_view: set
    at_edge: set


def _tracking(plate: str, table: str, pred: str | None, *, at_edge: bool = False) -> _Tracking:
    """Link scores, division scores (divisions in view) and the divisions' recall on all.

    ``at_edge`` (ground-truth masks only): also find the cells at the field's edge (reads
    the label images).
    """
    links_p, links_t, div_p, div_t, matches, present = set(), set(), set(), set(), {}, set()
    edge_nodes = set()
    opened = open_plate(plate)
    for path in opened.field_paths:
        image = opened.field(path)
        truth = read_feature_table(image, "gt_truth")
        tl, td = _truth_links(truth)
        rows = read_feature_table(image, table)
        tracked = track_links(rows)
        m = _matches(image, pred, "gt_cyto") if pred else None
        key = path + "|"
        links_t |= {((key, a), (key, b)) for a, b in tl}
        div_t |= {((key, a), (key, b)) for a, b in td}
        links_p |= {((key, a), (key, b)) for a, b in tracked.links}
        div_p |= {((key, a), (key, b)) for a, b in tracked.divisions}
        if m is not None:
            matches.update({(key, k): (key, v) for k, v in m.items()})
        else:
            present |= {(key, (int(t), int(lb))) for t, lb in zip(rows["t"], rows["label"],
                                                                 strict=True)}
            if at_edge:
                edge_nodes |= {(key, node) for node in _edge_cells(image)}
    if pred:  # compare on matched objects: predicted ends translated to true labels
        matched_true = {(k[0], (k[1][0], v[1])) for k, v in matches.items()}
        links_p, div_p = _translate(links_p, matches), _translate(div_p, matches)
        links_t = {lk for lk in links_t if lk[0] in matched_true and lk[1] in matched_true}
        div_t = {lk for lk in div_t if lk[0] in matched_true and lk[1] in matched_true}
        present = matched_true
    in_view = _in_view(div_t, present)
    return _Tracking(link_scores(links_p, links_t), link_scores(div_p, in_view),
                     link_scores(div_p, div_t), div_p, in_view, edge_nodes)


def _drift_error(plate: str, table: str) -> tuple[float, float]:
    """Median and largest |measured - true| drift step (the worse axis), in px."""
    from structfree_dask.cells.plate_track import DRIFT_ATTRIBUTE
    from structfree_dask.io import table_attrs

    errors = [0.0]
    opened = open_plate(plate)
    for path in opened.field_paths:
        image = opened.field(path)
        steps = table_attrs(image, table).get(DRIFT_ATTRIBUTE) or {}
        truth = read_feature_table(image, "gt_truth")
        if "stage_dy" not in truth.columns:
            continue
        stage = truth.groupby("t")[["stage_dy", "stage_dx"]].first()
        ts = sorted(int(t) for t in steps)
        for before, t in zip(ts, ts[1:], strict=False):
            true = -(stage.loc[t] - stage.loc[before]).to_numpy(dtype=float)
            errors.append(float(np.abs(np.asarray(steps[str(t)][:2]) - true).max()))
    return float(np.median(errors[1:] or errors)), max(errors)


def _jitter(name: str, levels: list[int], folder: Path, args, client) -> dict:
    """The jitter table of one seed; returns the link and division scores per level."""
    print(f"\n{name} widefield, {args.size} px, 2 wells x {args.timepoints} timepoints, "
          f"seed {args.seed}, ground-truth masks; tracking through stage jitter")
    print("| jitter | links P / R / F1 | divisions in view P / R / F1 (true / false / "
          "missed) | recall on every division | drift error median / max | "
          "measure + track |")
    print("|---|---|---|---|---|---|")
    scores = {}
    for level in levels:
        plate = str(folder / f"{name}-seed{args.seed}-jitter{level}.zarr")
        simulate_plate(plate, cell_line=name, rows=1, cols=2, timepoints=args.timepoints,
                       size=args.size, seed=args.seed, mode="widefield", stage_jitter_px=level)
        t0 = time.perf_counter()
        measure_plate(plate, labels="gt_cyto", nuclei="gt_nuclei", table="gt", client=client)
        track_plate(plate, table="gt", client=client)
        cost = time.perf_counter() - t0
        scored = _tracking(plate, "gt", None, at_edge=True)
        links, divisions, every = scored.links, scored.divisions, scored.every
        scores[level] = (links, divisions, _edge_split(scored))
        print(f"| {level} px | {links.precision:.3f} / {links.recall:.3f} / {links.f1:.3f} | "
              f"{divisions.precision:.2f} / {divisions.recall:.2f} / {divisions.f1:.2f} "
              f"({divisions.tp} / {divisions.fp} / {divisions.fn}) | {every.recall:.2f} | "
              "{:.1f} / {:.1f} px | ".format(*_drift_error(plate, "gt"))
              + f"{cost:.1f} s |", flush=True)
        shutil.rmtree(plate)  # scored: 96 plates of twelve seeds would take 3 GB
    return scores


def _edge_split(scored: _Tracking) -> dict[str, tuple[int, int]]:
    """True, false and missed division links: (with a cell at the edge, all)."""
    pred, true, edge = scored.div_pred, scored.div_in_view, scored.at_edge
    groups = {"true": pred & true, "false": pred - true, "missed": true - pred}
    return {k: (sum(a in edge or b in edge for a, b in v), len(v)) for k, v in groups.items()}


def _pooled(name: str, by_seed: dict[int, dict]) -> None:
    """Per jitter level, the scores of every seed's plate pooled, and the worst plate."""
    from structfree_dask.evaluation.metrics import pooled_f1

    def pool(scores: list) -> LinkScores:
        tp, fp, fn = (sum(getattr(s, k) for s in scores) for k in ("tp", "fp", "fn"))
        return LinkScores(tp, fp, fn, tp / (tp + fp) if tp + fp else float(not fn),
                          tp / (tp + fn) if tp + fn else float(not fp),
                          float(pooled_f1([tp, fp, fn])))

    seeds = sorted(by_seed)
    print(f"\n{name}: seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} plates per level) pooled")
    print("| jitter | links F1 pooled / worst plate | divisions in view P / R / F1 pooled "
          "(true / false / missed) | worst plate | plates below 0.85 |")
    print("|---|---|---|---|---|")
    for level in by_seed[seeds[0]]:
        links = [by_seed[s][level][0] for s in seeds]
        divs = [by_seed[s][level][1] for s in seeds]
        lp, dp = pool(links), pool(divs)
        worst = min(range(len(seeds)), key=lambda i: divs[i].f1)
        below = sum(d.f1 < 0.85 for d in divs)
        print(f"| {level} px | {lp.f1:.3f} / {min(x.f1 for x in links):.3f} | "
              f"{dp.precision:.3f} / {dp.recall:.3f} / {dp.f1:.3f} ({dp.tp} / {dp.fp} / "
              f"{dp.fn}) | {divs[worst].f1:.3f} (seed {seeds[worst]}: {divs[worst].tp} / "
              f"{divs[worst].fp} / {divs[worst].fn}) | {below} |", flush=True)
    split = {k: tuple(sum(by_seed[s][lv][2][k][i] for s in seeds for lv in by_seed[s])
                      for i in (0, 1)) for k in ("true", "false", "missed")}
    print("division links with a cell touching the field's edge (mother or daughter), all "
          "levels: " + ", ".join(f"{k} {n} of {m}" for k, (n, m) in split.items()))


def _fast(name: str, scales: list[float], folder: Path, args, client) -> None:
    """Cells faster than their radius: link F1 on ground-truth masks (no stage jitter)."""
    from structfree_dask.cells.plate_track import cell_radius, motion_limit
    from structfree_dask.cells.tracking import median_step

    print(f"\n{name}, 256 px, 2 wells x 8 timepoints, seed 4, ground-truth masks; cells "
          "faster than their radius")
    print("| motion scale | median step / radius | limit | links P / R / F1 |")
    print("|---|---|---|---|")
    for scale in scales:
        plate = str(folder / f"{name}-motion{scale}.zarr")
        simulate_plate(plate, cell_line=name, rows=1, cols=2, timepoints=8, size=256, seed=4,
                       mode="widefield", motion_scale=scale)
        measure_plate(plate, labels="gt_cyto", nuclei="gt_nuclei", table="gt", client=client)
        track_plate(plate, table="gt", client=client)
        links = _tracking(plate, "gt", None).links
        opened = open_plate(plate)
        table = read_feature_table(opened.field(opened.field_paths[0]), "gt")
        print(f"| {scale:g} | {median_step(table) / cell_radius(table):.2f} | "
              f"{motion_limit(table):.0f} px | "
              f"{links.precision:.3f} / {links.recall:.3f} / {links.f1:.3f} |", flush=True)


def _translate(links: set, matches: dict) -> set:
    out = set()
    for a, b in links:
        ka, kb = (a[0], a[1]), (b[0], b[1])
        if ka in matches and kb in matches:
            out.add(((a[0], (a[1][0], matches[ka][1])), (b[0], (b[1][0], matches[kb][1]))))
    return out


def _generalist_configs(name: str) -> list:
    """Cells over every channel, nuclei over the translocation reporter (the generalist)."""
    preset = PRESETS[name]
    diameter = preset.cell_diameter_um / WIDEFIELD_UM
    channels = tuple(range(len(preset.channels)))
    readout = preset.channel_names.index(READOUT)
    return [SegmentationConfig(organelle="cyto", channels=channels, name="cyto",
                               diameter=diameter),
            SegmentationConfig(organelle="nuclei", channels=(readout,), name="nuclei",
                               diameter=diameter * preset.nucleus_ratio)]


def _training_plate(name: str, folder: Path, args) -> str:
    """2 wells of ``--train-fields`` fields, 4 timepoints spread over the scored plate's."""
    from structfree_dask.io import create_plate
    from structfree_dask.simulate import simulate_field

    keep = np.unique(np.linspace(0, args.timepoints - 1, 4).round().astype(int))
    path = folder / f"{name}_train.zarr"
    with create_plate(path, rows=["A"], columns=["1", "2"]) as w:
        for col in ("1", "2"):
            for fld in range(args.train_fields):
                seed = args.train_seed * 1000 + int(col) * 100 + fld
                f = simulate_field(name, size=args.size, timepoints=args.timepoints,
                                   seed=seed, mode="widefield")
                w.write_field("A", col, fld, f.image[keep], axes="tcyx",
                              channel_names=list(f.channel_names),
                              pixel_size_um=(f.pixel_size_um, f.pixel_size_um),
                              labels={"gt_cyto": f.cyto[keep], "gt_nuclei": f.nuclei[keep]})
    return str(path)


def _zoo_configs(name: str, plate: str, folder: Path, args, client) -> list:
    """The zoo's selections for cells and nuclei, built on a training plate if missing."""
    from structfree_dask.config import TrainSettings
    from structfree_dask.zoo import Zoo, build_zoo, training_jobs
    from structfree_dask.zoo.use import config_from_zoo

    zoo = Zoo(args.zoo)
    train_plate = None
    configs = []
    for organelle, label in (("cyto", "cyto"), ("nuclei", "nuclei")):
        if (name, organelle) not in zoo.selections():
            if train_plate is None:
                train_plate = _training_plate(name, folder, args)
            n = len(PRESETS[name].channels)
            jobs = training_jobs(train_plate, f"gt_{organelle}", organelle, name,
                                 subsets=[(c,) for c in range(n)], seed=args.train_seed)
            settings = TrainSettings(max_epochs=args.epochs, tile_size=args.tile_size)
            res = build_zoo(jobs, args.zoo, client=client, settings=settings)
            if not res.ok:
                raise RuntimeError(f"{name}/{organelle}: zoo build failed: {res.failed}")
            print(f"{name} {organelle}: zoo built in {res.seconds:.0f} s "
                  f"({len(jobs)} models, {args.epochs} epochs at most)")
        sel = zoo.selection(name, organelle)
        print(f"{name} {organelle}: zoo selection {sel.strategy} trained on "
              f"{sel.train_channel_names}, evaluated on {sel.eval_channel_names}, validation F1 "
              f"{sel.val_f1:.3f}")
        configs.append(config_from_zoo(zoo, name, organelle, plate, name=label))
    return configs


def _import_tracker() -> None:
    import laptrack  # noqa: F401


def _tracker_import_time() -> float:
    """Seconds a fresh Python process takes to import laptrack (scikit-learn, SciPy stats)."""
    import subprocess
    import sys

    code = ("import time; t = time.perf_counter(); import laptrack; "
            "print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)


def _line(name: str, folder: Path, args, client) -> None:
    size, timepoints = args.size, args.timepoints
    preset = PRESETS[name]
    plate = str(folder / f"{name}.zarr")
    simulate_plate(plate, cell_line=name, rows=1, cols=2, timepoints=timepoints, size=size,
                   seed=args.seed, mode="widefield")
    diameter = preset.cell_diameter_um / WIDEFIELD_UM
    configs = (_zoo_configs(name, plate, folder, args, client) if args.zoo
               else _generalist_configs(name))
    t0 = time.perf_counter()
    for config in configs:
        segment(plate, config, client=client)
    seg = time.perf_counter() - t0
    client.run(_import_tracker)  # once per worker process (timed apart, below)
    t0 = time.perf_counter()
    ours_measured = measure_plate(plate, labels="cyto", nuclei="nuclei", link_labels=True,
                                  client=client)
    track_plate(plate, table="cyto_features", client=client)
    cost = time.perf_counter() - t0
    gt_measured = measure_plate(plate, labels="gt_cyto", nuclei="gt_nuclei", table="gt",
                                client=client)
    track_plate(plate, table="gt", client=client)
    truth = read_plate_dataset(plate, "gt_truth")
    print(f"\n{name} widefield, {size} px, 2 wells x {timepoints} timepoints; diameter "
          f"{diameter:.0f} px")
    print("| objects | cells (matched, not at edge, 1 nucleus) | Pearson r | median |rel. err.| "
          "| link P / R / F1 | divisions in view P / R / F1 |")
    print("|---|---|---|---|---|---|")
    ours = "ours (zoo)" if args.zoo else "ours (generalist)"
    for label, table, pred in (("ground truth", "gt", None), (ours, "cyto_features", "cyto")):
        rows = []
        opened = open_plate(plate)
        for path in opened.field_paths:
            image = opened.field(path)
            df = read_feature_table(image, table)
            tr = read_feature_table(image, "gt_truth")
            m = _matches(image, pred, "gt_cyto") if pred else None
            df = df.assign(_f=path)
            rows.append((df, tr, m))
        measured, true_all = [], []
        for df, tr, m in rows:
            sub = df[~df["touches_edge"] & (df["n_nuclei"] == 1)].copy()
            if m is not None:
                sub["label"] = [m.get((int(t), int(lab)), -1)
                                for t, lab in zip(sub["t"], sub["label"], strict=True)]
            merged = sub.merge(tr, on=["t", "label"])
            merged = merged[np.isfinite(merged[ratio_column(READOUT)])]
            measured.append(merged[ratio_column(READOUT)].to_numpy())
            true_all.append(merged[true_ratio_column(READOUT)].to_numpy())
        mv, tv = np.concatenate(measured), np.concatenate(true_all)
        r = float(np.corrcoef(mv, tv)[0, 1]) if len(mv) > 2 else float("nan")
        mare = float(np.median(np.abs(mv - tv) / tv)) if len(mv) else float("nan")
        scored = _tracking(plate, table, pred)
        links, divisions = scored.links, scored.divisions
        print(f"| {label} | {len(mv)} | {r:.3f} | {mare:.3f} | {links.precision:.3f} / "
              f"{links.recall:.3f} / {links.f1:.3f} | {divisions.precision:.2f} / "
              f"{divisions.recall:.2f} / {divisions.f1:.2f} |")
    for label, result, table in (("ground truth", gt_measured, "gt"),
                                 ("ours", ours_measured, "cyto_features")):
        flagged = [(path, t, flag) for path, by_t in result.quality.items()
                   for t, flags in by_t.items() for flag in flags]
        units = len(result.done)
        kinds = sorted({flag for _, _, flag in flagged})
        print(f"quality checks on {label} objects: {len({(p, t) for p, t, _ in flagged})} of "
              f"{units} (field, timepoint)s flagged {kinds or ''}")
        checks = quality_rows(open_plate(plate), table)
        for row in checks[checks["flags"] != ""].to_dict("records"):
            print(f"  {row['field']} t={row['t']}: {row['flags']} (cells {row['cells']}, "
                  f"checked {row.get('cells_checked')}, of which without nucleus "
                  f"{row['cells_without_nucleus']}; ratios {row['ratios']}, implausible "
                  f"{row['implausible_ratios']})")
    print(f"our objects against the truth (F1 at IoU 0.5, all planes): cells "
          f"{_object_f1(plate, 'cyto', 'gt_cyto'):.3f}, nuclei "
          f"{_object_f1(plate, 'nuclei', 'gt_nuclei'):.3f}")
    print(f"segmentation (cells + nuclei) {seg:.1f} s; measuring + tracking {cost:.1f} s "
          f"= {cost / seg:.1%} of it (workers that have imported the tracker; a fresh "
          f"process imports it once in {_tracker_import_time():.1f} s); truth rows "
          f"{len(truth)}")


def _tiled_plate(folder: Path, tiles: int) -> str:
    from structfree_dask.io import create_plate
    from structfree_dask.simulate import simulate_field

    f = simulate_field("CL1", size=1024, timepoints=1, seed=3)
    n = int(f.cyto.max()) + 1
    img = np.tile(f.image, (1, 1, tiles, tiles))
    cells = np.zeros((1, 1024 * tiles, 1024 * tiles), np.uint32)
    nuclei = np.zeros_like(cells)
    for i in range(tiles):
        for j in range(tiles):
            k = i * tiles + j
            ys, xs = slice(i * 1024, (i + 1) * 1024), slice(j * 1024, (j + 1) * 1024)
            cells[:, ys, xs] = np.where(f.cyto > 0, f.cyto + k * n, 0)
            nuclei[:, ys, xs] = np.where(f.nuclei > 0, f.nuclei + k * n, 0)
    path = folder / f"tiled{tiles}.zarr"
    with create_plate(path, rows=["A"], columns=["1"]) as w:
        w.write_field("A", "1", 0, img, axes="tcyx", channel_names=list(f.channel_names),
                      labels={"cells": cells, "nuclei": nuclei})
    return str(path)


def _peak_task_memory(plate: str) -> float:
    """Peak RSS (MiB) of a fresh process that runs every unit of the plate itself."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_units_child, args=(plate, queue))
    proc.start()
    value = queue.get()
    proc.join()
    return value


def _run_units_child(plate: str, queue) -> None:
    import structfree_dask.cells.plate_measure as run

    store, plans = run._check(plate, cells="cells", nuclei="nuclei", write_links=False,
                              table="m", channels=None, wells=None, timepoints=None,
                              overwrite=True)
    units, _, _ = run._prepare(store, plans, cells="cells", nuclei="nuclei",
                               write_links=False, table="m", overwrite=True, region=run.REGION)
    # ru_maxrss survives fork and exec (it would report the parent's peak): reset the
    # kernel's high-water mark of this process and read it back (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_mib("VmRSS")
    for unit in units:
        run.run_unit(unit)
    queue.put((base, _status_mib("VmHWM")))


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _seeds(text: str) -> list[int]:
    """``7``, ``7,9`` or ``7-18`` as a list of seeds."""
    out: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        out += range(int(first), int(last or first) + 1)
    if not out:
        raise argparse.ArgumentTypeError(f"expected seeds such as 7, 7,9 or 7-18; got {text!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--timepoints", type=int, default=12)
    ap.add_argument("--lines", default="CL1,CL5", help="cell lines, or none")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--zoo", help="segment with this zoo's selections (built if missing)")
    ap.add_argument("--epochs", type=int, default=20, help="zoo training: at most N epochs")
    ap.add_argument("--tile-size", type=int, default=128, help="zoo training tile side")
    ap.add_argument("--seed", type=_seeds, default=[7],
                    help="seed of the scored plates; several (7-18, or 7,9) for the jitter "
                         "tables only (with --skip-readout), then also pooled per level")
    ap.add_argument("--train-seed", type=int, default=11, help="seed of the training plate")
    ap.add_argument("--train-fields", type=int, default=3,
                    help="fields per well of the training plate (split 80/10/10 by field)")
    ap.add_argument("--jitter", default="", help="stage jitter levels in px, e.g. 0,5,10,15")
    ap.add_argument("--motion", default="",
                    help="cells faster than their radius: motion scales, e.g. 5,10")
    ap.add_argument("--skip-readout", action="store_true",
                    help="no segmentation and readout part (e.g. with --jitter only)")
    args = ap.parse_args()
    levels = [int(v) for v in args.jitter.split(",") if v.strip()]
    scales = [float(v) for v in args.motion.split(",") if v.strip()]
    seeds = args.seed
    if len(seeds) > 1 and not args.skip_readout:
        ap.error(f"several seeds ({len(seeds)}) are for the jitter tables: add --skip-readout")
    args.seed = seeds[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = [n for n in args.lines.split(",") if n and n != "none"]
        if lines:
            client = local_client(2)
            try:
                for name in lines:
                    if not args.skip_readout:
                        _line(name, folder, args, client)
                    if levels:
                        by_seed = {}
                        for seed in seeds:
                            args.seed = seed
                            by_seed[seed] = _jitter(name, levels, folder, args, client)
                        if len(seeds) > 1:
                            _pooled(name, by_seed)
                    if scales:
                        _fast(name, scales, folder, args, client)
            finally:
                close_client(client)
        if not args.skip_memory:
            print("\n| field | RSS before the task (MiB) | peak RSS (MiB) | task's own peak |")
            print("|---|---|---|---|")
            peaks = {}
            for tiles in (1, 8):
                plate = _tiled_plate(folder, tiles)
                base, peak = _peak_task_memory(plate)
                peaks[tiles] = peak
                print(f"| {1024 * tiles} px | {base:.0f} | {peak:.0f} | {peak - base:.0f} |")
            print(f"peak RSS ratio 8192 / 1024 px fields: {peaks[8] / peaks[1]:.2f}x")


if __name__ == "__main__":
    main()
