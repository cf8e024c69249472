"""Tables and figures that compare a zoo's models with the Vanilla generalist and with mask fusion.

One set of files per selection (cell line and organelle), ``TAG`` being
``<cell_line>_<organelle>``:

``f1_TAG.csv`` and ``f1_TAG.png``
    F1 at IoU 0.5 per evaluation subset (rows) for Vanilla, CW and MC (columns), from
    the scores stored with the selection (:func:`f1_table`): the test fields of the
    split (the mean over folds with k-fold CV, ``*_std`` the population std). For MC,
    an evaluation subset is served by several models (every training subset that
    contains it); the one of best validation F1 is reported.
``candidates_TAG.csv``
    Every candidate pair and Vanilla row, validation and test F1 (mean and std over
    folds), the selected pair marked (:func:`candidates_table`).
``fusion_TAG.csv``
    FA against the mask-fusion baselines SIMPLE, STAPLE, Voting and Majority Voting on
    the test fields (:func:`fusion_table`): each channel is segmented alone by its
    model, the per-channel masks are fused with
    :func:`structfree_dask.pipeline.fusion.fuse_masks`, and FA averages the same models' flows.
``overlay_TAG_<field>_t<t>.png``
    Ground truth, the Vanilla prediction and the selected models' prediction, as
    contours on the image, for a few test fields (:func:`overlay_figure`).

Figures use matplotlib's Agg canvas (no display, no global backend change). The
table functions are pure; :func:`write_zoo_report` does the I/O.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DEFAULT_FLOW_THRESHOLD
from ..evaluation.metrics import evaluate
from ..evaluation.tables import write_csv
from ..io import Plate, basename, is_url, open_plate
from ..pipeline.normalize import normalize, percentile_bounds
from .registry import Zoo
from .scoring.data import VANILLA, pair_key, pool_scores, summarize_scores
from .scoring.predict import (
    METHODS,
    PlaneFlows,
    fa_labels,
    fusion_models,
    load_eval_planes,
    method_scores,
    reference_card,
    selected_models,
    vanilla_models,
)
from .scoring.select import rank_key
from .scoring.threshold import check_flow_thresholds, choice_key
from .selection import Selection, as_selection

__all__ = [
    "FUSION_LABELS",
    "F1_COLUMNS",
    "list_selections",
    "f1_table",
    "candidates_table",
    "f1_heatmap",
    "fusion_table",
    "overlay_figure",
    "write_overlays",
    "write_zoo_report",
    "default_zoo_report_dir",
]

logger = logging.getLogger(__name__)

#: Display names of the fusion rows, FA first.
FUSION_LABELS: dict[str, str] = dict(zip(METHODS, ("FA", "SIMPLE", "STAPLE", "Voting",
                                                    "Majority Voting"), strict=True))
#: Columns of :func:`f1_table`.
F1_COLUMNS: tuple[str, ...] = ("eval_subset", "vanilla", "cw", "mc", "vanilla_std", "cw_std",
                               "mc_std", "mc_training_subset", "n_folds", "selected")
_STRATEGY_COLUMNS = (VANILLA, "cw", "mc")


# ----------------------------------------------------------------------------- tables (pure)


def list_selections(zoo: Zoo, cell_line: str | None = None,
                    organelle: str | None = None) -> list[tuple[str, str]]:
    """List the (cell line, organelle) pairs that have a selection in the zoo, sorted."""
    return [(c, o) for c, o in zoo.selections()
            if (cell_line is None or c == cell_line) and (organelle is None or o == organelle)]


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _metric(selection: Selection) -> str:
    rows = selection.candidates
    return "test_f1" if any(r.get("test_f1") is not None for r in rows) else "val_f1"


def _best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Row of best mean validation F1 (ties as the selection); None when there is none."""
    if not rows:
        return None
    finite = [r for r in rows if math.isfinite(_num(r.get("val_f1")))]
    return min(finite, key=rank_key) if finite else rows[0]


