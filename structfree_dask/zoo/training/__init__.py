"""Training the zoo's models.

:mod:`.splits` (train/val/test and k-fold splits), :mod:`.augment` (training
augmentations), :mod:`.train` (fine-tuning), :mod:`.jobs` (the training jobs to run) and
:mod:`.build` (one training job per task, :func:`build_zoo` on a Dask cluster). Public
names are imported from their module on first use (``lazy_loader``). ``augment`` names the
module here; the function is :func:`structfree_dask.zoo.training.augment.augment` (also
:func:`structfree_dask.zoo.augment`).
"""

from __future__ import annotations

import lazy_loader

#: Submodule -> the public names it defines (imported on first use).
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "augment": [
        "AUGMENTATIONS", "augment_with_record", "scale", "rotate", "hflip", "vflip",
        "gaussian_noise", "poisson_noise", "salt_and_pepper", "brightness",
    ],
    "train": [
        "TrainResult", "EarlyStopping", "finetune", "validation_loss", "prepare_samples",
        "flow_targets",
    ],
    "splits": ["Split", "split_fields", "kfold", "min_fields_for_kfold"],
    "jobs": ["TrainingJob", "training_jobs"],
    "build": [
        "run_training_job", "BuildResult", "model_log_path", "train_model", "task_resources",
        "build_zoo",
    ],
})
