"""Benchmark fine-tuning choices on one zoo model (not a test): what limits weak reporters.

Takes the card of a model kept by ``bench_zoo.py --keep`` (its plate, ground truth,
channels and split) and fine-tunes it again under each variant, one after the other in
one run, from the same seed: the default settings, then one choice changed at a time.
Each variant is scored on the split's validation and test fields (F1 at IoU 0.5, FA over
its channels) at Cellpose's thresholds (flow 0.4, cell probability 0) and at the
(flow, cell probability) pair of best validation F1 on a small grid.

Variants (``--variants``, comma-separated; default: all but ``e100`` and ``tile224``,
the two slow ones):

======================  =============================================================
``base``                the defaults of ``TrainSettings`` (with ``--epochs``, ``--tile``)
``seed1``               seed 1 instead of 0: the run-to-run noise
``batch4``              4 tiles per step instead of 8: twice the steps for the same tiles
``lr1e3``               learning rate 1e-3 instead of 5e-4
``warmcos1e3``          1e-3 with a warm-up over the first tenth of the steps, then a
                        cosine decay to 0 (the package trains at a constant rate)
``prob2``               cell probability loss weighted 2x against the flow loss
``aug025``              each augmentation with p = 0.25 instead of 0.5
``tpe2``                each sample twice per epoch, half the epochs: the same tiles,
                        half the validation passes
``tile224``             224 px training tiles (Cellpose's) instead of ``--tile``
``e100``                100 epochs instead of ``--epochs``
``mc``                  one model on every channel in ``--mc-channels`` (MC: each
                        channel its own sample), scored with FA over them
``mc_from_cw``          the same MC model, fine-tuned from the ``base`` variant's weights
``mc_steps``            the same MC model at ``--epochs`` / |C| epochs: as many steps as a
                        CW model (MC's own sampling gives |C| samples per field and epoch)
``mc_mean``             MC sampling by mean: one sample per field, the mean of its channels
                        (each normalized to its 1/99 percentiles); scored with FA over them
``cw_pair``             no training: the card's zoo's own CW models of ``--mc-channels``
                        (same split and seed), scored with FA over them, as the mc rows
======================  =============================================================

The warm-up/cosine schedule and the loss weighting are not settings of the package; here
they wrap the optimizer and the loss that :func:`~structfree_dask.zoo.training.finetune`
uses, for this experiment only.

Usage::

    python benchmarks/bench_zoo.py --shapes-from DATA/macrophagocyte --timepoints 1 \\
        --epochs 20 --tile-size 128 --strategies cw --organelles nuclei --keep kept/
    python benchmarks/bench_train_knobs.py \\
        kept/zoo_macrophagocyte/models/CL5_macrophagocyte-nuclei-cw-c1-s0/card.json \\
        --mc-channels 0,1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

logger = logging.getLogger("bench_train_knobs")

#: Variant name -> changes to the base variant.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "seed1": {"seed": 1},
    "batch4": {"batch_size": 4},
    "lr1e3": {"lr": 1e-3},
    "warmcos1e3": {"lr": 1e-3, "schedule": "warmcos"},
    "prob2": {"prob_weight": 2.0},
    "aug025": {"p_augment": 0.25},
    "tpe2": {"repeat": 2, "epochs_factor": 0.5},
    "tile224": {"tile_size": 224},
    "e100": {"max_epochs": 100},
    "mc": {"mc": True},
    "mc_from_cw": {"mc": True, "from_base": True},
    "mc_steps": {"mc": True, "same_steps": True},
    "mc_mean": {"mc": True, "mean": True},
    "cw_pair": {"mc": True, "zoo_cw": True},
}
SLOW = ("e100", "tile224")


@contextlib.contextmanager
def _wrapped(schedule: str | None, prob_weight: float, total_steps: int) -> Iterator[None]:
    """Swap in a warm-up/cosine AdamW and/or a re-weighted loss in ``finetune``'s module."""
    import torch

    from structfree_dask.zoo.training import train

    real_adamw, real_loss = torch.optim.AdamW, train._loss

    class ScheduledAdamW(real_adamw):  # type: ignore[misc, valid-type]
        def __init__(self, params: Any, lr: float, weight_decay: float) -> None:
            super().__init__(params, lr=lr, weight_decay=weight_decay)
            self.steps_done, self.peak = 0, lr

        def step(self, closure: Any = None) -> Any:
            k, warm = self.steps_done, max(1, total_steps // 10)
            factor = min(1.0, (k + 1) / warm) * 0.5 * (
                1 + math.cos(math.pi * min(k, total_steps) / total_steps))
            for group in self.param_groups:
                group["lr"] = self.peak * factor
            self.steps_done += 1
            return super().step(closure)

    def weighted_loss(y: Any, lbl: Any, device: Any) -> Any:
        flows = torch.nn.functional.mse_loss(y[:, :2], 5.0 * torch.from_numpy(lbl[:, 1:]).to(
            device)) / 2.0
        prob = torch.nn.functional.binary_cross_entropy_with_logits(
            y[:, -1], torch.from_numpy(lbl[:, 0] > 0.5).to(device).float())
        return flows + prob_weight * prob

    try:
        if schedule == "warmcos":
            torch.optim.AdamW = ScheduledAdamW
        if prob_weight != 1.0:
            train._loss = weighted_loss
        yield
    finally:
        torch.optim.AdamW, train._loss = real_adamw, real_loss


def _scores(weights: list[str], diameter: float, plate: str, gt: str, channels: list[int],
            fields: dict[str, list[str]]) -> dict[str, Any]:
    """F1 of FA over ``channels`` (one weights file each) on the validation and test fields,
    on the threshold grid."""
    import numpy as np

    from structfree_dask.backbones import resolve_model
    from structfree_dask.config import SegmentationConfig
    from structfree_dask.evaluation.metrics import combine, evaluate
    from structfree_dask.pipeline.segment import channel_flows, flows_to_labels
    from structfree_dask.zoo.scoring.data import load_planes
    from structfree_dask.zoo.scoring.threshold import (
        CELLPROB_THRESHOLDS,
        FLOW_THRESHOLDS,
        choice_key,
    )

    specs = [resolve_model(w) for w in weights]
    spec = specs[0]
    out: dict[str, dict[tuple[float, float], float]] = {}
    for part, names in fields.items():
        planes = load_planes(plate, names, channels, gt)
        maps = [channel_flows(p.image, specs, diameter=diameter)
                for p in planes]
        out[part] = {}
        for ft in FLOW_THRESHOLDS:
            for cp in CELLPROB_THRESHOLDS:
                cfg = SegmentationConfig(flow_threshold=ft, cellprob_threshold=cp)
                rows = [evaluate(p.labels.astype(np.int64), flows_to_labels(
                    m, cfg, rescale=spec.diam_mean / diameter).astype(np.int64))
                    for p, m in zip(planes, maps, strict=True)]
                out[part][(ft, cp)] = float(combine(rows)["f1"])
    # the selection's tie rule: the flow threshold nearest 0.4, then the cell probability
    # threshold nearest 0
    chosen = max(out["val"], key=lambda k: choice_key(out["val"][k], len(channels), *k))
    return {"val_f1": out["val"][(0.4, 0.0)], "test_f1": out["test"][(0.4, 0.0)],
            "chosen": chosen, "chosen_val_f1": out["val"][chosen],
            "chosen_test_f1": out["test"][chosen]}


def run_variant(name: str, card: dict[str, Any], args: argparse.Namespace,
                base_weights: str | None) -> dict[str, Any]:
    """Fine-tune one variant on the card's split and score it."""
    from structfree_dask.config import TrainSettings
    from structfree_dask.zoo.scoring.data import load_samples
    from structfree_dask.zoo.training import finetune

    v = VARIANTS[name]
    plate, gt, split = card["source"]["plate"], card["source"]["gt"], card["split"]
    channels = args.mc_channels if v.get("mc") else list(card["channels"])
    if v.get("zoo_cw"):
        return _zoo_cw_row(name, card, args, channels)
    samples = _mean_samples if v.get("mean") else load_samples
    train = samples(plate, split["train"], channels, gt) * v.get("repeat", 1)
    val = samples(plate, split["val"], channels, gt)
    factor = 1 / len(channels) if v.get("same_steps") else v.get("epochs_factor", 1.0)
    epochs = max(1, round(v.get("max_epochs", args.epochs) * factor))
    settings = TrainSettings(max_epochs=epochs, patience=50, tile_size=v.get(
        "tile_size", args.tile), lr=v.get("lr", 5e-4), batch_size=v.get("batch_size", 8))
    steps = epochs * math.ceil(len(train) / settings.batch_size)
    out_path = args.out / f"{name}.pth"
    start = base_weights if v.get("from_base") else None
    t0 = time.perf_counter()
    with _wrapped(v.get("schedule"), v.get("prob_weight", 1.0), steps):
        res = finetune(start, train, val, settings, seed=v.get("seed", 0), out_path=out_path,
                       p_augment=v.get("p_augment", 0.5))
    seconds = time.perf_counter() - t0
    row = {"variant": name, "channels": channels, "epochs": epochs, "steps": steps,
           "seconds": round(seconds, 1), "best_epoch": res.best_epoch,
           "best_val_loss": res.best_val_loss, "path": str(out_path)}
    row.update(_scores([str(out_path)] * len(channels), res.diameter, plate, gt, channels,
                       {"val": split["val"], "test": split["test"]}))
    logger.info("%s", json.dumps(row, default=str))
    return row


def _mean_samples(plate: str, fields: list[str], channels: list[int],
                  gt: str) -> list[tuple[Any, Any]]:
    """One sample per plane: the mean of its channels, each normalized to its 1/99
    percentiles (as ``finetune`` normalizes every sample)."""
    import numpy as np

    from structfree_dask.zoo.scoring.data import load_planes
    from structfree_dask.zoo.training.train import prepare_samples

    out = []
    for plane in load_planes(plate, fields, channels, gt):
        normed = prepare_samples([(c, plane.labels) for c in plane.image])
        out.append((np.mean([im for im, _ in normed], axis=0), plane.labels))
    return out


def _zoo_cw_row(name: str, card: dict[str, Any], args: argparse.Namespace,
                channels: list[int]) -> dict[str, Any]:
    """Score the card's zoo's CW models of ``channels`` (same split seed) with FA."""
    from structfree_dask.zoo import Zoo

    zoo = Zoo(args.card.resolve().parents[2])
    cw = {c.channels[0]: c for c in zoo.cards(card["cell_line"], card["organelle"])
          if c.strategy == "cw" and c.split.seed == card["split"]["seed"]
          and c.split.fold == card["split"]["fold"]}
    missing = [c for c in channels if c not in cw]
    if missing:
        raise SystemExit(f"cw_pair: the zoo {zoo.where} has no CW model of channel(s) "
                         f"{missing} with this card's split")
    split = card["split"]
    row = {"variant": name, "channels": channels, "epochs": 0, "steps": 0, "seconds": 0.0,
           "best_epoch": 0, "best_val_loss": math.nan, "path": ""}
    row.update(_scores([str(zoo.weights_path(cw[c].model_id)) for c in channels],
                       card["diameter"], card["source"]["plate"], card["source"]["gt"],
                       channels, {"val": split["val"], "test": split["test"]}))
    logger.info("%s", json.dumps(row, default=str))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("card", type=Path, help="card.json of a model kept by bench_zoo.py --keep")
    ap.add_argument("--variants", default=",".join(k for k in VARIANTS if k not in SLOW))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--tile", type=int, default=128, help="training tile side of the base")
    ap.add_argument("--mc-channels", default="0,1",
                    help="plate channels of the mc variants (default 0,1)")
    ap.add_argument("--out", type=Path, default=Path("knob_weights"),
                    help="folder for the variants' weights")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"--variants: unknown {unknown}; expected some of {list(VARIANTS)}")
    if "mc_from_cw" in names and "base" not in names:
        ap.error("--variants: mc_from_cw starts from the base variant's weights; add base")
    try:
        args.mc_channels = [int(c) for c in args.mc_channels.split(",")]
    except ValueError:
        ap.error(f"--mc-channels: expected plate channel indices like 0,1; got "
                 f"{args.mc_channels!r}")
    if not args.card.is_file():
        ap.error(f"card: expected a model's card.json; not found: {args.card}")
    card = json.loads(args.card.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    print(f"fine-tuning choices on {card['model_id']} ({card['organelle']}, channels "
          f"{card['channel_names']}): {len(card['split']['train'])} training, "
          f"{len(card['split']['val'])} validation, {len(card['split']['test'])} test "
          f"fields; {args.epochs} epochs of {args.tile} px tiles unless the variant says")
    rows: list[dict[str, Any]] = []
    base_weights = None
    for name in sorted(names, key=lambda n: n != "base"):  # base first: mc_from_cw needs it
        row = run_variant(name, card, args, base_weights)
        base_weights = base_weights or (row["path"] if name == "base" else None)
        rows.append(row)
    print("\n| variant | epochs (steps) | s | best epoch | best val loss | val F1 | test F1 | "
          "(flow, cellprob) chosen on val | val F1 | test F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['epochs']} ({r['steps']}) | {r['seconds']:.0f} | "
              f"{r['best_epoch']} | {r['best_val_loss']:.3f} | {r['val_f1']:.3f} | "
              f"{r['test_f1']:.3f} | {r['chosen'][0]:g}, {r['chosen'][1]:g} | "
              f"{r['chosen_val_f1']:.3f} | {r['chosen_test_f1']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
