"""Training the zoo's models.

:mod:`.splits` (train/val/test and k-fold splits), :mod:`.augment` (training
augmentations), :mod:`.train` (fine-tuning), :mod:`.jobs` (the training jobs to run)
and :mod:`.build` (one training job per task, :func:`build_zoo` on a Dask cluster).
Public names are imported from their module on first use. ``augment`` names the
module here; the function is :func:`structfree_dask.zoo.training.augment.augment`
(also :func:`structfree_dask.zoo.augment`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .augment import (
        AUGMENTATIONS,
        augment_with_record,
        brightness,
        gaussian_noise,
        hflip,
        poisson_noise,
        rotate,
        salt_and_pepper,
        scale,
        vflip,
    )
    from .build import (
        BuildResult,
        build_zoo,
        model_log_path,
        run_training_job,
        task_resources,
        train_model,
    )
    from .jobs import (
        TrainingJob,
        training_jobs,
    )
    from .splits import (
        Split,
        kfold,
        min_fields_for_kfold,
        split_fields,
    )
    from .train import (
        EarlyStopping,
        TrainResult,
        finetune,
        flow_targets,
        prepare_samples,
        validation_loss,
    )

#: Public name -> submodule defining it (imported on first use).
_SOURCES: dict[str, str] = {
    "AUGMENTATIONS": "augment",
    "augment_with_record": "augment",
    "scale": "augment",
    "rotate": "augment",
    "hflip": "augment",
    "vflip": "augment",
    "gaussian_noise": "augment",
    "poisson_noise": "augment",
    "salt_and_pepper": "augment",
    "brightness": "augment",
    "TrainResult": "train",
    "EarlyStopping": "train",
    "finetune": "train",
    "validation_loss": "train",
    "prepare_samples": "train",
    "flow_targets": "train",
    "Split": "splits",
    "split_fields": "splits",
    "kfold": "splits",
    "min_fields_for_kfold": "splits",
    "TrainingJob": "jobs",
    "training_jobs": "jobs",
    "run_training_job": "build",
    "BuildResult": "build",
    "model_log_path": "build",
    "train_model": "build",
    "task_resources": "build",
    "build_zoo": "build",
}

__all__ = [
    "AUGMENTATIONS",
    "augment_with_record",
    "scale",
    "rotate",
    "hflip",
    "vflip",
    "gaussian_noise",
    "poisson_noise",
    "salt_and_pepper",
    "brightness",
    "TrainResult",
    "EarlyStopping",
    "finetune",
    "validation_loss",
    "prepare_samples",
    "flow_targets",
    "Split",
    "split_fields",
    "kfold",
    "min_fields_for_kfold",
    "TrainingJob",
    "training_jobs",
    "run_training_job",
    "BuildResult",
    "model_log_path",
    "train_model",
    "task_resources",
    "build_zoo",
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