def _summary(selection: Selection) -> list[dict[str, Any]]:
    rows = selection.candidates
    if not rows:
        raise ValueError("the selection has no candidate table (candidates); rebuild it with "
                         "`structfree-dask zoo build`")
    return summarize_scores(rows)


def f1_table(selection: Selection | Mapping[str, Any],
             metric: str | None = None) -> list[dict[str, Any]]:
    """F1 per evaluation subset (rows) for Vanilla, CW and MC (columns).

    Parameters
    ----------
    selection : Selection or mapping
        A stored selection with its ``candidates`` (see
        :func:`~structfree_dask.zoo.scoring.scoring.select_from_scores`).
    metric : str, optional
        ``"test_f1"`` (default when the candidates have test scores) or ``"val_f1"``.

    Returns
    -------
    list of dict
        Keys :data:`F1_COLUMNS`; NaN where a strategy has no model for the subset.
        ``mc_training_subset`` names the MC model reported (best validation F1);
        ``selected`` is the selected strategy on the selected subset's row.

    Examples
    --------
    >>> rows = [{"strategy": s, "train_channels": t, "eval_channels": [0],
    ...          "eval_channel_names": ["ER"], "train_channel_names": n,
    ...          "val_f1": v, "test_f1": v - 0.1}
    ...         for s, t, n, v in [("vanilla", [], [], 0.5), ("cw", [0], ["ER"], 0.7),
    ...                            ("mc", [0, 1], ["ER", "mito"], 0.8)]]
    >>> sel = Selection("CL1", "cyto", "mc", (0,), "CL1-cyto-mc-c0_1-s0", val_f1=0.8,
    ...                 train_channels=(0, 1), candidates=rows)
    >>> [t] = f1_table(sel)
    >>> t["eval_subset"], round(t["cw"], 2), t["mc_training_subset"], t["selected"]
    ('ER', 0.6, 'ER+mito', 'mc')
    """
    selection = as_selection(selection)
    metric = metric or _metric(selection)
    summary = _summary(selection)
    chosen = selection.pair_key
    subsets = sorted({tuple(r["eval_channels"]) for r in summary}, key=lambda s: (len(s), s))
    out = []
    for subset in subsets:
        rows = [r for r in summary if tuple(r["eval_channels"]) == subset]
        row: dict[str, Any] = {"eval_subset": "+".join(rows[0]["eval_channel_names"])}
        for strategy in _STRATEGY_COLUMNS:
            best = _best([r for r in rows if r["strategy"] == strategy])
            row[strategy] = math.nan if best is None else best[metric]
            row[f"{strategy}_std"] = math.nan if best is None else best[f"{metric}_std"]
            if strategy == "mc":
                row["mc_training_subset"] = "" if best is None else "+".join(
                    best["train_channel_names"])
        row["n_folds"] = max(r["n_folds"] for r in rows)
        row["selected"] = chosen[0] if chosen[2] == subset else ""
        out.append({c: row[c] for c in F1_COLUMNS})
    return out


def _ids_text(ids: Any) -> str:
    if isinstance(ids, Mapping):
        return ";".join(f"{k}:{v}" for k, v in ids.items())
    return str(ids)


