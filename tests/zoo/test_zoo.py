"""The model zoo: splits, augmentations, fine-tuning, cards, the zoo folder, selection."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from structfree_dask.backbones import load_model, resolve_model
from structfree_dask.config import TrainSettings
from structfree_dask.simulate import simulate_field, simulate_plate
from structfree_dask.zoo import (
    AUGMENTATIONS,
    CardError,
    EarlyStopping,
    ModelCard,
    Split,
    Zoo,
    augment,
    augment_with_record,
    candidate_pairs,
    check_compatible,
    finetune,
    kfold,
    load_planes,
    load_samples,
    run_training_job,
    select_best,
    select_models,
    split_fields,
    training_jobs,
    validation_loss,
)

torch = pytest.importorskip("torch")

#: small training settings: 96 px tiles keep a small CPnet at a few ms per sample
FAST = dict(tile_size=96, batch_size=4)


def fast(**kw):
    """Training settings small enough for a unit test."""
    return TrainSettings(**{**FAST, **kw})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, 2 threads mostly wait on each other."""
    from structfree_dask.engine import worker_device

    before = torch.get_num_threads()
    worker_device()  # the engine sets torch's threads once per process: let it do so first
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_base(small_cpnet_path):
    """A small, randomly initialised CPnet saved as a weights file."""
    return resolve_model(small_cpnet_path)


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


# ----------------------------------------------------------------------------- splits


def test_split_deterministic_disjoint_complete():
    fields = [f"A/{i}/0" for i in range(1, 21)]
    s = split_fields(fields, seed=3)
    assert s == split_fields(list(reversed(fields)), seed=3)
    assert (len(s.train), len(s.val), len(s.test)) == (16, 2, 2)
    parts = [set(s.train), set(s.val), set(s.test)]
    assert sorted(set().union(*parts)) == sorted(fields)
    assert sum(len(p) for p in parts) == len(fields)
    assert split_fields(fields, seed=4) != s
    assert Split.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    tiny = split_fields(["a", "b", "c"], seed=0)
    assert all(len(p) == 1 for p in (tiny.train, tiny.val, tiny.test))


def test_split_errors():
    with pytest.raises(ValueError, match="at least 3 annotated fields.*found 2"):
        split_fields(["a", "b"], seed=0)
    with pytest.raises(ValueError, match="duplicates"):
        split_fields(["a", "a", "b", "c"], seed=0)
    with pytest.raises(ValueError, match="sum to 1"):
        split_fields(["a", "b", "c"], seed=0, fractions=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="need at least 5 annotated fields.*found 4"):
        kfold(["a", "b", "c", "d"], k=5, seed=0)


def test_kfold_covers_every_field_once():
    fields = [f"f{i:02d}" for i in range(23)]
    folds = kfold(fields, k=5, seed=7)
    assert [s.fold for s in folds] == list(range(5))
    tests = [f for s in folds for f in s.test]
    assert sorted(tests) == fields  # each field is a test field exactly once
    for s in folds:
        assert not set(s.train) & set(s.val) and not set(s.train) & set(s.test)
        assert not set(s.val) & set(s.test)
        assert len(s.train) + len(s.val) + len(s.test) == len(fields)
        assert 1 <= len(s.val) <= 3
    assert kfold(fields, k=5, seed=7) == folds


# ----------------------------------------------------------------------------- augment


def _pair(size=48, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int32)
    for k in range(1, 6):
        y, x = rng.integers(4, size - 12, 2)
        labels[y : y + 8, x : x + 8] = k
    return labels.astype(np.float32), labels


def test_augment_shapes_dtypes_determinism():
    image, labels = _pair()
    for seed in range(10):
        img, lab = augment(image, labels, np.random.default_rng(seed))
        assert img.shape == image.shape and lab.shape == labels.shape
        assert img.dtype == np.float32 and lab.dtype == np.int32
        img2, lab2 = augment(image, labels, np.random.default_rng(seed))
        assert np.array_equal(img, img2) and np.array_equal(lab, lab2)
    assert image.max() == 5  # inputs untouched


