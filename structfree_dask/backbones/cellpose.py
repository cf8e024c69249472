"""Cellpose backbone: resolve a model, load it once per process, predict flows of tiles.

Torch and cellpose are imported lazily, so the client and the scheduler stay light.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import PRECISIONS
from ..io import filesystem, is_url, local_copy, redact
from ..runtime.compute_thread import run_heavy

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DEFAULT_MODEL",
    "PRECISIONS",
    "ModelSpec",
    "native_bf16",
    "resolve_precision",
    "resolve_model",
    "load_model",
    "predict_tiles",
    "default_model_path",
    "file_sha256",
    "local_weights",
    "pick_device",
]

logger = logging.getLogger(__name__)

#: Name of the shipped generalist model (works offline).
DEFAULT_MODEL = "generalist"
_DEFAULT_FILE = "cellpose_cyto_generalist.pth"
FLOW_DTYPE = np.float32
_CPU_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
#: oneDNN instruction-set caps (``ONEDNN_MAX_CPU_ISA``, or its older name
#: ``DNNL_MAX_CPU_ISA``) below bf16 arithmetic: with one of them torch's kernels cannot use
#: the CPU's bf16 units, whatever its flags say.
ISA_CAPS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE",
                                   "AVX512_CORE_VNNI"})


def default_model_path() -> Path:
    """Path of the generalist Cellpose cyto model shipped with the package."""
    return Path(str(resources.files("structfree_dask") / "_data" / _DEFAULT_FILE))


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: where its weights are and what it expects.

    Attributes
    ----------
    name : str
        What the user asked for (``"generalist"``, a cellpose name, or a path).
    path : str
        Weights file, or the URL of weights in an object store: each process that loads
        them takes a local copy (:func:`~structfree_dask.io.local_copy`, cached per user
        and checked against ``sha256``).
    diam_mean : float
        Cell diameter (px) the model was trained at.
    sha256 : str
        Checksum of the weights (first 16 hex digits), for run records.
    precision : str
        Precision the network runs at (one of :data:`PRECISIONS`; ``auto`` is resolved
        on the device that runs it, :func:`resolve_precision`).
    """

    name: str
    path: str
    diam_mean: float
    sha256: str
    precision: str = "auto"


#: Logged where a network is loaded at bf16 on a CPU without native bf16 (measured on an
#: AVX2 CPU: 0.39-0.44 tiles/s at bf16 against 2.8-3.0 at fp32).
EMULATED_BF16 = ("precision bf16 on a CPU without native bf16 (no amx_bf16 or avx512_bf16 in "
                 "its flags, or oneDNN capped below them): torch emulates it, several times "
                 "slower than fp32; use precision auto (the default) or fp32 on this CPU")


def native_bf16(cpuinfo: str | Path = "/proc/cpuinfo",
                environ: Mapping[str, str] | None = None) -> bool:
    """Return whether this machine's CPU computes bf16 natively (AMX or AVX512-BF16).

    Read from the CPU flags of ``/proc/cpuinfo`` (Linux); False where they cannot be read,
    and False where ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) in ``environ``
    (default: this process's environment) caps torch's kernels below bf16
    (:data:`ISA_CAPS_WITHOUT_BF16`), as on machines where AMX is switched off.

    Examples
    --------
    >>> native_bf16(environ={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    False
    """
    env = os.environ if environ is None else environ
    cap = env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA") or ""
    if cap.strip().upper() in ISA_CAPS_WITHOUT_BF16:
        return False
    try:
        words = set(Path(cpuinfo).read_text(errors="replace").split())
    except OSError:
        return False
    return bool(_CPU_BF16_FLAGS & words)


def resolve_precision(precision: str, device: Any) -> str:
    """Return the precision a network runs at on ``device``: ``fp32``, ``bf16`` or ``fp16``.

    ``auto`` is bf16 on a CPU with native bf16 (:func:`native_bf16`), fp16 on a CUDA GPU
    and fp32 elsewhere; any other value of :data:`PRECISIONS` is kept as asked.

    Examples
    --------
    >>> resolve_precision("auto", "cuda"), resolve_precision("fp32", "cuda")
    ('fp16', 'fp32')
    >>> resolve_precision("auto", "mps")
    'fp32'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision != "auto":
        return precision
    kind = getattr(device, "type", str(device))
    if kind == "cuda":
        return "fp16"
    return "bf16" if kind == "cpu" and native_bf16() else "fp32"


def file_sha256(path: str | Path) -> str:
    """Return the first 16 hex digits of a file's SHA-256 (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _diam_mean(state: dict[str, Any]) -> float:
    if "diam_mean" in state:
        return float(np.asarray(state["diam_mean"].cpu()).ravel()[0])
    return 30.0


