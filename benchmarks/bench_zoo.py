"""Benchmark the model zoo (not a test): fine-tuned FA vs Vanilla vs mask fusion.

Two simulated plates, both imaged in widefield mode with dense, irregular cells:

* **A: CL5-like** — structurally weak reporters only (mitochondria, ER, membrane, a weak
  translocation reporter);
* **B: one strong reporter left out at evaluation** — the same weak reporters plus a strong
  nucleus+cytoplasm reporter that the multi-channel (MC) model is trained with, but that is
  never used at evaluation (only subsets of the weak reporters are scored and selected).

For each plate and organelle (nuclei, cytoplasm) the zoo is built on a local Dask cluster
(one task per model): one channel-wise (CW) model per weak reporter and one MC model on all
channels (``--mc-subsets``: MC models on the subsets given instead), fine-tuned from the
shipped generalist with the method's augmentations and early stopping, split 80/10/10 by
field over the first ``--rows`` rows of wells. Every (training subset, evaluation subset)
pair and the Vanilla generalist are scored with Flow Averaging on the validation fields; for
each of Vanilla, CW and MC the pair of best validation F1 is kept and its **test** F1 (IoU
0.5) is reported, on the split's test fields plus ``--heldout-rows`` further rows of wells
that take no part in training, validation or selection (the split alone leaves only a few
test fields). Then FA is compared with the four mask-fusion baselines (pixel voting,
majority voting, STAPLE, SIMPLE) with the CW models on the same test fields: once on all
weak reporters, and once with each method on its own subset of two or more weak reporters,
the one of best validation F1 (as FA's subset is chosen). With ``--flow-thresholds``
(default 0.4,0.6,0.8), each method also picks Cellpose's flow-error threshold on the
validation fields; the Vanilla/CW/MC table is at Cellpose's 0.4. The zoo's selection chooses
its flow and cell probability thresholds on the validation fields from ``--flow-thresholds``
x ``--cellprob-thresholds`` (default 0,-1,-2), as ``zoo build`` does.

``--folds K`` trains every model on K k-fold splits instead (the method's cross-validation):
the selection takes the pair of best mean validation F1 over the folds, and the test fields
are the first fold's test fields plus the held-out ones, scored with the first fold's models.

The split leaves two validation fields, so one split's choice of subset is one draw of a
noisy choice. ``--selection-draws N`` repeats it: each method picks its subset and flow
threshold on ``N`` random draws of test fields (as many as the split validates on, then half
of them) and is scored on the other test fields. ``--keep DIR --reuse`` reruns the
comparisons on the plates and zoos kept in ``DIR``, without training; the selection's
thresholds are chosen again from the lists given (``--cellprob-thresholds 0``: the flow
threshold alone, as before the cell probability threshold was chosen).

Usage::

    python benchmarks/bench_zoo.py                # default sizes (about an hour on 2 cores)
    python benchmarks/bench_zoo.py --quick        # smoke run
    python benchmarks/bench_zoo.py --keep DIR --reuse --selection-draws 400   # kept zoos
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

logger = logging.getLogger("bench_zoo")


def presets() -> dict[str, Any]:
    """The two simulated cell lines (weak reporters; weak + one strong)."""
    from structfree_dask.simulate import PRESETS, ChannelSpec

    weak = dataclasses.replace(PRESETS["CL5"], name="CL5w", confluence=0.8, irregularity=0.35,
                               diameter_cv=0.3, cell_diameter_um=18.0)
    strong = ChannelSpec("strong-reporter", "nuclei+cytoplasm", brightness=1500.0,
                         contrast=1.0, dark_fraction=0.02, heterogeneity=0.2)
    plus = dataclasses.replace(weak, name="CL5s", channels=(*weak.channels, strong))
    return {"A": weak, "B": plus}


def scenarios(args: argparse.Namespace) -> dict[str, Any]:
    """Plates to run: A and/or B, or CL5 on the shapes of each ``--shapes-from`` folder."""
    from structfree_dask.simulate import PRESETS

    if args.shapes_from:
        return {tag: dataclasses.replace(PRESETS["CL5"], name=f"CL5-{tag}")
                for tag in args.shapes_from}
    return {tag: p for tag, p in presets().items() if tag in args.plates.split(",")}


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _best(rows: list[dict[str, Any]], strategy: str, allowed: set[int]) -> dict[str, Any] | None:
    pick = [r for r in rows if r["strategy"] == strategy
            and set(int(c) for c in r["eval_channels"]) <= allowed
            and math.isfinite(float(r.get("val_f1", math.nan)))]
    if not pick:
        return None
    return max(pick, key=lambda r: (float(r["val_f1"]), -len(r["eval_channels"])))


def simulated_plate(tag: str, preset: Any, work: Path,
                    args: argparse.Namespace) -> tuple[Any, list[str], list[str]]:
    """A simulated plate: zoo wells (``--rows``) and held-out test fields (``--heldout-rows``)."""
    from structfree_dask.simulate import simulate_plate

    rows_total = args.rows + args.heldout_rows
    plate: Any = work / f"{tag}.zarr"
    if not (args.reuse and plate.exists()):
        plate = simulate_plate(plate, cell_line=preset, rows=rows_total, cols=args.cols,
                               fields=1, timepoints=args.timepoints, size=args.size,
                               seed=args.seed, mode="widefield")
    letters = [chr(ord("A") + i) for i in range(rows_total)]
    wells = [f"{r}/{c + 1}" for r in letters[:args.rows] for c in range(args.cols)]
    heldout = [f"{r}/{c + 1}/0" for r in letters[args.rows:] for c in range(args.cols)]
    return plate, wells, heldout


def stage_quarters(folder: Path, staging: Path) -> list[str]:
    """Copy a folder of annotated images as quarters: image ``k`` -> well A/k, fields 0-3.

    Each ``NNN_img.png`` / ``NNN_masks.png`` pair (in name order) is cut into four
    quarters, so that whole images can be held out for testing while the others still
    give a dozen fields to split. Returns the well paths, in image order.
    """
    import imageio.v3 as iio
    import numpy as np

    staging.mkdir(parents=True, exist_ok=True)
    masks = sorted(folder.glob("*_masks.png"))
    if not masks:
        raise SystemExit(f"--shapes-from: expected NNN_img.png / NNN_masks.png pairs in "
                         f"{folder}; found no *_masks.png")
    wells = []
    for k, mask_path in enumerate(masks, start=1):
        image = iio.imread(mask_path.with_name(mask_path.name.replace("_masks", "_img")))
        mask = iio.imread(mask_path)
        h, w = mask.shape[0] // 2, mask.shape[1] // 2
        for q, (y, x) in enumerate([(0, 0), (0, w), (h, 0), (h, w)]):
            iio.imwrite(staging / f"A{k:02d}_f{q}_img.png", image[y:y + h, x:x + w])
            iio.imwrite(staging / f"A{k:02d}_f{q}_masks.png",
                        np.ascontiguousarray(mask[y:y + h, x:x + w]).astype(np.uint16))
        wells.append(f"A/{k}")
    return wells


def shapes_plate(tag: str, preset: Any, work: Path,
                 args: argparse.Namespace) -> tuple[Any, list[str], list[str]]:
    """The reporters of ``preset`` rendered on the real shapes of one folder of images.

    The images are imported as quarters (:func:`stage_quarters`); the last
    ``--heldout-images`` images are test fields only, the others are split 80/10/10.
    """
    from structfree_dask.io import import_folder, open_plate
    from structfree_dask.simulate import simulate_plate_from_shapes

    folder = Path(args.shapes_from[tag])
    plate: Any = work / f"{tag}.zarr"
    source = work / f"{tag}-shapes.zarr"
    wells = stage_quarters(folder, work / f"{tag}-staging")
    if not (args.reuse and plate.exists()):
        shutil.rmtree(source, ignore_errors=True)
        import_folder(work / f"{tag}-staging", source, channels=[0])
        plate = simulate_plate_from_shapes(plate, source, labels="gt_cyto", cell_line=preset,
                                           timepoints=args.timepoints, seed=args.seed,
                                           mode="widefield")
    n_held = args.heldout_images
    if not 1 <= n_held < len(wells) - 1:
        raise SystemExit(f"--heldout-images: expected 1 to {len(wells) - 2} for the "
                         f"{len(wells)} images of {folder}; got {n_held}")
    heldout = open_plate(plate).select(wells[-n_held:])
    return plate, wells[:-n_held], heldout


def run_scenario(tag: str, preset: Any, work: Path, args: argparse.Namespace,
                 client: Any) -> list[dict[str, Any]]:
    from structfree_dask.config import TrainSettings
    from structfree_dask.zoo import Zoo, build_zoo, choose_thresholds, training_jobs

    names = [c.name for c in preset.channels]
    weak = [i for i, n in enumerate(names) if n != "strong-reporter"]
    subsets: list[tuple[int | str, ...]] = [(c,) for c in weak]
    if "mc" in args.strategies.split(","):
        subsets += args.mc_subsets or [tuple(range(len(names)))]
    unknown = sorted({str(c) for s in subsets for c in s
                      if c not in names and c not in range(len(names))})
    if unknown:  # before any plate is rendered
        raise SystemExit(f"--mc-subsets: {tag} has channels {', '.join(names)} (or indices 0 "
                         f"to {len(names) - 1}); got {', '.join(unknown)}")
    if args.shapes_from:
        plate, wells, heldout = shapes_plate(tag, preset, work, args)
    else:
        plate, wells, heldout = simulated_plate(tag, preset, work, args)
    out = []
    for organelle in args.organelles.split(","):
        t0 = time.perf_counter()
        zoo_dir = work / f"zoo_{tag}"
        train_s = None
        if not (args.reuse and _has_selection(zoo_dir, preset.name, organelle)):
            jobs = training_jobs(plate, f"gt_{organelle}", organelle, preset.name,
                                 subsets=subsets, seed=args.seed, wells=wells,
                                 folds=args.folds)
            settings = TrainSettings(**{"max_epochs": args.epochs, "patience": args.patience,
                                        "tile_size": args.tile_size, **args.train})
            res = build_zoo(jobs, zoo_dir, client=client, settings=settings,
                            flow_thresholds=args.flow_thresholds,
                            cellprob_thresholds=args.cellprob_thresholds)
            if not res.ok:
                raise RuntimeError(f"{tag}/{organelle}: build failed: {res.failed}")
            train_s = round(res.seconds, 1)
        else:
            logger.info("%s/%s: reusing the zoo kept in %s", tag, organelle, zoo_dir)
            choose_thresholds(zoo_dir, preset.name, organelle, args.flow_thresholds,
                              args.cellprob_thresholds)
        zoo = Zoo(zoo_dir)
        selection = zoo.selection(preset.name, organelle)
        cards = zoo.cards(preset.name, organelle)
        row = {"plate": tag, "organelle": organelle, "train_s": train_s,
               "epochs": {c.model_id: c.epochs_run for c in cards},
               "model_seconds": {c.model_id: round(float(c.training.get("seconds", math.nan)), 1)
                                 for c in cards}}
        row.update(compare(zoo, selection, plate, set(weak), heldout, args.flow_thresholds))
        if args.selection_draws:
            row["selection_draws"] = selection_draws(zoo, selection, plate, heldout,
                                                     args.flow_thresholds,
                                                     args.selection_draws, args.seed)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        logger.info("%s", json.dumps(row))
        out.append(row)
    return out


def _has_selection(zoo_dir: Path, cell_line: str, organelle: str) -> bool:
    from structfree_dask.zoo import Zoo

    if not zoo_dir.is_dir():
        return False
    try:
        Zoo(zoo_dir).selection(cell_line, organelle)
    except (KeyError, FileNotFoundError):
        return False
    return True


def selection_draws(zoo: Any, selection: Any, plate: Any, heldout: list[str],
                    flow_thresholds: tuple[float, ...], n_draws: int,
                    seed: int) -> list[dict[str, Any]]:
    """Each method's subset and threshold chosen on random test fields, scored on the rest.

    The split leaves only a few validation fields, so one split's choice of subset is one
    draw of a noisy choice. Here every method (FA and the mask fusions, the CW models)
    is scored per field on every subset of two or more channels and every flow
    threshold, once; then ``n_draws`` times, ``k`` of the test fields are drawn at
    random, each method takes its (subset, threshold) of best pooled F1 there (ties as
    in ``fusion_table``: ``choice_key``) and is
    scored on the other test fields. ``k`` is the size of the split's validation set,
    then half of the test fields.

    Returns
    -------
    list of dict
        Per ``k``: ``k``, ``n_scored``, ``mean_f1`` per method, and per baseline
        ``fa_minus`` (mean over draws of FA - method) and ``fa_ahead`` (share of draws
        with FA >= method).
    """
    import itertools

    import numpy as np

    from structfree_dask.evaluation.metrics import pooled_f1
    from structfree_dask.zoo.scoring.predict import (
        METHODS,
        fusion_models,
        load_eval_planes,
        method_scores,
        reference_card,
    )
    from structfree_dask.zoo.scoring.threshold import choice_key

    ref = reference_card(zoo, selection)
    fields = [*ref.split.test, *heldout]
    models = fusion_models(zoo, selection)
    n = len(models.channels)
    subsets = [c for k in range(2, n + 1) for c in itertools.combinations(range(n), k)]
    planes = load_eval_planes(zoo, selection, plate, models.channels, None, fields)
    logger.info("selection draws: %d method(s) x %d subset(s) x %d threshold(s) on %d "
                "test plane(s)", len(METHODS), len(subsets), len(flow_thresholds),
                len(planes))
    scores = method_scores(models, planes, subsets, None, flow_thresholds)
    keys = list(scores)
    counts = np.array([[[r[k] for k in ("tp", "fp", "fn")] for r in scores[key]]
                       for key in keys], dtype=float)            # (key, plane, 3)

    def f1(idx: np.ndarray) -> np.ndarray:
        return pooled_f1(counts[:, idx].sum(axis=1))

    rng = np.random.default_rng(seed)
    per_method = {m: [i for i, key in enumerate(keys) if key[0] == m] for m in METHODS}
    out = []
    for k in sorted({len(ref.split.val), len(planes) // 2}):
        got: dict[str, list[float]] = {m: [] for m in METHODS}
        for _ in range(n_draws):
            perm = rng.permutation(len(planes))
            choose, score = f1(perm[:k]), f1(perm[k:])
            for m, mine in per_method.items():
                best = max(mine, key=lambda i: choice_key(choose[i], len(keys[i][1]),
                                                          keys[i][2]))
                got[m].append(float(score[best]))
        fa = np.array(got["fa"])
        out.append({"k": k, "n_scored": len(planes) - k,
                    "mean_f1": {m: float(np.mean(v)) for m, v in got.items()},
                    "fa_minus": {m: float(np.mean(fa - np.array(v)))
                                 for m, v in got.items() if m != "fa"},
                    "fa_ahead": {m: float(np.mean(fa >= np.array(v)))
                                 for m, v in got.items() if m != "fa"}})
    return out


def compare(zoo: Any, selection: Any, plate: Any, allowed: set[int],
            heldout: list[str], flow_thresholds: tuple[float, ...] = (0.4,)) -> dict[str, Any]:
    """Best Vanilla/CW/MC pairs by validation F1, and FA vs mask fusion, on the test fields.

    The test fields are the split's test fields plus the held-out wells (never used to
    train, validate or select). The chosen pairs are re-scored there with the zoo's own
    scoring (``score_candidates``, ``score_vanilla``: their ``val_*`` columns then hold
    the scores on the fields given).
    """
    from structfree_dask.zoo import pair_key, score_candidates, score_vanilla
    from structfree_dask.zoo.report import fusion_table

    ref = zoo.get(selection.model_ids[0])
    test = [*ref.split.test, *heldout]
    gt = selection.gt
    row: dict[str, Any] = {"n_test_fields": len(test)}
    best = {s: _best(selection.candidates, s, allowed) for s in ("vanilla", "cw", "mc")}
    rescored = {pair_key(r): r for r in score_candidates(
        zoo, plate, gt, ref.cell_line, ref.organelle, fold=ref.split.fold,
        seed=ref.split.seed, fields=test)}
    if best["vanilla"] is not None:
        base = (selection.baseline or {}).get("path")
        for r in score_vanilla(plate, gt, test, [best["vanilla"]["eval_channels"]], base,
                               diameter=ref.diameter):
            rescored[pair_key(r)] = r
    for strategy, b in best.items():
        row[strategy] = b and {
            "test_f1": float(rescored[pair_key(b)]["val_f1"]),
            "split_test_f1": float(b["test_f1"]), "val_f1": float(b["val_f1"]),
            "eval": "+".join(b["eval_channel_names"]),
            "train": "+".join(str(n) for n in b.get("train_channel_names", []) or [])}
    row["selected_vs_vanilla"] = selected_vs_vanilla(zoo, selection, plate, test)
    row.update(fusion_rows(fusion_table(zoo, selection, plate, fields=test,
                                        flow_thresholds=flow_thresholds, per_field=True)))
    return row


def selected_vs_vanilla(zoo: Any, selection: Any, plate: Any,
                        test: list[str]) -> dict[str, Any]:
    """The zoo's selection vs Vanilla FA on the selection's channels, on the test fields.

    The selected pair at its chosen flow threshold; Vanilla (the base model on each of
    the same channels, averaged) at the same diameter and Cellpose's 0.4. Per plane
    counts, so the difference gets a paired-bootstrap interval.
    """
    import numpy as np

    from structfree_dask.config import DEFAULT_FLOW_THRESHOLD
    from structfree_dask.evaluation.metrics import evaluate, paired_bootstrap_f1, pooled_f1
    from structfree_dask.zoo.scoring.predict import (
        PlaneFlows,
        fa_labels,
        load_eval_planes,
        method_scores,
        selected_models,
        vanilla_models,
    )

    chosen = selected_models(zoo, selection)
    vanilla = vanilla_models(selection, chosen.channels, chosen.diameter)
    planes = load_eval_planes(zoo, selection, plate, chosen.channels, None, test)
    every = (tuple(range(len(chosen.channels))),)
    thresholds = (float(selection.flow_threshold), float(selection.cellprob_threshold))

    def counts(rows: list[dict[str, Any]]) -> Any:
        return np.array([[r[k] for k in ("tp", "fp", "fn")] for r in rows], dtype=float)

    # the selection's labels, kept for the edge breakdown (one network pass per plane)
    preds = [fa_labels(chosen, PlaneFlows(p, chosen.channels, None), *thresholds
                       ).astype(np.int64) for p in planes]
    mine = counts([evaluate(p.labels.astype(np.int64), y) for p, y in zip(planes, preds,
                                                                          strict=True)])
    base = counts(method_scores(vanilla, planes, every, None, (DEFAULT_FLOW_THRESHOLD,),
                                methods=("fa",))[("fa", every[0], DEFAULT_FLOW_THRESHOLD)])
    return {"channels": "+".join(chosen.channels), "selected": chosen.label,
            "flow_threshold": thresholds[0], "cellprob_threshold": thresholds[1],
            "f1": float(pooled_f1(mine.sum(axis=0))),
            "vanilla_f1": float(pooled_f1(base.sum(axis=0))),
            "difference": paired_bootstrap_f1(mine, base), "n_planes": len(planes),
            "edge": edge_breakdown([p.labels for p in planes], preds)}


def edge_breakdown(truths: list[Any], preds: list[Any]) -> dict[str, Any]:
    """Where the misses are: objects cut by the field edge, and tiny ones.

    Fields cut from small images have many objects cut by their edge. Reported: the
    share of true objects that touch the field edge and their recall (matched at IoU
    0.5 by a predicted object), the share smaller than the smallest object the pipeline
    keeps (``min_size``, which no prediction can match), and the F1 on whole objects
    (both label images with the objects touching the edge removed, as
    :func:`skimage.segmentation.clear_border` does). The main F1 counts every object.
    """
    import numpy as np
    from skimage.segmentation import clear_border

    from structfree_dask.config import DEFAULT_MIN_SIZE
    from structfree_dask.evaluation.metrics import combine, evaluate

    whole, n_true, n_cut, cut_found, n_tiny = [], 0, 0, 0, 0
    for truth, pred in zip(truths, preds, strict=True):
        truth = np.asarray(truth, dtype=np.int64)
        whole.append(evaluate(clear_border(truth), clear_border(pred)))
        ids, areas = np.unique(truth[truth > 0], return_counts=True)
        cut = np.setdiff1d(ids, np.unique(clear_border(truth)))
        n_true += len(ids)
        n_tiny += int((areas < DEFAULT_MIN_SIZE).sum())
        n_cut += len(cut)
        cut_only = np.where(np.isin(truth, cut), truth, 0)
        cut_found += int(evaluate(cut_only, pred)["tp"]) if len(cut) else 0
    return {"n_true": n_true, "cut_share": n_cut / max(1, n_true),
            "cut_recall": cut_found / max(1, n_cut), "tiny_share": n_tiny / max(1, n_true),
            "whole_f1": float(combine(whole)["f1"])}


def fusion_rows(fusion: list[dict[str, Any]]) -> dict[str, Any]:
    """FA and mask-fusion test F1 on all channels and on each method's chosen subset.

    ``fusion_vs_fa[kind][method]`` is FA - method of pooled F1 with its 95 % interval
    (paired bootstrap over the test fields); ``fusion_rows`` needs ``per_field`` rows.
    """
    from structfree_dask.evaluation.metrics import paired_bootstrap_f1

    out: dict[str, Any] = {"fusion": {}, "fusion_threshold": {}, "fusion_chosen": {},
                           "fusion_vs_fa": {}}
    fa = {f["subset"]: f["per_field"] for f in fusion if f["method"] == "FA"}
    for f in fusion:
        if f["method"] != "FA":
            out["fusion_vs_fa"].setdefault(f["subset"], {})[f["method"]] = paired_bootstrap_f1(
                fa[f["subset"]], f["per_field"])
        if f["subset"] == "all":
            out["fusion"][f["method"]] = float(f["f1"])
            out["fusion_threshold"][f["method"]] = float(f["flow_threshold"])
            out["fusion_channels"] = f["channels"]
        else:
            out["fusion_chosen"][f["method"]] = {"f1": float(f["f1"]),
                                                 "val_f1": float(f["val_f1"]),
                                                 "channels": f["channels"],
                                                 "flow_threshold": float(f["flow_threshold"])}
    return out


def _versus(r: dict[str, Any], kind: str, method: str) -> str:
    d = r["fusion_vs_fa"].get(kind, {}).get(method)
    return "" if d is None else f" (FA {d[0]:+.3f}, {d[1]:+.3f}..{d[2]:+.3f})"


def _f(x: dict[str, Any] | None) -> str:
    return "-" if x is None else f"{x['test_f1']:.3f}"


def print_tables(rows: list[dict[str, Any]]) -> None:
    n = rows[0]["n_test_fields"] if rows else 0
    print(f"\nTest F1 at IoU 0.5 on {n} test fields (pair of best validation F1 per column; "
          "FA throughout)")
    print("| plate | organelle | Vanilla | best CW | best MC | best CW pair | best MC pair |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cw, mc = r["cw"], r["mc"]
        mc_pair = f"{mc['train']} -> {mc['eval']}" if mc else "-"
        print(f"| {r['plate']} | {r['organelle']} | {_f(r['vanilla'])} | {_f(cw)} | {_f(mc)} | "
              f"{cw['eval'] if cw else '-'} | {mc_pair} |")
    print("\nThe zoo's selection vs Vanilla FA on the same channels, test fields (F1 at IoU "
          "0.5; selection minus Vanilla with its 95 % paired-bootstrap interval over planes); "
          "training time per model")
    print("| plate | organelle | selection (channels) | selection F1 | Vanilla F1 | difference | "
          "training s per model (median, max) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        v = r["selected_vs_vanilla"]
        secs = [s for s in r["model_seconds"].values() if math.isfinite(s)]
        times = f"{statistics.median(secs):.0f}, {max(secs):.0f}" if secs else "-"
        d = v["difference"]
        print(f"| {r['plate']} | {r['organelle']} | {v['selected']} ({v['channels']}) "
              f"[{v['flow_threshold']:g}, {v.get('cellprob_threshold', 0.0):g}] | "
              f"{v['f1']:.3f} | {v['vanilla_f1']:.3f} | "
              f"{d[0]:+.3f} ({d[1]:+.3f}..{d[2]:+.3f}) | {times} |")
    print("\nWhere the selection's misses are, test fields: true objects cut by the field "
          "edge (and the share of them found), true objects smaller than the smallest kept "
          "(min_size; none can be found), F1 on whole objects (objects touching the edge "
          "removed from both label images)")
    print("| plate | organelle | true objects | cut by the edge | found of those | "
          "below min_size | F1, all objects | F1, whole objects |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        v = r["selected_vs_vanilla"]
        e = v["edge"]
        print(f"| {r['plate']} | {r['organelle']} | {e['n_true']} | {e['cut_share']:.1%} | "
              f"{e['cut_recall']:.1%} | {e['tiny_share']:.1%} | {v['f1']:.3f} | "
              f"{e['whole_f1']:.3f} |")
    print("\nFA vs mask fusion, CW models on all weak reporters, test fields (F1 at IoU 0.5; "
          "flow threshold in brackets; FA - method with its 95 % paired-bootstrap interval)")
    methods = list(rows[0]["fusion"]) if rows else []
    print("| plate | organelle | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for r in rows:
        print(f"| {r['plate']} | {r['organelle']} | " + " | ".join(
            f"{r['fusion'][m]:.3f} [{r['fusion_threshold'][m]:g}]{_versus(r, 'all', m)}"
            for m in methods) + " |")
    chosen = [r for r in rows if r.get("fusion_chosen")]
    if not chosen:
        return
    print("\nFA vs mask fusion, CW models, each method on its own subset of >= 2 weak "
          "reporters chosen by validation F1; test fields (F1 at IoU 0.5)")
    print("| plate | organelle | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for r in chosen:
        print(f"| {r['plate']} | {r['organelle']} | " + " | ".join(
            f"{r['fusion_chosen'][m]['f1']:.3f} ({r['fusion_chosen'][m]['channels']}) "
            f"[{r['fusion_chosen'][m]['flow_threshold']:g}]{_versus(r, 'validation', m)}"
            for m in methods) + " |")


def print_draws(rows: list[dict[str, Any]]) -> None:
    drawn = [r for r in rows if r.get("selection_draws")]
    if not drawn:
        return
    from structfree_dask.zoo.report import FUSION_LABELS

    print("\nEach method's subset (>= 2 weak reporters) and flow threshold chosen on k random "
          "test fields, scored on the others: mean F1 over the draws; FA - method and the "
          "share of draws with FA >= method")
    others = [m for m in FUSION_LABELS if m != "fa"]
    print("| plate | organelle | k | FA | " + " | ".join(FUSION_LABELS[m] for m in others)
          + " |")
    print("|---|---|---|---|" + "---|" * len(others))
    for r in drawn:
        for d in r["selection_draws"]:
            print(f"| {r['plate']} | {r['organelle']} | {d['k']} | {d['mean_f1']['fa']:.3f} | "
                  + " | ".join(f"{d['mean_f1'][m]:.3f} ({d['fa_minus'][m]:+.3f}, "
                               f"{d['fa_ahead'][m]:.0%})" for m in others) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (tiny plate, 2 epochs)")
    ap.add_argument("--rows", type=int, default=4, help="rows of wells split 80/10/10")
    ap.add_argument("--heldout-rows", type=int, default=3,
                    help="further rows of wells, used only as test fields")
    ap.add_argument("--cols", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--patience", type=int, default=50)
    ap.add_argument("--tile-size", type=int, default=224, help="training tile side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--plates", default="A,B", help="which plates: A, B or A,B")
    ap.add_argument("--shapes-from", default=None, metavar="DIR[,DIR]",
                    help="instead of plates A and B: CL5's reporters rendered on the real "
                         "cell shapes of each folder of NNN_img.png / NNN_masks.png pairs "
                         "(one zoo per folder, named after it)")
    ap.add_argument("--heldout-images", type=int, default=1,
                    help="with --shapes-from: the last N images of each folder are test "
                         "fields only (default 1)")
    ap.add_argument("--timepoints", type=int, default=1,
                    help="timepoints per field (with --shapes-from the shapes drift and "
                         "deform; default 1)")
    ap.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                    help="any other TrainSettings value, e.g. --train lr=1e-3 (repeatable)")
    ap.add_argument("--organelles", default="nuclei,cyto", help="nuclei, cyto or nuclei,cyto")
    ap.add_argument("--strategies", default="cw,mc",
                    help="cw,mc (default) or cw: leave out the MC model (the fusion "
                         "comparison uses the CW models only)")
    ap.add_argument("--mc-subsets", default=None, metavar="SUBSETS",
                    help="with mc: the MC models' training subsets, channel names or indices, "
                         "';' between subsets, e.g. 'mito,ER;mito,ER,membrane' (default: one "
                         "MC model on all channels)")
    ap.add_argument("--folds", type=int, default=None, metavar="K",
                    help="k-fold splits instead of one 80/10/10 split: the selection takes "
                         "the pair of best mean validation F1 over the K folds; test fields "
                         "are the first fold's plus the held-out ones, scored with the first "
                         "fold's models (default: one split)")
    ap.add_argument("--flow-thresholds", default="0.4,0.6,0.8",
                    help="flow-error thresholds each fusion method (FA included) chooses from "
                         "on the validation fields (default 0.4,0.6,0.8; 0.4: cellpose's only)")
    ap.add_argument("--cellprob-thresholds", default="0,-1,-2",
                    help="cell probability thresholds the zoo's selection chooses from with "
                         "the flow threshold (default 0,-1,-2; 0: cellpose's only)")
    ap.add_argument("--selection-draws", type=int, default=0, metavar="N",
                    help="also choose each method's subset and threshold on N random draws "
                         "of test fields, scoring on the rest (default 0: off)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: reuse the plates and zoos kept there (no training)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--keep", type=Path, default=None, help="keep the plates and zoos here")
    args = ap.parse_args()
    for name, value, allowed in (("--organelles", args.organelles, {"nuclei", "cyto"}),
                                 ("--strategies", args.strategies, {"cw", "mc"}),
                                 ("--plates", args.plates, {"A", "B"})):
        bad = set(value.split(",")) - allowed
        if bad:
            ap.error(f"{name}: expected a comma-separated subset of {sorted(allowed)}; "
                     f"got {sorted(bad)}")
    from structfree_dask.zoo.scoring.threshold import (
        check_cellprob_thresholds,
        check_flow_thresholds,
    )

    for name, check in (("flow_thresholds", check_flow_thresholds),
                        ("cellprob_thresholds", check_cellprob_thresholds)):
        try:  # the checks zoo build's options use
            setattr(args, name, tuple(check(getattr(args, name).split(","))))
        except ValueError as err:
            ap.error(f"--{name.replace('_', '-')}: {err}")
    if args.mc_subsets is not None:
        from structfree_dask.cli.zoo import parse_subsets

        given = args.mc_subsets
        try:  # the parser zoo build's --subsets uses ('all': the default)
            parsed = parse_subsets(given)
        except argparse.ArgumentTypeError as err:
            ap.error(f"--mc-subsets: {err}")
        args.mc_subsets = [tuple(s) for s in parsed] if parsed else None
        too_small = any(len(s) < 2 for s in args.mc_subsets or [])
        if too_small or "mc" not in args.strategies.split(","):
            ap.error("--mc-subsets: expected subsets of two or more channels, with mc among "
                     f"--strategies; got {given!r} with --strategies {args.strategies}")
    if args.folds is not None and args.folds < 2:
        ap.error(f"--folds: expected K >= 2 (leave it out for one split); got {args.folds}")
    if args.reuse and args.keep is None:
        ap.error("--reuse needs --keep DIR (the folder with the kept plates and zoos)")
    if args.selection_draws < 0:
        ap.error(f"--selection-draws: expected N >= 0; got {args.selection_draws}")
    try:
        args.train = {k: _number(v) for k, v in (kv.split("=", 1) for kv in args.train)}
    except ValueError:
        ap.error(f"--train: expected KEY=VALUE; got {args.train}")
    if args.shapes_from:
        folders = [Path(d) for d in args.shapes_from.split(",")]
        missing = [str(d) for d in folders if not d.is_dir()]
        if missing:
            ap.error(f"--shapes-from: expected folders; not found: {', '.join(missing)}")
        args.shapes_from = {d.name: d for d in folders}
    if args.quick:
        args.rows, args.cols, args.size, args.epochs, args.heldout_rows = 2, 5, 160, 2, 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("distributed", "tornado", "bokeh"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from structfree_dask.runtime.cluster import local_client

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_zoo_"))
    work.mkdir(parents=True, exist_ok=True)
    split = f"in {args.folds} folds" if args.folds else "split 80/10/10"
    if args.shapes_from:
        data = (f"CL5's reporters on the real shapes of {', '.join(args.shapes_from)} "
                f"(widefield, each image cut into 4 fields, {args.timepoints} timepoint(s)); "
                f"the last {args.heldout_images} image(s) of each are test fields only, the "
                f"others {split}")
    else:
        data = (f"{args.rows * args.cols} fields of {args.size} px per plate (widefield), "
                f"{split}, plus {args.heldout_rows * args.cols} held-out test fields")
    print(f"structfree_dask zoo benchmark: {data}, at most {args.epochs} epochs "
          f"(patience {args.patience}), training tiles {args.tile_size} px, "
          f"{args.workers} workers x 1 thread; other settings {args.train or 'default'}")
    client = local_client(n_workers=args.workers, threads_per_worker=1)
    rows: list[dict[str, Any]] = []
    try:
        for tag, preset in scenarios(args).items():
            rows += run_scenario(tag, preset, work, args, client)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print_tables(rows)
    print_draws(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
