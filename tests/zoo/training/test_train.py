"""Fine-tuning a small CPnet with early stopping (zoo.training.train)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from structfree_dask.backbones import load_model, resolve_model
from structfree_dask.config import TrainSettings
from structfree_dask.simulate import simulate_field
from structfree_dask.zoo import EarlyStopping, finetune, validation_loss

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_thread")

#: small training settings: 96 px tiles keep a small CPnet at a few ms per sample
FAST = dict(tile_size=96, batch_size=4)


def fast(**kw):
    """Training settings small enough for a unit test."""
    return TrainSettings(**{**FAST, **kw})


@pytest.fixture(scope="module")
def sim_fields():
    """Six 128 px CL1 fields (4 channels, one timepoint)."""
    return [simulate_field("CL1", size=128, seed=s) for s in range(6)]


@pytest.fixture(scope="module")
def samples(sim_fields):
    """(train, val) grayscale samples: channels 0 and 1 of 4 fields / channel 0 of 2."""
    train = [(f.image[0, c], f.cyto[0]) for f in sim_fields[:4] for c in (0, 1)]
    val = [(f.image[0, 0], f.cyto[0]) for f in sim_fields[4:]]
    return train, val


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_early_stopping_sequence():
    stop = EarlyStopping(patience=3)
    losses = [2.0, 1.5, 1.6, 1.4, 1.45, 1.5, 1.41, 1.3]
    stopped_at = None
    for epoch, loss in enumerate(losses):
        stop.step(epoch, loss)
        if stop.should_stop:
            stopped_at = epoch
            break
    assert (stopped_at, stop.best_epoch, stop.best_loss) == (6, 3, 1.4)
    assert not EarlyStopping(patience=1).step(0, math.nan)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


def test_finetune_changes_weights_and_lowers_val_loss(small_base, samples, tmp_path):
    train, val = samples
    epochs = []
    result = finetune(small_base, train, val, fast(max_epochs=3, patience=5, lr=2e-3), seed=0,
                      out_path=tmp_path / "ft.pth",
                      progress=lambda e, n, tl, vl: epochs.append((e, n)))
    assert epochs == [(1, 3), (2, 3), (3, 3)]
    assert result.epochs_run == 3 and not result.stopped_early
    assert len(result.train_losses) == len(result.val_losses) == 3
    assert result.best_val_loss < result.initial_val_loss
    assert result.best_val_loss == min(result.val_losses)
    assert result.best_epoch == 1 + int(np.argmin(result.val_losses))
    assert result.n_train == 8 and result.n_val == 2 and result.seconds_per_sample > 0
    base, tuned = _state(small_base.path), _state(result.path)
    assert set(base) == set(tuned)
    changed = [k for k in base if k.endswith("weight") and not torch.equal(base[k], tuned[k])]
    assert len(changed) > 10
    # diam_mean kept, diam_labels = the training diameter; loadable by the engine's loader
    spec = resolve_model(result.path)
    assert spec.diam_mean == small_base.diam_mean == 30.0
    assert float(tuned["diam_labels"]) == pytest.approx(result.diameter, rel=1e-5)
    net = load_model(spec, torch.device("cpu"))
    assert list(net.nbase) == [2, 8, 16, 32, 64]
    # the file holds the best epoch's weights: its validation loss is the best one
    assert validation_loss(result.path, val, fast()) == pytest.approx(result.best_val_loss,
                                                                      rel=1e-5)
    # the cached base network was not trained in place
    assert validation_loss(small_base, val, fast()) == pytest.approx(result.initial_val_loss,
                                                                     rel=1e-5)


@pytest.mark.parametrize("lr", [0.01, 1.0])
def test_finetune_early_stopping_keeps_best_weights(small_base, samples, tmp_path, lr):
    # lr 0.01: epoch 1 improves, epoch 2 is worse; lr 1.0: epoch 1 diverges (NaN)
    train, val = samples
    result = finetune(small_base, train[:4], val, fast(max_epochs=6, patience=1, lr=lr), seed=0,
                      out_path=tmp_path / "es.pth")
    assert result.stopped_early and result.epochs_run < 6
    assert result.epochs_run == result.best_epoch + 1
    if lr < 0.1:
        assert result.best_epoch >= 1 and not result.val_losses[-1] <= result.best_val_loss
    losses = (result.initial_val_loss, *result.val_losses)
    assert result.best_val_loss == min(losses)
    assert validation_loss(result.path, val, fast()) == pytest.approx(result.best_val_loss,
                                                                      rel=1e-5)
    if result.best_epoch == 0:  # nothing beat the base: its weights are kept
        base, kept = _state(small_base.path), _state(result.path)
        assert all(torch.equal(base[k], kept[k]) for k in base if k != "diam_labels")
        assert float(kept["diam_labels"]) == pytest.approx(result.diameter, rel=1e-5)


def test_finetune_deterministic(small_base, samples, tmp_path):
    train, val = samples
    st = TrainSettings(max_epochs=1, patience=1, tile_size=64, batch_size=2)
    a = finetune(small_base, train[:2], val[:1], st, seed=5, out_path=tmp_path / "a.pth")
    b = finetune(small_base, train[:2], val[:1], st, seed=5, out_path=tmp_path / "b.pth")
    assert a.train_losses == b.train_losses and a.val_losses == b.val_losses
    sa, sb = _state(a.path), _state(b.path)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_finetune_bad_input(small_base, samples, tmp_path):
    train, val = samples
    with pytest.raises(ValueError, match="no training samples"):
        finetune(small_base, [], val, fast(max_epochs=1), seed=0, out_path=tmp_path / "x.pth")
    with pytest.raises(ValueError, match="no validation samples"):
        finetune(small_base, train, [], fast(max_epochs=1), seed=0, out_path=tmp_path / "x.pth")
    empty = [(train[0][0], np.zeros_like(train[0][1]))]
    with pytest.raises(ValueError, match="contains a cell"):
        finetune(small_base, empty, empty, fast(max_epochs=1), seed=0, out_path=tmp_path / "x.pth")
    with pytest.raises(ValueError, match="same shape"):
        finetune(small_base, [(train[0][0], train[0][1][:10])], val, fast(max_epochs=1), seed=0,
                 out_path=tmp_path / "x.pth")
    with pytest.raises(ValueError, match="tile_size: expected a multiple of 16; got 100"):
        TrainSettings(max_epochs=1, tile_size=100)
