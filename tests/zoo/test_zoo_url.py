"""A zoo in an object store (a real S3 server, SeaweedFS on 127.0.0.1).

Models are added, listed and selected through the store's API; segmenting with a zoo
at a URL gives the labels of the same zoo copied to disk, each worker loading its own
local copy of the weights; a store that cannot be used is a one-line error before any
work.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from structfree_dask.backbones import file_sha256
from structfree_dask.cli import main
from structfree_dask.io import CACHE_ENV, StoreError, exists, filesystem, remove_tree
from structfree_dask.simulate import simulate_plate
from structfree_dask.zoo import ModelCard, Zoo, build_zoo, list_selections, training_jobs
from structfree_dask.zoo.resolve import resolve_selection

pytest.importorskip("torch")


def run_cli(*argv):
    """Run the CLI; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _objects(url):
    fs, path = filesystem(url)
    fs.invalidate_cache()
    return sorted(k[len(path) + 1:] for k in fs.find(path))


CW0 = ModelCard.example(model_id="cw0")
CW1 = ModelCard.example(model_id="cw1", channels=(1,), channel_names=("ER",))
MC = ModelCard.example(model_id="mc01", strategy="mc", channels=(0, 1),
                       channel_names=("cyto-reporter", "ER"))


def test_a_zoo_in_a_store_adds_lists_and_selects(s3_env, small_cpnet_path, tmp_path,
                                                  monkeypatch):
    s3_env("admin")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    url = "s3://plates/zoos/cards"
    remove_tree(url)
    zoo = Zoo(url)
    assert zoo.path == url and zoo.is_url and zoo.ids() == [] and zoo.selections() == []
    for card in (CW0, CW1, MC):
        stored = zoo.add(card, small_cpnet_path)
        assert stored.weights_sha256 == file_sha256(small_cpnet_path)
    assert _objects(url) == [f"models/{m}/{f}" for m in ("cw0", "cw1", "mc01")
                             for f in ("card.json", "weights.pth")]
    reopened = Zoo(url + "/")
    assert reopened.ids() == ["cw0", "cw1", "mc01"]
    assert reopened.get("cw1").to_dict() == {**CW1.to_dict(),
                                             "weights_sha256": file_sha256(small_cpnet_path)}
    assert [c.model_id for c in reopened.cards("CL1", "cyto", strategy="cw")] == ["cw0", "cw1"]
    assert [r["model_id"] for r in reopened.table()] == ["cw0", "cw1", "mc01"]
    assert zoo.weights_path("cw0") == f"{url}/models/cw0/weights.pth"
    with pytest.raises(FileExistsError, match="already exists in s3://plates/zoos/cards"):
        zoo.add(CW0, small_cpnet_path)
    with pytest.raises(KeyError, match="'nope' is not in the zoo s3://plates/zoos/cards"):
        zoo.get("nope")

    # weights without a card (an upload cut short) are not a model of the zoo
    fs, root = filesystem(url)
    fs.put_file(str(small_cpnet_path), f"{root}/models/partial/weights.pth")
    assert "partial" not in zoo and zoo.ids() == ["cw0", "cw1", "mc01"]

    # overwrite replaces the model: other weights, a new card
    other = tmp_path / "other.pth"
    state = __import__("torch").load(small_cpnet_path, weights_only=True)
    state = {k: v + 1 if v.is_floating_point() and k != "diam_mean" else v
             for k, v in state.items()}
    __import__("torch").save(state, other)
    replaced = zoo.add(CW0, other, overwrite=True)
    assert replaced.weights_sha256 == file_sha256(other) != file_sha256(small_cpnet_path)
    assert zoo.get("cw0").weights_sha256 == file_sha256(other)

    # a local copy of the weights: cached under the card's checksum, checked
    local = zoo.local_weights("cw0")
    assert local.is_file() and file_sha256(local) == replaced.weights_sha256
    assert local.parent.name == replaced.weights_sha256
    assert local.is_relative_to(tmp_path / "cache")
    stamp = local.stat().st_mtime_ns
    assert zoo.local_weights("cw0") == local and local.stat().st_mtime_ns == stamp  # reused
    fs.put_file(str(small_cpnet_path), f"{root}/models/cw0/weights.pth")  # changed behind
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "fresh-cache"))
    with pytest.raises(ValueError, match="cw0/weights.pth has checksum .* expected"):
        zoo.local_weights("cw0")
    zoo.add(CW0, other, overwrite=True)

    # selections
    stored = zoo.set_selection("CL1", "cyto", {"model_ids": {0: "cw0", 1: "cw1"},
                                               "eval_channels": [0, 1], "strategy": "cw",
                                               "val_f1": 0.8})
    assert Zoo(url).selection("CL1", "cyto") == stored
    assert zoo.selections() == list_selections(zoo) == [("CL1", "cyto")]
    with pytest.raises(KeyError, match="no selection for CL1/nuclei.*selections: CL1/cyto"):
        zoo.selection("CL1", "nuclei")
    code, out, err = run_cli("zoo", "list", url)
    assert code == 0, err
    listed = {word for line in out.splitlines() for word in line.split()}
    assert {"cw0", "cw1", "mc01"} <= listed and "partial" not in listed
    assert "* selected for CL1/cyto" in out

    # a model whose weights were removed: resolving its selection says so, before any run
    fs.rm_file(f"{root}/models/cw1/weights.pth")
    assert "cw1" in zoo  # the card is still there
    with pytest.raises(FileNotFoundError, match="model 'cw1' in the zoo s3://plates/zoos/cards "
                                                "has a card but no weights file"):
        resolve_selection(zoo, zoo.selection("CL1", "cyto"), None)
    zoo.add(CW1, small_cpnet_path, overwrite=True)
    resolve_selection(zoo, zoo.selection("CL1", "cyto"), None)

    # a reader may read the zoo, not add to it
    s3_env("reader")
    assert Zoo(url).ids() == ["cw0", "cw1", "mc01"]
    with pytest.raises(PermissionError):
        Zoo(url).add(ModelCard.example(model_id="cw9"), small_cpnet_path)


