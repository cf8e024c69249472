"""``structfree-dask zoo build | list | report`` (cli.zoo) and their Python API.

On the session's real 2-worker cluster: a zoo of a small network is built once through the
command line (``built``), then listed, reported, rebuilt and used by ``segment --zoo``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math

import pytest

from structfree_dask.cli import main
from structfree_dask.cli.zoo import parse_subsets
from structfree_dask.config import TrainSettings
from structfree_dask.simulate import simulate_plate
from structfree_dask.zoo import (
    VANILLA,
    ModelCard,
    Split,
    TrainingJob,
    Zoo,
    build_zoo,
    f1_table,
    model_log_path,
    summarize_scores,
    task_resources,
    training_jobs,
    write_zoo_report,
)

torch = pytest.importorskip("torch")

#: tiny training: one epoch on 64 px tiles of a small CPnet
FAST = ["--max-epochs", "1", "--patience", "1", "--tile-size", "64", "--batch-size", "4"]
SUBSETS = [[0], [1], [0, 1]]  # CW on mito, CW on ER, MC on mito+ER


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread in this process (the report runs here; workers have their own)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_base(small_cpnet_path):
    """A small, randomly initialised CPnet saved as a weights file."""
    return small_cpnet_path


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """Five 96 px CL5 fields (one per well) with gt_cyto and gt_nuclei."""
    path = tmp_path_factory.mktemp("plate") / "cl5.zarr"
    return simulate_plate(path, cell_line="CL5", rows=1, cols=5, fields=1, size=96, seed=0)


def run_cli(*argv):
    """Run the CLI; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def built(plate, small_base, cluster_client, tmp_path_factory):
    """A zoo built through the CLI on the real 2-worker cluster: 2 CW + 1 MC models."""
    zoo = tmp_path_factory.mktemp("zoo") / "zoo"
    before = _tree_digest(plate)
    code, out, err = run_cli(
        "zoo", "build", plate, "--gt", "gt_cyto", "--organelle", "cyto", "--cell-line", "CL5",
        "--zoo", zoo, "--base-model", small_base, "--subsets", "0;1;0,1", *FAST,
        "--scheduler", cluster_client.scheduler.address, "--no-progress")
    assert code == 0, err
    assert _tree_digest(plate) == before  # the plate (images, ground truth) is only read
    return zoo, out


def _tree_digest(root):
    import hashlib
    from pathlib import Path

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _png(path):
    import matplotlib.image

    assert path.is_file() and path.stat().st_size > 1000
    return matplotlib.image.imread(path)


# ----------------------------------------------------------------------------- build


