"""Fine-tune a pretrained Cellpose network on grayscale (image, labels) samples.

Everything network-side is cellpose's own: the ``CPnet`` loaded from the base weights
(:func:`structfree_dask.backbones.load_model`, copied so the cached network is never
touched), the flow targets (:func:`cellpose.dynamics.labels_to_flows`), the tile
sampler (:func:`cellpose.transforms.random_rotate_and_resize`, to ``tile_size`` px,
each image rescaled so its cells have the model's ``diam_mean``) and the loss
(``cellpose.train._loss_fn_seg``: MSE on 5 x flows plus BCE on the cell probability).
On top come this package's augmentations (:mod:`structfree_dask.zoo.training.augment`).

One training step per sample and epoch:

1. a random crop of the normalized image (about ``2 x tile_size`` rescaled pixels),
2. :func:`~structfree_dask.zoo.training.augment.augment` on (crop, labels),
3. flow targets of the augmented labels,
4. ``random_rotate_and_resize`` to one ``tile_size`` tile; the network's second input
   channel is zero, as at inference.

The validation loss is computed on fixed tiles (a grid over each validation image at
the model's scale, no augmentation), so it is comparable from epoch to epoch. Epoch 0
is the base model itself: if fine-tuning never beats it, the base weights are kept.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...backbones import ModelSpec, load_model, pick_device, resolve_model
from ...config import TrainSettings
from ...pipeline.normalize import normalize, percentile_bounds
from .augment import augment

__all__ = [
    "TrainResult",
    "EarlyStopping",
    "finetune",
    "validation_loss",
    "prepare_samples",
    "flow_targets",
]

logger = logging.getLogger(__name__)

Sample = tuple[np.ndarray, np.ndarray]
Progress = Callable[[int, int, float, float], None]


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`finetune`.

    Attributes
    ----------
    path : str
        Weights file holding the best epoch's ``state_dict``.
    epochs_run : int
        Training epochs done (not counting epoch 0, the base model).
    best_epoch : int
        Epoch of the lowest validation loss (0: the base weights were kept).
    best_val_loss : float
    train_losses : tuple of float
        Mean training loss of epochs 1 .. epochs_run.
    val_losses : tuple of float
        Validation loss after epochs 1 .. epochs_run.
    stopped_early : bool
        True when training stopped before ``max_epochs`` (patience ran out, or the
        training loss stopped being finite).
    initial_val_loss : float
        Validation loss of the base weights (epoch 0).
    diameter : float
        Mean cell diameter (px) of the training images, stored as ``diam_labels``.
    diam_mean : float
        The model's ``diam_mean`` (that of the base).
    n_train, n_val : int
        Number of training and validation samples.
    n_val_tiles : int
        Number of fixed validation tiles.
    seconds : float
        Wall time of the whole call.
    seconds_per_sample : float
        Mean training time per sample and epoch (data preparation, forward, backward).
    """

    path: str
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    train_losses: tuple[float, ...]
    val_losses: tuple[float, ...]
    stopped_early: bool
    initial_val_loss: float = math.nan
    diameter: float = math.nan
    diam_mean: float = math.nan
    n_train: int = 0
    n_val: int = 0
    n_val_tiles: int = 0
    seconds: float = 0.0
    seconds_per_sample: float = 0.0