@pytest.fixture
def worker_cache(tmp_path, monkeypatch):
    """The weights cache the workers start with (the test then gives the driver another)."""
    folder = tmp_path / "worker-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def s3_workers(worker_cache, s3_env):
    """A real 2-worker LocalCluster with the S3 environment and its own weights cache."""
    from structfree_dask.runtime.cluster import close_client, local_client

    s3_env("admin")
    client = local_client(n_workers=2, threads_per_worker=1, memory_limit="4GiB")
    yield client
    close_client(client)


def test_segment_with_a_zoo_in_a_store_gives_the_labels_of_its_local_copy(
        s3_workers, worker_cache, tmp_path, monkeypatch):
    from structfree_dask.backbones import default_model_path
    from structfree_dask.io import label_record, open_labels, open_plate

    url, local = "s3://plates/zoos/segment", tmp_path / "zoo"
    remove_tree(url)
    zoo = Zoo(url)
    weights = default_model_path()  # the shipped generalist: it finds cells
    for card in (CW0, CW1):
        zoo.add(card, weights)
    zoo.set_selection("CL1", "cyto", {"model_ids": {0: "cw0", 1: "cw1"},
                                      "eval_channels": [0, 1], "strategy": "cw",
                                      "val_f1": 0.5})
    fs, root = filesystem(url)
    fs.get(root, str(local), recursive=True)  # the same zoo, copied to disk
    assert Zoo(local).ids() == zoo.ids() and Zoo(local).selections() == zoo.selections()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "driver-cache"))  # the workers keep theirs
    plate = simulate_plate(tmp_path / "p.zarr", cell_line="CL1", size=64, seed=3)
    common = ["--cell-line", "CL1", "--organelle", "cyto", "--tile-size", "64",
              "--scheduler", s3_workers.scheduler.address, "--no-progress"]
    for name, where in (("from_store", url), ("from_disk", local)):
        code, out, err = run_cli("segment", plate, "--zoo", where, "--name", name, *common)
        assert code == 0, err
    sha = file_sha256(weights)
    assert (worker_cache / "weights" / sha / "weights.pth").is_file()  # a worker's own copy
    for info in open_plate(str(plate)).fields():
        a, b = open_labels(info, "from_store"), open_labels(info, "from_disk")
        assert label_record(a)["model_sha256"] == label_record(b)["model_sha256"] == sha
        a, b = np.asarray(a.open_array(0)[:]), np.asarray(b.open_array(0)[:])
        assert a.max() > 0
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- bad input

