"""The command line, end to end on real stores."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from structfree_dask.cli import main
from structfree_dask.io import label_record, open_labels, open_plate

COMMANDS = ["info", "simulate", "import", "segment", "evaluate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: structfree-dask " + command in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "structfree_dask.cli", "--help"],
                         capture_output=True, text=True, check=True)
    assert "simulate" in out.stdout and "segment" in out.stdout


@pytest.fixture(scope="module")
def sim_plate(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "plate.zarr"
    assert main(["simulate", str(path), "--cell-line", "CL5", "--rows", "1", "--cols", "2",
                 "--timepoints", "2", "--size", "128", "--seed", "3",
                 "--ngff-version", "0.5"]) == 0
    return path


def test_front_door_and_info_stay_light(sim_plate, loaded_modules):
    """The package's curated names, and ``info``, import neither torch nor cellpose."""
    code = ("import structfree_dask\n"
            "from structfree_dask import (SegmentationConfig, open_plate, segment, segment_array,\n"
            "                             simulate_plate)\n"
            "from structfree_dask.cli import main\n"
            f"assert main(['info', {str(sim_plate)!r}]) == 0\n"
            "assert segment.__module__ == 'structfree_dask.engine._segment'\n"
            "assert SegmentationConfig.__module__ == 'structfree_dask.config'\n")
    assert loaded_modules(code, ("torch", "cellpose")) == []


