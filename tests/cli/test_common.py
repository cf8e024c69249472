"""cli._common: command-line options generated from the one schema, and the cluster options."""

from __future__ import annotations

import argparse
import re

import pytest

from structfree_dask.cli._common import (
    add_cluster_options,
    add_settings_options,
    checked_values,
    cluster_settings,
    given_settings,
)
from structfree_dask.config import CellsSettings, ClusterSettings, SettingsError


def _parser(**options) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_settings_options(p, CellsSettings, **options)
    return p


def test_every_command_line_field_is_an_option_and_absent_until_given():
    p = _parser()
    shown = {f"--{n.replace('_', '-')}" for n, f in CellsSettings.settings_fields().items()
             if f.metadata["setting"].cli}
    shown = {"--measure-channels" if o == "--channels" else o for o in shown}
    assert shown <= set(p._option_string_actions)
    assert given_settings(p.parse_args([]), CellsSettings) == {}  # the class's defaults apply
    args = p.parse_args(["--no-divisions", "--max-gap", "2", "--measure-channels", "0,ER",
                         "--no-link", "--region", "512"])
    assert given_settings(args, CellsSettings) == {
        "channels": [0, "ER"], "link": False, "max_gap": 2, "divisions": False,
        "region": 512}


def test_only_prefix_and_option_names():
    p = _parser(only=("channels", "region"), prefix="cells_", options={"channels": "--channels"})
    assert "--track" not in p._option_string_actions
    args = p.parse_args(["--channels", "1", "--region", "256"])
    assert vars(args) == {"cells_channels": [1], "cells_region": 256}
    assert given_settings(args, CellsSettings, "cells_") == {"channels": [1], "region": 256}


def test_values_are_checked_by_the_schema_every_problem_at_once():
    args = _parser().parse_args(["--region", "10", "--max-gap", "-1"])
    with pytest.raises(SettingsError) as info:
        checked_values(CellsSettings, given_settings(args, CellsSettings))
    assert [k for k, _ in info.value.problems] == ["max_gap", "region"]
    assert checked_values(CellsSettings, {"region": 512.0}) == {"region": 512}


def _cluster(argv: list[str]) -> ClusterSettings:
    p = argparse.ArgumentParser()
    add_cluster_options(p)
    return cluster_settings(p.parse_args(argv))


def test_cluster_options_build_the_cluster_settings():
    assert _cluster([]) == ClusterSettings()
    assert _cluster(["--workers", "3", "--threads-per-worker", "2"]) == ClusterSettings(
        workers=3, threads_per_worker=2)
    remote = _cluster(["--scheduler", "tcp://127.0.0.1:8786", "--scheduler-timeout", "2"])
    assert (remote.kind, remote.address, remote.timeout) == ("scheduler",
                                                              "tcp://127.0.0.1:8786", 2.0)
    with pytest.raises(SettingsError) as info:
        _cluster(["--scheduler", "tcp://127.0.0.1:8786", "--workers", "0"])
    assert [k for k, _ in info.value.problems] == ["--workers"]  # named as options
    with pytest.raises(SettingsError, match="--workers: only used for clusters started here"):
        _cluster(["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"])
    with pytest.raises(SettingsError, match="--scheduler: expected tcp://HOST:PORT"):
        _cluster(["--scheduler", "127.0.0.1:8786"])
    with pytest.raises(SettingsError, match="--tls-ca: missing"):
        _cluster(["--scheduler", "tls://127.0.0.1:8786"])


def test_cluster_options_sit_in_their_own_help_group():
    p = argparse.ArgumentParser()
    add_cluster_options(p)
    groups = {g.title: [a.dest for a in g._group_actions] for g in p._action_groups}
    assert {"cluster_kind", "cluster_workers", "cluster_address", "cluster_timeout",
            "no_progress"} <= set(groups["cluster"])