def test_build_writes_models_logs_and_selection(built, plate, small_base):
    zoo_dir, out = built
    zoo = Zoo(zoo_dir)
    jobs = training_jobs(plate, "gt_cyto", "cyto", "CL5", subsets=SUBSETS)
    assert zoo.ids() == sorted(j.model_id for j in jobs)
    for job in jobs:
        card = zoo.get(job.model_id)
        assert card.channels == job.channels and card.split == job.split
        assert card.epochs_run == 1 and 0.0 <= card.test_f1 <= 1.0
        log = model_log_path(zoo_dir, job.model_id).read_text()
        assert f"training {job.model_id}" in log and "epoch 1/1 train_loss=" in log
        assert "done in" in log
    sel = zoo.selection("CL5", "cyto")
    assert sel.strategy in ("cw", "mc") and sel.gt == "gt_cyto"
    assert sel.baseline["path"] == str(small_base)
    rows = sel.candidates
    keys = {(r["strategy"], tuple(r["train_channels"]), tuple(r["eval_channels"])) for r in rows}
    assert keys == {("cw", (0,), (0,)), ("cw", (1,), (1,)), ("cw", (0, 1), (0, 1)),
                    ("mc", (0, 1), (0,)), ("mc", (0, 1), (1,)), ("mc", (0, 1), (0, 1)),
                    (VANILLA, (), (0,)), (VANILLA, (), (1,)), (VANILLA, (), (0, 1))}
    split = jobs[0].split
    for r in rows:  # every row scored on the validation and the test fields
        assert r["val_n_images"] == len(split.val) and r["test_n_images"] == len(split.test)
        assert 0.0 <= r["val_f1"] <= 1.0 and 0.0 <= r["test_f1"] <= 1.0
        assert r["val_n_true"] > 0 and r["fold"] is None
    vanilla = [r for r in rows if r["strategy"] == VANILLA]
    assert {tuple(r["eval_channel_names"]) for r in vanilla} == {("mito",), ("ER",),
                                                                 ("mito", "ER")}
    assert "selection CL5/cyto:" in out and "mito+ER" in out
    # the thresholds: chosen for the selected pair on the validation fields
    from structfree_dask.zoo import CELLPROB_THRESHOLDS, FLOW_THRESHOLDS, threshold_scores
    from structfree_dask.zoo.scoring.threshold import best_thresholds

    assert sel.flow_threshold in FLOW_THRESHOLDS
    assert sel.cellprob_threshold in CELLPROB_THRESHOLDS
    assert (f"flow threshold {sel.flow_threshold:g}, cell probability threshold "
            f"{sel.cellprob_threshold:g}") in out
    again = threshold_scores(zoo, sel, plate)
    f1 = {t: s["f1"] for t, s in again.items()}
    assert sorted(f1) == sorted((t, c) for t in FLOW_THRESHOLDS for c in CELLPROB_THRESHOLDS)
    assert (sel.flow_threshold, sel.cellprob_threshold) == best_thresholds(f1)
    assert sel.flow_threshold_val_f1 == {f"{t:g}": pytest.approx(v) for (t, c), v in f1.items()
                                         if c == sel.cellprob_threshold}
    assert sel.cellprob_threshold_val_f1 == {f"{c:g}": pytest.approx(v)
                                             for (t, c), v in f1.items()
                                             if t == sel.flow_threshold}
    assert threshold_scores(zoo, sel.to_dict(), plate) == again  # dicts still work
    assert sel.vanilla is not None and sel.vanilla["strategy"] == VANILLA
    assert tuple(sel.vanilla["eval_channels"]) == sel.eval_channels


def test_build_again_reuses_models(built, plate, small_base, cluster_client, tmp_path):
    import shutil

    zoo_dir = shutil.copytree(built[0], tmp_path / "zoo")
    before = {m: Zoo(zoo_dir).get(m).created for m in Zoo(zoo_dir).ids()}
    jobs = training_jobs(plate, "gt_cyto", "cyto", "CL5", subsets=[[0]])
    seen = []
    result = build_zoo(jobs, zoo_dir, client=cluster_client, base=small_base,
                       settings=TrainSettings(max_epochs=1, patience=1, tile_size=64),
                       progress=lambda done, total: seen.append((done, total)))
    assert result.reused == [jobs[0].model_id] and not result.failed and result.ok
    # 1 training + 1 scoring + 1 flow threshold task
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert {m: Zoo(zoo_dir).get(m).created for m in Zoo(zoo_dir).ids()} == before
    assert "not retrained" in model_log_path(zoo_dir, jobs[0].model_id).read_text()
    # the selection is rewritten from this build's strategies (CW only here)
    assert {r["strategy"] for r in result.selection.candidates} == {"cw", VANILLA}


# ----------------------------------------------------------------------------- list


def test_list_names_models_and_marks_selection(built):
    zoo_dir, _ = built
    code, out, _ = run_cli("zoo", "list", zoo_dir)
    assert code == 0
    zoo = Zoo(zoo_dir)
    chosen = set(zoo.selection("CL5", "cyto").model_ids)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["model_id", "cell_line", "organelle"]
    for model_id in zoo.ids():
        [line] = [ln for ln in lines if ln.startswith(model_id + " ")]
        assert line.rstrip().endswith("*") == (model_id in chosen)
    assert any(ln.startswith("* selected for CL5/cyto:") for ln in lines)
    code, out, _ = run_cli("zoo", "list", zoo_dir, "--cell-line", "CL9")
    assert code == 0 and "no CL9 models" in out


# ----------------------------------------------------------------------------- report