@pytest.mark.parametrize("name", ["scale", "rotate", "hflip", "vflip"])
def test_geometric_augmentations_move_labels_with_image(name):
    image, labels = _pair()
    img, lab = AUGMENTATIONS[name](image, labels, np.random.default_rng(1))
    assert set(np.unique(lab)) <= set(np.unique(labels))
    if name in ("hflip", "vflip"):
        assert np.array_equal(img, lab.astype(np.float32))  # exact
        axis = 1 if name == "hflip" else 0
        assert np.array_equal(lab, np.flip(labels, axis))
    else:  # image resampled bilinearly, labels nearest: they agree except at edges
        assert np.mean(np.rint(img) == lab) > 0.95
        assert not np.array_equal(lab, labels)


@pytest.mark.parametrize("name", ["gaussian_noise", "poisson_noise", "salt_and_pepper",
                                  "brightness"])
def test_intensity_augmentations_leave_labels(name):
    image, labels = _pair()
    img, lab = AUGMENTATIONS[name](image / 5, labels, np.random.default_rng(2))
    assert np.array_equal(lab, labels) and not np.array_equal(img, image / 5)


def test_each_augmentation_fires_half_the_time():
    image = np.zeros((8, 8), np.float32)
    labels = np.zeros((8, 8), np.int32)
    rng = np.random.default_rng(0)
    n = 2000
    counts = dict.fromkeys(AUGMENTATIONS, 0)
    for _ in range(n):
        for name in augment_with_record(image, labels, rng)[2]:
            counts[name] += 1
    for name, c in counts.items():
        assert abs(c / n - 0.5) < 0.05, (name, c)


def test_noise_statistics():
    aug = type("A", (), {k: staticmethod(v) for k, v in AUGMENTATIONS.items()})
    rng = np.random.default_rng(0)
    flat = np.full((256, 256), 0.5, np.float32)
    lab = np.zeros(flat.shape, np.int32)
    out, _ = aug.gaussian_noise(flat, lab, rng, sigma=0.08)
    assert abs(out.std() - 0.08) < 0.005 and abs(out.mean() - 0.5) < 0.005
    sigmas = [aug.gaussian_noise(flat[:64, :64], lab[:64, :64], rng)[0].std()
              for _ in range(300)]
    assert 0 <= min(sigmas) and max(sigmas) <= 0.11 and abs(np.mean(sigmas) - 0.05) < 0.01
    out, _ = aug.poisson_noise(flat, lab, rng, peak=40.0)
    assert abs(out.mean() - 0.5) < 0.01 and abs(out.var() - 0.5 / 40) < 0.0015
    out, _ = aug.salt_and_pepper(flat, lab, rng)
    changed = out != 0.5
    assert abs(changed.mean() - 0.05) < 0.005
    assert abs((out == 1).mean() - (out == 0).mean()) < 0.005
    shifts = [float(aug.brightness(flat[:2, :2], lab[:2, :2], rng)[0][0, 0] - 0.5)
              for _ in range(1000)]
    assert -0.1 <= min(shifts) and max(shifts) <= 0.1 and abs(np.mean(shifts)) < 0.01


def test_augment_errors():
    with pytest.raises(ValueError, match="same shape"):
        augment(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.int32),
                np.random.default_rng())
    with pytest.raises(TypeError, match="float"):
        augment(np.zeros((4, 4), np.uint16), np.zeros((4, 4), np.int32),
                np.random.default_rng())


# ----------------------------------------------------------------------------- training


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


# ----------------------------------------------------------------------------- cards, zoo


def test_card_round_trip_and_validation(tmp_path):
    card = ModelCard.example(val_scores={"f1": 0.9, "ap_50_95": math.nan})
    text = card.to_json()
    data = json.loads(text)
    assert data["val_scores"]["ap_50_95"] is None  # strict JSON
    for key in ("cell_line", "organelle", "strategy", "channels", "channel_names",
                "base_model", "base_sha256", "diameter", "normalization", "split",
                "epochs_run", "best_epoch", "val_scores", "test_scores", "software",
                "created"):
        assert key in data
    assert {"structfree_dask", "cellpose", "torch"} <= set(data["software"])
    back = ModelCard.from_json(text)
    assert back.split == card.split and back.channels == (0,) and back.val_f1 == 0.9
    with pytest.raises(CardError, match="not valid JSON"):
        ModelCard.from_json("{oops")
    del data["organelle"]
    with pytest.raises(CardError, match="missing keys \\['organelle'\\]"):
        ModelCard.from_dict(data)
    with pytest.raises(CardError, match="exactly one channel"):
        ModelCard.example(channels=(0, 1), channel_names=("a", "b"))
    with pytest.raises(CardError, match="organelle"):
        ModelCard.example(organelle="mito")
    with pytest.raises(CardError, match="best_epoch"):
        ModelCard.example(best_epoch=11)


