"""segment, segment_many, validate and Target (engine._segment): whole runs on real
OME-Zarr plates with a real multi-process LocalCluster."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from structfree_dask.config import SegmentationConfig
from structfree_dask.engine import Target, segment, segment_many, validate
from structfree_dask.evaluation.metrics import matched_f1
from structfree_dask.io import (
    LabelExistsError,
    create_plate,
    open_labels,
    open_plate,
)
from structfree_dask.pipeline.segment import segment_array

#: settings of the determinism tests: 4 regions per field, FA over both channels
SMALL = SegmentationConfig(channels=(0, 1), tile_size=160, halo=48)


@pytest.fixture(scope="module")
def plate_small(tmp_path_factory, make_mosaic, write_plate):
    """Two fields of 320 px, two timepoints: four units of work."""
    fields = [make_mosaic(320, seed=s) for s in range(2)]
    path = tmp_path_factory.mktemp("small") / "p.zarr"
    return write_plate(path, fields, t=2), fields


@pytest.fixture(scope="module")
def reference(tmp_path_factory, plate_small, cluster_client, copy_plate, read_labels):
    """A clean run's labels (2 workers)."""
    path = copy_plate(plate_small[0], tmp_path_factory.mktemp("ref"))
    result = segment(str(path), SMALL, client=cluster_client)
    assert result.ok and len(result.done) == 4
    return read_labels(path)


def test_tiled_equals_untiled_on_1024_field(tmp_path, make_mosaic, cluster_client, write_plate,
                                            read_labels):
    field = make_mosaic(1024, seed=7)[:1]  # one channel: FA is tested below
    path = write_plate(tmp_path / "p.zarr", [field], names=("cyto-stain",))
    result = segment(str(path), SegmentationConfig(channels=(0,), tile_size=256),
                     client=cluster_client)
    assert result.ok and result.cut_cells == 0
    tiled = read_labels(path)["A/1/0"][0, 0].astype(np.int64)
    untiled = segment_array(field).astype(np.int64)
    assert untiled.max() > 200
    assert matched_f1(untiled, tiled) >= 0.99
    # IDs unique and consecutive
    ids = np.unique(tiled[tiled > 0])
    assert ids.tolist() == list(range(1, len(ids) + 1))
    # zero cells cut at seams: no untiled cell crossing a seam is split into tiled pieces
    # lying on both sides of it (flows differ only by float rounding between processes)
    cut = n_crossing = 0
    for seam in (256, 512, 768):
        for axis in (0, 1):
            line = untiled[seam - 1 : seam + 1] if axis == 0 else untiled[:, seam - 1 : seam + 1].T
            crossing = np.intersect1d(line[0], line[1])
            for cell in crossing[crossing > 0]:
                n_crossing += 1
                where = np.nonzero(untiled == cell)
                pieces, sizes = np.unique(tiled[where], return_counts=True)
                big = pieces[(pieces > 0) & (sizes >= 0.2 * len(where[0]))]
                sides = set()
                for p in big:
                    coord = where[axis][tiled[where] == p]
                    sides.add(bool(np.median(coord) >= seam))
                cut += len(big) > 1 and len(sides) > 1
    assert n_crossing > 20 and cut == 0
    # the flow sums waited on the workers' local disks; nothing is left there
    left = cluster_client.run(_scratch_files)
    assert left and all(files == [] for files in left.values())


def _scratch_files(dask_worker) -> list[str]:
    import glob
    import os

    return glob.glob(os.path.join(dask_worker.local_directory, "structfree-*.npy"))


def test_same_labels_with_one_and_two_workers(tmp_path, plate_small, reference, copy_plate,
                                              read_labels, worker_profiling):
    from structfree_dask.runtime.cluster import local_client

    path = copy_plate(plate_small[0], tmp_path)
    client = local_client(n_workers=1, threads_per_worker=1)
    try:  # the workers' statistical profiler is off unless asked for
        assert worker_profiling(client) == [False]
        result = segment(str(path), SMALL, client=client)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    assert result.ok
    got = read_labels(path)
    for f, ref in reference.items():
        assert np.array_equal(got[f], ref), f  # bitwise identical


def test_killed_worker_gives_clean_labels(tmp_path, plate_small, reference, copy_plate,
                                          read_labels):
    from structfree_dask.runtime.cluster import local_client

    path = copy_plate(plate_small[0], tmp_path)
    client = local_client(n_workers=2, threads_per_worker=1)
    pids = client.run(os.getpid)
    killed = []

    def progress(done, total):
        if not killed:  # kill one worker as soon as the first unit finishes
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    try:
        result = segment(str(path), SMALL, client=client, progress=progress)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    assert killed and result.ok and len(result.done) == 4
    got = read_labels(path)
    for f, ref in reference.items():
        assert np.array_equal(got[f], ref), f