def candidates_table(selection: Selection | Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every candidate pair (and Vanilla row) of a selection, pooled over folds.

    Returns
    -------
    list of dict
        ``strategy``, ``training_subset``, ``eval_subset``, ``val_f1``, ``val_f1_std``,
        ``test_f1``, ``test_f1_std`` (means and population std over folds),
        ``n_folds``, ``model_ids`` (of the first fold) and ``selected``.
    """
    selection = as_selection(selection)
    chosen = selection.pair_key
    return [{
        "strategy": r["strategy"], "training_subset": "+".join(r["train_channel_names"]),
        "eval_subset": "+".join(r["eval_channel_names"]), "val_f1": r["val_f1"],
        "val_f1_std": r["val_f1_std"], "test_f1": r["test_f1"],
        "test_f1_std": r["test_f1_std"], "n_folds": r["n_folds"],
        "model_ids": _ids_text(r["model_ids"]), "selected": pair_key(r) == chosen,
    } for r in _summary(selection)]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def f1_heatmap(table: Sequence[Mapping[str, Any]], title: str = "F1") -> Any:
    """Heatmap of :func:`f1_table`: subsets (rows) x Vanilla, CW, MC (columns).

    Cells show the F1 (and ``± std`` over folds); the selected cell is outlined.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not table:
        raise ValueError("the F1 table is empty: nothing to plot")
    values = np.array([[_num(r[s]) for s in _STRATEGY_COLUMNS] for r in table])
    fig = _figure(4.8, 1.4 + 0.38 * len(table))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0.0, vmax=1.0,
                      aspect="auto")
    ax.set_facecolor("0.85")
    ax.set_xticks(range(3), ["Vanilla", "CW", "MC"])
    ax.set_yticks(range(len(table)), [str(r["eval_subset"]) for r in table])
    ax.set_xlabel("strategy")
    ax.set_ylabel("evaluation subset")
    ax.set_title(title, fontsize=10)
    for i, row in enumerate(table):
        for j, strategy in enumerate(_STRATEGY_COLUMNS):
            v, sd = values[i, j], _num(row[f"{strategy}_std"])
            text = "n/a" if not math.isfinite(v) else f"{v:.2f}" + (
                f"\n±{sd:.2f}" if math.isfinite(sd) else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if math.isfinite(v) and v < 0.6 else "black")
            if row["selected"] == strategy:
                ax.add_patch(_rectangle(j, i))
    fig.colorbar(image, ax=ax, label="F1 (IoU 0.5)")
    return fig


def _rectangle(x: float, y: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)


def _display_image(image: np.ndarray) -> np.ndarray:
    """Mean of the percentile-normalized channels, clipped to [0, 1]."""
    chans = [normalize(c, *percentile_bounds(c)) for c in np.asarray(image, dtype=np.float32)]
    return np.clip(np.mean(chans, axis=0), 0.0, 1.0)


