"""Stitching: owned cells of overlapping windows pasted into chunk-aligned blocks.

Each task region keeps the cells whose centroid it owns (computed on region + halo,
so they are whole). A cell may reach into neighbouring blocks; the block writer
pastes, for its block, the owned cells of every window overlapping it, with IDs
offset by the number of cells owned by earlier regions. Every cell thus gets exactly
one ID, IDs are unique and consecutive per (field, timepoint), and the result does
not depend on the number of workers or the order of tasks.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import LABEL_DTYPE

__all__ = ["OwnedPatch", "encode_patch", "paste_block", "region_offsets"]

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class OwnedPatch:
    """The owned cells of one region, compressed, over the region's window.

    Attributes
    ----------
    window : (int, int, int, int)
        Field coordinates ``(y0, y1, x0, x1)`` of the patch.
    data : bytes
        zlib-compressed uint32 labels (local IDs 1..n).
    n : int
        Number of owned cells.
    n_cut : int
        Owned cells touching the window edge inside the field.
    """

    window: Box
    data: bytes
    n: int
    n_cut: int = 0

    def labels(self) -> np.ndarray:
        """Decompress the patch."""
        y0, y1, x0, x1 = self.window
        raw = np.frombuffer(zlib.decompress(self.data), dtype=LABEL_DTYPE)
        return raw.reshape(y1 - y0, x1 - x0)


def encode_patch(labels: np.ndarray, window: Box, n: int, n_cut: int = 0) -> OwnedPatch:
    """Compress owned-cell labels of a window (labels compress ~50x: tasks stay small).

    Examples
    --------
    >>> p = encode_patch(np.eye(3, dtype="uint32"), (0, 3, 0, 3), 1)
    >>> p.labels().tolist()
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    """
    arr = np.ascontiguousarray(labels, dtype=LABEL_DTYPE)
    return OwnedPatch(window=window, data=zlib.compress(arr.tobytes(), 1), n=int(n),
                      n_cut=int(n_cut))


def region_offsets(counts: Sequence[int]) -> list[int]:
    """ID offset of each region: the number of cells owned by the regions before it.

    Examples
    --------
    >>> region_offsets([3, 0, 2])
    [0, 3, 3]
    """
    out, total = [], 0
    for n in counts:
        out.append(total)
        total += int(n)
    return out


def paste_block(block: Box, patches: Sequence[tuple[OwnedPatch, int]]) -> np.ndarray:
    """Assemble one output block from owned patches and their ID offsets.

    Patches are pasted in the given (fixed) order; where two owned cells claim the
    same pixel the first one keeps it, so the result is deterministic.

    Parameters
    ----------
    block : (int, int, int, int)
        Field coordinates of the block.
    patches : sequence of (OwnedPatch, int)
        Patches overlapping the block with the ID offset of their region.

    Returns
    -------
    numpy.ndarray
        uint32 labels of the block.

    Examples
    --------
    >>> a = encode_patch(np.array([[1, 1], [0, 0]], "uint32"), (0, 2, 0, 2), 1)
    >>> b = encode_patch(np.array([[0, 1], [1, 1]], "uint32"), (0, 2, 0, 2), 1)
    >>> paste_block((0, 2, 0, 2), [(a, 0), (b, 1)]).tolist()
    [[1, 1], [2, 2]]
    """
    y0, y1, x0, x1 = block
    out = np.zeros((y1 - y0, x1 - x0), dtype=LABEL_DTYPE)
    for patch, offset in patches:
        if patch.n == 0:
            continue
        wy0, wy1, wx0, wx1 = patch.window
        iy0, iy1, ix0, ix1 = max(y0, wy0), min(y1, wy1), max(x0, wx0), min(x1, wx1)
        if iy1 <= iy0 or ix1 <= ix0:
            continue
        src = patch.labels()[iy0 - wy0 : iy1 - wy0, ix0 - wx0 : ix1 - wx0]
        dst = out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
        take = (src > 0) & (dst == 0)
        dst[take] = src[take] + np.uint32(offset)
    return out