def test_interrupted_run_resumes(tmp_path, plate_small, reference, cluster_client, copy_plate,
                                 read_labels):
    path = copy_plate(plate_small[0], tmp_path)
    cfg = SMALL

    class Stop(Exception):
        pass

    def stop_after_one(done, total):
        raise Stop

    with pytest.raises(Stop):
        segment(str(path), cfg, client=cluster_client, progress=stop_after_one)
    second = segment(str(path), cfg, client=cluster_client)
    assert len(second.skipped) == 1 and len(second.done) == 3
    got = read_labels(path)
    for f, ref in reference.items():
        assert np.array_equal(got[f], ref), f
    third = segment(str(path), cfg, client=cluster_client)
    assert third.done == [] and len(third.skipped) == 4


def test_flow_averaging_equals_cellpose_by_hand(tmp_path, make_mosaic, cluster_client,
                                                permutation_equal, write_plate, read_labels):
    from cellpose import dynamics, models, utils

    from structfree_dask.backbones import default_model_path

    field = make_mosaic(300, seed=3)
    path = write_plate(tmp_path / "p.zarr", [field])
    # fp32 is cellpose's own precision: bitwise the same labels (auto may run bf16 here,
    # whose labels match cellpose's at F1 >= 0.99: benchmarks/bench_engine.py)
    segment(str(path), SegmentationConfig(channels=(0, 1), precision="fp32"),
            client=cluster_client)
    ours = read_labels(path)["A/1/0"][0, 0]
    model = models.CellposeModel(gpu=False, pretrained_model=str(default_model_path()))
    dps, probs = [], []
    for k in range(2):
        _, flows, _ = model.eval(field[k], channels=[0, 0], diameter=30, compute_masks=False)
        dps.append(flows[1])
        probs.append(flows[2])
    dP, prob = np.mean(dps, axis=0), np.mean(probs, axis=0)
    masks = dynamics.compute_masks(dP, prob, niter=200, cellprob_threshold=0.0,
                                   flow_threshold=0.4)
    masks = utils.fill_holes_and_remove_small_masks(masks, min_size=15)
    assert masks.max() > 20
    assert matched_f1(masks.astype(np.int64), ours.astype(np.int64)) >= 0.99
    assert permutation_equal(masks.astype(np.int64), ours.astype(np.int64))


def test_bad_input(tmp_path, make_mosaic, cluster_client, write_plate):
    field = make_mosaic(256, seed=1)
    path = write_plate(tmp_path / "p.zarr", [field])
    with pytest.raises(KeyError, match="channel 'DAPI' does not exist"):
        segment(str(path), SegmentationConfig(channels=("DAPI",)), client=cluster_client)
    with pytest.raises(FileNotFoundError, match="not a file and not a cellpose"):
        segment(str(path), SegmentationConfig(channels=(0,), model=str(tmp_path / "nope.pth")),
                client=cluster_client)
    with pytest.raises(KeyError, match="well"):
        segment(str(path), SegmentationConfig(channels=(0,)), client=cluster_client,
                wells=["Z/9"])
    with pytest.raises(ValueError, match="timepoint"):
        segment(str(path), SegmentationConfig(channels=(0,)), client=cluster_client,
                timepoints=[3])
    # a label name that exists (ground truth) is not overwritten without overwrite
    info = open_plate(path).field("A/1/0")
    from structfree_dask.io import write_labels

    write_labels(info, "gt_cyto", np.ones((1, 256, 256), "uint32"))
    with pytest.raises(LabelExistsError, match="already exists"):
        segment(str(path), SegmentationConfig(channels=(0,), name="gt_cyto"),
                client=cluster_client)
    assert open_labels(open_plate(path).field("A/1/0"), "gt_cyto").read().min() == 1
    # other settings on an existing segmentation need overwrite
    segment(str(path), SegmentationConfig(channels=(0,)), client=cluster_client)
    with pytest.raises(LabelExistsError, match="other settings"):
        segment(str(path), SegmentationConfig(channels=(0, 1)), client=cluster_client)
    redo = segment(str(path), SegmentationConfig(channels=(0, 1), overwrite=True),
                   client=cluster_client)
    redo_cfg = SegmentationConfig(channels=(0, 1))
    assert redo.done == [("A/1/0", 0)]
    # several targets: each target's error is its own, and no two write one label image
    again, twice, unknown = segment_many(
        [(str(path), redo_cfg), Target(str(path), redo_cfg),
         (str(path), SegmentationConfig(channels=("DAPI",), name="other"))],
        client=cluster_client)
    assert again.ok and again.done == [] and again.skipped == redo.done
    assert not twice.ok and "labels/cyto" in twice.error and "target 0" in twice.error
    assert unknown.error.startswith("KeyError") and "DAPI" in unknown.error
    assert "other" not in open_plate(path).field("A/1/0").labels
    with pytest.raises(ValueError, match="organelle"):
        SegmentationConfig(organelle="mito")