class _Terminal:
    """A stderr that says whether it is a terminal, and keeps what is written to it."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_in_a_log_is_plain_lines_now_and_then():
    """Where stderr is a file (a nightly job's log): no carriage returns, at most one line
    per period, and always the last count."""
    from structfree_dask.cli import _common

    err = _Terminal(tty=False)
    clock = iter([1000.0, 1001.0, 1010.0, 1031.0, 1032.0, 1040.0])
    progress = _common.ProgressBar(argparse.Namespace(no_progress=False), "field",
                                   clock=lambda: next(clock), stream=err)
    for done in (1, 2, 3, 4, 5):  # at 1001, 1010, 1031, 1032 and 1040 s
        progress(done, 5)
    progress.close()
    assert "\r" not in err.text
    assert err.text.splitlines() == ["progress: 3/5 field (60%), 0:31 elapsed, about 0:21 left",
                                     "progress: 5/5 field (100%), 0:40 elapsed"]
    assert (progress.done, progress.total) == (5, 5)


def test_progress_on_a_terminal_is_a_bar_whose_rate_is_over_the_run():
    from structfree_dask.cli import _common

    err = _Terminal(tty=True)
    progress = _common.ProgressBar(argparse.Namespace(no_progress=False), "field", stream=err)
    progress._started -= 10.0  # the run started 10 s before its first unit finished
    progress(1, 4)
    progress.close()
    assert "1/4" in err.text and "\r" in err.text
    # about 10 s per field over the run (the rate since the bar appeared would be huge)
    rate = re.search(r"([\d.]+)s/ field", err.text)
    assert rate and 9.0 < float(rate.group(1)) < 12.0, err.text
    quiet = _Terminal(tty=False)
    silent = _common.ProgressBar(argparse.Namespace(no_progress=True), "field", stream=quiet)
    silent(4, 4)
    assert quiet.text == "" and silent.done == 4


def test_progress_of_two_steps_times_each_from_the_end_of_the_one_before():
    """``segment --measure``: one progress for the segmentation, then the measuring; the
    second step's time runs from the end of the first, not from the start of the run."""
    from structfree_dask.cli import _common

    err = _Terminal(tty=False)
    clock = iter([0.0, 40.0, 80.0, 90.0, 100.0])
    progress = _common.ProgressBar(argparse.Namespace(no_progress=False), "field",
                                   clock=lambda: next(clock), stream=err)
    progress(1, 2)  # at 40 s: a line (the first period is over)
    progress(2, 2)  # at 80 s: the segmentation's last unit
    progress(1, 2)  # at 90 s: the measuring's first unit, 10 s after the segmentation ended
    progress(2, 2)  # at 100 s
    assert err.text.splitlines() == [
        "progress: 1/2 field (50%), 0:40 elapsed, about 0:40 left",
        "progress: 2/2 field (100%), 1:20 elapsed",
        "progress: 2/2 field (100%), 0:20 elapsed"]


def test_named_steps_say_their_name_and_unit():
    """``segment --measure --track``: each line names its step, a step its own unit."""
    from structfree_dask.cli import _common
    from structfree_dask.runtime.progress import for_step

    err = _Terminal(tty=False)
    # the times read: the bar made, each count, and each change of step
    clock = iter([0.0, 40.0, 45.0, 50.0, 60.0, 65.0, 75.0])
    progress = _common.ProgressBar(argparse.Namespace(no_progress=False), "field-timepoint",
                                   clock=lambda: next(clock), stream=err)
    segment = progress.named("segment")
    segment(2, 2)  # at 40 s
    measure = for_step(progress, "measure")
    measure(1, 2)  # at 50 s, 10 s after the segmentation ended: no line yet
    measure(2, 2)  # at 60 s: 20 s since the segmentation ended
    track = for_step(progress, "track", "field")
    track(1, 1)  # at 75 s: 15 s since the measuring ended
    assert err.text.splitlines() == [
        "segment: 2/2 field-timepoint (100%), 0:40 elapsed",
        "measure: 2/2 field-timepoint (100%), 0:20 elapsed",
        "track: 1/1 field (100%), 0:15 elapsed"]
    assert (progress.done, progress.total) == (1, 1)
    assert (progress.step, progress.unit) == ("track", "field")  # for an interrupt's message
