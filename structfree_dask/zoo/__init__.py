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
"""

from .card import CardError, ModelCard, check_compatible
from .registry import Zoo
from .report import (
    candidates_table,
    f1_heatmap,
    f1_table,
    fusion_table,
    list_selections,
    overlay_figure,
    write_overlays,
    write_report,
)
from .resolve import ResolvedSelection, resolve, resolve_selection
from .scoring.data import (
    VANILLA,
    Plane,
    load_planes,
    load_samples,
    pair_key,
    score_planes,
    summarize_scores,
)
from .scoring.predict import FAModels, fusion_models, selected_models, vanilla_models
from .scoring.scoring import (
    SELECTION_RULE,
    score_candidates,
    score_split,
    score_vanilla,
    select_from_scores,
    select_models,
)
from .scoring.select import Candidate, candidate_pairs, nonempty_subsets, select_best
from .scoring.threshold import (
    CELLPROB_THRESHOLDS,
    FLOW_THRESHOLDS,
    choose_thresholds,
    threshold_scores,
)
from .selection import Selection, as_selection
from .training.augment import AUGMENTATIONS, augment, augment_with_record
from .training.build import (
    BuildResult,
    build_zoo,
    model_log_path,
    run_training_job,
    task_resources,
    train_model,
)
from .training.jobs import TrainingJob, training_jobs
from .training.splits import Split, kfold, split_fields
from .training.train import EarlyStopping, TrainResult, finetune, flow_targets, validation_loss

__all__ = [
    "AUGMENTATIONS",
    "CELLPROB_THRESHOLDS",
    "FLOW_THRESHOLDS",
    "SELECTION_RULE",
    "VANILLA",
    "BuildResult",
    "Candidate",
    "CardError",
    "EarlyStopping",
    "FAModels",
    "ModelCard",
    "Plane",
    "ResolvedSelection",
    "resolve_selection",
    "Selection",
    "Split",
    "TrainResult",
    "TrainingJob",
    "Zoo",
    "as_selection",
    "augment",
    "augment_with_record",
    "build_zoo",
    "candidate_pairs",
    "candidates_table",
    "check_compatible",
    "choose_thresholds",
    "f1_heatmap",
    "f1_table",
    "finetune",
    "flow_targets",
    "fusion_models",
    "fusion_table",
    "kfold",
    "list_selections",
    "load_planes",
    "load_samples",
    "model_log_path",
    "nonempty_subsets",
    "overlay_figure",
    "pair_key",
    "resolve",
    "run_training_job",
    "score_candidates",
    "score_planes",
    "score_split",
    "score_vanilla",
    "select_best",
    "select_from_scores",
    "select_models",
    "selected_models",
    "split_fields",
    "summarize_scores",
    "task_resources",
    "threshold_scores",
    "train_model",
    "training_jobs",
    "validation_loss",
    "vanilla_models",
    "write_overlays",
    "write_report",
]