def test_small_zero_and_nan_fields(tmp_path, make_mosaic, cluster_client, write_plate,
                                   read_labels):
    small = make_mosaic(100, seed=2)  # smaller than a tile and than a network tile
    zero = np.zeros((2, 200, 200), "uint16")
    path = write_plate(tmp_path / "p.zarr", [small, zero])
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    result = segment(str(path), SegmentationConfig(channels=(0, 1)), client=cluster_client)
    assert result.ok
    labels = read_labels(path)
    assert labels["A/1/0"][0, 0].max() > 3
    assert labels["A/2/0"][0, 0].max() == 0
    after = {p: p.read_bytes() for p in before}
    assert before == after  # the source image is never written
    nan = np.full((1, 2, 128, 128), 100.0, "float32")
    nan[0, 1, 5, 5] = np.nan
    with create_plate(tmp_path / "nan.zarr", rows=["A"], columns=["1"]) as plate:
        plate.write_field("A", "1", 0, nan)
    result = segment(str(tmp_path / "nan.zarr"), SegmentationConfig(channels=(0, 1)),
                     client=cluster_client)
    assert not result.ok and "NaN" in result.failed[0][2]
    info = open_plate(tmp_path / "nan.zarr").field("A/1/0")
    assert "cyto" not in info.labels or not open_labels(info, "cyto").read().any()


def test_time_lapse_image_and_rescaling(tmp_path, make_mosaic, cluster_client):
    from structfree_dask.io import create_image

    frames = np.stack([make_mosaic(320, seed=s) for s in range(2)])
    path = tmp_path / "tl.zarr"
    create_image(path, frames, axes="tcyx", ngff_version="0.5")
    cfg = SegmentationConfig(channels=(0,), diameter=24, tile_size=128)
    result = segment(str(path), cfg, client=cluster_client, timepoints=slice(1, 2))
    assert result.ok and result.done == [("", 1)]
    lab = open_labels(open_plate(path).field(""), "cyto")
    data = lab.read()
    assert data[0].max() == 0 and data[1].max() > 10
    untiled = segment_array(frames[1, :1], SegmentationConfig(diameter=24))
    assert matched_f1(untiled.astype(np.int64), data[1, 0].astype(np.int64)) >= 0.99
    assert len(lab.shapes) == len(open_plate(path).field("").levels)
    import ome_zarr_models
    import zarr

    ome_zarr_models.open_ome_zarr(zarr.open_group(str(path), path="labels/cyto", mode="r"))


def test_mask_fusion_baselines_and_per_channel_models(tmp_path, make_mosaic, cluster_client,
                                                      write_plate, read_labels):
    """--fusion: each channel integrated alone, masks fused (tiled, on workers) equals the
    hand computation; one model per channel behaves like the same model given once."""
    import shutil

    from structfree_dask.backbones import default_model_path
    from structfree_dask.pipeline.fusion import fuse_masks

    field = make_mosaic(256, seed=5)
    path = write_plate(tmp_path / "p.zarr", [field])
    cfg = SegmentationConfig(channels=(0, 1), tile_size=128, name="vote", fusion="voting")
    assert segment(str(path), cfg, client=cluster_client).ok
    voted = read_labels(path, "vote")["A/1/0"][0, 0].astype(np.int64)
    per_channel = [segment_array(field[k]) for k in range(2)]
    by_hand = fuse_masks(per_channel, method="voting").astype(np.int64)
    assert by_hand.max() > 10
    assert matched_f1(by_hand, voted) >= 0.97
    voting = SegmentationConfig(channels=(0, 1), fusion="voting")
    assert matched_f1(by_hand, segment_array(field, voting).astype(np.int64)) >= 0.99
    fa = segment_array(field).astype(np.int64)
    assert matched_f1(fa, voted) < 1.0  # fusing masks is not averaging flows
    with pytest.raises(ValueError, match="fusion: expected one of fa, voting"):
        SegmentationConfig(fusion="mean")

    copy = tmp_path / "copy.pth"
    shutil.copy(default_model_path(), copy)
    two = SegmentationConfig(channels=(0, 1), tile_size=128, name="two",
                             channel_models=(str(default_model_path()), str(copy)))
    result = segment(str(path), two, client=cluster_client)
    assert result.ok and len(set(result.model_sha256)) == 1
    got = read_labels(path, "two")["A/1/0"][0, 0].astype(np.int64)
    assert matched_f1(fa, got) >= 0.99
    with pytest.raises(ValueError, match="one per channel"):
        SegmentationConfig(channels=(0, 1), channel_models=(str(copy),))
    with pytest.raises(ValueError, match="not both"):
        SegmentationConfig(channels=(0,), model="x", channel_models=(str(copy),))


