"""Candidate (training subset, evaluation subset) pairs and the best one (zoo.scoring.select)."""

from __future__ import annotations

import pytest

from structfree_dask.zoo import candidate_pairs, select_best


def test_candidate_pairs():
    pairs = candidate_pairs(3)
    cw = [p for p in pairs if p.strategy == "cw"]
    mc = [p for p in pairs if p.strategy == "mc"]
    assert [p.eval_channels for p in cw] == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2),
                                             (0, 1, 2)]
    assert all(p.train_channels == p.eval_channels for p in cw)
    assert len(mc) == 3 * 3 + 7
    assert all(set(p.eval_channels) <= set(p.train_channels) for p in mc)
    assert len({(p.strategy, p.train_channels, p.eval_channels) for p in pairs}) == len(pairs)
    some = candidate_pairs(4, subsets=[(1,), (3,), (0, 2)])
    assert [(p.strategy, p.train_channels, p.eval_channels) for p in some] == [
        ("cw", (1,), (1,)), ("cw", (3,), (3,)), ("cw", (1, 3), (1, 3)),
        ("mc", (0, 2), (0,)), ("mc", (0, 2), (2,)), ("mc", (0, 2), (0, 2))]
    assert all(p.strategy == "mc" for p in candidate_pairs(2, strategies=["mc"]))
    with pytest.raises(KeyError, match="channel\\(s\\) \\[5\\].*0..3"):
        candidate_pairs(4, subsets=[(0, 5)])
    with pytest.raises(ValueError, match="unknown strategy"):
        candidate_pairs(2, strategies=["xx"])


def test_select_best_on_known_table():
    def row(strategy, train, ev, f1):
        return {"strategy": strategy, "train_channels": train, "eval_channels": ev,
                "val_f1": f1}

    table = [
        row("cw", [0], [0], 0.71), row("cw", [1], [1], 0.64), row("cw", [0, 1], [0, 1], 0.83),
        row("mc", [0, 1], [0], 0.80), row("mc", [0, 1], [1], 0.70),
        row("mc", [0, 1], [0, 1], 0.83), row("mc", [0, 1, 2], [0, 2], 0.83),
        row("mc", [0, 1, 2], [1], float("nan")),
    ]
    best = select_best(table)
    # 0.83 three times: fewest eval channels (2 each), then fewest training channels
    # (cw [0, 1] and mc [0, 1] tie), then lexicographic -> ("cw" < "mc")
    assert (best["strategy"], best["eval_channels"]) == ("cw", [0, 1])
    assert select_best(table[3:])["train_channels"] == [0, 1]
    assert select_best([*table, row("mc", [1, 2], [2], 0.9)])["eval_channels"] == [2]
    assert select_best(list(reversed(table))) == best  # order does not matter
    with pytest.raises(ValueError, match="finite"):
        select_best([row("cw", [0], [0], float("nan"))])
    with pytest.raises(KeyError, match="eval_channels"):
        select_best([{"strategy": "cw", "train_channels": [0], "val_f1": 1.0}])