class EarlyStopping:
    """Track the best validation loss and say when patience has run out.

    Parameters
    ----------
    patience : int
        Stop after this many epochs in a row without a new best loss.
    min_delta : float
        A loss is a new best when lower than the best by more than this.

    Examples
    --------
    >>> stop = EarlyStopping(patience=2)
    >>> [stop.step(e, loss) for e, loss in enumerate([1.0, 0.8, 0.9, 0.85])]
    [True, True, False, False]
    >>> stop.should_stop, stop.best_epoch, stop.best_loss
    (True, 1, 0.8)
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1 (epochs); got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0; got {min_delta}")
        self.patience = patience
        self.min_delta = float(min_delta)
        self.best_loss = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0

    def step(self, epoch: int, loss: float) -> bool:
        """Record an epoch's loss; return True when it is a new best."""
        if math.isfinite(loss) and loss < self.best_loss - self.min_delta:
            self.best_loss = float(loss)
            self.best_epoch = int(epoch)
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row brought no new best."""
        return self.bad_epochs >= self.patience


# ----------------------------------------------------------------------------- data


def prepare_samples(samples: Sequence[Sample], what: str = "training") -> list[Sample]:
    """Check (image, labels) pairs and normalize each image by its 1/99 percentiles.

    Parameters
    ----------
    samples : sequence of (numpy.ndarray, numpy.ndarray)
        ``(y, x)`` raw images and ``(y, x)`` integer labels of the same shape.
    what : str
        What the samples are, for messages.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        float32 normalized images and int32 labels.

    Raises
    ------
    ValueError
        Empty list, shapes that are not 2D or differ, negative labels, NaN pixels.
    TypeError
        Labels that are not integers.

    Examples
    --------
    >>> img = np.arange(100.0).reshape(10, 10)
    >>> [(im, lab)] = prepare_samples([(img, np.zeros((10, 10), int))])
    >>> im.dtype, round(float(im.max()), 2)
    (dtype('float32'), 1.01)
    >>> prepare_samples([], "validation")
    Traceback (most recent call last):
    ...
    ValueError: no validation samples: the list of (image, labels) pairs is empty ...
    """
    if len(samples) == 0:
        raise ValueError(
            f"no {what} samples: the list of (image, labels) pairs is empty "
            "(no annotated fields, or no field in this part of the split?)"
        )
    out = []
    for i, pair in enumerate(samples):
        if len(pair) != 2:
            raise ValueError(f"{what} sample {i} must be an (image, labels) pair; "
                             f"got {len(pair)} items")
        image, labels = np.asarray(pair[0]), np.asarray(pair[1])
        if image.ndim != 2 or image.shape != labels.shape:
            raise ValueError(
                f"{what} sample {i}: image and labels must be 2D (y, x) of the same shape; "
                f"got {image.shape} and {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"{what} sample {i}: labels must be integers; got {labels.dtype}")
        if labels.size and labels.min() < 0:
            raise ValueError(f"{what} sample {i}: labels must be >= 0; got {labels.min()}")
        try:
            lo, hi = percentile_bounds(image)
        except ValueError as err:
            raise ValueError(f"{what} sample {i}: {err}") from None
        out.append((normalize(image, lo, hi), labels.astype(np.int32, copy=False)))
    return out


def flow_targets(labels: np.ndarray) -> np.ndarray:
    """Cellpose training targets of a label image: cell probability, dY, dX.

    Uses :func:`cellpose.dynamics.labels_to_flows` (labels are renumbered there);
    an image without cells gives zeros.

    Returns
    -------
    numpy.ndarray
        ``(3, y, x)`` float32.

    Examples
    --------
    >>> lab = np.zeros((12, 12), np.int32); lab[2:8, 3:9] = 5
    >>> t = flow_targets(lab)
    >>> t.shape, float(t[0].sum()), bool(np.abs(t[1:]).max() <= 1.0001)
    ((3, 12, 12), 36.0, True)
    """
    labels = np.asarray(labels)
    if labels.max(initial=0) == 0:
        return np.zeros((3, *labels.shape), dtype=np.float32)
    import torch
    from cellpose import dynamics

    flows = dynamics.labels_to_flows([labels.astype(np.int32)[None].copy()],
                                     device=torch.device("cpu"))[0]
    return np.ascontiguousarray(flows[1:], dtype=np.float32)


def _diameters(samples: Sequence[Sample], diameter: float | None) -> np.ndarray:
    """Per-sample cell diameters (cellpose ``utils.diameters``; empty images: the mean)."""
    if diameter is not None:
        if not diameter > 0:
            raise ValueError(f"diameter must be > 0 px; got {diameter}")
        return np.full(len(samples), float(diameter))
    from cellpose import utils

    d = np.array([utils.diameters(lab)[0] if lab.max(initial=0) else 0.0
                  for _, lab in samples], dtype=np.float64)
    if not (d > 0).any():
        raise ValueError(
            f"none of the {len(samples)} label images contains a cell; cannot estimate "
            "the cell diameter (pass diameter=...) or train on them"
        )
    d[d <= 0] = d[d > 0].mean()
    return np.maximum(d, 5.0)  # as cellpose: diameters below 5 px count as 5


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (used inside cellpose's transforms), then restore it."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        np.random.set_state(state)


def _net_input(tiles: np.ndarray, nin: int) -> np.ndarray:
    """``(n, 1, t, t)`` grayscale tiles -> ``(n, nin, t, t)`` with zero extra channels."""
    x = np.zeros((tiles.shape[0], nin, *tiles.shape[2:]), dtype=np.float32)
    x[:, 0] = tiles[:, 0]
    return x


def _train_batch(samples: Sequence[Sample], idx: np.ndarray, rsc: np.ndarray,
                 rng: np.random.Generator, *, tile: int, nin: int, scale_range: float,
                 p_augment: float) -> tuple[np.ndarray, np.ndarray]:
    from cellpose import transforms

    imgs, lbls = [], []
    for i in idx:
        image, labels = samples[i]
        side = int(math.ceil(2 * tile * rsc[i]))
        ch, cw = min(image.shape[0], side), min(image.shape[1], side)
        y0 = int(rng.integers(0, image.shape[0] - ch + 1))
        x0 = int(rng.integers(0, image.shape[1] - cw + 1))
        img = image[y0 : y0 + ch, x0 : x0 + cw]
        lab = labels[y0 : y0 + ch, x0 : x0 + cw]
        img, lab = augment(img, lab, rng, p=p_augment)
        imgs.append(img[None].astype(np.float32))
        lbls.append(flow_targets(lab))
    with _numpy_seed(int(rng.integers(2**32))):
        x, y, _ = transforms.random_rotate_and_resize(
            imgs, Y=lbls, rescale=rsc[idx], scale_range=scale_range, xy=(tile, tile))
    return _net_input(x, nin), y


def _val_tiles(samples: Sequence[Sample], rsc: np.ndarray, *, tile: int, nin: int,
               max_tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut fixed validation tiles: a grid over each image at the model's scale."""
    from cellpose import transforms

    specs = []
    for i, (image, _) in enumerate(samples):
        side = max(1, int(round(tile * rsc[i])))
        starts = []
        for n in image.shape:
            if n <= side:
                starts.append([0])
            else:
                k = math.ceil(n / side)
                starts.append(sorted({int(round(s)) for s in np.linspace(0, n - side, k)}))
        specs += [(i, y, x, side) for y in starts[0] for x in starts[1]]
    if len(specs) > max_tiles:
        keep = np.unique(np.linspace(0, len(specs) - 1, max_tiles).round().astype(int))
        specs = [specs[k] for k in keep]
    targets = {i: flow_targets(samples[i][1]) for i in sorted({s[0] for s in specs})}
    xs = np.zeros((len(specs), nin, tile, tile), dtype=np.float32)
    ys = np.zeros((len(specs), 3, tile, tile), dtype=np.float32)
    for k, (i, y, x, side) in enumerate(specs):
        image = samples[i][0]
        img = image[y : y + side, x : x + side]
        tgt = targets[i][:, y : y + side, x : x + side]
        with _numpy_seed(k):
            xi, yi, _ = transforms.random_rotate_and_resize(
                [img[None].astype(np.float32)], Y=[tgt], rescale=rsc[i : i + 1],
                scale_range=0.0, xy=(tile, tile), do_flip=False, rotate=False)
        xs[k] = _net_input(xi, nin)[0]
        ys[k] = yi[0]
    return xs, ys


