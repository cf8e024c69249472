"""Scoring segmentations against ground truth.

:mod:`.metrics` (instance matching, F1, aggregated Jaccard, AP, pooled and bootstrap F1)
, :mod:`.plate` (a plate's predicted label images scored against ground-truth ones)
and :mod:`.tables` (the one table writer: aligned text and CSV). Public names are
imported from their module on first use.
"""

from __future__ import annotations

import lazy_loader

#: Submodule -> the public names it defines (imported on first use).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "metrics": [
        "AP_THRESHOLDS", "MatchScores", "match_scores", "aggregated_jaccard_index",
        "average_precision", "ap_per_threshold", "evaluate", "combine", "matched_f1",
        "paired_bootstrap_f1", "pooled_f1",
    ],
    "plate": ["evaluate_plate", "write_scores", "format_scores", "score_rows"],
    "tables": ["format_table", "format_cell", "write_csv"],
})
