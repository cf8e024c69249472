"""Bounds of the numbers a run accepts, and their one check (structfree_dask.limits)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from structfree_dask import limits
from structfree_dask.limits import check_number, number_problem

BOUNDS = ["TILE_SIZE", "HALO", "BATCH_SIZE", "WORKERS", "THREADS", "RESCALE",
          "FLOW_THRESHOLD", "CELLPROB_THRESHOLD", "MIN_SIZE", "SCHEDULER_TIMEOUT",
          "MAX_DISTANCE", "PIXEL_SIZE"]


def test_every_bound_is_an_ordered_pair_of_finite_numbers():
    names = [n for n in limits.__all__ if n not in ("check_number", "number_problem")]
    assert set(BOUNDS) <= set(names)
    for name in names:
        lo, hi = getattr(limits, name)
        assert name.isupper()
        assert math.isfinite(lo) and math.isfinite(hi) and lo < hi, name
        assert number_problem(lo, (lo, hi)) is None and number_problem(hi, (lo, hi)) is None


def test_the_bounds_refuse_unit_slips():
    assert number_problem(512, limits.TILE_SIZE, integer=True) is None
    assert number_problem(32, limits.TILE_SIZE, integer=True) is not None
    assert number_problem(30 / 0.001, limits.RESCALE) is not None  # a diameter of 0.001 px
    assert number_problem(-1, limits.HALO, integer=True) is not None
    assert number_problem(0, limits.WORKERS, integer=True) is not None


@pytest.mark.parametrize(("value", "bounds", "kwargs", "message"), [
    (float("nan"), (0, 1), {}, "expected a finite number between 0 and 1; got nan"),
    (float("inf"), (0, 1), {}, "expected a finite number between 0 and 1; got inf"),
    (-math.inf, (0, 1), {}, "expected a finite number between 0 and 1; got -inf"),
    (2.5, (1, 8), {"integer": True}, "expected a whole number between 1 and 8; got 2.5"),
    (0, (1, 8), {"integer": True}, "expected a whole number between 1 and 8; got 0"),
    (9, (1, 8), {"integer": True}, "expected a whole number between 1 and 8; got 9"),
    (0.04, (0.05, 10.0), {}, "expected a finite number between 0.05 and 10; got 0.04"),
    (2_000_000, (0, 1_000_000), {"integer": True},
     "expected a whole number between 0 and 1000000; got 2e+06"),
    (-1.5, (0.0, 100.0), {"unit": "px"}, "expected a finite number between 0 and 100 px; "
                                         "got -1.5"),
    (10**400, (1, 8), {"integer": True},
     "expected a whole number between 1 and 8; got a number of 401 digits"),
    (True, (0, 1), {}, "expected a finite number between 0 and 1; got True"),
    ("3", (1, 8), {"integer": True}, "expected a whole number between 1 and 8; got '3'"),
    (None, (1, 8), {}, "expected a finite number between 1 and 8; got None"),
    ([4], (1, 8), {}, "expected a finite number between 1 and 8; got [4]"),
    (Fraction(1, 2), (0, 1), {}, "expected a finite number between 0 and 1; "
                                 "got Fraction(1, 2)"),
    (np.float64("nan"), (0, 1), {}, "expected a finite number between 0 and 1; got nan"),
    (np.float32(2.5), (1, 8), {"integer": True},
     "expected a whole number between 1 and 8; got 2.5"),
    (np.int64(12), (1, 8), {"integer": True}, "expected a whole number between 1 and 8; got 12"),
    (np.bool_(True), (0, 1), {}, f"expected a finite number between 0 and 1; got {np.True_!r}"),
    (np.array([3.0]), (1, 8), {}, "expected a finite number between 1 and 8; got array([3.])"),
])
def test_number_problem_messages(value, bounds, kwargs, message):
    assert number_problem(value, bounds, **kwargs) == message


@pytest.mark.parametrize(("value", "bounds", "kwargs"), [
    (1, (1, 8), {"integer": True}),
    (8, (1, 8), {"integer": True}),
    (4.0, (1, 8), {"integer": True}),  # a whole number given as a float
    (0.5, (0, 1), {}),
    (np.int32(3), (1, 8), {"integer": True}),
    (np.float32(0.25), (0, 1), {"unit": "um"}),
    (10**20, (0, 10**21), {"integer": True}),
])
def test_number_problem_accepts_numbers_within_bounds(value, bounds, kwargs):
    assert number_problem(value, bounds, **kwargs) is None


def test_check_number_returns_the_value_itself():
    value = np.int64(7)
    assert check_number("workers", value, limits.WORKERS, integer=True) is value
    assert check_number("rescale", 0.05, limits.RESCALE) == 0.05


@pytest.mark.parametrize(("name", "value", "bounds", "kwargs", "message"), [
    ("tile_size", 32, limits.TILE_SIZE, {"integer": True},
     "tile_size: expected a whole number between 64 and 16384; got 32"),
    ("pixel_size", 0.0, limits.PIXEL_SIZE, {"unit": "um"},
     "pixel_size: expected a finite number between 0.001 and 1000 um; got 0"),
    ("cluster.timeout", float("nan"), limits.SCHEDULER_TIMEOUT, {},
     "cluster.timeout: expected a finite number between 0.1 and 3600; got nan"),
    ("segment[0].min_size", "big", limits.MIN_SIZE, {"integer": True},
     "segment[0].min_size: expected a whole number between 0 and 1000000; got 'big'"),
])
def test_check_number_raises_with_the_settings_name(name, value, bounds, kwargs, message):
    with pytest.raises(ValueError) as info:
        check_number(name, value, bounds, **kwargs)
    assert str(info.value) == message