#: Weights already checked in this process: (resolved path, size, mtime_ns) ->
#: (diam_mean, sha256).
_VALIDATED: dict[tuple[str, int, int], tuple[float, str]] = {}
_EXPECTED_WEIGHTS = "expected weights saved by cellpose or by 'structfree-dask zoo build'"


class _NotCPnet(Exception):
    """Why a weights file is not a CPnet state dict (short, for the message)."""


def _short(err: BaseException, limit: int = 160) -> str:
    """Return the gist of an exception: its type and first meaningful line, shortened."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:  # torch's weights_only message: the reason comes after a long preamble
        text = text.split(marker, 1)[1]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    if ". " in line and line.index(". ") > 20:  # keep the first sentence
        line = line[: line.index(". ")]
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _key_list(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _check_cpnet_state(state: Any) -> float:
    """Check that a loaded object is a CPnet state dict; return its ``diam_mean``."""
    import torch
    from cellpose.resnet_torch import CPnet

    if not isinstance(state, dict):
        raise _NotCPnet(f"it holds a {type(state).__name__}, not a state dict")
    if not state:
        raise _NotCPnet("it holds an empty state dict")
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise _NotCPnet(f"entries that are not tensors: {_key_list(not_tensors)}")
    try:
        nbase = _nbase_from_state(state)
    except ValueError:
        raise _NotCPnet(
            f"no CPnet layers 'downsample.down.res_down_*'; found {_key_list(list(state))}"
        ) from None
    diam_mean = _diam_mean(state)
    try:
        net = CPnet(nbase, 3, sz=3, mkldnn=False, max_pool=True, diam_mean=diam_mean)
    except Exception as err:  # an odd nbase can fail in many ways
        raise _NotCPnet(f"cannot build a CPnet with nbase {nbase}: {_short(err)}") from err
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing {_key_list(missing)}")
    if unexpected:
        problems.append(f"unexpected {_key_list(unexpected)}")
    if wrong:
        problems.append(f"shape of {_key_list(wrong, 2)}")
    if problems:
        raise _NotCPnet(f"layers do not match a CPnet with nbase {nbase}: "
                        + "; ".join(problems))
    try:
        net.load_state_dict(state, strict=True)
    except Exception as err:
        raise _NotCPnet(f"loading into a CPnet with nbase {nbase} failed: {_short(err)}"
                        ) from err
    return diam_mean


def _validate_weights(path: Path) -> tuple[float, str]:
    """Check that ``path`` holds CPnet weights, once per file version; return (diam_mean, sha256).

    Raises
    ------
    ValueError
        If the file is not a Cellpose CPnet weights file.
    """
    import torch

    st = path.stat()
    key = (str(path.resolve()), int(st.st_size), int(st.st_mtime_ns))
    cached = _VALIDATED.get(key)
    if cached is not None:
        return cached
    sha = file_sha256(path)  # reads the file: an unreadable one fails here, as such
    try:
        if st.st_size == 0:
            raise _NotCPnet("the file is empty")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises EOFError, UnpicklingError, RuntimeError...
            raise _NotCPnet(f"torch.load failed: {_short(err)}") from err
        diam_mean = _check_cpnet_state(state)
    except _NotCPnet as err:
        raise ValueError(
            f"model {path}: not a Cellpose CPnet weights file ({err}); {_EXPECTED_WEIGHTS}"
        ) from err.__cause__
    _VALIDATED[key] = (diam_mean, sha)
    return diam_mean, sha


#: Local copies of weights at URLs made by this process: (url, version) -> local path.
_URL_COPIES: dict[tuple[str, str], Path] = {}


def _url_copy(url: str) -> Path:
    """Return this machine's copy of weights at a URL (downloaded once per version)."""
    fs, path = filesystem(url)
    try:
        fs.invalidate_cache(path)
        info = fs.info(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"model {redact(url)}: no weights file there") from None
    if info.get("type") == "directory":
        raise ValueError(f"model {redact(url)}: is a folder; expected a Cellpose CPnet "
                         "weights file (a model zoo is given with --zoo)")
    version = str(info.get("ETag") or info.get("etag") or "") + \
        f"/{info.get('size')}/{info.get('LastModified') or info.get('mtime') or ''}"
    key = (url, version)
    local = _URL_COPIES.get(key)
    if local is None or not local.is_file():
        local = _URL_COPIES[key] = local_copy(url)
    return local