def _loss(y: Any, lbl: np.ndarray, device: Any) -> Any:
    from cellpose.train import _loss_fn_seg

    return _loss_fn_seg(lbl, y, device)


def _eval_loss(net: Any, xs: np.ndarray, ys: np.ndarray, batch_size: int, device: Any) -> float:
    import torch

    net.eval()
    total = 0.0
    with torch.no_grad():
        for k in range(0, len(xs), batch_size):
            x = torch.from_numpy(xs[k : k + batch_size]).to(device)
            y = net(x)[0]
            total += float(_loss(y, ys[k : k + batch_size], device).item()) * len(x)
    return total / len(xs)


def _spec(model: ModelSpec | str | Path | None) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else resolve_model(model)


def validation_loss(
    model: ModelSpec | str | Path | None,
    samples: Sequence[Sample],
    settings: TrainSettings | None = None,
    *,
    max_tiles: int = 128,
    device: Any = None,
) -> float:
    """Cellpose loss of a model on the fixed validation tiles of labelled samples.

    The same tiles and loss as :func:`finetune`'s validation loss, so
    ``validation_loss(result.path, val)`` reproduces ``result.best_val_loss``.

    Parameters
    ----------
    model : ModelSpec, str, Path or None
        Weights (see :func:`structfree_dask.backbones.resolve_model`).
    samples : sequence of (image, labels)
        Raw ``(y, x)`` images and their labels.
    settings : TrainSettings, optional
        ``diameter`` (default: measured on each label image), ``tile_size`` and
        ``batch_size`` as in :func:`finetune`.
    max_tiles : int
    device : torch.device, optional

    Returns
    -------
    float
    """
    st = settings or TrainSettings()
    spec = _spec(model)
    prepared = prepare_samples(samples, "validation")
    rsc = _diameters(prepared, st.diameter) / spec.diam_mean
    device = device or pick_device()
    net = load_model(spec, device)
    xs, ys = _val_tiles(prepared, rsc, tile=st.tile_size, nin=int(net.nbase[0]),
                        max_tiles=max_tiles)
    return _eval_loss(net, xs, ys, st.batch_size, device)