BUILD = ["zoo", "build", "--gt", "gt_cyto", "--organelle", "cyto", "--cell-line", "CL1",
         "--subsets", "0", "--max-epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_plate(tmp_path_factory):
    return simulate_plate(tmp_path_factory.mktemp("plate") / "p.zarr", cell_line="CL1",
                          rows=1, cols=3, size=64, seed=0)


@pytest.mark.parametrize("argv", [
    ["zoo", "list", "{zoo}"],
    ["zoo", "report", "{zoo}", "--plate", "{plate}"],
    ["segment", "{plate}", "--zoo", "{zoo}", "--cell-line", "CL1"],
    [*BUILD, "{plate}", "--zoo", "{zoo}"],
], ids=["list", "report", "segment", "build"])
def test_a_zoo_in_a_missing_bucket_is_one_line(argv, tiny_plate, s3_env, tmp_path):
    env = s3_env("admin")
    zoo = "s3://no-such-bucket/zoo"
    code, out, err = run_cli(*[a.format(zoo=zoo, plate=tiny_plate) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "the bucket 'no-such-bucket' does not exist" in err and zoo in err
    assert env["AWS_SECRET_ACCESS_KEY"] not in err + out


def test_a_store_refusing_writes_stops_the_build_before_training(tiny_plate, s3_env,
                                                                 small_cpnet_path):
    env = s3_env("reader")
    url = "s3://plates/zoos/by-reader"
    code, out, err = run_cli(*BUILD, tiny_plate, "--zoo", url, "--base-model",
                             small_cpnet_path)
    assert code == 2
    assert err.strip().startswith("error: cannot write into s3://plates/zoos/by-reader") \
        and "refused the write" in err and "\n" not in err.strip(), err
    assert "to train" not in err and env["AWS_SECRET_ACCESS_KEY"] not in err
    jobs = training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1", subsets=[[0]])
    with pytest.raises(StoreError, match="cannot write into s3://plates/zoos/by-reader"):
        build_zoo(jobs, url, client=None, base=small_cpnet_path)  # no cluster needed
    s3_env("admin")
    assert not exists(url)


def test_build_into_a_zoo_in_a_store(s3_workers, tiny_plate, small_cpnet_path, tmp_path):
    """Workers train in local folders and write models and logs into the store."""
    url = "s3://plates/zoos/built"
    remove_tree(url)
    code, out, err = run_cli(*BUILD, tiny_plate, "--zoo", url, "--base-model",
                             small_cpnet_path, "--tile-size", "64", "--flow-thresholds", "0.4",
                             "--scheduler", s3_workers.scheduler.address)
    assert code == 0, err
    [job] = training_jobs(tiny_plate, "gt_cyto", "cyto", "CL1", subsets=[[0]])
    zoo = Zoo(url)
    assert zoo.ids() == [job.model_id]
    assert zoo.selection("CL1", "cyto").model_ids == (job.model_id,)
    assert f"logs in {url}/logs" in out
    fs, root = filesystem(url)
    log = fs.cat_file(f"{root}/logs/{job.model_id}.log").decode()
    assert "epoch 1/1" in log and "done in" in log
    assert not [k for k in _objects(url) if "/." in k or k.startswith(".")]  # no leftovers
