"""cells.quality: the checks that warn when the objects cannot carry the readout."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.cells.quality import (
    FLAGS,
    MAX_COUNT_FACTOR,
    MAX_NUCLEUS_FRACTION,
    PLAUSIBLE_RATIO,
    field_flags,
    flags,
    unit_metrics,
    warnings,
)


def test_metrics_of_a_unit():
    areas = np.array([400, 500, 450, 90, 20, 480, 520, 410, 300, 600])
    edge = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 0], bool)
    n_nuclei = np.array([1, 0, 1, 0, 0, 0, 0, 1, 2, 1])
    m = unit_metrics(areas, edge, n_nuclei, [0.2, 0.3, 0.9],
                     np.array([1.0, np.nan, -0.5, 30.0, 2.0]))
    # checked: off the edge (8) and at least a quarter of the median area 430 (not 90, 20)
    assert m == {"cells": 10, "cells_checked": 6, "cells_without_nucleus": 1,
                 "nucleus_fraction": 0.3, "ratios": 4, "implausible_ratios": 2}
    empty = unit_metrics(np.zeros(0), np.zeros(0, bool), np.zeros(0), [], np.zeros(0))
    assert empty["cells"] == empty["cells_checked"] == 0 and empty["nucleus_fraction"] is None


def test_a_reporter_kept_out_of_the_nucleus_has_plausible_ratios():
    # background-corrected ratios near 0, some below it by noise (as mitochondria give)
    ratios = np.array([0.0, 0.03, -0.05, 0.07, -0.12, 0.01, 0.9, 1.2])
    m = unit_metrics(np.full(8, 400), np.zeros(8, bool), np.ones(8), [0.3] * 8, ratios)
    assert m["implausible_ratios"] == 0 and flags(m) == []
    # a nucleus far below its own background: the background or the objects are wrong
    m = unit_metrics(np.full(8, 400), np.zeros(8, bool), np.ones(8), [0.3] * 8, ratios - 1)
    assert m["implausible_ratios"] == 6 and flags(m) == ["implausible_ratios"]


@pytest.mark.parametrize(("metrics", "expected"), [
    ({"cells": 50, "cells_without_nucleus": 1, "nucleus_fraction": 0.3, "ratios": 40,
      "implausible_ratios": 0}, []),
    ({"cells": 50, "nucleus_fraction": MAX_NUCLEUS_FRACTION + 0.01}, ["nuclei_like_cells"]),
    ({"cells": 50, "nucleus_fraction": MAX_NUCLEUS_FRACTION}, []),
    ({"cells": 50, "cells_without_nucleus": 16}, ["cells_without_nucleus"]),
    # judged on the cells checked (off the field's edge, no fragments)
    ({"cells": 50, "cells_checked": 40, "cells_without_nucleus": 13},
     ["cells_without_nucleus"]),
    ({"cells": 50, "ratios": 40, "implausible_ratios": 5}, ["implausible_ratios"]),
    ({"cells": 0, "ratios": 0}, []),
])
def test_flags(metrics, expected):
    assert flags(metrics) == expected


def test_count_jumps_are_judged_against_the_timepoint_before():
    by_t = {0: {"cells": 40}, 1: {"cells": 44}, 2: {"cells": 10}, 3: {"cells": 12},
            5: {"cells": int(12 * MAX_COUNT_FACTOR) + 1}, 6: {"cells": 0}}
    assert field_flags(by_t) == {0: [], 1: [], 2: ["count_jump"], 3: [], 5: ["count_jump"],
                                 6: ["count_jump"]}
    assert field_flags({0: {"cells": 0}, 1: {"cells": 0}}) == {0: [], 1: []}


def test_warnings_say_what_and_where_once_per_flag():
    lines = warnings({"A/1/0": {0: ["nuclei_like_cells"], 1: ["nuclei_like_cells"]},
                      "B/2/0": {1: ["nuclei_like_cells", "count_jump"]}, "": {4: []}})
    assert lines == [f"{FLAGS['nuclei_like_cells']} (A/1/0 t=0,1; B/2/0 t=1)",
                     f"{FLAGS['count_jump']} (B/2/0 t=1)"]
    assert "--organelle nuclei" in FLAGS["nuclei_like_cells"]
    assert str(PLAUSIBLE_RATIO[1]) in FLAGS["implausible_ratios"]
    assert warnings({}) == []
