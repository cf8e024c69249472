"""The one overlap count, against counting every pair by hand."""

import numpy as np
import pytest

from structfree_dask.pipeline.overlap import label_overlaps


def _by_hand(a, b, background=False):
    out = {}
    for x, y in zip(a.ravel().tolist(), b.ravel().tolist(), strict=True):
        if x and (y or background):
            out[(x, y)] = out.get((x, y), 0) + 1
    return out


@pytest.mark.parametrize("big", [False, True], ids=["small-ids", "ids-near-4e9"])
@pytest.mark.parametrize("background", [False, True])
def test_counts_equal_a_count_by_hand(big, background):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, (40, 30))
    b = rng.integers(0, 5, (40, 30))
    if big:  # memory follows the objects, not the IDs
        a = np.where(a > 0, a + 4_000_000_000, 0).astype(np.uint64)
        b = np.where(b > 0, b + 3_999_999_000, 0).astype(np.uint64)
    o = label_overlaps(a, b, b_background=background)
    got = {(int(o.ids_a[i]), int(o.ids_b[j])): int(n)
           for i, j, n in zip(o.ia, o.ib, o.inter, strict=True)}
    assert got == _by_hand(a, b, background)
    for ids, area, arr in ((o.ids_a, o.area_a, a), (o.ids_b, o.area_b, b)):
        assert ids[0] == 0
        assert [int((arr == v).sum()) for v in ids] == area.tolist()
    keys = list(zip(o.ia.tolist(), o.ib.tolist(), strict=True))
    assert keys == sorted(keys)


def test_no_background_and_empty():
    o = label_overlaps(np.ones((2, 2), int), np.full((2, 2), 5))
    assert o.ids_a.tolist() == [0, 1] and o.area_a.tolist() == [0, 4]
    assert o.iou().tolist() == [1.0]
    empty = label_overlaps(np.zeros((3, 3), int), np.zeros((3, 3), int))
    assert empty.inter.size == 0 and empty.iou().size == 0
    with pytest.raises(ValueError, match="differ in shape"):
        label_overlaps(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_pairs_only_give_the_same_pairs():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 7, (50, 40)), rng.integers(0, 4, (50, 40))
    for background in (False, True):
        full = label_overlaps(a, b, b_background=background)
        pairs = label_overlaps(a, b, b_background=background, areas=False)
        want = [(int(full.ids_a[i]), int(full.ids_b[j]), int(n))
                for i, j, n in zip(full.ia, full.ib, full.inter, strict=True)]
        got = [(int(pairs.ids_a[i]), int(pairs.ids_b[j]), int(n))
               for i, j, n in zip(pairs.ia, pairs.ib, pairs.inter, strict=True)]
        assert got == want
