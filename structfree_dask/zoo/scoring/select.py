"""Candidate (training subset, evaluation subset) pairs and the choice of the best one.

Channel-wise (``"cw"``) candidates: every channel ``c`` with a CW model can take part;
an evaluation subset ``E`` runs the CW model of each ``c`` in ``E`` on channel ``c``
alone and Flow Averaging averages them (its training channels are ``E`` too, one
model each). Multi-channel (``"mc"``) candidates: a model trained on a subset ``S``
(``|S| > 1``) is run on every non-empty ``E`` of ``S``, each channel alone, flows
averaged.

Selection keeps the highest validation F1 (IoU 0.5); ties go to fewer evaluation
channels, then fewer training channels, then the lexicographically smallest
(evaluation channels, training channels, strategy).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...config import STRATEGIES

__all__ = ["Candidate", "candidate_pairs", "nonempty_subsets", "select_best", "rank_key"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One (training subset, evaluation subset) pair.

    Attributes
    ----------
    strategy : str
        ``"cw"`` or ``"mc"``.
    train_channels : tuple of int
        CW: the channels whose own models are used (equal to ``eval_channels``);
        MC: the model's training subset ``S``.
    eval_channels : tuple of int
        Channels fed to the model(s) at inference, flows averaged.
    """

    strategy: str
    train_channels: tuple[int, ...]
    eval_channels: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the pair as a JSON-serialisable dict (a score-table row's key columns)."""
        return {"strategy": self.strategy, "train_channels": list(self.train_channels),
                "eval_channels": list(self.eval_channels)}


def nonempty_subsets(channels: Iterable[int]) -> list[tuple[int, ...]]:
    """All non-empty subsets of some channels, by size then lexicographically.

    Examples
    --------
    >>> nonempty_subsets([2, 0, 1])
    [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    """
    items = sorted(set(int(c) for c in channels))
    return [s for k in range(1, len(items) + 1) for s in itertools.combinations(items, k)]


def _check_subsets(subsets: Iterable[Sequence[int]], n_channels: int) -> list[tuple[int, ...]]:
    out = []
    for s in subsets:
        if isinstance(s, int):
            s = (s,)
        sub = tuple(sorted(set(int(c) for c in s)))
        if not sub:
            raise ValueError("channel subsets must not be empty")
        if len(sub) != len(tuple(s)):
            raise ValueError(f"channel subset {tuple(s)} repeats a channel")
        bad = [c for c in sub if not 0 <= c < n_channels]
        if bad:
            raise KeyError(f"channel subset {tuple(s)} names channel(s) {bad}; the plate has "
                           f"{n_channels} channel(s): 0..{n_channels - 1}")
        if sub not in out:
            out.append(sub)
    return sorted(out, key=lambda t: (len(t), t))


def candidate_pairs(
    n_channels: int,
    strategies: Sequence[str] = STRATEGIES,
    subsets: Iterable[Sequence[int]] | None = None,
) -> list[Candidate]:
    """Enumerate the (training subset, evaluation subset) pairs to score.

    Parameters
    ----------
    n_channels : int
        Number of channels of the plate.
    strategies : sequence of str
        Any of ``"cw"``, ``"mc"``.
    subsets : iterable of sequences of int, optional
        The training subsets that have a model: single channels for CW, larger ones
        for MC. Default: every channel (CW) and every subset of 2 or more channels (MC).

    Returns
    -------
    list of Candidate
        CW pairs first, then MC pairs, each by size then lexicographically.

    Raises
    ------
    ValueError
        Unknown strategy, ``n_channels < 1``, empty or repeating subsets.
    KeyError
        A subset names a channel the plate lacks.

    Examples
    --------
    >>> pairs = candidate_pairs(3)
    >>> sum(p.strategy == "cw" for p in pairs), sum(p.strategy == "mc" for p in pairs)
    (7, 16)
    >>> [p.eval_channels for p in candidate_pairs(3, ["mc"], subsets=[(0, 2)])]
    [(0,), (2,), (0, 2)]
    """
    if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
        raise ValueError(f"n_channels must be an integer >= 1; got {n_channels!r}")
    if isinstance(strategies, str):
        strategies = (strategies,)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown}; expected some of {list(STRATEGIES)}")
    if subsets is None:
        cw_channels = list(range(n_channels))
        mc_sets = [s for s in nonempty_subsets(range(n_channels)) if len(s) > 1]
    else:
        subs = _check_subsets(subsets, n_channels)
        cw_channels = [s[0] for s in subs if len(s) == 1]
        mc_sets = [s for s in subs if len(s) > 1]
    out: list[Candidate] = []
    if "cw" in strategies:
        out += [Candidate("cw", e, e) for e in nonempty_subsets(cw_channels)]
    if "mc" in strategies:
        out += [Candidate("mc", s, e) for s in mc_sets for e in nonempty_subsets(s)]
    return out


def _channels(row: Mapping[str, Any], key: str, i: int) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in row[key])
    except KeyError:
        raise KeyError(f"score table row {i} has no {key!r}; it has {sorted(row)}") from None


def rank_key(row: Mapping[str, Any], metric: str = "val_f1") -> tuple:
    """Sort key of a score-table row: best first, ties broken deterministically.

    Examples
    --------
    >>> a = {"strategy": "mc", "train_channels": [0, 1], "eval_channels": [0], "val_f1": 0.8}
    >>> b = {"strategy": "cw", "train_channels": [0], "eval_channels": [0], "val_f1": 0.8}
    >>> rank_key(b) < rank_key(a)
    True
    """
    ev = _channels(row, "eval_channels", 0)
    tr = _channels(row, "train_channels", 0)
    return (-float(row[metric]), len(ev), len(tr), ev, tr, str(row.get("strategy", "")))


def select_best(score_table: Iterable[Mapping[str, Any]], metric: str = "val_f1") -> dict:
    """Return the row of highest validation F1 (ties: fewer channels, then lexicographic).

    Parameters
    ----------
    score_table : iterable of mapping
        Rows with ``strategy``, ``train_channels``, ``eval_channels`` and ``metric``.
        Rows whose score is missing or not finite are skipped.
    metric : str
        Column to maximise.

    Returns
    -------
    dict
        A copy of the chosen row.

    Raises
    ------
    ValueError
        If no row has a finite score.
    KeyError
        If a row lacks the channel columns.

    Examples
    --------
    >>> table = [
    ...     {"strategy": "cw", "train_channels": [1], "eval_channels": [1], "val_f1": 0.7},
    ...     {"strategy": "mc", "train_channels": [0, 1], "eval_channels": [0, 1],
    ...      "val_f1": 0.9},
    ...     {"strategy": "cw", "train_channels": [0, 1], "eval_channels": [0, 1],
    ...      "val_f1": 0.9},
    ...     {"strategy": "mc", "train_channels": [0, 1], "eval_channels": [1], "val_f1": 0.9},
    ... ]
    >>> best = select_best(table)
    >>> best["strategy"], best["eval_channels"]
    ('mc', [1])
    """
    rows = []
    for i, row in enumerate(score_table):
        _channels(row, "train_channels", i)
        _channels(row, "eval_channels", i)
        value = row.get(metric)
        if value is None or not math.isfinite(float(value)):
            logger.debug("score table row %d has no finite %s; skipped", i, metric)
            continue
        rows.append(row)
    if not rows:
        raise ValueError(f"no row of the score table has a finite {metric!r}; nothing to select")
    return dict(min(rows, key=lambda r: rank_key(r, metric)))