def test_report_writes_tables_heatmap_fusion_overlays(built, plate, tmp_path):
    zoo_dir, _ = built
    out_dir = tmp_path / "report"
    code, out, err = run_cli("zoo", "report", zoo_dir, "--plate", plate, "--out", out_dir)
    assert code == 0, err
    sel = Zoo(zoo_dir).selection("CL5", "cyto")
    # F1 per evaluation subset (rows) for Vanilla, CW and MC (columns)
    rows = _read_csv(out_dir / "f1_CL5_cyto.csv")
    assert list(rows[0]) == ["eval_subset", "vanilla", "cw", "mc", "vanilla_std", "cw_std",
                             "mc_std", "mc_training_subset", "n_folds", "selected"]
    assert [r["eval_subset"] for r in rows] == ["mito", "ER", "mito+ER"]
    for r in rows:
        for col in ("vanilla", "cw", "mc"):
            assert 0.0 <= float(r[col]) <= 1.0
        assert r["mc_training_subset"] == "mito+ER" and r["n_folds"] == "1"
    assert sum(r["selected"] == sel.strategy for r in rows) == 1
    by_subset = {r["eval_subset"]: r for r in rows}
    cands = {(c["strategy"], tuple(c["eval_channels"])): c for c in sel.candidates}
    assert float(by_subset["ER"]["vanilla"]) == pytest.approx(
        cands[(VANILLA, (1,))]["test_f1"], abs=1e-4)
    image = _png(out_dir / "f1_CL5_cyto.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
    assert len(_read_csv(out_dir / "candidates_CL5_cyto.csv")) == 9
    # fusion comparison on the test fields with the CW models
    fusion = _read_csv(out_dir / "fusion_CL5_cyto.csv")
    assert [r["method"] for r in fusion] == ["FA", "SIMPLE", "STAPLE", "Voting",
                                             "Majority Voting"]
    test_fields = Zoo(zoo_dir).get(Zoo(zoo_dir).ids()[0]).split.test
    for r in fusion:
        assert r["channels"] == "mito+ER" and r["models"] == "CW models"
        assert 0.0 <= float(r["f1"]) <= 1.0 and int(r["n_images"]) == len(test_fields)
        assert int(r["n_true"]) > 0
    # overlays of a few test fields
    overlays = sorted(out_dir.glob("overlay_CL5_cyto_*.png"))
    assert len(overlays) == len(test_fields)
    assert _png(overlays[0]).shape[1] > _png(overlays[0]).shape[0]  # panels side by side
    for path in [*overlays, out_dir / "f1_CL5_cyto.csv", out_dir / "fusion_CL5_cyto.csv"]:
        assert str(path) in out


# ----------------------------------------------------------------------------- k-fold, failures


def test_kfold_build_and_report_api(plate, small_base, cluster_client, tmp_path, monkeypatch):
    from structfree_dask.runtime import cluster

    jobs = training_jobs(plate, "gt_cyto", "cyto", "CL5", strategies=["cw"],
                         subsets=[[0], [1]], folds=2, seed=1)
    assert [j.split.fold for j in jobs] == [0, 0, 1, 1]
    # a window of one task: each job is submitted once the one before finished
    monkeypatch.setattr(cluster, "in_flight_window", lambda client, per_thread: 1)
    result = build_zoo(jobs, tmp_path / "zoo", client=cluster_client, base=small_base,
                       settings=TrainSettings(max_epochs=1, patience=1, tile_size=64,
                                              batch_size=4))
    assert result.ok and len(result.cards) == 4
    assert {r["fold"] for r in result.scores} == {0, 1}
    logs = [model_log_path(tmp_path / "zoo", j.model_id).read_text().splitlines() for j in jobs]
    spans = [(lines[0].split()[0], lines[-1].split()[0]) for lines in logs]  # (start, end)
    assert all(logs[i][0].split()[1] == "training" and "done in" in logs[i][-1]
               for i in range(len(jobs)))
    assert all(spans[i + 1][0] >= spans[i][1] for i in range(len(jobs) - 1))  # one at a time
    sel = result.selection
    assert sel.n_folds == 2 and sel.fold == 0 and "mean over the folds" in sel.rule
    assert all(Zoo(tmp_path / "zoo").get(m).fold == 0 for m in sel.model_ids)
    summary = summarize_scores(sel.candidates)
    assert all(s["n_folds"] == 2 and math.isfinite(s["test_f1_std"]) for s in summary)
    table = f1_table(sel)
    assert [t["n_folds"] for t in table] == [2, 2, 2]
    assert all(math.isnan(t["mc"]) for t in table)  # no MC model in this zoo
    files = write_zoo_report(tmp_path / "zoo", plate, tmp_path / "rep", n_overlays=1)
    assert [p.name for p in files["f1 table"]] == ["f1_CL5_cyto.csv"]
    assert len(files["overlays"]) == 1
    csv_rows = _read_csv(files["f1 table"][0])
    assert csv_rows[0]["mc"] == "" and csv_rows[0]["cw_std"] != ""
    for bad, message in (({"n_overlays": -1}, "n_overlays"),
                         ({"flow_thresholds": [-0.1]}, "flow_thresholds")):
        with pytest.raises(ValueError, match=message):
            write_zoo_report(tmp_path / "zoo", plate, tmp_path / "rep_bad", **bad)
    assert not (tmp_path / "rep_bad").exists()  # checked before anything is written


def test_failed_job_is_reported_not_raised(plate, small_base, cluster_client, tmp_path):
    job = TrainingJob(str(plate), "no_such_gt", "CL5", "cyto", "cw", (0,), ("mito",),
                      Split(("A/1/0",), ("A/2/0",), ("A/3/0",)))
    result = build_zoo([job], tmp_path / "zoo", client=cluster_client, base=small_base,
                       settings=TrainSettings(max_epochs=1, tile_size=64))
    assert not result.ok and result.selection is None and not result.cards
    assert "no_such_gt" in result.failure(job.model_id)
    log = model_log_path(tmp_path / "zoo", job.model_id).read_text()
    assert "failed:" in log and "Traceback" in log


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("extra", "message"), [
    (["--gt", "manual"], "no field .* has a label image 'manual'.*gt_cyto"),
    (["--gt", "gt_cyto", "--wells", "A/1,A/2"], "at least 3 annotated fields.*found 2"),
    (["--gt", "gt_cyto", "--folds", "9"], "at least 9 annotated fields.*found 5"),
    (["--gt", "gt_cyto", "--subsets", "0,7"], "channel 7 does not exist"),
    (["--gt", "gt_cyto", "--subsets", "DAPI"], "channel 'DAPI' does not exist.*mito"),
    (["--gt", "gt_cyto", "--max-epochs", "0"],
     "max_epochs: expected a whole number between 1 and 100000; got 0"),
    (["--gt", "gt_cyto", "--base-model", "no/such.pth"], "not a file"),
])
def test_build_bad_input_exit_2(plate, tmp_path, extra, message):
    import re

    code, out, err = run_cli("zoo", "build", plate, "--organelle", "cyto", "--cell-line", "CL5",
                             "--zoo", tmp_path / "zoo", *extra, "--no-progress")
    assert code == 2 and err.startswith("error: ") and re.search(message, err), err
    assert not (tmp_path / "zoo").exists()  # nothing written, no cluster started


