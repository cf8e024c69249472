"""cli._common: command-line options generated from the one schema, and the cluster options."""

from __future__ import annotations

import argparse

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