def _save_state(state: dict[str, Any], path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _check_round_trip(path: Path, state: dict[str, Any], diam_mean: float) -> None:
    """Reload the saved weights as the engine would and compare them with ``state``."""
    import torch

    spec = resolve_model(path)
    if not math.isclose(spec.diam_mean, diam_mean, rel_tol=1e-6):
        raise RuntimeError(f"saved weights {path} read back with diam_mean {spec.diam_mean}; "
                           f"expected {diam_mean}")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if set(loaded) != set(state):
        raise RuntimeError(f"saved weights {path} do not have the network's keys "
                           f"(missing {sorted(set(state) - set(loaded))[:5]})")
    bad = [k for k in state if not torch.equal(loaded[k], state[k])]
    if bad:
        raise RuntimeError(f"saved weights {path} differ from the best epoch's in {bad[:5]}")


def finetune(
    base: ModelSpec | str | Path | None,
    train: Sequence[Sample],
    val: Sequence[Sample],
    settings: TrainSettings | None = None,
    *,
    seed: int,
    out_path: str | Path,
    progress: Progress | None = None,
    scale_range: float = 0.5,
    p_augment: float = 0.5,
    max_val_tiles: int = 128,
    device: Any = None,
) -> TrainResult:
    """Fine-tune a Cellpose network on grayscale samples with early stopping.

    Parameters
    ----------
    base : ModelSpec, str, Path or None
        Pretrained weights (None: the shipped generalist).
    train, val : sequence of (image, labels)
        Raw ``(y, x)`` images (each channel of a field is its own sample) and their
        ``(y, x)`` integer labels. Images are normalized by their own 1/99 percentiles.
    settings : TrainSettings, optional
        Epochs (at most ``max_epochs`` passes over the training samples, one tile per
        sample; stop after ``patience`` epochs without a lower validation loss), AdamW's
        ``lr`` and ``weight_decay`` (constant learning rate), ``batch_size`` (tiles per
        step), ``tile_size`` (network tile side; cellpose trains on 224) and
        ``diameter`` (cell diameter in px of all images; default: measured on each
        label image). Default: ``TrainSettings()``.
    seed : int
        Seeds torch and the numpy Generator behind crops, augmentations and tiles.
    out_path : str or Path
        Where the best weights go (``torch.save(state_dict)``; loadable with
        :func:`~structfree_dask.backbones.resolve_model` and ``load_model``).
    progress : callable, optional
        Called as ``progress(epoch, max_epochs, train_loss, val_loss)`` after each epoch.
    scale_range : float
        ``random_rotate_and_resize``'s own scale jitter (cellpose's default 0.5).
    p_augment : float
        Probability of each of this package's augmentations.
    max_val_tiles : int
        At most this many fixed validation tiles (evenly spread over the grid).
    device : torch.device, optional
        Default: GPU when available.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Empty ``train`` or ``val``, bad shapes or settings, label images without cells.
    RuntimeError
        If the saved weights do not read back as the best epoch's.
    """
    import torch

    started = time.perf_counter()
    st = settings or TrainSettings()
    max_epochs, patience, batch_size, tile = st.max_epochs, st.patience, st.batch_size, \
        st.tile_size
    stopper = EarlyStopping(patience)
    spec = _spec(base)
    train_s = prepare_samples(train, "training")
    val_s = prepare_samples(val, "validation")
    d_train = _diameters(train_s, st.diameter)
    d_val = _diameters(val_s, st.diameter)
    rsc_train = d_train / spec.diam_mean
    rsc_val = d_val / spec.diam_mean
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = device or pick_device()
    net = copy.deepcopy(load_model(spec, device))  # never train the cached network
    nin = int(net.nbase[0])
    net.diam_labels.data = torch.full_like(net.diam_labels.data, float(d_train.mean()))
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=st.lr,
                                  weight_decay=st.weight_decay)
    xs_val, ys_val = _val_tiles(val_s, rsc_val, tile=tile, nin=nin, max_tiles=max_val_tiles)
    logger.info("fine-tuning %s: %d training / %d validation samples (%d tiles), "
                "diameter %.1f px, diam_mean %.1f, max %d epochs, patience %d",
                spec.name, len(train_s), len(val_s), len(xs_val), d_train.mean(),
                spec.diam_mean, max_epochs, patience)

    def snapshot() -> dict[str, Any]:
        return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

    initial = _eval_loss(net, xs_val, ys_val, batch_size, device)
    stopper.step(0, initial)
    best_state = snapshot()
    _save_state(best_state, out)
    logger.info("epoch 0 (base): val_loss=%.4f", initial)
    train_losses: list[float] = []
    val_losses: list[float] = []
    stopped_early = False
    train_seconds, n_seen = 0.0, 0
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        net.train()
        order = rng.permutation(len(train_s))
        total = 0.0
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            x, lbl = _train_batch(train_s, idx, rsc_train, rng, tile=tile, nin=nin,
                                  scale_range=scale_range, p_augment=p_augment)
            y = net(torch.from_numpy(x).to(device))[0]
            loss = _loss(y, lbl, device)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * len(idx)
        train_seconds += time.perf_counter() - t0
        n_seen += len(order)
        train_loss = total / len(order)
        val_loss = _eval_loss(net, xs_val, ys_val, batch_size, device)
        train_losses.append(train_loss)
        val_losses.append(val_loss)
        improved = stopper.step(epoch, val_loss)
        if improved:
            best_state = snapshot()
            _save_state(best_state, out)
        logger.info("epoch %d: train_loss=%.4f val_loss=%.4f%s (%.1f s)", epoch, train_loss,
                    val_loss, " (best)" if improved else "", time.perf_counter() - t0)
        if progress is not None:
            progress(epoch, max_epochs, train_loss, val_loss)
        if not math.isfinite(train_loss):
            logger.warning("training loss is %s at epoch %d; stopping", train_loss, epoch)
            stopped_early = epoch < max_epochs
            break
        if stopper.should_stop:
            stopped_early = epoch < max_epochs
            logger.info("no better validation loss for %d epochs; stopping at epoch %d "
                        "(best: epoch %d)", patience, epoch, stopper.best_epoch)
            break
    _check_round_trip(out, best_state, spec.diam_mean)
    return TrainResult(
        path=str(out),
        epochs_run=len(train_losses),
        best_epoch=stopper.best_epoch,
        best_val_loss=stopper.best_loss,
        train_losses=tuple(train_losses),
        val_losses=tuple(val_losses),
        stopped_early=stopped_early,
        initial_val_loss=initial,
        diameter=float(d_train.mean()),
        diam_mean=float(spec.diam_mean),
        n_train=len(train_s),
        n_val=len(val_s),
        n_val_tiles=len(xs_val),
        seconds=time.perf_counter() - started,
        seconds_per_sample=train_seconds / max(1, n_seen),
    )
