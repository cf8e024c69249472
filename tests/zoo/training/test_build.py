"""Training jobs run into a zoo, then scored and selected (zoo.training.build)."""

from __future__ import annotations

import pytest

from structfree_dask.backbones import resolve_model
from structfree_dask.config import TrainSettings
from structfree_dask.zoo import Zoo, run_training_job, select_best, select_models, training_jobs

pytestmark = pytest.mark.usefixtures("one_thread")

#: small training settings: 96 px tiles keep a small CPnet at a few ms per sample
FAST = dict(tile_size=96, batch_size=4)


def fast(**kw):
    """Training settings small enough for a unit test."""
    return TrainSettings(**{**FAST, **kw})


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