@pytest.mark.parametrize("command", ["build", "report"])
def test_bad_flow_thresholds_exit_2(plate, tmp_path, command, capsys):
    argv = (["zoo", "build", str(plate), "--gt", "gt_cyto", "--organelle", "cyto",
             "--cell-line", "CL5", "--zoo", str(tmp_path / "zoo")] if command == "build"
            else ["zoo", "report", str(tmp_path / "zoo"), "--plate", str(plate)])
    for bad in ("-1", "0.4,x", ""):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--flow-thresholds", bad])
        assert exc.value.code == 2
        assert "expected numbers >= 0 separated by commas" in capsys.readouterr().err
    if command == "build":
        for bad in ("0,-200", "x", ""):
            with pytest.raises(SystemExit) as exc:
                main([*argv, "--cellprob-thresholds", bad])
            assert exc.value.code == 2
            assert "expected numbers from -100 to 100" in capsys.readouterr().err
    assert not (tmp_path / "zoo").exists()


def test_list_report_bad_input_exit_2(plate, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("zoo", "report", tmp_path / "empty", "--plate", plate)
    assert code == 2 and "no selection for any cell line" in err and "zoo build" in err
    code, _, err = run_cli("zoo", "list", tmp_path / "missing")
    assert code == 2 and "zoo folder" in err and "not found" in err
    assert not (tmp_path / "missing").exists()
    code, _, err = run_cli("zoo", "report", tmp_path / "missing", "--plate", plate)
    assert code == 2 and "not found" in err
    with pytest.raises(SystemExit) as exc:
        run_cli("zoo", "build", plate, "--gt", "gt_cyto", "--organelle", "cyto",
                "--cell-line", "CL5", "--zoo", tmp_path / "z", "--strategies", "xx")
    assert exc.value.code == 2


# ----------------------------------------------------------------------------- helpers


def test_parse_subsets_and_task_resources():
    assert parse_subsets("ALL") is None
    assert parse_subsets("0,2;1,3") == [[0, 2], [1, 3]]
    assert parse_subsets(" mito , ER ;2") == [["mito", "ER"], [2]]

    class Fake:
        def __init__(self, resources):
            self.resources = resources

        def scheduler_info(self, n_workers=5):
            return {"workers": {f"w{i}": {"resources": r} for i, r in enumerate(self.resources)}}

    assert task_resources(Fake([{}, {}])) is None
    assert task_resources(Fake([{}, {"GPU": 1}])) == {"GPU": 1}
    assert task_resources(Fake([])) is None


def test_cards_of_selection_are_json(built):
    zoo_dir, _ = built
    text = (zoo_dir / "selections" / "CL5" / "cyto.json").read_text()
    data = json.loads(text)
    assert data["rule"] and data["candidates"] and "NaN" not in text
    ModelCard.from_json((zoo_dir / "models" / Zoo(zoo_dir).ids()[0] / "card.json").read_text())


def test_segment_with_the_zoo_selection(built, plate, cluster_client, tmp_path):
    """segment --zoo: the selected models and channels, matched by name, on the cluster."""
    import shutil

    from structfree_dask.io import label_record, open_labels, open_plate
    from structfree_dask.zoo import Zoo

    zoo, _ = built
    target = tmp_path / "target.zarr"
    shutil.copytree(plate, target)
    sel = Zoo(zoo).selection("CL5", "cyto")
    code, out, err = run_cli("segment", target, "--zoo", zoo, "--cell-line", "CL5",
                             "--organelle", "cyto", "--name", "cyto_zoo", "--tile-size", "64",
                             "--scheduler", cluster_client.scheduler.address, "--no-progress")
    assert code == 0, err
    assert "5 done" in out
    info = open_plate(target).field(open_plate(target).field_paths[0])
    record = label_record(open_labels(info, "cyto_zoo"))
    assert record["channel_names"] == list(sel.eval_channel_names)
    assert record["flow_threshold"] == sel.flow_threshold  # the selection's, by default
    assert record["cellprob_threshold"] == sel.cellprob_threshold
    from structfree_dask.zoo.use import config_from_zoo

    assert config_from_zoo(zoo, "CL5", "cyto", str(target), flow_threshold=0.55
                           ).flow_threshold == 0.55
    weights = [Zoo(zoo).weights_path(sel.model_for(c)) for c in sel.eval_channels]
    from structfree_dask.backbones import file_sha256

    want = [file_sha256(w) for w in weights]
    got = record["model_sha256"]
    assert (got if isinstance(got, list) else [got] * len(want)) == want
    import numpy as np

    from structfree_dask.io import create_plate

    other = tmp_path / "other.zarr"
    with create_plate(other, rows=["A"], columns=["1"]) as writer:
        writer.write_field("A", "1", 0, np.ones((1, 2, 64, 64), "uint16"),
                           channel_names=["DAPI", "actin"])
    code, _, err = run_cli("segment", other, "--zoo", zoo, "--cell-line", "CL5",
                           "--organelle", "cyto")
    assert code == 2 and "was trained on channel(s)" in err, err  # card vs plate channels
    for argv, message in [((), "--zoo needs --cell-line"),
                          (("--cell-line", "CL5", "--model", "generalist"), "not both"),
                          (("--cell-line", "CL9"), "no selection for CL9/cyto")]:
        code, _, err = run_cli("segment", target, "--zoo", zoo, "--organelle", "cyto", *argv)
        assert code == 2 and message in err, err