def local_weights(spec: ModelSpec) -> Path:
    """Return a local file with the spec's weights (a checked local copy for a URL).

    Called where the weights are loaded, so each worker makes its own copy.
    """
    if not is_url(spec.path):
        return Path(spec.path)
    return local_copy(spec.path, spec.sha256)


def resolve_model(model: str | Path | None) -> ModelSpec:
    """Resolve a model given as ``None`` (shipped generalist), a path, a URL, or a cellpose name.

    A URL (``s3://bucket/zoo/models/m/weights.pth``) is copied to this machine once
    (:func:`~structfree_dask.io.local_copy`) and checked there; the spec keeps the URL,
    so that each process loading the weights (a worker) takes its own local copy.

    Built-in cellpose names (``cyto3``, ``nuclei``, ...) are downloaded by cellpose
    into its model folder the first time (this needs the network).

    The weights are checked here, on the calling process: they must load with
    ``torch.load(weights_only=True)`` and fit a Cellpose CPnet exactly. The check is
    done once per file version (path, size, modification time) and process.

    Parameters
    ----------
    model : str, Path or None

    Returns
    -------
    ModelSpec

    Raises
    ------
    FileNotFoundError
        If ``model`` is neither an existing file nor a cellpose name, or a built-in
        model cannot be downloaded.
    ValueError
        If ``model`` is a directory, or its file is not Cellpose CPnet weights.

    Examples
    --------
    >>> spec = resolve_model(None)
    >>> spec.name, spec.diam_mean
    ('generalist', 30.0)
    """
    if model is None or str(model) == DEFAULT_MODEL:
        path = default_model_path()
        name = DEFAULT_MODEL
    elif is_url(model):
        local = _url_copy(str(model))
        diam_mean, sha256 = _validate_weights(local)
        return ModelSpec(name=redact(model), path=str(model), diam_mean=diam_mean,
                         sha256=sha256)
    elif Path(model).is_file():
        path = Path(model)
        name = str(model)
    else:
        from cellpose import models as cp_models

        if str(model) not in cp_models.MODEL_NAMES and Path(model).is_dir():
            raise ValueError(
                f"model {model}: is a directory; expected a Cellpose CPnet weights file "
                "(saved by cellpose or by 'structfree-dask zoo build'; a model zoo folder "
                "is given with --zoo)"
            )
        if str(model) not in cp_models.MODEL_NAMES:
            raise FileNotFoundError(
                f"model {str(model)!r} is not a file and not a cellpose built-in name "
                f"(expected a weights path, '{DEFAULT_MODEL}', or one of "
                f"{', '.join(cp_models.MODEL_NAMES[:6])}, ...)"
            )
        try:
            path = Path(cp_models.model_path(str(model)))
        except Exception as err:  # network errors come in many types
            raise FileNotFoundError(
                f"cellpose built-in model {model!r} is not in the local cellpose model "
                f"folder and could not be downloaded ({type(err).__name__}: {err}); "
                f"use '{DEFAULT_MODEL}' (shipped) or a weights file"
            ) from err
        name = str(model)
    diam_mean, sha256 = _validate_weights(path)
    return ModelSpec(name=name, path=str(path), diam_mean=diam_mean, sha256=sha256)


def pick_device(prefer_gpu: bool = True) -> torch.device:
    """Return ``cuda`` when available (and wanted), else ``cpu``."""
    import torch

    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


_CACHE: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def _nbase_from_state(state: dict[str, Any]) -> list[int]:
    # CPnet: downsample.down.res_down_{k}.conv.conv_0.2.weight is (nbase[k+1], nbase[k], 3, 3)
    nbase = []
    k = 0
    while f"downsample.down.res_down_{k}.conv.conv_0.2.weight" in state:
        w = state[f"downsample.down.res_down_{k}.conv.conv_0.2.weight"]
        if k == 0:
            nbase.append(int(w.shape[1]))
        nbase.append(int(w.shape[0]))
        k += 1
    if not nbase:
        raise ValueError("weights do not look like a Cellpose CPnet (no downsample layers)")
    return nbase