def overlay_figure(image: np.ndarray, panels: Sequence[tuple[str, np.ndarray]],
                   title: str = "") -> Any:
    """Contours of label images over a field, one panel per label image.

    Parameters
    ----------
    image : numpy.ndarray
        ``(c, y, x)`` raw channels (shown as the mean of the normalized channels).
    panels : sequence of (str, numpy.ndarray)
        Panel titles and ``(y, x)`` label images (e.g. ground truth, predictions).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    from skimage.segmentation import find_boundaries

    if not panels:
        raise ValueError("no label image to overlay")
    gray = _display_image(image)
    fig = _figure(3.2 * len(panels), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    colors = [(0.1, 1.0, 0.2), (1.0, 0.2, 1.0), (1.0, 0.8, 0.1), (0.2, 0.8, 1.0)]
    for k, (ax, (name, labels)) in enumerate(zip(axes, panels, strict=True)):
        rgb = np.repeat(gray[..., None], 3, axis=-1)
        rgb[find_boundaries(np.asarray(labels), mode="inner")] = colors[k % len(colors)]
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def fusion_table(zoo: Zoo, selection: Selection | Mapping[str, Any],
                 plate: str | Path | Plate, *,
                 gt: str | None = None, fields: Sequence[str] | None = None,
                 batch_size: int | None = None, choose_subsets: bool = True,
                 flow_thresholds: Sequence[float] = (DEFAULT_FLOW_THRESHOLD,),
                 per_field: bool = False) -> list[dict[str, Any]]:
    """FA against SIMPLE, STAPLE, Voting and Majority Voting on the test fields.

    Every method fuses the same per-channel predictions of :func:`fusion_models`. Two
    sets of rows:

    * ``subset="all"``: every method on all the models' channels;
    * ``subset="validation"`` (with ``choose_subsets``, when there are 3 channels or
      more): each method on *its own* best channel subset of two or more channels, the
      one of highest F1 on the validation fields of the split (ties: fewer channels),
      as the method selects FA's subset. No method is scored on a subset chosen for
      another.

    With several ``flow_thresholds`` (and ``choose_subsets``), each method also picks
    cellpose's flow-error threshold on the validation fields, for the whole channel set
    and for its own subset (ties: the threshold nearest cellpose's 0.4). It applies to
    every integration the method runs: FA's one on the averaged maps, or each channel's
    before a mask fusion. Averaged maps are shorter where the channels disagree, so
    cellpose's check, which compares them with the flows of the finished masks, removes
    more of FA's masks than of a single channel's.

    Parameters
    ----------
    zoo : Zoo
    selection : Selection or mapping
    plate : str, Path or Plate
        Plate with the test fields and ground truth (channels matched by name).
    gt : str, optional
        Ground-truth label image (default: the one recorded at build time).
    fields : sequence of str, optional
        Default: the test fields of the selection's split.
    batch_size : int, optional
    choose_subsets : bool
        Also score each method on its validation-chosen subset.
    flow_thresholds : sequence of float
        Flow-error thresholds each method chooses from on the validation fields
        (default: cellpose's 0.4 only; without ``choose_subsets``, the first is used).
    per_field : bool
        Also give each row's per-field ``(tp, fp, fn)`` under ``per_field`` (fields in
        the order of ``fields``), e.g. for
        :func:`~structfree_dask.evaluation.metrics.paired_bootstrap_f1`.

    Returns
    -------
    list of dict
        One row per method (:data:`FUSION_LABELS` order) and subset kind: ``method``,
        ``subset``, ``models``, ``channels``, ``flow_threshold``, ``val_f1``
        (NaN where nothing was chosen on validation) and the scores of
        :data:`~structfree_dask.zoo.scoring.data.SCORE_KEYS`.

    Raises
    ------
    ValueError
        ``flow_thresholds`` is empty or holds a negative value.
    """
    grid = check_flow_thresholds(flow_thresholds)
    selection = as_selection(selection)
    models = fusion_models(zoo, selection)
    everything = tuple(range(len(models.channels)))
    picks = {"all": [everything]}
    if len(everything) >= 3:
        picks["validation"] = [c for k in range(2, len(everything) + 1)
                               for c in itertools.combinations(everything, k)]
    chosen: dict[tuple[str, str], tuple[tuple[int, ...], float, float]] = {
        ("all", m): (everything, grid[0], math.nan) for m in FUSION_LABELS}
    if choose_subsets and (len(grid) > 1 or "validation" in picks):
        ref = reference_card(zoo, selection)
        val = load_eval_planes(zoo, selection, plate, models.channels, gt, ref.split.val)
        candidates = sorted({c for cs in picks.values() for c in cs})
        logger.info("fusion comparison: choosing each method's subset and flow threshold "
                    "among %d x %d on %d validation plane(s)", len(candidates), len(grid),
                    len(val))
        val_scores = {k: pool_scores(v) for k, v in
                      method_scores(models, val, candidates, batch_size, grid).items()}
        for kind, subsets in picks.items():
            for method in FUSION_LABELS:
                best = max(((c, t) for c in subsets for t in grid), key=lambda ct: choice_key(
                    val_scores[(method, *ct)]["f1"], len(ct[0]), ct[1]))
                chosen[(kind, method)] = (*best, float(val_scores[(method, *best)]["f1"]))
    planes = load_eval_planes(zoo, selection, plate, models.channels, gt, fields)
    logger.info("fusion comparison: %s on %d test plane(s)", models.label, len(planes))
    wanted = sorted({c for c, _, _ in chosen.values()})
    test = method_scores(models, planes, wanted, batch_size,
                          sorted({t for _, t, _ in chosen.values()}))
    rows = []
    for kind in ("all", "validation"):
        for method, label in FUSION_LABELS.items():
            if (kind, method) not in chosen:
                continue
            subset, threshold, val_f1 = chosen[(kind, method)]
            scores = test[(method, subset, threshold)]
            row = {"method": label, "subset": kind, "models": models.label,
                   "channels": "+".join(models.channels[k] for k in subset),
                   "flow_threshold": threshold, "val_f1": val_f1, **pool_scores(scores)}
            if per_field:
                row["per_field"] = [[int(r[k]) for k in ("tp", "fp", "fn")] for r in scores]
            rows.append(row)
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "image"


def write_overlays(zoo: Zoo, selection: Selection | Mapping[str, Any],
                   plate: str | Path | Plate,
                   out_dir: str | Path, tag: str, *, n: int = 3, gt: str | None = None,
                   batch_size: int | None = None) -> list[Path]:
    """Overlay PNGs (ground truth, Vanilla, selected) of the first ``n`` test planes.

    The selected pair runs at the thresholds chosen with it, as ``segment --zoo`` runs
    it; Vanilla at Cellpose's. The Vanilla panel is left out, with a warning, when the
    base model recorded with the selection cannot be found.

    Returns
    -------
    list of Path
    """
    if n < 1:
        return []
    selection = as_selection(selection)
    ref = reference_card(zoo, selection)
    plate = plate if isinstance(plate, Plate) else open_plate(str(plate))
    tests = list(ref.split.test[:n])
    chosen = selected_models(zoo, selection,
                             plate.field(tests[0]).channel_names if tests else None)
    # the selection at its chosen thresholds (as segment --zoo runs it); Vanilla at cellpose's
    sets = [(chosen, (selection.flow_threshold, selection.cellprob_threshold))]
    try:
        sets.insert(0, (vanilla_models(selection, chosen.channels, chosen.diameter,
                                       fallback=ref.base_model), ()))
    except FileNotFoundError as err:
        logger.warning("no Vanilla panel in the overlays: %s", err)
    planes = load_eval_planes(zoo, selection, plate, chosen.channels, gt, tests)[:n]
    out = []
    for plane in planes:
        flows = PlaneFlows(plane, chosen.channels, batch_size)
        panels = [("ground truth", plane.labels)]
        for models, thresholds in sets:
            labels = fa_labels(models, flows, *thresholds)
            f1 = evaluate(plane.labels.astype(np.int64), labels.astype(np.int64))["f1"]
            panels.append((f"{models.label} (F1 {f1:.2f})", labels))
        fig = overlay_figure(plane.image, panels, f"{tag}: {plane.field} t={plane.t}")
        z = f"_z{plane.z}" if plane.z else ""
        path = Path(out_dir) / f"overlay_{tag}_{_slug(plane.field)}_t{plane.t}{z}.png"
        fig.savefig(path, dpi=100)
        out.append(path)
    return out


# ----------------------------------------------------------------------------- the report


def _f1_title(selection: Selection, tag: str, table: list[dict[str, Any]]) -> str:
    what = "test" if _metric(selection) == "test_f1" else "validation"
    folds = max((int(r["n_folds"]) for r in table), default=1)
    cv = f", mean over {folds} folds" if folds > 1 else ""
    return f"{tag}: {what} F1 (IoU 0.5{cv})"


@dataclass(frozen=True)
class _Options:
    gt: str | None = None
    n_overlays: int = 3
    batch_size: int | None = None
    flow_thresholds: tuple[float, ...] = (DEFAULT_FLOW_THRESHOLD,)


def _report_one(zoo: Zoo, cell_line: str, organelle: str, plate: str | Path | Plate,
                out: Path, opts: _Options) -> dict[str, list[Path]]:
    selection = zoo.selection(cell_line, organelle)
    tag = f"{_slug(cell_line)}_{organelle}"
    table = f1_table(selection)
    files: dict[str, list[Path]] = {}
    files["f1 table"] = [write_csv(table, out / f"f1_{tag}.csv", F1_COLUMNS, digits=4)]
    path = out / f"f1_{tag}.png"
    f1_heatmap(table, _f1_title(selection, tag, table)).savefig(path, dpi=120)
    files["f1 heatmap"] = [path]
    files["candidates"] = [write_csv(candidates_table(selection), out / f"candidates_{tag}.csv",
                                             digits=4)]
    fusion = fusion_table(zoo, selection, plate, gt=opts.gt, batch_size=opts.batch_size,
                          flow_thresholds=opts.flow_thresholds)
    files["fusion table"] = [write_csv(fusion, out / f"fusion_{tag}.csv", digits=4)]
    files["overlays"] = write_overlays(zoo, selection, plate, out, tag, n=opts.n_overlays,
                                      gt=opts.gt, batch_size=opts.batch_size)
    return files


def default_zoo_report_dir(zoo: Zoo) -> Path:
    """Return the report's default folder: ``<zoo>/report``, or ``<zoo name>-report`` for a URL.

    Examples
    --------
    >>> default_zoo_report_dir(Zoo("s3://bucket/models/CL1-zoo"))
    PosixPath('CL1-zoo-report')
    """
    if isinstance(zoo.path, Path):
        return zoo.path / "report"
    return Path(f"{basename(zoo.path)}-report")


def write_zoo_report(
    zoo_dir: str | Path | Zoo,
    plate: str | Path | Plate,
    out_dir: str | Path | None = None,
    *,
    cell_line: str | None = None,
    organelle: str | None = None,
    gt: str | None = None,
    n_overlays: int = 3,
    batch_size: int | None = None,
    flow_thresholds: Sequence[float] = (DEFAULT_FLOW_THRESHOLD,),
) -> dict[str, list[Path]]:
    """Write the report of every selection of a zoo (see the module docstring).

    Parameters
    ----------
    zoo_dir : str, Path or Zoo
        An existing zoo with at least one selection (a folder, or the URL of a zoo in
        an object store).
    plate : str, Path or Plate
        Plate with the test fields and their ground truth.
    out_dir : str or Path, optional
        A local folder. Default ``<zoo>/report``; for a zoo at a URL,
        ``<zoo name>-report`` in the current folder (the report stays local).
    cell_line, organelle : str, optional
        Only these selections.
    gt : str, optional
        Ground-truth label image (default: the one recorded at build time).
    n_overlays : int
        Number of test planes to draw.
    batch_size : int, optional
    flow_thresholds : sequence of float
        Flow-error thresholds each method of the fusion comparison chooses from on
        the validation fields (see :func:`fusion_table`).

    Returns
    -------
    dict
        ``{kind: [paths]}`` with kinds ``f1 table``, ``f1 heatmap``, ``candidates``,
        ``fusion table`` and ``overlays``.

    Raises
    ------
    FileNotFoundError
        If the zoo folder does not exist.
    KeyError
        If the zoo has no (matching) selection, or the plate lacks a test field,
        channel or the ground truth.
    ValueError
        ``n_overlays`` or ``flow_thresholds`` is invalid.
    """
    if not isinstance(zoo_dir, Zoo) and not is_url(zoo_dir) and not Path(zoo_dir).is_dir():
        raise FileNotFoundError(f"zoo folder {zoo_dir} not found")
    zoo = zoo_dir if isinstance(zoo_dir, Zoo) else Zoo(zoo_dir)
    pairs = list_selections(zoo, cell_line, organelle)
    if not pairs:
        which = "/".join(x for x in (cell_line, organelle) if x) or "any cell line"
        found = [f"{c}/{o}" for c, o in list_selections(zoo)]
        raise KeyError(f"no selection for {which} in the zoo {zoo.where} (selections: "
                       f"{', '.join(found) or 'none'}; {len(zoo.ids())} model(s)); run "
                       "`structfree-dask zoo build` first")
    if isinstance(n_overlays, bool) or not isinstance(n_overlays, int) or n_overlays < 0:
        raise ValueError(f"n_overlays must be an integer >= 0; got {n_overlays!r}")
    opts = _Options(gt, n_overlays, batch_size, tuple(check_flow_thresholds(flow_thresholds)))
    plate = plate if isinstance(plate, Plate) else open_plate(str(plate))
    out = Path(out_dir) if out_dir is not None else default_zoo_report_dir(zoo)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {}
    for cl, org in pairs:
        for kind, paths in _report_one(zoo, cl, org, plate, out, opts).items():
            files.setdefault(kind, []).extend(paths)
    return files

