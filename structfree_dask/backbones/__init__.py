"""Segmentation backbones. Each predicts (dY, dX, cell probability) maps of tiles."""

from .cellpose import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL,
    ModelSpec,
    default_batch_size,
    default_model_path,
    file_sha256,
    load_model,
    local_weights,
    pick_device,
    predict_tiles,
    resolve_model,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL",
    "ModelSpec",
    "default_batch_size",
    "default_model_path",
    "file_sha256",
    "load_model",
    "local_weights",
    "pick_device",
    "predict_tiles",
    "resolve_model",
]
