"""Per-cell-line model zoo: fine-tuned Cellpose models, their cards, and their selection.

Channel-wise (CW) models are fine-tuned on one channel, multi-channel (MC) models on
several, each channel a grayscale sample of its own. At inference each evaluation
channel runs alone and Flow Averaging averages the flows; the (training subset,
evaluation subset) pair of best validation F1 is selected per cell line and organelle.

Subpackages: :mod:`.training` (:mod:`~.training.splits`: train/val/test and k-fold
splits, :mod:`~.training.augment`: training augmentations, :mod:`~.training.train`:
fine-tuning, :mod:`~.training.jobs`: the training jobs to run, :mod:`~.training.build`:
one training job per task, :func:`build_zoo` on a Dask cluster) and :mod:`.scoring`
(:mod:`~.scoring.data`: annotated planes: loading, training samples, pooled scores,
:mod:`~.scoring.select`:
candidate pairs, best pair, :mod:`~.scoring.scoring`: candidate pairs and the Vanilla
baseline scored per split, selection from the scores, :mod:`~.scoring.threshold`: the
selection's flow and cell probability thresholds, chosen on validation,
:mod:`~.scoring.predict`: model sets,
cached flows, FA and mask-fusion scores on annotated planes). Modules: :mod:`.card` and
:mod:`.registry` (the zoo on disk), :mod:`.selection` (the typed :class:`Selection` and
:func:`resolve`: a selection's channels, weights, diameter and thresholds on a plate),
:mod:`.use` (a segmentation configuration from a zoo's selection) and :mod:`.report`
(F1 tables, heatmaps, fusion comparison, overlays).
The ``structfree-dask zoo`` command line is in :mod:`structfree_dask.cli.zoo`.

Public names are imported from their module on first use (``lazy_loader``): using a
zoo (``segment --zoo``: :mod:`.registry`, :mod:`.card`, :mod:`.selection`, :mod:`.resolve`,
:mod:`.use`) never loads training, scoring or the report.
"""

from __future__ import annotations

import lazy_loader

#: Submodule -> the public names it defines (imported on first use).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "card": ["CardError", "ModelCard", "check_compatible"],
    "registry": ["Zoo"],
    "report": ["candidates_table", "f1_heatmap", "f1_table", "fusion_table", "list_selections",
        "overlay_figure", "write_overlays", "write_zoo_report"],
    "resolve": ["ResolvedSelection", "resolve", "resolve_selection"],
    "scoring.data": ["VANILLA", "Plane", "load_planes", "load_samples", "pair_key",
        "score_planes", "summarize_scores"],
    "scoring.predict": ["FAModels", "fusion_models", "selected_models", "vanilla_models"],
    "scoring.scoring": ["SELECTION_RULE", "score_candidates", "score_split", "score_vanilla",
        "select_from_scores", "select_models"],
    "scoring.select": ["Candidate", "candidate_pairs", "nonempty_subsets", "select_best"],
    "scoring.threshold": ["CELLPROB_THRESHOLDS", "FLOW_THRESHOLDS", "choose_thresholds",
        "threshold_scores"],
    "selection": ["Selection", "as_selection"],
    "training.augment": ["AUGMENTATIONS", "augment", "augment_with_record"],
    "training.build": ["BuildResult", "build_zoo", "model_log_path", "run_training_job",
        "task_resources", "train_model"],
    "training.jobs": ["TrainingJob", "training_jobs"],
    "training.splits": ["Split", "kfold", "split_fields"],
    "training.train": ["EarlyStopping", "TrainResult", "finetune", "flow_targets",
        "validation_loss"],
})
