"""Scoring segmentations against ground truth.

:mod:`.metrics` (instance matching, F1, aggregated Jaccard, AP, pooled and bootstrap F1)
, :mod:`.plate` (a plate's predicted label images scored against ground-truth ones)
and :mod:`.tables` (the one table writer: aligned text and CSV). Public names are
imported from their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .metrics import (
        AP_THRESHOLDS,
        MatchScores,
        aggregated_jaccard_index,
        ap_per_threshold,
        average_precision,
        combine,
        evaluate,
        match_scores,
        matched_f1,
        paired_bootstrap_f1,
        pooled_f1,
    )
    from .plate import (
        evaluate_plate,
        format_scores,
        score_rows,
        write_scores,
    )
    from .tables import (
        format_cell,
        format_table,
        write_csv,
    )

#: Public name -> submodule defining it (imported on first use).
_SOURCES: dict[str, str] = {
    "AP_THRESHOLDS": "metrics",
    "MatchScores": "metrics",
    "match_scores": "metrics",
    "aggregated_jaccard_index": "metrics",
    "average_precision": "metrics",
    "ap_per_threshold": "metrics",
    "evaluate": "metrics",
    "combine": "metrics",
    "matched_f1": "metrics",
    "paired_bootstrap_f1": "metrics",
    "pooled_f1": "metrics",
    "evaluate_plate": "plate",
    "write_scores": "plate",
    "format_scores": "plate",
    "score_rows": "plate",
    "format_table": "tables",
    "format_cell": "tables",
    "write_csv": "tables",
}

__all__ = [
    "AP_THRESHOLDS",
    "MatchScores",
    "match_scores",
    "aggregated_jaccard_index",
    "average_precision",
    "ap_per_threshold",
    "evaluate",
    "combine",
    "matched_f1",
    "paired_bootstrap_f1",
    "pooled_f1",
    "evaluate_plate",
    "write_scores",
    "format_scores",
    "score_rows",
    "format_table",
    "format_cell",
    "write_csv",
]


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use."""
    try:
        source = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{source}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
