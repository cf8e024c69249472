"""Deterministic train / validation / test splits of annotated fields.

Fields are identified by strings (e.g. plate field paths ``"A/1/0"``). A split depends
only on the *set* of field ids and the seed, not on the order they are given in: ids
are sorted before being permuted by a :func:`numpy.random.default_rng` seeded with
``seed``. Each part of a split is returned sorted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Split", "split_fields", "kfold", "min_fields_for_kfold"]

logger = logging.getLogger(__name__)

#: Default train / validation / test fractions.
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class Split:
    """Field ids of the training, validation and test parts.

    Attributes
    ----------
    train, val, test : tuple of str
        Disjoint, each sorted and non-empty.
    seed : int
        Seed the split was drawn with.
    fold : int or None
        Index of the fold for k-fold splits, None for a single split.
    n_folds : int or None
        Number of folds for k-fold splits, None for a single split.
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    seed: int = 0
    fold: int | None = None
    n_folds: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the split as a JSON-serialisable dict.

        Examples
        --------
        >>> Split(("a",), ("b",), ("c",), seed=3).to_dict()["val"]
        ['b']
        """
        return {
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "seed": self.seed,
            "fold": self.fold,
            "n_folds": self.n_folds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        """Rebuild a split from :meth:`to_dict` output.

        Raises
        ------
        KeyError
            If ``train``, ``val`` or ``test`` is missing.
        """
        missing = [k for k in ("train", "val", "test") if k not in data]
        if missing:
            raise KeyError(f"split needs keys train, val and test; missing {missing}")
        fold = data.get("fold")
        n_folds = data.get("n_folds")
        return cls(
            tuple(str(f) for f in data["train"]),
            tuple(str(f) for f in data["val"]),
            tuple(str(f) for f in data["test"]),
            seed=int(data.get("seed", 0)),
            fold=None if fold is None else int(fold),
            n_folds=None if n_folds is None else int(n_folds),
        )


def _check_fields(fields: Sequence[str]) -> list[str]:
    if isinstance(fields, str):
        raise TypeError(f"fields must be a sequence of field ids, not one string ({fields!r})")
    ids = [str(f) for f in fields]
    dupes = sorted({f for f in ids if ids.count(f) > 1})
    if dupes:
        raise ValueError(f"field ids must be unique; found duplicates {dupes}")
    return sorted(ids)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def split_fields(
    fields: Sequence[str],
    seed: int,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> Split:
    """Split field ids into training, validation and test parts, deterministically.

    The validation and test parts get ``round(n * fraction)`` fields, at least one
    each; the training part gets the rest (at least one).

    Parameters
    ----------
    fields : sequence of str
        Unique field ids (order does not matter).
    seed : int
        Non-negative seed.
    fractions : (float, float, float)
        Train, validation and test fractions: positive, summing to 1.

    Returns
    -------
    Split

    Raises
    ------
    ValueError
        Fewer than 3 fields, duplicated ids, a negative seed or invalid fractions.

    Examples
    --------
    >>> s = split_fields([f"f{i}" for i in range(10)], seed=0)
    >>> len(s.train), len(s.val), len(s.test)
    (8, 1, 1)
    >>> s == split_fields([f"f{i}" for i in reversed(range(10))], seed=0)
    True
    >>> split_fields(["a", "b"], seed=0)
    Traceback (most recent call last):
    ...
    ValueError: a train/val/test split needs at least 3 annotated fields (one per part); found 2...
    """
    ids = _check_fields(fields)
    seed = _check_seed(seed)
    if len(fractions) != 3 or any(not (f > 0) for f in fractions):
        raise ValueError(f"fractions must be three positive numbers; got {tuple(fractions)}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1; got {tuple(fractions)} (sum {sum(fractions)})")
    n = len(ids)
    if n < 3:
        raise ValueError(
            f"a train/val/test split needs at least 3 annotated fields (one per part); "
            f"found {n}: {ids}"
        )
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2]))
    while n - n_val - n_test < 1:  # small n: give training at least one field
        if n_val >= n_test and n_val > 1:
            n_val -= 1
        else:
            n_test -= 1
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[i] for i in order]
    test = tuple(sorted(shuffled[:n_test]))
    val = tuple(sorted(shuffled[n_test : n_test + n_val]))
    train = tuple(sorted(shuffled[n_test + n_val :]))
    logger.debug("split of %d fields (seed %d): %d/%d/%d", n, seed, len(train), len(val),
                 len(test))
    return Split(train, val, test, seed=seed)


def min_fields_for_kfold(k: int) -> int:
    """Smallest number of fields that ``kfold(..., k)`` accepts.

    Every fold needs a non-empty test part and at least two other fields (one for
    validation, one for training).

    Examples
    --------
    >>> min_fields_for_kfold(2), min_fields_for_kfold(5)
    (4, 5)
    """
    n = max(k, 3)
    while n - math.ceil(n / k) < 2:
        n += 1
    return n


def kfold(
    fields: Sequence[str], k: int, seed: int, *, val_fraction: float = 0.1
) -> list[Split]:
    """K-fold splits: each field is in exactly one fold's test part.

    The permuted ids are cut into ``k`` near-equal parts; fold ``i`` tests on part
    ``i``, and takes ``max(1, round(val_fraction * n_rest))`` of the remaining fields
    (drawn with a seed derived from ``(seed, i)``) for validation and the rest for
    training.

    Parameters
    ----------
    fields : sequence of str
        Unique field ids.
    k : int
        Number of folds, at least 2.
    seed : int
        Non-negative seed.
    val_fraction : float
        Fraction of the non-test fields used for validation, in (0, 1).

    Returns
    -------
    list of Split
        ``k`` splits with ``fold`` = 0 .. k-1 and ``n_folds`` = k.

    Raises
    ------
    ValueError
        ``k < 2``, too few fields (see :func:`min_fields_for_kfold`), duplicated ids.

    Examples
    --------
    >>> folds = kfold([f"f{i}" for i in range(10)], k=5, seed=1)
    >>> sorted(f for s in folds for f in s.test) == [f"f{i}" for i in range(10)]
    True
    >>> [len(s.test) for s in folds], [len(s.val) for s in folds]
    ([2, 2, 2, 2, 2], [1, 1, 1, 1, 1])
    """
    ids = _check_fields(fields)
    seed = _check_seed(seed)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
        raise ValueError(f"k must be an integer >= 2; got {k!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    needed = min_fields_for_kfold(int(k))
    if len(ids) < needed:
        raise ValueError(
            f"{k}-fold splits need at least {needed} annotated fields (each fold needs a "
            f"test, a validation and a training field); found {len(ids)}: {ids}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    parts = np.array_split(order, int(k))
    splits = []
    for i, part in enumerate(parts):
        test = sorted(ids[j] for j in part)
        rest = sorted(set(ids) - set(test))
        n_val = min(len(rest) - 1, max(1, round(val_fraction * len(rest))))
        pick = np.random.default_rng([seed, i]).permutation(len(rest))
        val = sorted(rest[j] for j in pick[:n_val])
        train = sorted(rest[j] for j in pick[n_val:])
        splits.append(Split(tuple(train), tuple(val), tuple(test), seed=seed, fold=i,
                            n_folds=int(k)))
    return splits
