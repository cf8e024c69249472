"""runtime.result: what every plate-level run returns, one way."""

from __future__ import annotations

import pytest

from structfree_dask.cells.plate_measure import CellsResult
from structfree_dask.cells.plate_track import TrackResult
from structfree_dask.engine import RunResult
from structfree_dask.runtime.result import Failure, PlateRun
from structfree_dask.zoo.training.build import BuildResult


@pytest.mark.parametrize("kind", [PlateRun, RunResult, CellsResult, TrackResult, BuildResult])
def test_every_plate_level_result_is_a_plate_run(kind):
    run = kind()
    assert isinstance(run, PlateRun) and run.failed == [] and run.error is None
    run.done.append(("A/1/0", 0))
    run.fail("A/1/0", 1, "ValueError: NaN")
    assert not run.ok
    assert run.failed == [Failure("A/1/0", 1, "ValueError: NaN")]
    where, t, error = run.failed[0]  # unpacks as (where, t, error) everywhere
    assert (where, t, error) == ("A/1/0", 1, "ValueError: NaN")
    assert run.summary() == "1 done, 0 skipped (already done), 1 failed"


def test_failure_lines_name_the_unit():
    assert Failure("", 3, "boom").line() == "(image) t=3: boom"
    assert Failure("B/2/0", None, "no table").line() == "B/2/0: no table"
    assert Failure("CL1-cyto-cw-0", None, "OOM").line() == "CL1-cyto-cw-0: OOM"


def test_failure_is_found_by_unit():
    run = PlateRun()
    run.fail("A/1/0", 0, "first")
    run.fail("A/1/0", 2, "second")
    assert run.failure("A/1/0") == "first"
    assert run.failure("A/1/0", 2) == "second"
    assert run.failure("A/1/0", 1) is None and run.failure("B/1/0") is None


def test_an_error_stops_the_run_and_is_raised_as_itself():
    run = PlateRun(error="KeyError: 'x'", exception=KeyError("x"))
    assert not run.ok
    with pytest.raises(KeyError):
        run.raise_error()
    with pytest.raises(RuntimeError, match="stopped"):
        PlateRun(error="stopped").raise_error()
    PlateRun().raise_error()  # nothing to raise


def test_a_zoo_build_is_ok_only_with_a_selection():
    assert not BuildResult().ok  # nothing selected
    assert BuildResult(zoo="z", reused=["m"], skipped=[("m", None)]).skipped == [("m", None)]
