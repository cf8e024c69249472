"""Bad input, as a careless user or an attacker would give it.

Each case: the command line exits with status 2 and one ``error: ...`` line holding
the expected fragment; the Python API raises with the same message; and nothing was
written: the plate (and anything outside it that a link points to) is unchanged.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import zarr

from structfree_dask.cli import main
from structfree_dask.config import SegmentationConfig
from structfree_dask.engine import segment
from structfree_dask.evaluation import evaluate_plate, write_scores
from structfree_dask.io import label_record, open_labels, open_plate
from structfree_dask.simulate import simulate_plate

from ..conftest import tree_snapshot as snapshot  # other tests import it from here

CLI = [sys.executable, "-m", "structfree_dask.cli"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A small plate: 2 wells, 2 timepoints, 96 px, 4 reporter channels."""
    path = tmp_path_factory.mktemp("template") / "plate.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=2, timepoints=2, size=96, seed=5)
    return path


@pytest.fixture()
def plate(template, tmp_path) -> Path:
    path = tmp_path / "plate.zarr"
    shutil.copytree(template, path, symlinks=True)
    return path


def _labels(plate: Path, field: str = "A/1/0") -> Path:
    return plate.joinpath(*field.split("/"), "labels")


# --------------------------------------------------------------------- setups


def link_label_outside(plate: Path, tmp: Path) -> None:
    (tmp / "outside" / "cyto").mkdir(parents=True)
    os.symlink(tmp / "outside" / "cyto", _labels(plate) / "cyto")


def link_labels_folder_outside(plate: Path, tmp: Path) -> None:
    shutil.copytree(_labels(plate), tmp / "outside" / "labels")
    shutil.rmtree(_labels(plate))
    os.symlink(tmp / "outside" / "labels", _labels(plate))


def link_well_outside(plate: Path, tmp: Path) -> None:
    shutil.move(plate / "A" / "2", tmp / "outside")
    os.symlink(tmp / "outside", plate / "A" / "2")


def listed_label_outside(plate: Path, tmp: Path) -> None:
    (tmp / "outside" / "gt").mkdir(parents=True)
    group = zarr.open_group(str(_labels(plate)), mode="r+")
    group.attrs["labels"] = [*group.attrs["labels"], "../../../../outside/gt"]


def link_inside_label(plate: Path, tmp: Path) -> None:
    """A label image from an earlier run with a link planted in place of a chunk folder."""
    assert main(["segment", str(plate), "--channels", "0", "--tile-size", "64",
                 "--diameter", "20", "--workers", "1", "--no-progress", "--wells", "A/1",
                 "--timepoints", "0"]) == 0
    (tmp / "outside").mkdir()
    level = _labels(plate) / "cyto" / "0"
    os.symlink(tmp / "outside", level / "1")


def zero_byte_model(plate: Path, tmp: Path) -> None:
    (tmp / "m.pth").write_bytes(b"")


def random_model(plate: Path, tmp: Path) -> None:
    (tmp / "m.pth").write_bytes(np.random.default_rng(0).bytes(4096))


def truncated_model(plate: Path, tmp: Path) -> None:
    from structfree_dask.backbones import default_model_path

    (tmp / "m.pth").write_bytes(default_model_path().read_bytes()[:100_000])


def other_architecture_model(plate: Path, tmp: Path) -> None:
    import torch

    torch.save(torch.nn.Conv2d(2, 3, 3).state_dict(), tmp / "m.pth")


def malformed_field_json(plate: Path, tmp: Path) -> None:
    (plate / "A" / "1" / "0" / ".zattrs").write_text('{"multiscales": [')


def absolute_well_path(plate: Path, tmp: Path) -> None:
    group = zarr.open_group(str(plate), mode="r+")
    meta = dict(group.attrs["plate"])
    meta["wells"] = [dict(meta["wells"][0], path="/A/1"), *meta["wells"][1:]]
    group.attrs["plate"] = meta


def an_output_folder(plate: Path, tmp: Path) -> None:
    (tmp / "scores").mkdir()


def nothing(plate: Path, tmp: Path) -> None:
    pass


SEG = ["--no-progress", "--workers", "1"]
INF, NAN = float("inf"), float("nan")

