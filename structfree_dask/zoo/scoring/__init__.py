"""Scoring and selecting the zoo's models on annotated planes.

:mod:`.data` (annotated planes: loading, training samples, pooled scores),
:mod:`.select` (candidate pairs, best pair), :mod:`.scoring` (candidate pairs and the
Vanilla baseline scored per split, selection from the scores), :mod:`.threshold` (the
selection's flow
threshold, chosen on validation) and :mod:`.predict` (model sets, cached flows, FA
and mask-fusion scores). Flow Averaging itself is the package's one in-process
implementation, :mod:`structfree_dask.pipeline.segment`. Public names are imported from
their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import (
        SCORE_KEYS,
        VANILLA,
        Plane,
        load_planes,
        load_samples,
        pair_key,
        pool_scores,
        score_planes,
        summarize_scores,
    )
    from .predict import (
        METHODS,
        FAModels,
        PlaneFlows,
        channel_labels,
        fa_labels,
        fusion_models,
        load_eval_planes,
        method_scores,
        reference_card,
        selected_models,
        subset_models,
        vanilla_models,
    )
    from .scoring import (
        SELECTION_RULE,
        score_candidates,
        score_split,
        score_vanilla,
        select_from_scores,
        select_models,
    )
    from .select import (
        Candidate,
        candidate_pairs,
        nonempty_subsets,
        rank_key,
        select_best,
    )
    from .threshold import (
        FLOW_THRESHOLDS,
        best_flow_threshold,
        check_flow_thresholds,
        choice_key,
        choose_flow_threshold,
        flow_threshold_scores,
    )

#: Public name -> submodule defining it (imported on first use).
_SOURCES: dict[str, str] = {
    "SCORE_KEYS": "data",
    "Plane": "data",
    "load_planes": "data",
    "load_samples": "data",
    "pool_scores": "data",
    "score_planes": "data",
    "VANILLA": "data",
    "SELECTION_RULE": "scoring",
    "pair_key": "data",
    "score_candidates": "scoring",
    "select_models": "scoring",
    "score_vanilla": "scoring",
    "score_split": "scoring",
    "summarize_scores": "data",
    "select_from_scores": "scoring",
    "Candidate": "select",
    "candidate_pairs": "select",
    "nonempty_subsets": "select",
    "select_best": "select",
    "rank_key": "select",
    "FLOW_THRESHOLDS": "threshold",
    "best_flow_threshold": "threshold",
    "choice_key": "threshold",
    "check_flow_thresholds": "threshold",
    "choose_flow_threshold": "threshold",
    "flow_threshold_scores": "threshold",
    "METHODS": "predict",
    "FAModels": "predict",
    "PlaneFlows": "predict",
    "channel_labels": "predict",
    "fa_labels": "predict",
    "fusion_models": "predict",
    "load_eval_planes": "predict",
    "method_scores": "predict",
    "reference_card": "predict",
    "selected_models": "predict",
    "subset_models": "predict",
    "vanilla_models": "predict",
}

__all__ = [
    "SCORE_KEYS",
    "Plane",
    "load_planes",
    "load_samples",
    "pool_scores",
    "score_planes",
    "VANILLA",
    "SELECTION_RULE",
    "pair_key",
    "score_candidates",
    "select_models",
    "score_vanilla",
    "score_split",
    "summarize_scores",
    "select_from_scores",
    "Candidate",
    "candidate_pairs",
    "nonempty_subsets",
    "select_best",
    "rank_key",
    "FLOW_THRESHOLDS",
    "best_flow_threshold",
    "choice_key",
    "check_flow_thresholds",
    "choose_flow_threshold",
    "flow_threshold_scores",
    "METHODS",
    "FAModels",
    "PlaneFlows",
    "channel_labels",
    "fa_labels",
    "fusion_models",
    "load_eval_planes",
    "method_scores",
    "reference_card",
    "selected_models",
    "subset_models",
    "vanilla_models",
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
