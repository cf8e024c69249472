"""A plate's label images scored against ground truth (structfree_dask.evaluation.plate)."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from structfree_dask.evaluation.metrics import combine, evaluate
from structfree_dask.evaluation.plate import (
    evaluate_plate,
    format_scores,
    score_rows,
    write_scores,
)
from structfree_dask.io import create_image, open_labels, open_plate, write_labels
from structfree_dask.simulate import simulate_plate

COLUMNS = ["field", "t", "precision", "recall", "f1", "aji", "mean_matched_jaccard",
           "ap_50_95", "tp", "fp", "fn", "n_true", "n_pred"]
COUNTS = ("tp", "fp", "fn", "n_true", "n_pred")


def _plane(label, t: int) -> np.ndarray:
    """Plane t of a (t, c, y, x) label image, as int64."""
    return label.read()[t, 0].astype(np.int64)


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> str:
    """Two wells, two timepoints, 64 px: truth gt_cyto and gt_nuclei, and 'pred'.

    'pred' is gt_cyto shifted by 2 px with one cell removed per plane.
    """
    path = simulate_plate(tmp_path_factory.mktemp("eval") / "plate.zarr", cell_line="CL1",
                          rows=1, cols=2, timepoints=2, size=64, seed=5)
    for info in open_plate(path).fields():
        truth = open_labels(info, "gt_cyto").read()
        pred = np.roll(truth, 2, axis=-1)
        for t in range(pred.shape[0]):
            ids = np.unique(pred[t])
            pred[t][pred[t] == ids[-1]] = 0
        write_labels(info, "pred", pred)
    return str(path)


def test_evaluate_plate_scores_each_field_and_timepoint(plate):
    result = evaluate_plate(plate, pred="pred", gt="gt_cyto")
    assert (result["pred"], result["gt"], result["iou_threshold"]) == ("pred", "gt_cyto", 0.5)
    fields = open_plate(plate).field_paths
    assert [(r["field"], r["t"]) for r in result["rows"]] == [(f, t) for f in fields
                                                              for t in (0, 1)]
    assert fields == ("A/1/0", "A/2/0")
    for row in result["rows"]:
        info = open_plate(plate).field(row["field"])
        gt = _plane(open_labels(info, "gt_cyto"), row["t"])
        pred = _plane(open_labels(info, "pred"), row["t"])
        assert row == {"field": row["field"], "t": row["t"], **evaluate(gt, pred)}
        assert row["n_pred"] == row["n_true"] - 1 and row["fn"] >= 1
    assert result["overall"] == combine(result["rows"])
    assert result["overall"]["n_images"] == 4
    json.dumps(result)  # plain Python values throughout


def test_labels_against_themselves_score_perfectly(plate):
    result = evaluate_plate(plate, pred="gt_nuclei", gt="gt_nuclei")
    for row in [*result["rows"], result["overall"]]:
        assert (row["precision"], row["recall"], row["f1"], row["aji"], row["ap_50_95"]) == (
            1.0, 1.0, 1.0, 1.0, 1.0)
        assert row["tp"] == row["n_true"] == row["n_pred"] > 0 and row["fp"] == row["fn"] == 0


def test_evaluate_plate_selects_wells_and_timepoints(plate):
    everything = evaluate_plate(plate, pred="pred", gt="gt_cyto")
    result = evaluate_plate(plate, pred="pred", gt="gt_cyto", wells=["A/2"], timepoints=[1])
    assert result["rows"] == [r for r in everything["rows"] if r["field"] == "A/2/0"
                              and r["t"] == 1]
    assert result["overall"]["n_images"] == 1
    two = evaluate_plate(plate, pred="pred", gt="gt_cyto", wells=("A/1",))
    assert [(r["field"], r["t"]) for r in two["rows"]] == [("A/1/0", 0), ("A/1/0", 1)]


def test_evaluate_plate_iou_threshold_changes_the_matching(plate):
    loose = evaluate_plate(plate, pred="pred", gt="gt_cyto", iou_threshold=0.1)
    strict = evaluate_plate(plate, pred="pred", gt="gt_cyto", iou_threshold=0.99)
    assert strict["iou_threshold"] == 0.99
    assert strict["overall"]["tp"] < loose["overall"]["tp"]
    assert strict["overall"]["ap_50_95"] == loose["overall"]["ap_50_95"]  # AP: fixed thresholds


def test_evaluate_plate_refusals(plate):
    with pytest.raises(KeyError, match="has no label image 'nope'; it has: gt_nuclei, gt_cyto"):
        evaluate_plate(plate, pred="nope", gt="gt_cyto")
    with pytest.raises(KeyError, match=r"well\(s\) B/1 not in plate"):
        evaluate_plate(plate, pred="pred", gt="gt_cyto", wells=["B/1"])
    with pytest.raises(ValueError, match=f"^nothing to evaluate in {re.escape(plate)}$"):
        evaluate_plate(plate, pred="pred", gt="gt_cyto", timepoints=[])
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_plate(plate, pred="pred", gt="gt_cyto", iou_threshold=1.5)


def test_a_standalone_image_is_one_field(tmp_path):
    truth = np.zeros((1, 1, 32, 40), np.uint32)
    truth[0, 0, 2:12, 3:13] = 1
    truth[0, 0, 20:30, 20:34] = 2
    pred = truth.copy()
    pred[0, 0, 20:30, 20:27] = 0  # cell 2 halved: IoU 0.5
    path = tmp_path / "image.zarr"
    create_image(path, np.ones((1, 2, 32, 40), np.uint16), axes="tcyx",
                 labels={"truth": truth, "pred": pred})
    result = evaluate_plate(str(path), pred="pred", gt="truth")
    assert [(r["field"], r["t"]) for r in result["rows"]] == [("(image)", 0)]
    row = result["rows"][0]
    assert (row["tp"], row["fp"], row["fn"]) == (2, 0, 0)
    assert row["mean_matched_jaccard"] == pytest.approx(0.75)
    assert evaluate_plate(str(path), pred="pred", gt="truth", iou_threshold=0.6)["rows"][0][
        "tp"] == 1


def test_label_images_of_different_shapes_are_refused(tmp_path):
    path = tmp_path / "image.zarr"
    info = create_image(path, np.ones((1, 1, 32, 40), np.uint16), axes="tcyx",
                        labels={"truth": np.zeros((1, 1, 32, 40), np.uint32),
                                "pred": np.zeros((1, 1, 32, 40), np.uint32)})
    open_labels(info, "pred").open_array(0).resize((1, 1, 32, 36))  # written by another tool
    with pytest.raises(ValueError, match=re.escape("labels/pred has shape (1, 1, 32, 36) but "
                                                   "labels/truth has (1, 1, 32, 40)")):
        evaluate_plate(str(path), pred="pred", gt="truth")


# ---------------------------------------------------------------------------- output


def test_score_rows_one_per_plane_then_overall(plate):
    result = evaluate_plate(plate, pred="pred", gt="gt_cyto")
    rows = score_rows(result)
    assert len(rows) == len(result["rows"]) + 1
    assert [list(r) for r in rows] == [COLUMNS] * len(rows)
    assert (rows[-1]["field"], rows[-1]["t"]) == ("overall", "")
    for row, source in zip(rows, [*result["rows"], result["overall"]], strict=True):
        for c in COLUMNS[2:]:
            assert type(row[c]) is (int if c in COUNTS else float), c
            assert row[c] == source[c]


def test_format_scores_is_an_aligned_table(plate):
    result = evaluate_plate(plate, pred="pred", gt="gt_cyto")
    lines = format_scores(result).splitlines()
    assert len(lines) == len(result["rows"]) + 2
    assert lines[0].split() == COLUMNS
    assert lines[1].split()[:2] == ["A/1/0", "0"] and lines[-1].split()[0] == "overall"
    overall = result["overall"]
    assert lines[-1].split()[1:] == [
        f"{overall[c]:.3f}" if c not in COUNTS else str(overall[c]) for c in COLUMNS[2:]]
    f1 = lines[0].index(" f1 ") + 1
    sources = [*result["rows"], overall]
    for line, source in zip(lines[1:], sources, strict=True):  # aligned under the header
        assert line[f1 - 1] == " " and line[f1:].split()[0] == f"{source['f1']:.3f}"


def test_write_scores_json_and_csv(plate, tmp_path):
    result = evaluate_plate(plate, pred="pred", gt="gt_cyto")
    json_path, csv_path = tmp_path / "s.json", tmp_path / "s.csv"
    write_scores(result, json_path=str(json_path), csv_path=str(csv_path))
    assert json.loads(json_path.read_text()) == result
    with open(csv_path, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    rows = score_rows(result)
    assert len(table) == len(rows) and list(table[0]) == COLUMNS
    for got, want in zip(table, rows, strict=True):
        assert got["field"] == want["field"] and got["t"] == str(want["t"])
        for c in COLUMNS[2:]:
            assert (int(got[c]) if c in COUNTS else float(got[c])) == want[c]
    only_csv = tmp_path / "only.csv"
    write_scores(result, csv_path=str(only_csv))
    assert only_csv.read_text() == csv_path.read_text()
    write_scores(result)  # nothing asked: nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only.csv", "s.csv", "s.json"]


def test_write_scores_checks_both_paths_before_writing_either(plate, tmp_path):
    result = evaluate_plate(plate, pred="pred", gt="gt_cyto", wells=["A/1"])
    good = tmp_path / "s.json"
    with pytest.raises(FileNotFoundError, match=r"csv_path .*missing.*does not exist"):
        write_scores(result, json_path=str(good), csv_path=str(tmp_path / "missing" / "s.csv"))
    assert not good.exists()
    with pytest.raises(IsADirectoryError, match="json_path .* is a folder"):
        write_scores(result, json_path=str(tmp_path), csv_path=str(tmp_path / "s.csv"))
    assert not (tmp_path / "s.csv").exists()
