"""Scoring and selecting the zoo's models on annotated planes.

:mod:`.data` (annotated planes: loading, training samples, pooled scores),
:mod:`.select` (candidate pairs, best pair), :mod:`.scoring` (candidate pairs and the
Vanilla baseline scored per split, selection from the scores), :mod:`.threshold` (the
selection's flow and cell probability thresholds, chosen on validation) and
:mod:`.predict` (model sets, cached flows, FA and mask-fusion scores). Flow Averaging
itself is the package's one in-process implementation,
:mod:`structfree_dask.pipeline.segment`. Public names are imported from their module on
first use.
"""

from __future__ import annotations

import lazy_loader

#: Submodule -> the public names it defines (imported on first use).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "data": [
        "SCORE_KEYS", "Plane", "load_planes", "load_samples", "pool_scores", "score_planes",
        "VANILLA", "pair_key", "summarize_scores",
    ],
    "scoring": [
        "SELECTION_RULE", "score_candidates", "select_models", "score_vanilla", "score_split",
        "select_from_scores",
    ],
    "select": ["Candidate", "candidate_pairs", "nonempty_subsets", "select_best", "rank_key"],
    "threshold": [
        "CELLPROB_THRESHOLDS", "FLOW_THRESHOLDS", "best_thresholds", "check_cellprob_thresholds",
        "check_flow_thresholds", "choice_key", "choose_thresholds", "threshold_scores",
    ],
    "predict": [
        "METHODS", "FAModels", "PlaneFlows", "channel_labels", "fa_labels", "fusion_models",
        "load_eval_planes", "method_scores", "reference_card", "selected_models", "subset_models",
        "threshold_pair", "vanilla_models",
    ],
})