def test_check_compatible():
    card = ModelCard.example(model_id="m", strategy="mc", channels=(0, 2),
                             channel_names=("GFP", "RFP"))
    assert check_compatible(card, ["GFP", "x", "RFP"]) == (0, 2)
    assert check_compatible(card, ["RFP", "GFP"]) == (1, 0)
    msg = r"\['GFP', 'RFP'\].*\['GFP', 'mito'\].*missing: \['RFP'\]"
    with pytest.raises(ValueError, match=msg):
        check_compatible(card, ["GFP", "mito"])


def test_zoo_add_get_table_selection(small_base, tmp_path):
    zoo = Zoo(tmp_path / "zoo")
    cw0 = ModelCard.example(model_id="cw0")
    cw1 = ModelCard.example(model_id="cw1", channels=(1,), channel_names=("ER",))
    mc = ModelCard.example(model_id="mc01", strategy="mc", channels=(0, 1),
                           channel_names=("cyto-reporter", "ER"))
    nuc = ModelCard.example(model_id="nuc0", organelle="nuclei")
    for card in (cw0, cw1, mc, nuc):
        stored = zoo.add(card, small_base.path)
        assert stored.weights_sha256 and stored.model_id == card.model_id
    assert (tmp_path / "zoo" / "models" / "cw0" / "weights.pth").is_file()
    assert (tmp_path / "zoo" / "models" / "cw0" / "card.json").is_file()
    reopened = Zoo(tmp_path / "zoo")
    assert reopened.get("mc01") == zoo.get("mc01")
    assert reopened.get("cw0").to_dict() == {**cw0.to_dict(),
                                             "weights_sha256": small_base.sha256}
    assert [c.model_id for c in zoo.cards("CL1", "cyto")] == ["cw0", "cw1", "mc01"]
    assert [c.model_id for c in zoo.cards(organelle="nuclei")] == ["nuc0"]
    assert zoo.cards("CL9") == []
    rows = zoo.table()
    assert [r["model_id"] for r in rows] == ["cw0", "cw1", "mc01", "nuc0"]
    assert rows[2]["channels"] == "cyto-reporter+ER" and rows[0]["val_f1"] == 0.9
    resolve_model(zoo.weights_path("cw1"))
    with pytest.raises(FileExistsError, match="already exists"):
        zoo.add(cw0, small_base.path)
    zoo.add(cw0, small_base.path, overwrite=True)
    with pytest.raises(KeyError, match="'nope' is not in the zoo.*cw0, cw1"):
        zoo.get("nope")
    with pytest.raises(ValueError, match="diam_mean"):
        zoo.add(ModelCard.example(model_id="d", diam_mean=17.0), small_base.path)

    table = [{"strategy": "cw", "train_channels": [0, 1], "eval_channels": [0, 1],
              "model_ids": {0: "cw0", 1: "cw1"}, "val_f1": 0.8}]
    stored = zoo.set_selection("CL1", "cyto", {"model_ids": {0: "cw0", 1: "cw1"},
                                               "eval_channels": [0, 1], "strategy": "cw",
                                               "val_f1": 0.8, "candidates": table})
    assert stored.channel_models == {0: "cw0", 1: "cw1"} and len(stored.candidates) == 1
    assert Zoo(tmp_path / "zoo").selection("CL1", "cyto") == stored
    zoo.set_selection("CL1", "cyto", {"model_ids": "mc01", "eval_channels": [1],
                                      "strategy": "mc", "val_f1": 0.85})
    assert zoo.selection("CL1", "cyto").model_ids == ("mc01",)
    with pytest.raises(KeyError, match="no selection for CL1/nuclei.*CL1/cyto"):
        zoo.selection("CL1", "nuclei")
    with pytest.raises(KeyError, match="'ghost' is not in the zoo"):
        zoo.set_selection("CL1", "cyto", {"model_ids": "ghost", "eval_channels": [0],
                                          "strategy": "mc", "val_f1": 1.0})
    with pytest.raises(ValueError, match="trained on channels \\[0, 1\\]"):
        zoo.set_selection("CL1", "cyto", {"model_ids": "mc01", "eval_channels": [2],
                                          "strategy": "mc", "val_f1": 1.0})
    with pytest.raises(ValueError, match="not channel 0"):
        zoo.set_selection("CL1", "cyto", {"model_ids": {0: "cw1"}, "eval_channels": [0],
                                          "strategy": "cw", "val_f1": 1.0})

    (tmp_path / "zoo" / "models" / "cw1" / "card.json").write_text('{"model_id": "cw1"}')
    with pytest.raises(CardError, match="card.json: missing keys"):
        zoo.get("cw1")
    with pytest.raises(CardError):
        zoo.cards()


