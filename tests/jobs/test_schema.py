"""Job files (jobs.schema): every mistake named where it is, in one pass; safe YAML.

A job entry and the command line build the same settings through one schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from structfree_dask import limits
from structfree_dask.cli import main
from structfree_dask.config import SegmentationConfig
from structfree_dask.jobs import schema as job_module
from structfree_dask.jobs.schema import JobError, load_job, parse_job

GOOD = {"version": 1, "plates": ["p.zarr"],
        "segment": [{"organelle": "cyto", "channels": [0, 1]}]}
NAN, INF = float("nan"), float("inf")


def _write(folder: Path, doc: dict | str, name: str = "job.yaml") -> Path:
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def _with(task: dict | None = None, cluster: dict | None = None) -> dict:
    doc = {**GOOD, "segment": [{**GOOD["segment"][0], **(task or {})}]}
    if cluster is not None:
        doc["cluster"] = cluster
    return doc


def _problems(path: Path) -> list[str]:
    with pytest.raises(JobError) as info:
        load_job(path, check_files=False)
    assert str(info.value).startswith(f"{path}: {len(info.value.problems)} problem(s):")
    return info.value.problems


def test_job_file_mistakes_give_one_message_each(tmp_path, capsys, segment_entry):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "version": 2,
        "plates": ["p.zarr"],
        "segment": [
            {"organelle": "nucleus", "channels": [0], "tile_size": 10},
            {"organelle": "cyto", "zoo": "z", "name": "../escape"},
            {"organelle": "cyto", "channels": [0], "wells": ["A1"], "fusion": "avg", "name": "c2"},
        ],
        "cluster": {"kind": "scheduler", "workers": 2, "adress": "x"},
        "recrods": "runs",
    }))
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    expected = [
        "version: this program reads version 1; got 2",
        "segment[0].organelle: expected one of cyto, nuclei; got 'nucleus'",
        "segment[0].tile_size: expected a whole number between 64 and 16384 px; got 10",
        "segment[1].cell_line: missing",
        "segment[1].name: ",
        "segment[2].wells: expected wells as ROW/COLUMN",
        "segment[2].fusion: expected one of fa, voting, majority, staple, simple; got 'avg'",
        "cluster.adress: unknown key (did you mean 'address'?",
        "cluster.address: missing",
        "cluster.workers: only used for clusters started here",
        "recrods: unknown key (did you mean 'records'?",
    ]
    for e in expected:
        assert e in err, e
    n = int(err.split(" problem(s)")[0].rsplit(" ", 1)[-1])
    assert n == len(expected) == err.count("\n  - ")
    with pytest.raises(JobError, match="not valid YAML"):
        (tmp_path / "broken.yaml").write_text("plates: [a\n")
        load_job(tmp_path / "broken.yaml")
    with pytest.raises(FileNotFoundError, match="job file not found"):
        load_job(tmp_path / "none.yaml")
    job = parse_job({"version": 1, "plates": ["x/*.zarr"], "segment": [segment_entry]},
                    base=tmp_path)
    assert job.plate_paths() == [] and job.cluster.kind == "local"


@pytest.mark.parametrize(("task", "cluster", "expected"), [
    ({"diameter": NAN}, None,
     "segment[0].diameter: expected a finite number between 0.001 and 100000 px; got nan"),
    ({"diameter": INF}, None, "segment[0].diameter: expected a finite number"),
    ({"diameter": -INF}, None, "segment[0].diameter: expected a finite number"),
    ({"diameter": 0}, None, "segment[0].diameter: expected a finite number"),
    ({"diameter": -5}, None, "; got -5"),
    ({"diameter": 1e6}, None, "; got 1e+06"),
    ({"diameter": True}, None, "segment[0].diameter: expected a finite number"),
    ({"diameter": "20"}, None, "; got '20'"),
    ({"tile_size": 10}, None,
     "segment[0].tile_size: expected a whole number between 64 and 16384 px; got 10"),
    ({"tile_size": 100_000}, None, "segment[0].tile_size: expected a whole number"),
    ({"tile_size": 256.5}, None, "segment[0].tile_size: expected a whole number"),
    ({"tile_size": NAN}, None, "segment[0].tile_size: expected a whole number"),
    ({"tile_size": 10**400}, None, "segment[0].tile_size: expected a whole number between "
                                   "64 and 16384 px; got a number of 401 digits"),
    ({"halo": -1}, None, "segment[0].halo: expected a whole number between 0 and 4096 px"),
    ({"halo": INF}, None, "segment[0].halo: expected a whole number"),
    ({"batch_size": 0}, None, "segment[0].batch_size: expected a whole number between 1 and "
                              "4096; got 0"),
    ({"batch_size": False}, None, "segment[0].batch_size: expected a whole number"),
    (None, {"kind": "local", "workers": 0},
     "cluster.workers: expected a whole number between 1 and 4096; got 0"),
    (None, {"kind": "local", "workers": INF}, "cluster.workers: expected a whole number"),
    (None, {"kind": "local", "workers": True}, "cluster.workers: expected a whole number"),
    (None, {"kind": "local", "threads_per_worker": 2000},
     "cluster.threads_per_worker: expected a whole number between 1 and 1024; got 2000"),
    (None, {"kind": "local", "threads_per_worker": NAN},
     "cluster.threads_per_worker: expected a whole number"),
])
def test_numbers_out_of_bounds_or_not_finite_are_refused(tmp_path, task, cluster, expected):
    problems = _problems(_write(tmp_path, _with(task, cluster)))
    assert len(problems) == 1 and expected in problems[0], problems


def test_numbers_within_bounds_are_kept(tmp_path):
    job = load_job(_write(tmp_path, _with(
        {"diameter": 17, "tile_size": 512.0, "halo": 0, "batch_size": 4096},
        {"kind": "local", "workers": 4096, "threads_per_worker": 1})))
    task = job.tasks[0]
    given = task.settings
    assert given["diameter"] == 17.0 and isinstance(given["diameter"], float)
    assert given["tile_size"] == 512 and isinstance(given["tile_size"], int)
    assert (given["halo"], given["batch_size"]) == (0, 4096)
    assert (job.cluster.workers, job.cluster.threads_per_worker) == (4096, 1)


def _plain(v):
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def test_module_docstring_lists_the_bounds():
    doc = job_module.__doc__
    diameter = SegmentationConfig.settings_fields()["diameter"].metadata["setting"].bounds
    for key, bounds in [("segment[i].diameter", diameter),
                        ("segment[i].tile_size", limits.TILE_SIZE),
                        ("segment[i].flow_threshold", limits.FLOW_THRESHOLD),
                        ("segment[i].cellprob_threshold", limits.CELLPROB_THRESHOLD),
                        ("segment[i].min_size", limits.MIN_SIZE),
                        ("segment[i].halo", limits.HALO),
                        ("segment[i].batch_size", limits.BATCH_SIZE),
                        ("cluster.workers", limits.WORKERS),
                        ("cluster.threads_per_worker", limits.THREADS),
                        ("cluster.timeout", limits.SCHEDULER_TIMEOUT),
                        ("cells.max_distance", limits.MAX_DISTANCE)]:
        line = next(ln for ln in doc.splitlines() if f"``{key}``:" in ln)
        assert f"{_plain(bounds[0])} to {_plain(bounds[1])}" in line, line


@pytest.mark.parametrize(("value", "expected"), [
    (None, 10.0), (2.5, 2.5), (30, 30.0), (limits.SCHEDULER_TIMEOUT[1], 3600.0)])
def test_cluster_timeout_parses(tmp_path, value, expected):
    cluster = {"kind": "scheduler", "address": "tcp://127.0.0.1:8786"}
    if value is not None:
        cluster["timeout"] = value
    job = load_job(_write(tmp_path, _with(cluster=cluster)))
    assert job.cluster.timeout == expected and isinstance(job.cluster.timeout, float)


@pytest.mark.parametrize("value", [-1, 0, NAN, INF, 1e9, True, "10s"])
def test_cluster_timeout_is_refused_when_not_a_sensible_number(tmp_path, value):
    problems = _problems(_write(tmp_path, _with(cluster={
        "kind": "scheduler", "address": "tcp://127.0.0.1:8786", "timeout": value})))
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "cluster.timeout: expected a finite number between 0.1 and 3600 s; got "), problems


@pytest.mark.parametrize(("task", "expected"), [
    ({"timepoints": "5:2"}, "segment[0].timepoints: expected a range whose stop is after "
                            "its start, like '0:5' or '2:'; got '5:2', which selects no"),
    ({"timepoints": "3:3"}, "segment[0].timepoints: expected a range whose stop is after"),
    ({"timepoints": [1, 2, 1]}, "segment[0].timepoints: expected each timepoint once; "
                                "listed more than once: [1]"),
    ({"timepoints": []}, "segment[0].timepoints: expected a timepoint, a list of them"),
    ({"timepoints": "1" * 30 + ":"}, "segment[0].timepoints: expected a timepoint"),
    ({"timepoints": -1}, "segment[0].timepoints: expected a timepoint"),
    ({"wells": []}, "segment[0].wells: expected a list of wells like ['A/1', 'B/3']; got []"),
    ({"wells": ["A/1", "B/2", "A/1"]}, "segment[0].wells: expected each well once; listed "
                                       "more than once: ['A/1']"),
    ({"name": ""}, "segment[0].name: expected a label name that is one path component"),
    ({"name": ".zattrs"}, "segment[0].name: expected a label name that is one path "
                          "component: label name must not start with '.'"),
    ({"name": "a/b"}, "segment[0].name: expected a label name"),
    ({"name": "a\\b"}, "segment[0].name: expected a label name"),
    ({"name": ".."}, "segment[0].name: expected a label name"),
    ({"name": 7}, "segment[0].name: expected a label name"),
    ({"precision": "fp64"}, "segment[0].precision: expected one of auto, fp32, bf16, fp16; "
                            "got 'fp64'"),
])
def test_selections_and_names_that_cannot_work_are_refused(tmp_path, task, expected):
    problems = _problems(_write(tmp_path, _with(task)))
    assert len(problems) == 1 and expected in problems[0], problems


def test_selections_that_select_something_are_kept(tmp_path):
    doc = _with({"timepoints": "2:5", "wells": ["A/1", "B/2"], "name": "cyto_2"})
    doc["segment"].append({"organelle": "nuclei", "channels": [1], "timepoints": [3, 0]})
    doc["segment"].append({"organelle": "cyto", "channels": [0], "timepoints": "4:"})
    job = load_job(_write(tmp_path, doc))
    assert job.tasks[0].timepoints == slice(2, 5) and job.tasks[0].wells == ("A/1", "B/2")
    assert job.tasks[0].label_name == "cyto_2"
    assert job.tasks[1].timepoints == (3, 0) and job.tasks[2].timepoints == slice(4, None)


def test_every_mistake_with_a_nan_is_reported_in_one_pass(tmp_path):
    doc = {"version": True, "plates": ["ok.zarr", 3, ""],
           "segment": [{"organelle": "cyto", "channels": [0], "diameter": NAN,
                        "tile_size": INF, "halo": -2, "batch_size": 1.5,
                        "timepoints": "5:2", "wells": ["A/1", "A/1"], "name": ".zattrs"},
                       {"organelle": "nuclei", "channels": [1], "timepoints": [0, 0]}],
           "cluster": {"kind": "local", "workers": 0, "threads_per_worker": NAN,
                       "timeout": -1}}
    problems = _problems(_write(tmp_path, doc))
    expected = [
        "version: this program reads version 1; got True",
        "plates[1]: expected a plate path or glob pattern; got 3",
        "plates[2]: expected a plate path or glob pattern; got ''",
        # settings in the order of the file (written with sorted keys)
        "segment[0].batch_size: expected a whole number between 1 and 4096; got 1.5",
        "segment[0].diameter: expected a finite number between 0.001 and 100000 px; got nan",
        "segment[0].halo: expected a whole number between 0 and 4096 px; got -2",
        "segment[0].name: expected a label name",
        "segment[0].tile_size: expected a whole number between 64 and 16384 px; got inf",
        "segment[0].wells: expected each well once",
        "segment[0].timepoints: expected a range whose stop is after its start",
        "segment[1].timepoints: expected each timepoint once",
        "cluster.threads_per_worker: expected a whole number between 1 and 1024; got nan",
        "cluster.timeout: expected a finite number between 0.1 and 3600 s; got -1",
        "cluster.workers: expected a whole number between 1 and 4096; got 0",
    ]
    assert len(problems) == len(expected), problems
    for e, p in zip(expected, problems, strict=True):
        assert p.startswith(e), (e, p)


def _alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": 9 ** levels items (about 4e8 for 9 levels) in 10 lines."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    names = "abcdefghijklmnopqrstuvwxyz"
    for prev, cur in zip(names[:levels - 1], names[1:levels], strict=True):
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("loader", job_module._LOADERS, ids=lambda c: c.__name__)
def test_alias_bomb_is_refused_before_it_is_expanded(tmp_path, monkeypatch, loader):
    monkeypatch.setattr(job_module, "_LOADERS", (loader,))
    path = _write(tmp_path, _alias_bomb())
    problems = _problems(path)  # refused from the node graph: expanding it would take GBs
    assert problems == ["the YAML expands to more than 100000 items through anchors/aliases "
                        "(an alias bomb?); write the job without deep aliases"]
    assert "alias bomb" in _problems(_write(tmp_path, _alias_bomb(6), "six.yaml"))[0]  # 5e5
    assert "alias bomb" not in " ".join(  # 9 ** 5 = 59049 items: within the limit
        _problems(_write(tmp_path, _alias_bomb(5), "five.yaml")))
    recursive = _write(tmp_path, "plates: &p [*p]\n", "recursive.yaml")
    assert "an anchor is used inside itself" in _problems(recursive)[0]


@pytest.mark.parametrize("loader", job_module._LOADERS, ids=lambda c: c.__name__)
def test_normal_anchors_and_aliases_still_work(tmp_path, monkeypatch, loader):
    monkeypatch.setattr(job_module, "_LOADERS", (loader,))
    path = _write(tmp_path, """\
