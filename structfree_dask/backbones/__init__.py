"""Segmentation backbones. Each predicts (dY, dX, cell probability) maps of tiles."""

from .cellpose import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MODEL,
    PRECISIONS,
    ModelSpec,
    default_batch_size,
    default_model_path,
    file_sha256,
    load_model,
    local_weights,
    native_bf16,
    pick_device,
    predict_tiles,
    resolve_model,
    resolve_precision,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL",
    "PRECISIONS",
    "ModelSpec",
    "default_batch_size",
    "default_model_path",
    "file_sha256",
    "load_model",
    "local_weights",
    "native_bf16",
    "pick_device",
    "predict_tiles",
    "resolve_model",
    "resolve_precision",
]