# id, setup, CLI arguments after the plate, Python config kwargs (None: no Python
# counterpart here), expected fragment of the message.
SEGMENT_CASES = [
    ("label-folder-is-a-link", link_label_outside, ["--channels", "0"], {"channels": (0,)},
     "is a symbolic link"),
    ("labels-group-is-a-link", link_labels_folder_outside, ["--channels", "0"],
     {"channels": (0,)}, "is a symbolic link"),
    ("well-is-a-link", link_well_outside, ["--channels", "0"], {"channels": (0,)},
     "is a symbolic link"),
    ("labels-list-leaves-the-plate", listed_label_outside, ["--channels", "0"],
     {"channels": (0,)}, "invalid entry '../../../../outside/gt'"),
    ("link-inside-existing-labels", link_inside_label,
     ["--channels", "0", "--tile-size", "64", "--diameter", "20", "--overwrite"],
     {"channels": (0,), "tile_size": 64, "diameter": 20.0, "overwrite": True},
     "is a symbolic link"),
    ("diameter-unit-slip", nothing, ["--channels", "0", "--diameter", "0.001"],
     {"channels": (0,), "diameter": 0.001}, "rescaled 30000x"),
    ("diameter-inf", nothing, ["--channels", "0", "--diameter", "inf"],
     {"channels": (0,), "diameter": INF}, "diameter: expected a finite number"),
    ("diameter-nan", nothing, ["--channels", "0", "--diameter", "nan"],
     {"channels": (0,), "diameter": NAN}, "diameter: expected a finite number"),
    ("flow-threshold-nan", nothing, ["--channels", "0", "--flow-threshold", "nan"],
     {"channels": (0,), "flow_threshold": NAN}, "flow_threshold: expected a finite number"),
    ("cellprob-inf", nothing, ["--channels", "0", "--cellprob-threshold=-inf"],
     {"channels": (0,), "cellprob_threshold": -INF}, "cellprob_threshold: expected"),
    ("zero-byte-model", zero_byte_model, ["--channels", "0", "--model", "{tmp}/m.pth"],
     {"channels": (0,), "model": "{tmp}/m.pth"}, "not a Cellpose CPnet weights file"),
    ("random-bytes-model", random_model, ["--channels", "0", "--model", "{tmp}/m.pth"],
     {"channels": (0,), "model": "{tmp}/m.pth"}, "not a Cellpose CPnet weights file"),
    ("truncated-model", truncated_model, ["--channels", "0", "--model", "{tmp}/m.pth"],
     {"channels": (0,), "model": "{tmp}/m.pth"}, "not a Cellpose CPnet weights file"),
    ("other-architecture", other_architecture_model,
     ["--channels", "0", "--model", "{tmp}/m.pth"], {"channels": (0,), "model": "{tmp}/m.pth"},
     "not a Cellpose CPnet weights file"),
    ("malformed-json", malformed_field_json, ["--channels", "0"], {"channels": (0,)},
     "A/1/0/.zattrs: not valid JSON"),
    ("absolute-well-path", absolute_well_path, ["--channels", "0"], {"channels": (0,)},
     "lists well '/A/1'"),
    ("name-zattrs", nothing, ["--channels", "0", "--name", ".zattrs"],
     {"channels": (0,), "name": ".zattrs"}, "must not start with '.'"),
    ("name-empty", nothing, ["--channels", "0", "--name", ""],
     {"channels": (0,), "name": ""}, "must not be empty"),
    ("name-dotdot", nothing, ["--channels", "0", "--name", "../x"],
     {"channels": (0,), "name": "../x"}, "label name"),
    ("duplicate-channels", nothing, ["--channels", "0,0"], {"channels": (0, 0)},
     "listed more than once"),
    ("same-channel-by-name", nothing, ["--channels", "0,cyto-reporter"],
     {"channels": (0, "cyto-reporter")}, "the same channel"),
    ("empty-timepoint-range", nothing, ["--channels", "0", "--timepoints", "5:2"],
     {"channels": (0,), "timepoints": slice(5, 2)}, "select none of the 2 timepoint(s)"),
    ("timepoints-beyond-the-data", nothing, ["--channels", "0", "--timepoints", "7:"],
     {"channels": (0,), "timepoints": slice(7, None)}, "select none"),
    ("no-such-timepoint", nothing, ["--channels", "0", "--timepoints", "3"],
     {"channels": (0,), "timepoints": [3]}, "do not exist"),
    ("performance-report-folder-missing", nothing,
     ["--channels", "0", "--performance-report", "{tmp}/missing/deeper/r.html"], None,
     "folder {tmp}/missing/deeper does not exist"),
    ("no-scheduler-there", nothing,
     ["--channels", "0", "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "1"],
     None, "no Dask scheduler answered at tcp://127.0.0.1:1 within 1 s"),
    ("workers-zero", nothing, ["--channels", "0", "--workers", "0"], None,
     "--workers: expected a whole number between 1"),
    ("workers-negative", nothing, ["--channels", "0", "--workers=-3"], None,
     "--workers: expected a whole number between 1"),
    ("tile-size-tiny", nothing, ["--channels", "0", "--tile-size", "8"],
     {"channels": (0,), "tile_size": 8}, "between 64 and 16384 px; got 8"),
    ("halo-negative", nothing, ["--channels", "0", "--halo=-1"],
     {"channels": (0,), "halo": -1}, "halo"),
]


def _fmt(value, tmp: Path):
    if isinstance(value, str):
        return value.format(tmp=tmp)
    return value


@pytest.mark.parametrize(("setup", "args", "kwargs", "fragment"),
                         [c[1:] for c in SEGMENT_CASES], ids=[c[0] for c in SEGMENT_CASES])
def test_segment_refuses_bad_input(setup, args, kwargs, fragment, plate, tmp_path, capsys):
    setup(plate, tmp_path)
    watched = (tmp_path,)
    before = snapshot(*watched)
    capsys.readouterr()
    argv = ["segment", str(plate), *[_fmt(a, tmp_path) for a in args]]
    if "--scheduler" not in args and "--workers" not in " ".join(args):
        argv += SEG
    elif "--scheduler" in args:
        argv += ["--no-progress"]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argument errors are the parser's: one line, status 2
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert _fmt(fragment, tmp_path) in err[0]
    assert "Traceback" not in "\n".join(err)
    assert snapshot(*watched) == before, "something was written"
    if kwargs is None:
        return
    kw = {k: _fmt(v, tmp_path) for k, v in kwargs.items()}
    selection = {k: kw.pop(k) for k in ("timepoints",) if k in kw}
    with pytest.raises((ValueError, KeyError, FileNotFoundError, PermissionError)) as raised:
        segment(str(plate), SegmentationConfig(**kw), **selection)
    message = raised.value.args[0] if isinstance(raised.value, KeyError) else str(raised.value)
    assert _fmt(fragment, tmp_path) in message
    if "argument --" not in err[0]:  # the same message from Python and the command line
        assert message in err[0]
    assert snapshot(*watched) == before, "something was written"


EVALUATE = ["--pred", "gt_nuclei", "--gt", "gt_cyto"]


@pytest.mark.parametrize(("setup", "args", "fragment"), [
    (an_output_folder, [*EVALUATE, "--csv", "{tmp}/scores"], "is a folder"),
    (nothing, [*EVALUATE, "--json", "{tmp}/missing/s.json"],
     "folder {tmp}/missing does not exist"),
    (nothing, ["--pred", "../x", "--gt", "gt_cyto"], "label name"),
], ids=["csv-is-a-folder", "json-folder-missing", "pred-leaves-the-plate"])
def test_evaluate_refuses_bad_outputs_before_scoring(setup, args, fragment, plate, tmp_path,
                                                      capsys):
    setup(plate, tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", str(plate), *[_fmt(a, tmp_path) for a in args]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and _fmt(fragment, tmp_path) in err[0], err
    assert snapshot(tmp_path) == before
    if "--csv" in args:
        result = evaluate_plate(str(plate), pred="gt_nuclei", gt="gt_cyto")
        with pytest.raises(IsADirectoryError, match="is a folder"):
            write_scores(result, csv_path=str(tmp_path / "scores"))


@pytest.mark.parametrize(("doc", "fragment"), [
    ("version: 1\nplates: [p.zarr]\nsegment:\n  - organelle: cyto\n    channels: [0]\n"
     "    diameter: .nan\n", "segment[0].diameter"),
    ("version: 1\nplates: [p.zarr]\nsegment:\n  - organelle: cyto\n    channels: [0, 0]\n",
     "listed more than once"),
    ("version: 1\nplates: [p.zarr]\nsegment:\n  - organelle: cyto\n    channels: [0]\n"
     "    timepoints: '5:2'\n", "segment[0].timepoints"),
    ("version: 1\nplates: [p.zarr]\nsegment:\n  - organelle: cyto\n    channels: [0]\n"
     "    name: .zattrs\n", "segment[0].name"),
    ("version: 1\nplates: [p.zarr]\nsegment:\n  - organelle: cyto\n    channels: [0]\n"
     "cluster:\n  kind: local\n  workers: 0\n", "cluster.workers"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, "
     "*c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, "
     "*e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", "alias"),
], ids=["diameter-nan", "duplicate-channels", "empty-range", "name-zattrs", "workers-zero",
        "alias-bomb"])
def test_job_file_refused_in_one_pass(doc, fragment, tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(doc)
    before = snapshot(tmp_path)
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_unreachable_scheduler_in_a_job_file(plate, tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(f"version: 1\nplates: [{plate}]\nsegment:\n  - organelle: cyto\n"
                   "    channels: [0]\ncluster:\n  kind: scheduler\n"
                   "  address: tcp://127.0.0.1:1\n  timeout: 1\n")
    before = snapshot(tmp_path)
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no Dask scheduler answered at tcp://127.0.0.1:1")
    assert snapshot(tmp_path) == before  # not even the records folder


# ------------------------------------------------------------- read-only plate


@contextmanager
def read_only(folder: Path):
    """Make a folder read-only for this process: permission bits, or a read-only mount
    for root (whom permission bits do not stop)."""
    if os.geteuid() != 0:
        modes = {}
        for p in [folder, *folder.rglob("*")]:
            modes[p] = p.stat().st_mode
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"running as root without the right to mount: cannot make a plate "
                    f"read-only ({bind.stderr.decode().strip()})")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)],
                            capture_output=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only: {ro.stderr.decode().strip()}")
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_plate(plate, tmp_path, capsys):
    before = snapshot(plate)
    with read_only(plate):
        code = main(["segment", str(plate), "--channels", "0", *SEG])
        err = capsys.readouterr().err.strip().splitlines()
        with pytest.raises(PermissionError, match="read-only"):
            segment(str(plate), SegmentationConfig(channels=(0,)))
    assert code == 2 and len(err) == 1 and "read-only" in err[0], err
    assert snapshot(plate) == before


# ------------------------------------------------------ partial --overwrite


def test_overwrite_of_some_timepoints_keeps_the_others(plate, tmp_path, capsys):
    common = ["segment", str(plate), "--channels", "0,1", "--tile-size", "64", "--diameter",
              "20", *SEG]
    assert main(common) == 0
    info = open_plate(plate).field("A/1/0")
    label = open_labels(info, "cyto")
    clean = label.read()
    assert label_record(label)["done"] == [0, 1]
    # mark timepoint 1 so that any rewrite of it would show
    arr = label.open_array(0)
    marked = clean.copy()
    marked[1] = np.where(clean[1] > 0, clean[1] + 1000, 0)
    arr[...] = marked
    capsys.readouterr()
    assert main([*common, "--overwrite", "--timepoints", "0"]) == 0
    assert "2 done, 0 skipped" in capsys.readouterr().out  # t=0 of both fields
    after = open_labels(open_plate(plate).field("A/1/0"), "cyto")
    data = after.read()
    assert np.array_equal(data[1], marked[1])  # timepoint 1 untouched
    assert np.array_equal(data[0], clean[0])  # timepoint 0 redone, the same
    assert label_record(after)["done"] == [0, 1]
    # other settings for part of the label image: refused, nothing changes
    before = snapshot(plate)
    assert main([*common, "--overwrite", "--timepoints", "0", "--flow-threshold", "0.8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot mix settings" in err[0] and "[1]" in err[0]
    assert snapshot(plate) == before
    # a label image written by something else: only a whole overwrite
    assert main([*common, "--overwrite", "--timepoints", "0", "--name", "gt_cyto"]) == 2
    assert "not written by a segmentation run" in capsys.readouterr().err
    assert snapshot(plate) == before
    # other settings for every timepoint: the whole label image is redone
    assert main([*common, "--overwrite", "--flow-threshold", "0.8", "--wells", "A/2"]) == 0
    redone = open_labels(open_plate(plate).field("A/2/0"), "cyto")
    assert label_record(redone)["flow_threshold"] == 0.8 and label_record(redone)["done"] == [0, 1]
    kept = open_labels(open_plate(plate).field("A/1/0"), "cyto")
    assert label_record(kept)["flow_threshold"] == 0.4  # the other well untouched


def test_other_tile_size_on_resume_is_refused_up_front(plate, tmp_path, capsys):
    base = ["segment", str(plate), "--channels", "0", "--diameter", "20", *SEG]
    assert main([*base, "--tile-size", "64", "--timepoints", "0"]) == 0
    before = snapshot(plate)
    capsys.readouterr()
    assert main([*base, "--tile-size", "128"]) == 2
    err = capsys.readouterr().err
    assert "64x64 px chunks" in err and "--tile-size 64" in err
    assert snapshot(plate) == before


# ------------------------------------------------------ interruption and pipes


def _done(plate: Path, field: str) -> int:
    try:
        return len(label_record(open_labels(open_plate(plate).field(field), "cyto"))["done"])
    except (KeyError, FileNotFoundError, ValueError):
        return 0


def _default_ctrl_c() -> None:
    """Give the child Ctrl-C's default action, as a terminal does.

    A shell starts background jobs with SIGINT ignored, and a child inherits that (Python
    then installs no KeyboardInterrupt handler): the test must not depend on how it was run.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tmp_path, permutation_equal):
    N_T = 6  # noqa: N806 - the first unit is recorded at once, the rest every 2 s: still busy
    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=1, timepoints=N_T, size=96, seed=2)
    clean = tmp_path / "clean.zarr"
    shutil.copytree(path, clean)
    args = ["segment", "--channels", "0", "--tile-size", "64", "--diameter", "20",
            "--workers", "1", "--no-progress"]
    proc = subprocess.Popen([*CLI, args[0], str(path), *args[1:]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_default_ctrl_c)
    deadline = time.time() + 240
    while _done(path, "A/1/0") < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "rerun the same command to resume" in last.lower()
    kept = _done(path, "A/1/0")
    assert 1 <= kept < N_T
    rerun = subprocess.run([*CLI, args[0], str(path), *args[1:]], capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{N_T - kept} done, {kept} skipped" in rerun.stdout
    assert main([args[0], str(clean), *args[1:]]) == 0
    got = open_labels(open_plate(path).field("A/1/0"), "cyto").read()
    want = open_labels(open_plate(clean).field("A/1/0"), "cyto").read()
    assert all(permutation_equal(got[t], want[t]) for t in range(N_T))


@pytest.mark.parametrize("where", ["run", "start"])
def test_an_error_a_library_made_of_the_signal_still_says_interrupted(where, capsys,
                                                                       monkeypatch):
    """A Ctrl-C that lands inside a C extension's import comes back as that library's own
    error (pandas: 'PyCapsule_Import could not import module "pandas"'): still one
    "interrupted" line and status 130, not an error."""
    import argparse

    import structfree_dask.cli as cli
    from structfree_dask.runtime.interrupts import watch

    def broken_by_the_signal(*_args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise ImportError('PyCapsule_Import could not import module "pandas"') from None

    if where == "run":
        args = argparse.Namespace(func=broken_by_the_signal, debug=False, verbose=0)
        with watch() as by:
            assert cli._run(args, by) == 130
    else:  # while the command line's modules load
        monkeypatch.setattr(cli, "build_parser", broken_by_the_signal)
        assert cli.main(["info", "x.zarr"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("interrupted: ")


def test_ctrl_c_before_the_handlers_are_in_place_says_interrupted():
    """The signal handlers' own module may still be loading when Ctrl-C lands (its import
    is the command line's first step): one line and status 130 there too."""
    code = ("import sys\n"
            "class Interrupted:  # Ctrl-C while the handlers' module is found\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name == 'structfree_dask.runtime.interrupts':\n"
            "            raise KeyboardInterrupt\n"
            "from structfree_dask.cli import main\n"
            "sys.meta_path.insert(0, Interrupted())\n"
            "sys.exit(main(['info', 'x.zarr']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 130, out.stderr
    assert out.stderr == "interrupted: nothing was done\n"


@pytest.mark.parametrize(("delay", "signum", "status"), [
    (0.2, signal.SIGINT, 130), (1.0, signal.SIGINT, 130), (2.0, signal.SIGINT, 130),
    (3.0, signal.SIGINT, 130), (4.0, signal.SIGINT, 130), (3.0, signal.SIGTERM, 143),
], ids=["int-0.2s", "int-1s", "int-2s", "int-3s", "int-4s", "term-3s"])
def test_a_signal_from_the_first_instant_stops_with_one_line(delay, signum, status, template,
                                                            tmp_path, installed_command):
    """Ctrl-C (or SIGTERM) while modules load, the cluster starts or units run: one line,
    the signal's status, never a traceback, never a run that goes on to exit 0."""
    path = tmp_path / "p.zarr"
    shutil.copytree(template, path)
    proc = subprocess.Popen([*installed_command, "segment", str(path), "--channels", "0,1",
                             "--diameter", "20", "--workers", "1", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_ctrl_c)
    time.sleep(delay)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signum)
    out, err = proc.communicate(timeout=180)
    if proc.returncode == 1 and "<frozen site>" in err:  # a very busy machine
        pytest.skip("the signal landed while the interpreter itself was starting (site.py), "
                    "before any code of the package runs: Python's own behaviour")
    assert proc.returncode == status, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("interrupted: "), err
    # a worker whose interpreter is starting at that very moment may print its own
    # traceback (distributed spawns it before any of our code runs there); the driver never
    if delay < 1:
        assert len(lines) == 1 and "Traceback" not in err, err


def test_broken_pipe_ends_quietly(template, cli_env):
    proc = subprocess.Popen([*CLI, "evaluate", str(template), "--pred", "gt_nuclei", "--gt",
                             "gt_cyto"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=cli_env)  # stdout buffered: the broken pipe shows at exit
    proc.stdout.close()  # the reader is gone before the table is printed (`| head -0`)
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert "Exception ignored" not in err, err
    assert proc.returncode == 141, err


@pytest.mark.parametrize("flag", ["--debug", "-v", "-vv"])
def test_debug_shows_the_traceback_and_keeps_the_status(flag, plate, capsys):
    """--debug and -v show the traceback; the exit status stays that of bad input."""
    assert main([flag, "segment", str(plate), "--channels", "0,0", *SEG]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    assert "listed more than once" in err.strip().splitlines()[-1]


def test_close_client_after_the_cluster_is_gone(caplog):
    """Closing a client whose cluster already went away logs nothing above debug."""
    from structfree_dask.runtime.cluster import close_client, local_client

    client = local_client(n_workers=1, memory_limit="2GiB")
    client.cluster.close()
    close_client(client)
    assert not [r for r in caplog.records if r.levelno >= 30 and "structfree" in r.name]


def test_cluster_settings_from_python():
    """The Python side of --scheduler and --workers: the same refusals, nothing started."""
    from structfree_dask.runtime.cluster import SchedulerUnreachableError, connect, local_client

    with pytest.raises(SchedulerUnreachableError,
                       match="no Dask scheduler answered at tcp://127.0.0.1:1 within 1 s"):
        connect("tcp://127.0.0.1:1", timeout=1)
    with pytest.raises(ValueError, match="expected PROTOCOL://HOST:PORT"):
        connect("127.0.0.1:8786")
    with pytest.raises(ValueError, match="scheduler timeout: expected a finite number"):
        connect("tcp://127.0.0.1:1", timeout=float("nan"))
    for n in (0, -3):
        with pytest.raises(ValueError, match="workers: expected a whole number between 1"):
            local_client(n_workers=n)
