"""Per-cell-line model zoo: fine-tuned Cellpose models, their cards, and their selection.

Channel-wise (CW) models are fine-tuned on one channel, multi-channel (MC) models on
several, each channel a grayscale sample of its own. At inference each evaluation
channel runs alone and Flow Averaging averages the flows; the (training subset,
evaluation subset) pair of best validation F1 is selected per cell line and organelle.

Modules: :mod:`.splits` (train/val/test and k-fold splits), :mod:`.augment`
(training augmentations), :mod:`.train` (fine-tuning), :mod:`.card` and
:mod:`.registry` (the zoo on disk), :mod:`.select` (candidate pairs, best pair),
:mod:`.evaluate` (FA with one model per channel) and :mod:`.build` (jobs, one
training job per task, scoring and selection).
"""

from .augment import AUGMENTATIONS, augment, augment_with_record
from .build import (
    Plane,
    TrainingJob,
    load_planes,
    load_samples,
    run_training_job,
    score_candidates,
    score_planes,
    select_models,
    training_jobs,
)
from .card import CardError, ModelCard, check_compatible
from .evaluate import channel_flows, fa_segment, flows_to_labels
from .registry import Zoo
from .select import Candidate, candidate_pairs, nonempty_subsets, select_best
from .splits import Split, kfold, split_fields
from .train import EarlyStopping, TrainResult, finetune, flow_targets, validation_loss

__all__ = [
    "AUGMENTATIONS",
    "Candidate",
    "CardError",
    "EarlyStopping",
    "ModelCard",
    "Plane",
    "Split",
    "TrainResult",
    "TrainingJob",
    "Zoo",
    "augment",
    "augment_with_record",
    "candidate_pairs",
    "channel_flows",
    "check_compatible",
    "fa_segment",
    "finetune",
    "flow_targets",
    "flows_to_labels",
    "kfold",
    "load_planes",
    "load_samples",
    "nonempty_subsets",
    "run_training_job",
    "score_candidates",
    "score_planes",
    "select_best",
    "select_models",
    "split_fields",
    "training_jobs",
    "validation_loss",
]
