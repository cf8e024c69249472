"""``structfree-dask zoo``: build, list and report a per-cell-line model zoo.

``zoo build`` trains the models on a Dask cluster (one task per model) and writes the
selection, ``zoo list`` prints the zoo's models and marks the selected ones, ``zoo
report`` writes the comparison tables and figures. Errors follow the main command
line: bad input ends with ``error: ...`` and exit status 2, a failed run with 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import DEFAULT_FLOW_THRESHOLD, ORGANELLES, STRATEGIES, TrainSettings
from ..zoo.scoring.threshold import (
    CELLPROB_THRESHOLDS,
    FLOW_THRESHOLDS,
    check_cellprob_thresholds,
    check_flow_thresholds,
)
from ._common import (
    ProgressBar,
    add_cluster_options,
    add_settings_options,
    check_cluster_options,
    given_settings,
    start_client,
    str_list,
)

__all__ = ["add_zoo_parser", "parse_subsets"]

#: Columns printed by ``zoo list``.
LIST_COLUMNS = ("model_id", "cell_line", "organelle", "strategy", "channels", "fold", "seed",
                "epochs", "best_epoch", "val_f1", "test_f1", "selected")


def parse_subsets(text: str) -> list[list[int | str]] | None:
    """Parse ``--subsets``: ``all``, or subsets separated by ``;``, channels by ``,``.

    Channels are indices or names. A single channel gives a CW model, two or more an
    MC model.

    Examples
    --------
    >>> parse_subsets("all") is None
    True
    >>> parse_subsets("0;1;0,2")
    [[0], [1], [0, 2]]
    >>> parse_subsets("ER,mito")
    [['ER', 'mito']]
    """
    if text.strip().lower() == "all":
        return None
    out: list[list[int | str]] = []
    for part in text.split(";"):
        items = [int(v) if v.isdigit() else v for v in str_list(part)]
        if items:
            out.append(items)
    if not out:
        raise argparse.ArgumentTypeError(
            f"expected 'all' or channel subsets such as 0,1 or '0,2;1,3'; got {text!r}")
    return out


def _strategies(text: str) -> list[str]:
    values = [v.lower() for v in str_list(text)]
    bad = [v for v in values if v not in STRATEGIES]
    if bad or not values:
        raise argparse.ArgumentTypeError(
            f"expected strategies among {','.join(STRATEGIES)} (e.g. cw,mc); got {text!r}")
    return values


def _number_list(check: Any, what: str, example: str) -> Any:
    """Return an argparse type: numbers separated by commas, checked by ``check``."""
    def parse(text: str) -> list[float]:
        try:
            return check(str_list(text))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {what} separated by commas (e.g. {example}); got {text!r}") from None
    return parse


_flow_thresholds = _number_list(check_flow_thresholds, "numbers >= 0", "0.4,0.6,0.8")
_cellprob_thresholds = _number_list(check_cellprob_thresholds, "numbers from -100 to 100",
                                    "0,-1,-2")


def _zoo(path: str) -> Any:
    """Open an existing zoo: a folder, or a URL whose store answers (one-line errors)."""
    from ..io import check_store, is_url
    from ..zoo.registry import Zoo

    if is_url(path):
        check_store(path, must_exist=False)
    elif not Path(path).is_dir():
        raise FileNotFoundError(f"zoo folder {path} not found")
    return Zoo(path)


# --------------------------------------------------------------------------- build


def _names(names: Any, channels: Any) -> str:
    return "+".join(names if names is not None else map(str, channels))


def _print_build(result: Any) -> None:
    from ..evaluation.tables import format_cell, format_table
    from ..zoo.report import F1_COLUMNS, f1_table

    trained = len(result.cards) - len([c for c in result.cards if c.model_id in result.reused])
    from ..io import join, redact

    print(f"zoo {redact(result.zoo)}: {len(result.cards)} model(s) ({trained} trained, "
          f"{len(result.cards) - trained} already there), {len(result.failed)} failed in "
          f"{result.seconds:.1f} s; logs in {redact(join(result.zoo, 'logs'))}")
    for failure in result.failed:
        print(f"failed: {failure.line()}", file=sys.stderr)
    sel = result.selection
    if sel is None:
        return
    print(f"selection {sel.cell_line}/{sel.organelle}: {sel.strategy.upper()} on "
          f"{_names(sel.eval_channel_names, sel.eval_channels)} (trained on "
          f"{_names(sel.train_channel_names, sel.train_channels or ())}), val F1 "
          f"{format_cell(sel.val_f1)}, test F1 {format_cell(sel.test_f1)}, flow threshold "
          f"{sel.flow_threshold:g}, cell probability threshold {sel.cellprob_threshold:g}")
    print("F1 per evaluation subset (test fields):")
    print(format_table(f1_table(sel), F1_COLUMNS))


def _cmd_build(args: argparse.Namespace) -> int:
    from ..backbones import resolve_model
    from ..io import check_store
    from ..runtime.cluster import close_client
    from ..zoo.registry import Zoo
    from ..zoo.training.build import build_zoo
    from ..zoo.training.jobs import training_jobs

    check_cluster_options(args)
    settings = TrainSettings.from_mapping(given_settings(args, TrainSettings))
    resolve_model(args.base_model)  # a missing base model is bad input: fail before starting
    check_store(args.zoo, write=True, must_exist=False)  # a store that refuses writes: stop
    jobs = training_jobs(args.plate, args.gt, args.organelle, args.cell_line,
                         strategies=args.strategies, subsets=args.subsets, folds=args.folds,
                         seed=args.seed, wells=args.wells)
    zoo = Zoo(args.zoo)
    print(f"{len(jobs)} model(s) to train for {args.cell_line}/{args.organelle} into "
          f"{zoo.where}", file=sys.stderr)
    client = start_client(args)
    progress = ProgressBar(args, "task", "zoo build")
    try:
        result = build_zoo(jobs, zoo.path, client=client, base=args.base_model,
                           settings=settings, progress=progress,
                           flow_thresholds=args.flow_thresholds,
                           cellprob_thresholds=args.cellprob_thresholds)
    finally:
        progress.close()
        close_client(client)
    _print_build(result)
    return 0 if result.ok else 1


# --------------------------------------------------------------------------- list


def _selected_ids(zoo: Any, cell_line: str | None, organelle: str | None) -> dict[str, str]:
    from ..zoo.report import list_selections

    out: dict[str, str] = {}
    for cl, org in list_selections(zoo, cell_line, organelle):
        for model_id in zoo.selection(cl, org).model_ids:
            out[model_id] = f"{cl}/{org}"
    return out


def _cmd_list(args: argparse.Namespace) -> int:
    from ..evaluation.tables import format_cell, format_table
    from ..zoo.report import list_selections

    zoo = _zoo(args.zoo)
    rows = zoo.table(args.cell_line, args.organelle)
    selected = _selected_ids(zoo, args.cell_line, args.organelle)
    for row in rows:
        row["selected"] = "*" if row["model_id"] in selected else ""
    if not rows:
        which = " ".join(x for x in (args.cell_line, args.organelle) if x)
        print(f"no {which + ' ' if which else ''}models in the zoo {zoo.where}")
        return 0
    print(format_table(rows, LIST_COLUMNS))
    for cl, org in list_selections(zoo, args.cell_line, args.organelle):
        sel = zoo.selection(cl, org)
        print(f"* selected for {cl}/{org}: {sel.strategy.upper()} on "
              f"{_names(sel.eval_channel_names, sel.eval_channels)}, "
              f"val F1 {format_cell(sel.val_f1)}")
    return 0


# --------------------------------------------------------------------------- report


def _cmd_report(args: argparse.Namespace) -> int:
    from ..zoo.report import write_zoo_report

    files = write_zoo_report(_zoo(args.zoo), args.plate, args.out, cell_line=args.cell_line,
                         organelle=args.organelle, gt=args.gt, n_overlays=args.overlays,
                         batch_size=args.batch_size, flow_thresholds=args.flow_thresholds)
    for kind, paths in files.items():
        for path in paths:
            print(f"{kind}: {path}")
    return 0


# --------------------------------------------------------------------------- parser


def _add_build(zsub: Any) -> None:
    p = zsub.add_parser(
        "build", help="fine-tune the CW/MC models of a cell line on Dask and select the best",
        description="Split the annotated fields 80/10/10 (or k folds), fine-tune one model "
                    "per channel (CW) and per channel subset (MC), one Dask task per model, "
                    "score every (training subset, evaluation subset) pair and the Vanilla "
                    "base model with Flow Averaging, and write the selection.")
    p.add_argument("plate", help="OME-Zarr plate with the images and the ground truth")
    p.add_argument("--gt", required=True, help="ground-truth label image, e.g. gt_cyto")
    p.add_argument("--organelle", required=True, choices=ORGANELLES, help="what the gt holds")
    p.add_argument("--cell-line", required=True, help="cell line name, e.g. CL5")
    p.add_argument("--zoo", required=True,
                   help="zoo folder (created when missing), or the URL of a zoo in an object "
                        "store (s3://bucket/zoo: the workers write the models there; each "
                        "model's log is uploaded to ZOO/logs when its training ends)")
    p.add_argument("--base-model", default=None,
                   help="model to fine-tune and Vanilla baseline: 'generalist' (default), a "
                        "cellpose built-in name, or a weights file")
    p.add_argument("--strategies", type=_strategies, default=list(STRATEGIES),
                   help="cw, mc or cw,mc (default)")
    p.add_argument("--subsets", type=parse_subsets, default=None,
                   help="training subsets: all (default: every channel and every subset of "
                        "2+ channels), or e.g. '0;1;0,2' (';' between subsets, ',' between "
                        "channels; indices or names)")
    p.add_argument("--folds", type=int, default=None,
                   help="k-fold cross-validation with k folds (default: one 80/10/10 split)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and training")
    add_settings_options(p, TrainSettings)
    p.add_argument("--wells", type=str_list, default=None, help="only these wells, e.g. A/1,B/3")
    p.add_argument("--flow-thresholds", type=_flow_thresholds, default=list(FLOW_THRESHOLDS),
                   help="cellpose flow thresholds the selected pair chooses from on the "
                        "validation fields (default 0.4,0.6,0.8; 0.4 alone: keep "
                        "cellpose's)")
    p.add_argument("--cellprob-thresholds", type=_cellprob_thresholds,
                   default=list(CELLPROB_THRESHOLDS),
                   help="cell probability thresholds (logits) the selected pair chooses "
                        "from with the flow threshold (default 0,-1,-2; 0 alone: keep "
                        "cellpose's)")
    add_cluster_options(p)
    p.set_defaults(func=_cmd_build)


def _add_list(zsub: Any) -> None:
    p = zsub.add_parser("list", help="print the zoo's models; * marks the selected ones",
                        description="Print the models of a zoo as a table; the selected "
                                    "models are marked with *.")
    p.add_argument("zoo", help="zoo folder, or its URL (s3://bucket/zoo)")
    p.add_argument("--cell-line", default=None, help="only this cell line")
    p.add_argument("--organelle", default=None, choices=ORGANELLES, help="only this organelle")
    p.set_defaults(func=_cmd_list)


def _add_report(zsub: Any) -> None:
    p = zsub.add_parser(
        "report", help="F1 tables and heatmaps, fusion comparison, overlays",
        description="Write, per selection: F1 per evaluation subset for Vanilla, CW and MC "
                    "(CSV + heatmap PNG), all candidates (CSV), FA against SIMPLE, STAPLE, "
                    "Voting and Majority Voting on the test fields (CSV), and overlays of "
                    "ground truth and predictions on a few test fields (PNG).")
    p.add_argument("zoo", help="zoo folder with a selection (see zoo build), or its URL")
    p.add_argument("--plate", required=True, help="plate with the test fields and ground truth")
    p.add_argument("--out", default=None,
                   help="local output folder (default ZOO/report; for a zoo at a URL, "
                        "NAME-report in the current folder, NAME the zoo's last component)")
    p.add_argument("--cell-line", default=None, help="only this cell line")
    p.add_argument("--organelle", default=None, choices=ORGANELLES, help="only this organelle")
    p.add_argument("--gt", default=None,
                   help="ground-truth label image (default: the one used to build)")
    p.add_argument("--overlays", type=int, default=3,
                   help="number of test fields to draw (default 3)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="network tiles per forward pass (default: 8 on a GPU, 2 on a CPU)")
    p.add_argument("--flow-thresholds", type=_flow_thresholds, default=[DEFAULT_FLOW_THRESHOLD],
                   help="flow-error thresholds each method of the fusion comparison "
                        "chooses from on the validation fields, e.g. 0.4,0.6,0.8 "
                        "(default: cellpose's 0.4)")
    p.set_defaults(func=_cmd_report)


def add_zoo_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``zoo`` (with ``build``, ``list`` and ``report``) on the CLI's subparsers.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The top-level subparsers of ``structfree-dask``.

    Returns
    -------
    argparse.ArgumentParser
        The ``zoo`` parser.
    """
    p = sub.add_parser("zoo", help="per-cell-line model zoo: build, list, report",
                       description="Fine-tune, select and compare per-cell-line models.")
    zsub = p.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    _add_build(zsub)
    _add_list(zsub)
    _add_report(zsub)
    return p