def test_simulate_and_info(sim_plate, capsys):
    assert main(["info", str(sim_plate)]) == 0
    out = capsys.readouterr().out
    assert "NGFF 0.5" in out and "A/1, A/2" in out and "t=2" in out
    assert "labels/gt_nuclei" in out and "labels/gt_cyto" in out
    assert main(["info", str(sim_plate), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fields"][0]["channels"] == ["mito", "ER", "membrane",
                                                "translocation-reporter"]


def test_segment_evaluate_and_resume(sim_plate, cluster_client, tmp_path, capsys):
    address = cluster_client.scheduler.address
    report = tmp_path / "report.html"
    args = ["segment", str(sim_plate), "--organelle", "nuclei", "--channels", "mito,ER",
            "--diameter", "12", "--tile-size", "64", "--flow-threshold", "0.6",
            "--scheduler", address, "--no-progress", "--performance-report", str(report)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "labels/nuclei: 4 done, 0 skipped" in out
    assert report.read_text().lower().count("<html") >= 1
    info = open_plate(sim_plate).field("A/2/0")
    assert "nuclei" in info.labels and open_labels(info, "nuclei").shapes[0] == (2, 1, 128, 128)
    record = label_record(open_labels(info, "nuclei"))
    assert (record["flow_threshold"], record["cellprob_threshold"]) == (0.6, 0.0)
    assert main(args[:-2]) == 0
    assert "0 done, 4 skipped" in capsys.readouterr().out
    csv = tmp_path / "s.csv"
    js = tmp_path / "s.json"
    assert main(["evaluate", str(sim_plate), "--pred", "nuclei", "--gt", "gt_nuclei",
                 "--csv", str(csv), "--json", str(js)]) == 0
    table = capsys.readouterr().out
    assert "overall" in table and "f1" in table
    scores = json.loads(js.read_text())
    assert len(scores["rows"]) == 4 and 0.0 <= scores["overall"]["f1"] <= 1.0
    assert csv.read_text().count("\n") == 6
    assert main(["info", str(sim_plate)]) == 0
    assert "labels/nuclei 2/2 timepoint(s) done" in capsys.readouterr().out


def test_import_real_images(real_dev, tmp_path, capsys):
    out = tmp_path / "kc.zarr"
    assert main(["import", str(real_dev / "Kc167"), str(out), "--channels", "1,0",
                 "--channel-names", "cyto-stain,nuclear-stain"]) == 0
    images = sorted(p.name for p in (real_dev / "Kc167").glob("*_img.png"))  # 3 here
    assert len(images) >= 2 and len(open_plate(out).field_paths) == len(images)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"wrote {out}: {len(images)} field(s) in {len(images)} well(s); "
                        "channels cyto-stain, nuclear-stain; pixel size y=1, x=1 um")
    # (PNG files record no pixel size: 1 um assumed)
    assert lines[1:] == [f"  {name} -> A/{i + 1}/0" for i, name in enumerate(images)]
    assert main(["info", str(out)]) == 0
    listed = [ln for ln in capsys.readouterr().out.splitlines() if "; from " in ln]
    assert [ln.rsplit("; from ", 1)[1] for ln in listed] == images
    assert main(["info", "--json", str(out)]) == 0
    assert [f["source"] for f in json.loads(capsys.readouterr().out)["fields"]] == images


def test_import_of_a_z_stack_time_lapse_named_by_field(tmp_path, capsys):
    import tifffile

    src = tmp_path / "src"
    src.mkdir()
    for t in (1, 2):
        for z in (1, 2):
            tifffile.imwrite(src / f"B03_t{t}_z{z}_w1.tif", np.full((16, 16), 10 * t + z, "uint16"))
    out = tmp_path / "o.zarr"
    args = ["import", str(src), str(out), "--time-interval", "0.5", "--pixel-size", "0.65"]
    assert main(args) == 2
    assert "--z-projection max" in capsys.readouterr().err
    assert main([*args, "--z-projection", "max"]) == 0
    assert "B03_t1_z1_w1.tif and more -> B/3/0" in capsys.readouterr().out
    field = open_plate(out).field("B/3/0")
    assert field.open_array(0)[:, 0, 0, 0].tolist() == [12, 22]
    assert field.pixel_size["t"] == 0.5 and field.channel_names == ("w1",)


def test_import_of_a_metaxpress_plate_folder(tmp_path, capsys, caplog):
    from ..io.test_importer import metaxpress_plate

    plate = metaxpress_plate(tmp_path / "plate", timepoints=2)
    out = tmp_path / "o.zarr"
    assert main(["-v", "import", str(plate), str(out), "--time-interval", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # the HTD file names the wavelengths; the MetaSeries TIFFs give the pixel size
    assert lines[0] == (f"wrote {out}: 2 field(s) in 2 well(s); channels DAPI, FITC; "
                        "pixel size y=0.65, x=0.65 um")
    assert lines[1] == "  TimePoint_1/Plate1_B03_s1_w1A1B2C3.tif and more -> B/3/1"
    assert "read Plate1.HTD: channel names w1=DAPI, w2=FITC" in caplog.text
    assert main(["info", str(out)]) == 0
    assert ("B/3/1: t=2 c=2 y=16 x=24; pixel size y=0.65, x=0.65; 0.5 h between timepoints; "
            "channels 0=DAPI, 1=FITC; from TimePoint_1/") in capsys.readouterr().out


def test_import_lists_the_first_files_and_points_to_info(tmp_path, capsys):
    import imageio.v3 as iio

    from structfree_dask.cli import IMPORT_LISTED

    src = tmp_path / "src"
    src.mkdir()
    names = [f"field{i:02d}.png" for i in range(IMPORT_LISTED + 2)]
    for name in names:
        iio.imwrite(src / name, np.zeros((32, 32), "uint8"))
    out = tmp_path / "o.zarr"
    assert main(["import", str(src), str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:-1] == [f"  {n} -> A/{i + 1}/0" for i, n in enumerate(names[:IMPORT_LISTED])]
    assert lines[-1] == f"  ... and 2 more (structfree-dask info {out} names each field's file)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "{tmp}/nothing.zarr"], "path not found"),
        (["segment", "{plate}", "--channels", "DAPI"], "channel 'DAPI' does not exist"),
        (["segment", "{plate}", "--channels", "0", "--model", "{tmp}/w.pth"],
         "not a file and not a cellpose"),
        (["segment", "{plate}", "--channels", "0", "--name", "gt_cyto"], "already exists"),
        (["segment", "{plate}", "--channels", "0", "--wells", "H/9"], "not in plate"),
        (["segment", "{plate}", "--channels", "0", "--flow-threshold", "-1"],
         "flow_threshold: expected a finite number between 0 and 100; got -1"),
        (["segment", "{plate}", "--channels", "0", "--scheduler", "tcp://x:1",
          "--workers", "2"], "--workers: only used for clusters started here"),
        (["evaluate", "{plate}", "--pred", "nope", "--gt", "gt_cyto"], "no label image 'nope'"),
        (["simulate", "{tmp}/s.zarr", "--cell-line", "CL9"], "CL1"),
        (["simulate", "{plate}"], "exists"),
        (["import", "{tmp}/no-folder", "{tmp}/o.zarr"], "expected a folder"),
        (["simulate", "{tmp}/a-file/s.zarr", "--size", "64"], ""),
    ],
)
def test_bad_input_one_line_error(argv, message, sim_plate, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    argv = [a.format(tmp=tmp_path, plate=sim_plate) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and message in err[-1]


def test_bad_option_values(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["segment", "p.zarr", "--channels", "0", "--timepoints", "a:b"])
    assert exc.value.code == 2
    assert "expected timepoints like" in capsys.readouterr().err


def test_cuda_cluster_on_cpu_machine_fails_clearly(sim_plate, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code = main(["segment", str(sim_plate), "--channels", "0", "--cluster", "cuda",
                 "--name", "cuda_try", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --cluster cuda") and ("dask-cuda" in err or "GPU" in err)


# ----------------------------------------------------------------------------- quiet output


CLI = [sys.executable, "-m", "structfree_dask.cli"]


def test_segment_prints_only_bar_dashboard_and_summary(tmp_path, cli_env):
    """A real LocalCluster in a subprocess: no INFO line, no distributed logger, anywhere.

    The workers are processes of their own that set up their logging when they import
    distributed; ``--performance-report`` turns the profiler on, whose deeply nested
    messages made distributed.sizeof warn in the workers.
    """
    from structfree_dask.simulate import simulate_plate

    plate = simulate_plate(tmp_path / "p.zarr", cell_line="CL1", rows=1, cols=1,
                           timepoints=2, size=96, seed=4)
    run = subprocess.run(
        [*CLI, "segment", str(plate), "--channels", "cyto-reporter,ER", "--diameter", "20",
         "--tile-size", "64", "--workers", "1",
         "--performance-report", str(tmp_path / "report.html")],
        capture_output=True, text=True, env=cli_env, timeout=600)
    assert run.returncode == 0, run.stderr
    lines = [ln.strip() for ln in (run.stdout + run.stderr).replace("\r", "\n").splitlines()]
    assert not [ln for ln in lines if "INFO" in ln or "distributed." in ln], run.stderr
    assert not [ln for ln in lines if "cellpose" in ln.lower()], run.stderr
    out = run.stdout.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("labels/cyto: 2 done, 0 skipped"), run.stdout
    err = [ln for ln in run.stderr.replace("\r", "\n").splitlines() if ln.strip()]
    assert err[0].startswith("dashboard: http://127.0.0.1:"), run.stderr
    assert all("field-timepoint" in ln for ln in err[1:]), run.stderr  # the progress bar
    assert "2/2" in err[-1]


def test_logging_levels_follow_verbosity():
    """Quiet by default, -v INFO, -vv DEBUG; for the workers too (environment); undone."""
    import logging
    import os

    from structfree_dask.runtime.logs import VERBOSITY_ENV, configure

    names = ("distributed", "cellpose", "structfree_dask", "distributed.sizeof")
    before = {n: logging.getLogger(n).level for n in (*names, "")}
    env_before = {k: os.environ.get(k) for k in (VERBOSITY_ENV, "DASK_LOGGING__DISTRIBUTED")}
    for verbosity, level in ((0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG)):
        undo = configure(verbosity)
        try:
            got = {n: logging.getLogger(n).getEffectiveLevel() for n in names}
            assert got["distributed"] == got["cellpose"] == got["structfree_dask"] == level
            assert got["distributed.sizeof"] == (logging.ERROR if verbosity == 0 else level)
            assert os.environ[VERBOSITY_ENV] == str(verbosity)
            assert os.environ["DASK_LOGGING__DISTRIBUTED"] == logging.getLevelName(level).lower()
            core = logging.getLogger("distributed.core")
            unresponsive = core.makeRecord("distributed.core", logging.WARNING, __file__, 1,
                                           "Event loop was unresponsive in %s for %.2fs.",
                                           ("Worker", 3.0), None)
            assert bool(core.filter(unresponsive)) == (verbosity > 0)
        finally:
            undo()
    assert {n: logging.getLogger(n).level for n in (*names, "")} == before
    assert {k: os.environ.get(k) for k in env_before} == env_before


def test_info_piped_to_head_ends_cleanly(sim_plate, cli_env):
    """``structfree-dask info PLATE | head -1``: exit 0, no traceback, no 'Exception ignored'."""
    import shlex

    command = f"{shlex.join([*CLI, 'info', str(sim_plate)])} | head -1"
    run = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                         env=cli_env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("plate ") and run.stdout.count("\n") == 1, run.stdout
    assert run.stderr == "", run.stderr
    # the reader gone before anything was printed: the status of a broken pipe, quietly
    proc = subprocess.Popen([*CLI, "info", str(sim_plate)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=cli_env)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert proc.returncode == 141, err


def test_segment_cells_and_nuclei_in_one_run_then_link(tmp_path, cluster_client, capsys):
    plate = tmp_path / "both.zarr"
    assert main(["simulate", str(plate), "--cell-line", "CL1", "--size", "64",
                 "--timepoints", "2", "--seed", "4"]) == 0
    capsys.readouterr()
    base = ["segment", str(plate), "--scheduler", cluster_client.scheduler.address,
            "--no-progress", "--tile-size", "64"]
    # bad input first: nothing written
    assert main([*base, "--organelle", "nuclei", "--channels", "0", "--with-nuclei", "1"]) == 2
    assert "--with-nuclei goes with --organelle cyto" in capsys.readouterr().err
    assert main([*base, "--channels", "0", "--with-nuclei"]) == 2
    assert "needs the nuclei's channels" in capsys.readouterr().err
    assert main([*base, "--channels", "0", "--name", "nuclei", "--with-nuclei", "1"]) == 2
    assert "nuclei" not in open_plate(plate).field("A/1/0").labels
    # cells from every reporter, nuclei from the translocation reporter, then linked
    assert main([*base, "--channels", "0,1,2,3", "--diameter", "20",
                 "--with-nuclei", "translocation-reporter"]) == 0
    out = capsys.readouterr().out
    assert "labels/cyto: 2 done" in out and "labels/nuclei: 2 done" in out
    assert "linked: 2 done" in out and "flagged" in out
    info = open_plate(plate).field("A/1/0")
    assert {"cyto", "nuclei", "cyto_nuclei", "cyto_cytoplasm"} <= set(info.labels)
    cells = open_labels(info, "cyto").read()
    linked = open_labels(info, "cyto_nuclei").read()
    for t in range(2):
        c, n = cells[t, 0], linked[t, 0]
        ids = [i for i in np.unique(n) if 0 < i <= c.max()]
        assert ids  # some nuclei were linked
        for i in ids:  # a linked nucleus carries the ID of the cell holding most of it
            assert np.bincount(c[n == i].astype(np.int64)).argmax() == i


def test_run_prints_a_cells_line_per_plate(tmp_path, capsys, monkeypatch):
    import yaml

    from structfree_dask.jobs import runner

    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"version": 1, "plates": ["p.zarr"],
                                   "segment": [{"organelle": "cyto", "channels": [0, 1]}]}))
    section = {"plate": "/d/p.zarr", "table": "cyto_features", "done": [["A/1/0", 0]],
               "skipped": [], "failed": [], "cells": 12, "report": "/r/report.html",
               "track": {"tracks": 5, "divisions": 1, "timepoints": [], "failed": []}}
    record = {"status": "ok", "done": 1, "skipped": 0, "failed": 0, "seconds": 1.0,
              "record": "/r/run.json", "problems": [], "cells": [section]}
    monkeypatch.setattr(runner, "run_job", lambda job, progress=None: record)
    assert main(["run", str(job)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("/d/p.zarr: tables/cyto_features: 1 done, 0 skipped, 0 failed; "
                        "12 cells; 5 tracks, 1 divisions; report /r/report.html")


def test_simulate_stage_jitter_writes_the_shifts(tmp_path, capsys):
    from structfree_dask.io import read_feature_table
    from structfree_dask.simulate import simulate_field

    plate = tmp_path / "jitter.zarr"
    assert main(["simulate", str(plate), "--size", "64", "--timepoints", "3", "--seed", "1",
                 "--stage-jitter", "15"]) == 0
    assert "wrote" in capsys.readouterr().out
    want = simulate_field("CL1", size=64, timepoints=3, stage_jitter_px=15,
                          seed=np.random.SeedSequence(entropy=1, spawn_key=(0, 0, 0)))
    info = open_plate(plate).field("A/1/0")
    truth = read_feature_table(info, "gt_truth")
    got = truth.groupby("t")[["stage_dy", "stage_dx"]].first()
    assert np.array_equal(got.to_numpy(), want.stage_shift[sorted(set(truth["t"]))])
    cyto = open_labels(info, "gt_cyto").read()
    assert np.array_equal(cyto.reshape(want.cyto.shape), want.cyto)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--stage-jitter", "-3"], "stage_jitter_px must be >= 0, got -3"),
        (["--stage-jitter", "40"], "stage_jitter_px must be <= 32"),
        (["--stage-jitter", "2", "--shapes-from", "{tmp}/src.zarr"],
         "--stage-jitter: only for simulated cells"),
    ],
)
def test_simulate_refuses_a_bad_stage_jitter(extra, message, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    argv = ["simulate", str(out), *(a.format(tmp=tmp_path) for a in extra)]
    if "--shapes-from" not in extra:
        argv += ["--size", "64"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()


def test_simulate_refuses_a_non_integer_stage_jitter(tmp_path, capsys):
    out = tmp_path / "s.zarr"
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(out), "--size", "64", "--stage-jitter", "1.5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stage-jitter: invalid int value: '1.5'" in err[0]
    assert not out.exists()


def test_with_nuclei_warns_when_the_model_is_not_one_for_nuclei(sim_plate, capsys):
    """The generalist is a cyto model: the warning names the fix before anything runs."""
    argv = ["segment", str(sim_plate), "--channels", "0", "--with-nuclei", "1",
            "--wells", "H/9"]  # refused after the settings: nothing runs
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "warning: --with-nuclei segments the nuclei with 'generalist'" in err
    assert "--organelle nuclei" in err and "not in plate" in err
    assert main([*argv, "--model", "nuclei"]) == 2  # cellpose's nuclei model: no warning
    assert "warning" not in capsys.readouterr().err


def test_simulate_defocus_and_motion_scale_write_the_truth(tmp_path, capsys):
    import zarr

    from structfree_dask.io import read_feature_table
    from structfree_dask.simulate import simulate_field

    plate = tmp_path / "defocus.zarr"
    assert main(["simulate", str(plate), "--cell-line", "CL3", "--size", "64",
                 "--timepoints", "3", "--seed", "1", "--defocus", "1",
                 "--motion-scale", "10"]) == 0
    assert "wrote" in capsys.readouterr().out
    want = simulate_field("CL3", size=64, timepoints=3, defocus_p=1.0, motion_scale=10.0,
                          seed=np.random.SeedSequence(entropy=1, spawn_key=(0, 0, 0)))
    assert want.defocused.tolist() == [False, True, True]
    info = open_plate(plate).field("A/1/0")
    truth = read_feature_table(info, "gt_truth")
    assert truth.equals(want.truth)
    assert truth.groupby("t")["defocused"].first().tolist() == [False, True, True]
    attrs = dict(zarr.open_group(str(plate), mode="r")["A/1/0/tables/gt_truth"].attrs)
    assert attrs["defocused_timepoints"] == [1, 2] and attrs["motion_scale"] == 10.0
    cyto = open_labels(info, "gt_cyto").read()
    assert np.array_equal(cyto.reshape(want.cyto.shape), want.cyto)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--defocus", "1.5"], "defocus_p must be in [0, 1], got 1.5"),
        (["--defocus", "-0.1"], "defocus_p must be in [0, 1], got -0.1"),
        (["--defocus", "nan"], "defocus_p must be in [0, 1], got nan"),
        (["--motion-scale", "200"], "motion_scale must be in [0, 100], got 200.0"),
        (["--motion-scale", "-1"], "motion_scale must be in [0, 100], got -1.0"),
        (["--defocus", "0.5", "--shapes-from", "{tmp}/src.zarr"],
         "--defocus: only for simulated cells; not with --shapes-from PLATE"),
        (["--motion-scale", "3", "--shapes-from", "{tmp}/src.zarr"],
         "--motion-scale: only for simulated cells; not with --shapes-from PLATE"),
    ],
)
def test_simulate_refuses_a_bad_defocus_or_motion_scale(extra, message, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    argv = ["simulate", str(out), *(a.format(tmp=tmp_path) for a in extra)]
    if "--shapes-from" not in extra:
        argv += ["--size", "64"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()


@pytest.mark.parametrize("option", ["--defocus", "--motion-scale"])
def test_simulate_refuses_a_non_number_defocus_or_motion_scale(option, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(out), "--size", "64", option, "often"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{option}: invalid float value: 'often'" in err[0]
    assert not out.exists()