def test_segment_array_with_one_model_per_channel(tmp_path, make_mosaic):
    """``channel_models`` naming the same weights twice gives the one-model result."""
    import shutil

    from structfree_dask.backbones import default_model_path

    field = make_mosaic(192, seed=11)
    copy = tmp_path / "copy.pth"
    shutil.copy(default_model_path(), copy)
    both = SegmentationConfig(channels=(0, 1))
    one = segment_array(field)
    two = segment_array(field, both.replace(channel_models=(str(default_model_path()),
                                                           str(copy))))
    assert one.max() > 5 and np.array_equal(one, two)
    with pytest.raises(ValueError, match="one per channel"):
        both.replace(channel_models=(str(copy),))
    with pytest.raises(ValueError, match="not both"):
        both.replace(model=str(copy), channel_models=(str(copy), str(copy)))
    with pytest.raises(FileNotFoundError):
        segment_array(field, both.replace(channel_models=(str(copy), str(tmp_path / "n.pth"))))
    with pytest.raises(ValueError, match="an array's channels are indices 0 to 1; got"):
        segment_array(field, SegmentationConfig(channels=(0, 2)))



def test_validate_plans_a_run_without_writing(tmp_path, make_mosaic, write_plate):
    path = write_plate(tmp_path / "p.zarr", [make_mosaic(96, seed=s) for s in range(2)], t=2)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    cfg = SegmentationConfig(channels=("nuc-stain",), tile_size=64)
    plans = validate(str(path), cfg, wells=["A/2"], timepoints=[1])
    assert [(p.info.path, p.action, p.channels, p.timepoints) for p in plans] == [
        ("A/2/0", "create", (1,), (1,))]
    assert len(validate(str(path), cfg)) == 2
    with pytest.raises(FileNotFoundError, match="not a file and not a cellpose"):
        validate(str(path), cfg.replace(model=str(tmp_path / "nope.pth")))
    with pytest.raises(KeyError, match="channel 'DAPI' does not exist"):
        validate(str(path), cfg.replace(channels=("DAPI",)))
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p for p in path.rglob("*") if p.is_file()) == sorted(before)
    target = Target(str(path), cfg)
    assert (target.wells, target.timepoints) == (None, None)


def test_a_target_runs_the_plan_validate_made(tmp_path, plate_small, reference, copy_plate,
                                              read_labels, cluster_client):
    """The command line validates, then runs that plan: the plate is read once, same labels."""
    path = copy_plate(plate_small[0], tmp_path)
    plans = validate(str(path), SMALL, timepoints=[1])
    (result,) = segment_many([Target(str(path), SMALL, None, [1], plans)],
                             client=cluster_client)
    assert result.ok and sorted(result.done) == [("A/1/0", 1), ("A/2/0", 1)]
    labels = read_labels(path)
    for key, ref in reference.items():
        assert np.array_equal(labels[key][1], ref[1]), key  # the planned timepoint, bitwise


def test_a_target_with_nothing_to_do_ends_when_the_stream_reaches_it(
        tmp_path, plate_small, copy_plate, cluster_client):
    """Resuming several targets (the one command segments cells, then nuclei): a target
    whose units are all done took its planning's time, not the time until another
    target's first unit finished and closed it."""
    path = copy_plate(plate_small[0], tmp_path)
    assert segment(str(path), SMALL, client=cluster_client, timepoints=[0]).ok
    done, other = segment_many([Target(str(path), SMALL, None, [0]),
                                Target(str(path), SMALL.replace(name="other"), None, [0])],
                               client=cluster_client)
    assert done.ok and done.done == [] and len(done.skipped) == 2
    assert other.ok and len(other.done) == 2 and other.first_unit_seconds is not None
    # reached before the other target's first unit was even submitted
    assert done.seconds < other.first_unit_seconds
    assert done.first_unit_seconds is None