# ----------------------------------------------------------------------------- selection


def test_candidate_pairs():
    pairs = candidate_pairs(3)
    cw = [p for p in pairs if p.strategy == "cw"]
    mc = [p for p in pairs if p.strategy == "mc"]
    assert [p.eval_channels for p in cw] == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2),
                                             (0, 1, 2)]
    assert all(p.train_channels == p.eval_channels for p in cw)
    assert len(mc) == 3 * 3 + 7
    assert all(set(p.eval_channels) <= set(p.train_channels) for p in mc)
    assert len({(p.strategy, p.train_channels, p.eval_channels) for p in pairs}) == len(pairs)
    some = candidate_pairs(4, subsets=[(1,), (3,), (0, 2)])
    assert [(p.strategy, p.train_channels, p.eval_channels) for p in some] == [
        ("cw", (1,), (1,)), ("cw", (3,), (3,)), ("cw", (1, 3), (1, 3)),
        ("mc", (0, 2), (0,)), ("mc", (0, 2), (2,)), ("mc", (0, 2), (0, 2))]
    assert all(p.strategy == "mc" for p in candidate_pairs(2, strategies=["mc"]))
    with pytest.raises(KeyError, match="channel\\(s\\) \\[5\\].*0..3"):
        candidate_pairs(4, subsets=[(0, 5)])
    with pytest.raises(ValueError, match="unknown strategy"):
        candidate_pairs(2, strategies=["xx"])


def test_select_best_on_known_table():
    def row(strategy, train, ev, f1):
        return {"strategy": strategy, "train_channels": train, "eval_channels": ev,
                "val_f1": f1}

    table = [
        row("cw", [0], [0], 0.71), row("cw", [1], [1], 0.64), row("cw", [0, 1], [0, 1], 0.83),
        row("mc", [0, 1], [0], 0.80), row("mc", [0, 1], [1], 0.70),
        row("mc", [0, 1], [0, 1], 0.83), row("mc", [0, 1, 2], [0, 2], 0.83),
        row("mc", [0, 1, 2], [1], float("nan")),
    ]
    best = select_best(table)
    # 0.83 three times: fewest eval channels (2 each), then fewest training channels
    # (cw [0, 1] and mc [0, 1] tie), then lexicographic -> ("cw" < "mc")
    assert (best["strategy"], best["eval_channels"]) == ("cw", [0, 1])
    assert select_best(table[3:])["train_channels"] == [0, 1]
    assert select_best([*table, row("mc", [1, 2], [2], 0.9)])["eval_channels"] == [2]
    assert select_best(list(reversed(table))) == best  # order does not matter
    with pytest.raises(ValueError, match="finite"):
        select_best([row("cw", [0], [0], float("nan"))])
    with pytest.raises(KeyError, match="eval_channels"):
        select_best([{"strategy": "cw", "train_channels": [0], "val_f1": 1.0}])


# ----------------------------------------------------------------------------- build


@pytest.fixture(scope="module")
def tiny_plate(tmp_path_factory):
    """Six 96 px fields of CL1 (3 wells x 2 fields) with gt_cyto and gt_nuclei."""
    path = tmp_path_factory.mktemp("plate") / "p.zarr"
    return simulate_plate(path, cell_line="CL1", rows=1, cols=3, fields=2, size=96, seed=0)


