"""Train / validation / test and k-fold splits of annotated fields (zoo.training.splits)."""

from __future__ import annotations

import json

import pytest

from structfree_dask.zoo import Split, kfold, split_fields


def test_split_deterministic_disjoint_complete():
    fields = [f"A/{i}/0" for i in range(1, 21)]
    s = split_fields(fields, seed=3)
    assert s == split_fields(list(reversed(fields)), seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (16, 2, 2)
    parts = [set(s.train), set(s.val), set(s.test)]
    assert sorted(set().union(*parts)) == sorted(fields)
    assert sum(len(p) for p in parts) == len(fields)
    assert split_fields(fields, seed=4) != s
    assert Split.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    tiny = split_fields(["a", "b", "c"], seed=0)
    assert all(len(p) == 1 for p in (tiny.train, tiny.val, tiny.test))


def test_split_errors():
    with pytest.raises(ValueError, match="at least 3 annotated fields.*found 2"):
        split_fields(["a", "b"], seed=0)
    with pytest.raises(ValueError, match="duplicates"):
        split_fields(["a", "a", "b", "c"], seed=0)
    with pytest.raises(ValueError, match="sum to 1"):
        split_fields(["a", "b", "c"], seed=0, fractions=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="need at least 5 annotated fields.*found 4"):
        kfold(["a", "b", "c", "d"], k=5, seed=0)


def test_kfold_covers_every_field_once():
    fields = [f"f{i:02d}" for i in range(23)]
    folds = kfold(fields, k=5, seed=7)
    assert [s.fold for s in folds] == list(range(5))
    tests = [f for s in folds for f in s.test]
    assert sorted(tests) == fields  # each field is a test field exactly once
    for s in folds:
        assert not set(s.train) & set(s.val) and not set(s.train) & set(s.test)
        assert not set(s.val) & set(s.test)
        assert len(s.train) + len(s.val) + len(s.test) == len(fields)
        assert 1 <= len(s.val) <= 3
    assert kfold(fields, k=5, seed=7) == folds
