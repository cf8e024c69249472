"""The screen tables' pure functions: well and condition statistics, Z', 4PL fits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from structfree_dask.screen.tables import (
    CONDITION_COLUMNS,
    DOSE_RESPONSE_COLUMNS,
    WELL_COLUMNS,
    ZPRIME_COLUMNS,
    condition_stats,
    dose_response,
    fit_four_pl,
    four_pl,
    well_stats,
    z_prime,
    zprime_value,
)

DOSES = 10.0 ** np.arange(-9, -4.9, 0.5)  # 1 nM .. 10 uM, half-log steps (9 doses)


def _curve(doses, bottom, top, ec50, hill, noise, seed, replicates=3):
    rng = np.random.default_rng(seed)
    d = np.repeat(doses, replicates)
    return d, four_pl(np.log10(d), bottom, top, np.log10(ec50), hill) + rng.normal(0, noise,
                                                                                  len(d))


def test_four_pl_recovers_a_known_ec50_with_intervals_that_hold_it():
    dose, y = _curve(DOSES, 0.5, 2.0, 3e-7, 1.3, 0.03, seed=1)
    fit = fit_four_pl(dose, y)
    assert fit["fit_error"] is None
    assert fit["ec50"] == pytest.approx(3e-7, rel=0.15)
    assert fit["ec50_ci_low"] < 3e-7 < fit["ec50_ci_high"]
    assert fit["hill_ci_low"] < 1.3 < fit["hill_ci_high"]
    assert fit["bottom"] == pytest.approx(0.5, abs=0.05)
    assert fit["top"] == pytest.approx(2.0, abs=0.05)
    assert fit["log10_ec50"] == pytest.approx(math.log10(fit["ec50"]))
    assert fit["ec50_in_range"] is True and fit["r_squared"] > 0.99
    assert fit["p_constant"] < 1e-6
    assert (fit["n_wells"], fit["n_doses"]) == (27, 9)
    assert (fit["dose_min"], fit["dose_max"]) == pytest.approx((1e-9, 1e-5))


def test_the_ec50_interval_holds_the_true_ec50_about_95_times_in_100():
    held = []
    for seed in range(60):
        fit = fit_four_pl(*_curve(DOSES, 0.5, 2.0, 3e-7, 1.3, 0.1, seed=seed))
        held.append(fit["ec50_ci_low"] < 3e-7 < fit["ec50_ci_high"])
    assert 0.85 <= np.mean(held) <= 1.0, np.mean(held)


def test_an_inhibitor_has_its_top_below_its_bottom_and_a_positive_slope():
    dose, y = _curve(DOSES, 3.0, 1.0, 2e-8, 0.8, 0.02, seed=2)
    fit = fit_four_pl(dose, y)
    assert fit["fit_error"] is None
    assert fit["ec50"] == pytest.approx(2e-8, rel=0.25)
    assert fit["hill"] == pytest.approx(0.8, rel=0.2)
    assert fit["top"] < fit["bottom"]


def test_points_without_a_dose_above_zero_or_a_value_are_left_out():
    dose, y = _curve(DOSES, 0.5, 2.0, 3e-7, 1.3, 0.0, seed=0, replicates=1)
    with_bad = fit_four_pl([*dose, 0.0, np.nan, 1e-6], [*y, 10.0, 1.0, np.nan])
    assert with_bad["n_wells"] == len(dose)
    assert with_bad["ec50"] == pytest.approx(fit_four_pl(dose, y)["ec50"])


@pytest.mark.parametrize(("dose", "response", "reason"), [
    ([1e-6, 1e-6, 1e-7, 1e-8], [1, 2, 3, 4], "needs at least 4 distinct doses > 0 with a "
                                             "value; got 3"),
    ([], [], "needs at least 4 distinct doses > 0 with a value; got 0"),
    (np.repeat(DOSES, 2), np.ones(18), "flat response: every well has the value 1"),
    (DOSES[:4], [1.0, 1.2, 2.5, 3.0], "no degrees of freedom left: 4 wells for 4 parameters"),
])
def test_a_fit_that_fails_says_why(dose, response, reason):
    fit = fit_four_pl(dose, response)
    assert fit["fit_error"].startswith(reason), fit["fit_error"]


def test_a_noisy_flat_response_is_no_better_than_a_constant():
    rng = np.random.default_rng(4)
    fit = fit_four_pl(np.repeat(DOSES, 3), 1.0 + rng.normal(0, 0.1, 27))
    assert fit["fit_error"].startswith("no evidence of a dose-response: the fit is not")
    assert fit["p_constant"] > 0.05


def test_a_fit_that_does_not_converge_says_so(monkeypatch):
    from scipy import optimize

    def fail(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found: The maximum number of function "
                           "evaluations is exceeded.")

    monkeypatch.setattr(optimize, "curve_fit", fail)
    dose, y = _curve(DOSES, 0.5, 2.0, 3e-7, 1.3, 0.03, seed=1)
    fit = fit_four_pl(dose, y)
    assert fit["fit_error"] == ("no convergence: Optimal parameters not found: The maximum "
                                "number of function evaluations is exceeded.")
    assert math.isnan(fit["ec50"]) and fit["ec50_in_range"] is None


def test_z_prime_of_known_controls():
    assert zprime_value([9.5, 10.0, 10.5], [0.5, 1.0, 1.5]) == (pytest.approx(2 / 3), None)
    # 1 - 3 (1 + 2) / 5 = -0.8: overlapping controls give a negative Z'
    assert zprime_value([10.0, 12.0, 11.0], [4.0, 8.0, 6.0]) == (pytest.approx(-0.8), None)
    value, error = zprime_value([1.0, 2.0, np.nan], [1.0, 2.0])
    assert math.isnan(value) and error == "the positive and negative controls have the same mean"
    value, error = zprime_value([1.0, np.inf], [3.0, 4.0])
    assert math.isnan(value) and "got 1 positive, 2 negative" in error


def _wells(t: int = 0) -> pd.DataFrame:
    """Per-well rows of a small screen: 3 negative, 3 positive, a compound at 9 doses."""
    dose, y = _curve(DOSES, 1.0, 2.0, 1e-7, 1.0, 0.02, seed=t, replicates=1)
    rows = [{"well": f"A{i}", "condition": "DMSO", "compound": None, "dose": np.nan,
             "dose_unit": None, "role": "negative", "median": m}
            for i, m in enumerate([1.0, 1.1, 0.9], 1)]
    rows += [{"well": f"B{i}", "condition": "stim", "compound": "stim", "dose": 1.0,
              "dose_unit": "uM", "role": "positive", "median": m}
             for i, m in enumerate([2.0, 2.1, 1.9], 1)]
    rows += [{"well": f"C{i}", "condition": f"X {d:g}", "compound": "X", "dose": d * 1e6,
              "dose_unit": "uM", "role": "sample", "median": m}
             for i, (d, m) in enumerate(zip(dose, y, strict=True), 1)]
    out = pd.DataFrame(rows).assign(t=t, readout="r", n_cells=10)
    return out.assign(row=out["well"].str[0], column=out["well"].str[1:])


def test_z_prime_table_per_timepoint_from_the_control_wells():
    wells = pd.concat([_wells(0), _wells(1).assign(
        median=lambda d: d["median"].where(d["role"] != "positive", np.nan))])
    zp = z_prime(wells)
    assert list(zp.columns) == list(ZPRIME_COLUMNS)
    first = zp.iloc[0]
    assert first["z_prime"] == pytest.approx(1 - 3 * 0.2 / 1.0)
    assert (first["n_positive"], first["n_negative"]) == (3, 3)
    assert first["mean_positive"] == pytest.approx(2.0) and first["zprime_error"] is None
    second = zp.iloc[1]
    assert math.isnan(second["z_prime"]) and "got 0 positive, 3 negative" in second[
        "zprime_error"]


def test_dose_response_table_fits_each_compound_and_timepoint():
    dr = dose_response(pd.concat([_wells(0), _wells(1)]))
    assert list(dr.columns) == list(DOSE_RESPONSE_COLUMNS)
    # the positive control names a compound at a dose: a control, not fitted
    assert dr[["compound", "t"]].values.tolist() == [["X", 0], ["X", 1]]
    x = dr[dr["compound"] == "X"]
    assert x["fit_error"].isna().all() and (x["dose_unit"] == "uM").all()
    assert x["ec50"].to_numpy() == pytest.approx([0.1, 0.1], rel=0.2)  # 1e-7 M in uM
    # a compound at too few doses says why it has no fit
    few = dose_response(_wells().assign(role="sample")[lambda d: d["compound"] == "stim"])
    assert few["fit_error"].str.startswith("needs at least 4 distinct doses").all()
    assert dose_response(_wells().assign(compound=None)).empty


def test_condition_stats_over_the_wells_medians():
    cs = condition_stats(_wells())
    assert list(cs.columns) == list(CONDITION_COLUMNS)
    dmso = cs[cs["condition"] == "DMSO"].iloc[0]
    assert (dmso["n_wells"], dmso["n_cells"], dmso["role"]) == (3, 30, "negative")
    assert dmso["mean"] == pytest.approx(1.0) and dmso["sd"] == pytest.approx(0.1)
    assert len(cs) == 2 + len(DOSES) and cs["condition"].iloc[0] == "DMSO"


def test_well_stats_count_cells_and_leave_out_values_that_are_not_finite():
    cells = pd.DataFrame({"well": ["A1"] * 4 + ["A2"], "row": "A",
                          "column": ["1"] * 4 + ["2"], "t": [0, 0, 0, 0, 0],
                          "r": [1.0, 2.0, 3.0, np.nan, 5.0], "s": [np.inf, 1, 1, 1, 1]})
    keys = pd.DataFrame({"well": ["A1", "A1", "A2"], "row": "A", "column": ["1", "1", "2"],
                         "t": [0, 1, 0]})
    out = well_stats(cells, ["r", "s"], keys)
    assert list(out.columns) == list(WELL_COLUMNS)
    assert out[["well", "t", "readout", "n_cells", "n"]].values.tolist() == [
        ["A1", 0, "r", 4, 3], ["A1", 0, "s", 4, 3], ["A1", 1, "r", 0, 0],
        ["A1", 1, "s", 0, 0], ["A2", 0, "r", 1, 1], ["A2", 0, "s", 1, 1]]
    a1 = out.iloc[0]
    assert (a1["median"], a1["q25"], a1["q75"], a1["mean"], a1["sd"]) == pytest.approx(
        (2.0, 1.5, 2.5, 2.0, 1.0))
    assert out.iloc[2][["median", "mean"]].isna().all()  # a timepoint without cells
    assert math.isnan(out.iloc[4]["sd"])  # one cell: no spread