def test_training_jobs(tiny_plate):
    jobs = training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1")
    n = 4  # CL1 has 4 channels: 4 CW jobs and 11 MC jobs
    assert len(jobs) == n + (2**n - 1 - n)
    assert [j.strategy for j in jobs[:4]] == ["cw"] * 4
    assert len({j.model_id for j in jobs}) == len(jobs)
    assert all(j.split == jobs[0].split for j in jobs)
    assert sum(len(p) for p in (jobs[0].split.train, jobs[0].split.val,
                                jobs[0].split.test)) == 6
    named = training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1", strategies=["mc"],
                          subsets=[["cyto-reporter", "ER"], [0], [1, 3]], folds=3, seed=2)
    assert [j.channels for j in named[:2]] == [(0, 2), (1, 3)] and len(named) == 6
    assert [j.split.fold for j in named] == [0, 0, 1, 1, 2, 2]
    assert named[0].channel_names == ("cyto-reporter", "ER")
    assert named[0].model_id == "CL1-cyto-mc-c0_2-s2-f0of3"
    with pytest.raises(KeyError, match="channel 'DAPI' does not exist.*cyto-reporter"):
        training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1", subsets=[["DAPI"]])
    with pytest.raises(KeyError, match="channel 7 does not exist"):
        training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1", subsets=[[0, 7]])
    with pytest.raises(ValueError, match="no field .* has a label image 'manual'.*gt_cyto"):
        training_jobs(tiny_plate, "manual", "cyto", "CL1")
    with pytest.raises(ValueError, match="at least 3 annotated fields.*found 2"):
        training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1", wells=["A/1"])
    with pytest.raises(ValueError, match="at least 7 annotated fields.*found 6"):
        training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1", folds=7)


def test_load_samples_every_channel_and_timepoint(tmp_path):
    from structfree_dask.io import open_labels, open_plate

    path = simulate_plate(tmp_path / "t.zarr", rows=1, cols=3, timepoints=2, size=64, seed=1)
    fields = ["A/1/0", "A/3/0"]
    got = load_samples(path, fields, [0, "ER"], "gt_nuclei")
    assert len(got) == 2 * 2 * 2  # fields x timepoints x channels
    info = open_plate(str(path)).field("A/3/0")
    data, gt = info.open_array(0)[...], open_labels(info, "gt_nuclei").read()
    image, labels = got[4 + 1 * 2 + 1]  # field A/3/0, t=1, channel ER (index 2)
    assert np.array_equal(image, data[1, 2]) and np.array_equal(labels, gt[1, 0])
    planes = load_planes(path, fields, [0, 2], "gt_nuclei")
    assert [(p.field, p.t, p.image.shape) for p in planes] == [
        (f, t, (2, 64, 64)) for f in fields for t in (0, 1)]
    with pytest.raises(KeyError, match="no label image 'manual'"):
        load_samples(path, fields, [0], "manual")


def test_run_jobs_and_select(small_base, tiny_plate, tmp_path):
    jobs = training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1", subsets=[[0], [0, 1]], seed=0)
    zoo_dir = tmp_path / "zoo"
    cards = [run_training_job(j, small_base, zoo_dir, fast(max_epochs=1, patience=1))
             for j in jobs]
    zoo = Zoo(zoo_dir)
    assert zoo.ids() == sorted(j.model_id for j in jobs)
    for job, card in zip(jobs, cards, strict=True):
        assert card == zoo.get(job.model_id)
        assert card.split == job.split and card.channels == job.channels
        assert card.base_sha256 == small_base.sha256 and card.epochs_run == 1
        assert card.val_scores["n_images"] == len(job.split.val)
        assert card.test_scores["n_images"] == len(job.split.test)
        assert 0.0 <= card.val_f1 <= 1.0 and card.diameter > 5
        assert card.training["n_train"] == len(job.split.train) * len(job.channels)
        assert resolve_model(zoo.weights_path(card.model_id)).diam_mean == 30.0
    assert not list((zoo_dir / "models").glob(".*"))  # no leftovers
    # already in the zoo: returned without training
    again = run_training_job(jobs[0], small_base, zoo_dir, fast(max_epochs=1, patience=1))
    assert again == cards[0]

    sel = select_models(zoo_dir, tiny_plate, "gt_cyto", "CL1", "cyto")
    table = sel.candidates
    assert [(r["strategy"], r["train_channels"], r["eval_channels"]) for r in table] == [
        ("cw", [0], [0]), ("mc", [0, 1], [0]), ("mc", [0, 1], [1]), ("mc", [0, 1], [0, 1])]
    assert all(r["val_n_images"] == len(jobs[0].split.val) for r in table)
    best = select_best(table)
    assert sel.strategy == best["strategy"] and sel.val_f1 == best["val_f1"]
    assert list(zoo.selection("CL1", "cyto").eval_channels) == best["eval_channels"]
    # the MC model on its own channels scores as the engine scored it in the card
    mc_row = table[-1]
    assert mc_row["val_f1"] == pytest.approx(cards[1].val_f1, abs=1e-6)


# ----------------------------------------------------------------------------- fusion comparison