def load_model(spec: ModelSpec, device: torch.device | None = None) -> Any:
    """Load a CPnet once per process and device, and return it (cached).

    The network layout (``nbase``) is read from the weights, so small CPnets load
    as well as the full-size ones. Weights at a URL are read from this machine's local
    copy (:func:`local_weights`: downloaded here once, checked against ``spec.sha256``).

    Parameters
    ----------
    spec : ModelSpec
    device : torch.device, optional

    Returns
    -------
    cellpose.resnet_torch.CPnet
        In eval mode, on ``device``; at fp32 as cellpose lays it out, or, when it runs
        at a reduced precision (``spec.precision``), in the channels-last memory layout
        with the layers that read the image kept at fp32
        (:func:`.full_precision.image_layers_at_fp32`).

    Notes
    -----
    Loading at bf16 on a CPU without native bf16 (:func:`native_bf16`) logs a warning
    (:data:`EMULATED_BF16`): torch emulates it there, several times slower than fp32.
    """
    import torch
    from cellpose.resnet_torch import CPnet

    device = device or pick_device()
    precision = resolve_precision(spec.precision, device)
    channels_last = precision != "fp32"
    key = (spec.path, str(device), channels_last)
    with _LOCK:
        net = _CACHE.get(key)
        if net is None:
            state = torch.load(local_weights(spec), map_location="cpu", weights_only=True)
            nbase = _nbase_from_state(state)
            net = CPnet(nbase, 3, sz=3, mkldnn=False, max_pool=True,
                        diam_mean=spec.diam_mean)
            net.load_state_dict(state)
            net.to(device)
            if channels_last:
                from .full_precision import image_layers_at_fp32

                net.to(memory_format=torch.channels_last)
                image_layers_at_fp32(net)  # the image itself is not rounded to bf16/fp16
            net.eval()
            _CACHE[key] = net
            logger.info("loaded model %s on %s (nbase %s)", spec.name, device, nbase)
            if precision == "bf16" and device.type == "cpu" and not native_bf16():
                logger.warning(EMULATED_BF16)
    return net


#: Tiles per forward pass when none is given, per device type. On a CPU, passes of two
#: 224 px tiles ran faster per tile than passes of eight (5.1 vs 3.9 tiles/s with two
#: torch threads) and need a quarter of the memory (+235 vs +767 MiB): large batches
#: only pay off on a GPU.
DEFAULT_BATCH_SIZE: dict[str, int] = {"cpu": 2, "cuda": 8, "mps": 8}


def default_batch_size(device: Any) -> int:
    """Tiles per forward pass on ``device`` (a torch device or its type name).

    Examples
    --------
    >>> default_batch_size("cpu"), default_batch_size("cuda")
    (2, 8)
    """
    kind = getattr(device, "type", str(device))
    return DEFAULT_BATCH_SIZE.get(kind, 8)


def predict_tiles(net: Any, tiles: np.ndarray, *, batch_size: int | None = None,
                  precision: str = "auto") -> np.ndarray:
    """Run the network on single-channel tiles.

    Parameters
    ----------
    net : CPnet
    tiles : numpy.ndarray
        ``(n, ly, lx)`` normalized grayscale tiles (each channel of a field is fed on
        its own: the network's second input channel is zero).
    batch_size : int, optional
        Tiles per forward pass (default: :func:`default_batch_size` of the net's device).
    precision : str
        One of :data:`PRECISIONS` (resolved on the net's device): ``fp32`` runs the
        network as cellpose does; ``bf16`` and ``fp16`` run it under torch's autocast,
        in the channels-last layout, the layers that read the image at fp32 (a net from
        :func:`load_model` is laid out so).

    Returns
    -------
    numpy.ndarray
        ``(n, 3, ly, lx)`` float32: dY, dX, cell probability (logit).
    """
    import torch

    if tiles.ndim != 3:
        raise ValueError(f"tiles must be (n, ly, lx); got shape {tiles.shape}")
    n, ly, lx = tiles.shape
    nin = int(net.nbase[0]) if hasattr(net, "nbase") else 2
    out = np.empty((n, 3, ly, lx), dtype=FLOW_DTYPE)
    device = next(net.parameters()).device
    resolved = resolve_precision(precision, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(resolved)
    layout = torch.contiguous_format if dtype is None else torch.channels_last
    batch_size = batch_size or default_batch_size(device)

    def run() -> None:
        with torch.no_grad():
            for i in range(0, n, batch_size):
                chunk = tiles[i : i + batch_size]
                x = np.zeros((len(chunk), nin, ly, lx), dtype=np.float32)
                x[:, 0] = chunk
                xt = torch.from_numpy(x).to(device).contiguous(memory_format=layout)
                if dtype is not None:
                    with torch.autocast(device.type, dtype=dtype):
                        y = net(xt)[0]
                else:
                    y = net(xt)[0]
                out[i : i + len(chunk)] = y.float().cpu().numpy()
                del xt, y

    run_heavy(run)  # one compute thread per process: see compute_thread
    return out
