"""One reading of a timepoint selection for every plate job."""

import pytest

from structfree_dask.runtime.selection import describe_selection, select_timepoints


@pytest.mark.parametrize(("given", "want"), [
    (None, [0, 1, 2, 3]), (slice(1, 3), [1, 2]), (slice(2, None), [2, 3]),
    ([3, 0, 3], [0, 3]), ((1,), [1]),
])
def test_selections(given, want):
    assert select_timepoints(4, given, "f") == want


@pytest.mark.parametrize(("given", "fragment"), [
    ([4], "timepoint(s) [4] do not exist; f has 4 (0..3)"),
    ([-1], "do not exist"),
    (slice(3, 1), "timepoints 3:1 select none of the 4 timepoint(s) of f (0..3)"),
    (slice(9, None), "timepoints 9: select none"),
    ([], "timepoints [] select none"),
])
def test_bad_selections(given, fragment):
    with pytest.raises(ValueError) as raised:
        select_timepoints(4, given, "f")
    assert fragment in str(raised.value)


def test_describe():
    assert describe_selection(slice(None, 5)) == ":5"
    assert describe_selection(None) == "[]"