@pytest.mark.parametrize("thresholds", [(0.4,), (0.4, 0.8)])
def test_fusion_table_each_method_chooses_its_own_subset(tmp_path, thresholds):
    """All channels for every method, then each method on its best validation subset.

    With several flow thresholds, each method also picks its threshold on validation.
    """
    from itertools import combinations

    from structfree_dask.config import SegmentationConfig
    from structfree_dask.evaluation.metrics import evaluate
    from structfree_dask.pipeline.fusion import fuse_masks
    from structfree_dask.pipeline.segment import channel_flows, flows_to_labels
    from structfree_dask.zoo.report import FUSION_LABELS, fusion_table

    plate = simulate_plate(tmp_path / "p.zarr", cell_line="CL5", rows=1, cols=3, fields=1,
                           size=128, seed=3)
    names = ("mito", "ER", "membrane")
    split = Split(("A/1/0",), ("A/2/0",), ("A/3/0",), seed=0)
    generalist = resolve_model(None)
    zoo = Zoo(tmp_path / "zoo")
    for k, name in enumerate(names):  # three "CW models": the generalist on each channel
        zoo.add(ModelCard.example(model_id=f"cw{k}", cell_line="CL5", channels=(k,),
                                  channel_names=(name,), split=split, diameter=30.0),
                generalist.path)
    selection = zoo.set_selection("CL5", "cyto", {
        "model_ids": {0: "cw0", 1: "cw1"}, "eval_channels": [0, 1], "strategy": "cw",
        "val_f1": 0.5, "gt": "gt_cyto"})
    rows = fusion_table(zoo, selection, plate, flow_thresholds=thresholds, per_field=True)
    labels = list(FUSION_LABELS.values())
    assert [(r["method"], r["subset"]) for r in rows] == (
        [(m, "all") for m in labels] + [(m, "validation") for m in labels])

    def scores(field):  # by hand: every method on every subset of >= 2 channels
        planes = load_planes(plate, [field], [0, 1, 2], "gt_cyto")
        img, truth = planes[0].image, planes[0].labels.astype(np.int64)
        flows = channel_flows(img[:3], generalist, diameter=30.0)
        out = {}
        for t in thresholds:
            cfg = SegmentationConfig(flow_threshold=t)
            masks = [flows_to_labels(f, cfg) for f in flows]
            for sub in (c for n in (2, 3) for c in combinations(range(3), n)):
                preds = {"FA": flows_to_labels(flows[list(sub)], cfg)}
                for method in ("simple", "staple", "voting", "majority"):
                    preds[FUSION_LABELS[method]] = fuse_masks([masks[k] for k in sub],
                                                              method=method)
                for m, p in preds.items():
                    key = (m, "+".join(names[k] for k in sub), t)
                    out[key] = evaluate(truth, p.astype(np.int64))
        return out

    val, test = scores("A/2/0"), scores("A/3/0")
    assert any(v["f1"] > 0 for v in val.values())  # the generalist finds cells here
    for r in rows:
        assert r["models"] == "CW models" and r["flow_threshold"] in thresholds
        mine = {(ch, t): s["f1"] for (m, ch, t), s in val.items() if m == r["method"]
                and (r["subset"] == "validation" or ch == "mito+ER+membrane")}
        if r["subset"] == "all":
            assert r["channels"] == "mito+ER+membrane"
        assert r["val_f1"] == pytest.approx(max(mine.values()))
        assert mine[(r["channels"], r["flow_threshold"])] == pytest.approx(max(mine.values()))
        key = (r["method"], r["channels"], r["flow_threshold"])
        assert r["f1"] == pytest.approx(test[key]["f1"])
        assert r["per_field"] == [[test[key]["tp"], test[key]["fp"], test[key]["fn"]]]
    with pytest.raises(ValueError, match="flow_thresholds"):
        fusion_table(zoo, selection, plate, flow_thresholds=())


def test_method_scores_rejects_unknown_methods():
    from structfree_dask.backbones import resolve_model
    from structfree_dask.zoo.scoring.predict import METHODS, FAModels, method_scores

    models = FAModels("one", ("a",), (resolve_model(None),), 30.0)
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['mean'\]"):
        method_scores(models, [], [(0,)], None, methods=("fa", "mean"))
    assert method_scores(models, [], [(0,)], None, methods=METHODS) == {
        (m, (0,), 0.4): [] for m in METHODS}
