"""ID offsets and block pasting (ownership: test_integrate.py)."""

from __future__ import annotations

import numpy as np

from structfree_dask.pipeline.stitching import encode_patch, paste_block, region_offsets


def test_paste_block_offsets_and_first_wins():
    a = np.zeros((6, 6), np.uint32)
    a[1:3, 1:5] = 1
    b = np.zeros((6, 6), np.uint32)
    b[2:5, 2:4] = 1
    b[5, 5] = 2
    pa = encode_patch(a, (0, 6, 0, 6), 1)
    pb = encode_patch(b, (2, 8, 2, 8), 2)
    offsets = region_offsets([pa.n, pb.n])
    block = paste_block((0, 4, 0, 4), [(pa, offsets[0]), (pb, offsets[1])])
    assert block[1, 1] == 1 and block[2, 2] == 1  # a's cell keeps contested pixels
    assert block[3, 3] == 0  # b's cell starts at (2,2) in its window: field (4, 4), outside
    full = paste_block((0, 8, 0, 8), [(pa, 0), (pb, 1)])
    assert full[4, 4] == 2 and full[7, 7] == 3
    again = paste_block((0, 8, 0, 8), [(pa, 0), (pb, 1)])
    assert np.array_equal(full, again) and full.dtype == np.uint32

