"""The fine-tuning jobs of a cell line and organelle (zoo.training.jobs)."""

from __future__ import annotations

import pytest

from structfree_dask.zoo import training_jobs


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