version: 1
plates: &plates [a.zarr, b.zarr]
segment:
  - &cyto {organelle: cyto, channels: &ch [0, 1], diameter: 30, tile_size: 256}
  - <<: *cyto
    organelle: nuclei
    channels: *ch
    halo: 16
""")
    job = load_job(path)
    assert job.plates == (str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"))
    cyto, nuclei = job.tasks
    assert cyto.settings == {"organelle": "cyto", "channels": (0, 1), "diameter": 30.0,
                             "tile_size": 256}
    assert nuclei.settings == {"organelle": "nuclei", "channels": (0, 1), "diameter": 30.0,
                               "tile_size": 256, "halo": 16}


@pytest.mark.parametrize(("text", "expected"), [
    ("version: !!python/object/apply:os.system ['echo unsafe']\n", "not valid YAML"),
    ("version: 1\nplates: [a\n", "not valid YAML"),
    ("version: " + "9" * 5000 + "\n", "not valid YAML"),
    (b"version: 1\nplates: ['\xff\xfe\xfa']\n", "not valid YAML"),
    ("plates: " + "[" * 2000 + "]" * 2000 + "\n", "not valid YAML"),
])
@pytest.mark.parametrize("loader", job_module._LOADERS, ids=lambda c: c.__name__)
def test_unreadable_yaml_is_a_job_error(tmp_path, monkeypatch, loader, text, expected):
    monkeypatch.setattr(job_module, "_LOADERS", (loader,))
    path = tmp_path / "job.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    problems = _problems(path)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    assert not (tmp_path / "unsafe").exists()


def test_a_home_folder_that_cannot_be_expanded_is_a_problem(tmp_path):
    user = "~no_such_user_structfree"
    problems = _problems(_write(tmp_path, {**GOOD, "plates": [f"{user}/p.zarr", "q.zarr"]}))
    assert problems == [f"plates[0]: cannot expand {user!r} (no such user or no home "
                        f"folder); got '{user}/p.zarr'"]


@pytest.mark.parametrize("value", [
    "a", "a/b.zarr", "/abs/p.zarr", "./a", "a/./b", "a//b", "a/", "a/.", ".", "..", "../a",
    "a/../b", ".hidden/p", "//net/p", "///x", "a b/c*d", "~", "~/p.zarr", "a/~b", "é/ü.zarr"])
@pytest.mark.parametrize("base", [".", "/", "/data/run 1", "rel/x"])
def test_plate_paths_are_resolved_as_pathlib_would(value, base):
    ck = job_module._Checker()
    fast = job_module._resolve_all(Path(base), [value], ck, "plates")
    p = Path(value).expanduser()
    assert fast == [str(p if p.is_absolute() else Path(base) / p)] and not ck.problems


def test_a_job_of_300000_plates_parses_and_lists_them(tmp_path):
    n = 300_000
    (tmp_path / "g").mkdir()
    for name in ("y.zarr", "x.zarr"):
        (tmp_path / "g" / name).mkdir()
    plates = [f"plates/p{i:06d}.zarr" for i in range(n)]
    lines = ["version: 1", "plates:", *(f"  - {p}" for p in plates),
             "  - plates/p000000.zarr", "  - g/*.zarr", "  - g/x.zarr",
             "segment:", "  - {organelle: cyto, channels: [0, 1]}"]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    job = load_job(path)
    assert len(job.plates) == n + 3
    paths = job.plate_paths()
    assert len(paths) == n + 2
    assert paths[:2] == [str(tmp_path / "plates" / "p000000.zarr"),
                         str(tmp_path / "plates" / "p000001.zarr")]
    assert paths[-2:] == [str(tmp_path / "g" / "x.zarr"), str(tmp_path / "g" / "y.zarr")]
    assert len(set(paths)) == len(paths)


@pytest.mark.parametrize(("text", "fragment"), [
    (yaml.safe_dump(_with({"diameter": NAN})), "segment[0].diameter: expected a finite"),
    (_alias_bomb(), "an alias bomb?"),
])
def test_cli_exits_2_with_one_error_message(tmp_path, capsys, text, fragment):
    path = _write(tmp_path, text)
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert err[0] == f"error: {path}: 1 problem(s):", err
    assert len(err) == 2 and err[1].startswith("  - ") and fragment in err[1], err


def test_job_files_accept_every_setting_of_segment(tmp_path):
    """A job entry and the command line build the same settings, through one schema."""
    from structfree_dask.cli import build_parser
    from structfree_dask.cli._common import given_settings
    from structfree_dask.jobs.runner import task_config

    values = {"organelle": "nuclei", "channels": [0, "mito"], "model": "cyto3", "name": "n2",
              "diameter": 17.5, "tile_size": 256, "halo": 12, "batch_size": 3, "precision": "bf16",
              "cellprob_threshold": -0.5, "flow_threshold": 0.7, "min_size": 30,
              "overwrite": True, "fusion": "staple"}
    on_cli = {n for n, f in SegmentationConfig.settings_fields().items()
              if f.metadata["setting"].cli}
    assert set(values) == on_cli  # a new setting must be added here, and works in both
    job = parse_job({"version": 1, "plates": ["p.zarr"], "segment": [values]}, base=tmp_path)
    from_job = task_config(job.tasks[0], str(tmp_path / "p.zarr"))
    argv = ["segment", "p.zarr"]
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        else:
            argv += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    args = build_parser().parse_args(argv)
    from_cli = SegmentationConfig.from_mapping(given_settings(args, SegmentationConfig))
    expected = SegmentationConfig(**{**values, "channels": (0, "mito")})
    assert from_job == from_cli == expected
    assert (expected.flow_threshold, expected.cellprob_threshold, expected.min_size) == (
        0.7, -0.5, 30)
    # absent settings take the one default, in both
    job = parse_job({"version": 1, "plates": ["p.zarr"],
                     "segment": [{"organelle": "cyto", "channels": [1]}]})
    args = build_parser().parse_args(["segment", "p.zarr", "--channels", "1"])
    assert task_config(job.tasks[0], "p.zarr") == SegmentationConfig.from_mapping(
        given_settings(args, SegmentationConfig)) == SegmentationConfig(channels=(1,))


def test_settings_problems_are_reported_together_by_job_cli_and_python(tmp_path, capsys):
    bad = {"flow_threshold": -1, "min_size": 2.5, "cellprob_threshold": NAN}
    problems = _problems(_write(tmp_path, _with(bad)))
    assert [p.split(":")[0] for p in problems] == [
        "segment[0].cellprob_threshold", "segment[0].flow_threshold", "segment[0].min_size"]
    with pytest.raises(ValueError) as raised:
        SegmentationConfig(channels=(0,), **bad)
    assert str(raised.value).startswith("3 problems: cellprob_threshold: expected")
    code = main(["segment", str(tmp_path / "p.zarr"), "--channels", "0",
                 "--flow-threshold=-1", "--min-size", "2.5", "--cellprob-threshold", "nan"])
    err = capsys.readouterr().err.strip().splitlines()
    # every problem at once, one line each: the lines Python gives
    assert code == 2 and err == [f"error: {line}" for line in raised.value.lines], err
    assert len(err) == 3


# ------------------------------------------------------------------ the cells section

CELLS = {"cells": "cyto", "nuclei": "nuclei", "table": "cyto_features", "channels": [0, "ER"],
         "link": True, "track": True, "tracked_labels": True, "max_distance": 12,
         "report": False}


def test_cells_block_parses_with_defaults(tmp_path):
    job = load_job(_write(tmp_path, {**GOOD, "cells": CELLS}))
    cells = job.cells
    assert (cells.cells, cells.nuclei, cells.table_name, cells.channels) == (
        "cyto", "nuclei", "cyto_features", (0, "ER"))
    assert (cells.link, cells.track, cells.tracked_labels, cells.report) == (
        True, True, True, False)
    assert cells.max_distance == 12.0 and isinstance(cells.max_distance, float)
    assert cells.outputs() == ("cyto_nuclei", "cyto_cytoplasm", "cyto_tracked")
    least = load_job(_write(tmp_path, {**GOOD, "cells": {"cells": "gt_cyto"}})).cells
    assert (least.nuclei, least.table_name, least.channels, least.link, least.track,
            least.max_distance, least.report) == (None, "gt_cyto_features", None, False,
                                                   False, None, True)
    linked = load_job(_write(tmp_path, {**GOOD, "cells": {"cells": "c", "nuclei": "n"}}))
    assert linked.cells.link and linked.cells.inputs == ("c", "n")
    assert load_job(_write(tmp_path, GOOD)).cells is None


@pytest.mark.parametrize(("cells", "expected"), [
    ({"cells": "c", "nucleus": "n"}, ["cells.nucleus: unknown key (did you mean 'nuclei'?"]),
    ({"nuclei": "n"}, ["cells.cells: missing"]),
    ({"cells": "c", "max_distance": 0, "track": True},
     ["cells.max_distance: expected a finite number between 0.001 and 100000 px; got 0"]),
    ({"cells": "c", "max_distance": NAN, "track": True}, ["cells.max_distance: expected a"]),
    ({"cells": "c", "max_distance": "12", "track": True}, ["cells.max_distance: expected a"]),
    ({"cells": "c", "max_distance": 5}, ["cells.max_distance: only used when tracking"]),
    ({"cells": "c", "tracked_labels": True}, ["cells.tracked_labels: only used when tracking"]),
    ({"cells": "c", "max_gap": 2}, ["cells.max_gap: only used when tracking"]),
    ({"cells": "c", "track": True, "max_gap": -1}, ["cells.max_gap: expected a whole number"]),
    ({"cells": "c", "track": True, "divisions": "no"}, ["cells.divisions: expected true or"]),
    ({"cells": "c", "region": 10}, ["cells.region: expected a whole number between 64 and"]),
    ({"cells": "c", "track": True, "measure": False}, ["cells.track: needs measure"]),
    ({"cells": "a/b"}, ["cells.cells: expected a label name that is one path component"]),
    ({"cells": 3}, ["cells.cells: expected a label name that is one path component"]),
    ({"cells": "c", "nuclei": ".."}, ["cells.nuclei: expected a label name"]),
    ({"cells": "c", "nuclei": "c"}, ["cells.nuclei: the same label image as cells ('c')"]),
    ({"cells": "c", "table": "x/y"}, ["cells.table: expected a table name that is one path"]),
    ({"cells": "c", "channels": []}, ["cells.channels: expected at least one channel"]),
    ({"cells": "c", "channels": [1, 1]}, ["cells.channels: expected each channel once"]),
    ({"cells": "c", "link": True}, ["cells.link: needs nuclei"]),
    ({"cells": "c", "track": "yes", "report": 1},
     ["cells.report: expected true or false; got 1",
      "cells.track: expected true or false; got 'yes'"]),
    (["c"], ["cells: expected a mapping with at least 'cells'; got ['c']"]),
])
def test_cells_mistakes_are_each_reported_where_they_are(tmp_path, cells, expected):
    problems = _problems(_write(tmp_path, {**GOOD, "cells": cells}))
    assert len(problems) == len(expected), problems
    for e in expected:
        assert any(p.startswith(e) for p in problems), (e, problems)


def test_cells_outputs_must_not_be_a_segment_entrys_label_image(tmp_path):
    cells = {"cells": "c", "nuclei": "n", "track": True, "tracked_labels": True}
    for name in ("c_nuclei", "c_cytoplasm", "c_tracked"):
        problems = _problems(_write(tmp_path, {**_with({"name": name}), "cells": cells}))
        assert problems == [f"cells: writes the label image {name!r}, which segment[0] "
                            "writes too; rename one"]


def test_cells_mistakes_come_with_the_others_in_one_pass(tmp_path):
    doc = {**_with({"tile_size": 10}), "cells": {"cels": "c", "max_distance": -1,
                                                 "track": True}}
    problems = _problems(_write(tmp_path, doc))
    assert [p.split(":")[0] for p in problems] == [
        "segment[0].tile_size", "cells.cels", "cells.cells", "cells.max_distance"], problems
