"""The graph of one (field, timepoint) (engine._graph): its stages, the fused unit of a field
of one region, and the GPU resource its tasks ask for."""

from __future__ import annotations

import numpy as np

from structfree_dask.config import SegmentationConfig
from structfree_dask.engine import segment
from structfree_dask.io import create_plate, open_labels, open_plate
from structfree_dask.pipeline.segment import field_geometry


def test_gpu_tasks_declare_the_gpu_resource(tmp_path, make_mosaic, write_plate,
                                            worker_profiling):
    """Network and integration tasks ask for the GPU resource where workers advertise one
    (dask-cuda workers here are started with it); CPU clusters get no annotation."""
    from structfree_dask.engine import FUSED, _graph, _plan
    from structfree_dask.pipeline.segment import resolve_models
    from structfree_dask.runtime.cluster import gpu_resources, local_client

    path = write_plate(tmp_path / "p.zarr", [make_mosaic(160, seed=7)])
    client = local_client(n_workers=1, threads_per_worker=1, resources={"GPU": 1},
                          profile=True)
    try:
        assert gpu_resources(client) == {"GPU": 1}
        assert worker_profiling(client) == [True]
        result = segment(str(path), SegmentationConfig(channels=(0,), tile_size=96),
                         client=client)
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    assert result.ok and result.done == [("A/1/0", 0)]
    cfg = SegmentationConfig(channels=(0,), tile_size=96, name="g")
    info = open_plate(path).field("A/1/0")
    specs = resolve_models(cfg)
    plan = _plan.FieldPlan(info, (0,), (0,), _plan.run_record(cfg, specs, (0,), ("c",)),
                           "create")
    label = _plan.apply_label_plan(plan, cfg)
    unit = _graph.Unit(info, label, 0)
    whole = cfg.replace(tile_size=max(info.sizes["y"], info.sizes["x"]))  # one region
    for resources, want in (({"GPU": 1}, {"GPU": 1}), (None, None)):
        graph = _graph.unit_task(unit, cfg, specs, (0,), "tok", resources).__dask_graph__()
        fused = _graph.unit_task(unit, whole, specs, (0,), "tok", resources).__dask_graph__()
        for g, stages in ((graph, {"flows", "integrate", "write"}), (fused, {FUSED})):
            seen = set()
            for layer in g.layers.values():
                res = (layer.annotations or {}).get("resources")
                for key in layer:
                    got = res(key) if callable(res) else res
                    stage = str(key).split("-")[0]
                    seen.add(stage)
                    if stage in ("flows", "integrate", FUSED):
                        assert got == want, key
                    elif stage in ("write", "pyramid", "offsets", "done"):
                        assert not isinstance(got, dict), key
            assert stages <= seen
        assert len(fused) == 1


def test_fused_units_equal_the_graph(tmp_path, make_mosaic, cluster_client, monkeypatch,
                                     copy_plate):
    """A field of one region runs as one task per unit, its steps timed per stage; its
    labels (every z plane and pyramid level) are bitwise those of the unit's graph."""
    from distributed import get_task_stream

    from structfree_dask.engine import FUSED, STAGES, _stream

    nz, size = 2, 192
    fields = [np.stack([make_mosaic(size, seed=10 + 2 * f + z) for z in range(nz)], axis=1)
              for f in range(2)]  # (c, z, y, x), one region at the default tile size
    src = tmp_path / "p.zarr"
    with create_plate(src, rows=["A"], columns=["1", "2"]) as plate:
        for i, img in enumerate(fields):
            plate.write_field("A", str(i + 1), 0, img[None], axes="tczyx",
                              channel_names=["cyto-stain", "nuc-stain"])
    graph_path = copy_plate(src, tmp_path / "graph")
    cfg = SegmentationConfig(channels=(0, 1))
    assert cfg.tile_size >= size
    with get_task_stream(cluster_client) as fused_tasks:
        fused = segment(str(src), cfg, client=cluster_client)
    monkeypatch.setattr(_stream, "FUSE_SINGLE_REGION", False)
    with get_task_stream(cluster_client) as graph_tasks:
        graph = segment(str(graph_path), cfg, client=cluster_client)
    assert fused.ok and graph.ok and sorted(fused.done) == sorted(graph.done)
    units = len(fused.done)
    assert units == len(fields)

    def stages(records):
        return [str(r["key"]).split("-", 1)[0] for r in records.data]

    assert stages(fused_tasks) == [FUSED] * units  # one task per unit
    assert set(stages(graph_tasks)) <= set(STAGES) and len(stages(graph_tasks)) > units
    # each stage's steps counted and timed inside the fused tasks; none for the graph
    assert set(fused.stage_steps) == set(fused.stage_seconds) == set(STAGES)
    for stage in ("flows", "integrate", "count", "write"):
        assert fused.stage_steps[stage] == units * nz, stage
    assert fused.stage_steps["stats"] == fused.stage_steps["done"] == units
    assert fused.stage_seconds["flows"] > 0 and fused.stage_seconds["integrate"] > 0
    assert graph.stage_steps == {} and graph.stage_seconds == {}
    assert fused.cells == graph.cells and min(fused.cells.values()) > 0
    for f in open_plate(src).field_paths:
        a = open_labels(open_plate(src).field(f), "cyto")
        b = open_labels(open_plate(graph_path).field(f), "cyto")
        assert len(a.shapes) > 1  # pyramid levels written by the fused task too
        for level in range(len(a.shapes)):
            assert np.array_equal(a.read(level), b.read(level)), (f, level)
        assert all(a.read()[0, 0, z].max() > 0 for z in range(nz))


def _annotations(graph, what):
    """``{key: annotation}`` of the tasks of a graph that carry one."""
    out = {}
    for layer in graph.layers.values():
        value = (layer.annotations or {}).get(what)
        for key in layer:
            got = value(key) if callable(value) else value
            if got is not None:
                out[str(key)] = got
    return out


def test_the_graph_has_a_task_per_stage_region_and_plane(tmp_path, make_mosaic, specs):
    """Four regions (each owning network tiles) and two z planes: flows, integration, counts
    and writes per region and plane, pyramid blocks per level, one stats, offsets and done
    task; row-major priorities; the token keeps two runs' names apart; a field of one region
    is fused unless asked not to be."""
    from structfree_dask.engine import FUSED, STAGES, _graph, _plan, _tasks

    img = np.stack([make_mosaic(448, seed=z) for z in range(2)], axis=1)[None]  # t c z y x
    path = tmp_path / "p.zarr"
    with create_plate(path, rows=["A"], columns=["1"]) as plate:
        plate.write_field("A", "1", 0, img, axes="tczyx", channel_names=["cyto", "nuc"])
    cfg = SegmentationConfig(channels=(0, 1), tile_size=224)
    (plan,) = _plan.plan_fields(str(path), cfg, specs, None, None)
    label = _plan.apply_label_plan(plan, cfg)
    unit = _graph.Unit(plan.info, label, 0)
    geometry = field_geometry((448, 448), cfg, specs[0])
    assert all(geometry.tiles_box(r) is not None for r in geometry.regions())
    graph = _graph.unit_task(unit, cfg, specs, (0, 1), "tok").__dask_graph__()
    keys = [str(k) for k in graph]
    count = {stage: sum(k.split("-")[0] == stage for k in keys) for stage in STAGES}
    blocks = sum(len(_tasks.label_blocks(label, lvl)) for lvl in range(1, len(label.shapes)))
    assert len(label.shapes) > 1 and blocks > 0
    assert count == {"stats": 1, "flows": 8, "integrate": 8, "count": 8, "offsets": 1,
                     "write": 8, "pyramid": blocks, "done": 1}
    assert len(keys) == sum(count.values()) and all("-A_1_0-t0-tok" in k for k in keys)
    priority = _annotations(graph, "priority")
    regions = ["0_0", "0_1", "1_0", "1_1"]  # row-major
    for z in (0, 1):
        for i, r in enumerate(regions):
            assert priority[f"flows-A_1_0-t0-tok-z{z}-{r}"] == -i
            assert priority[f"integrate-A_1_0-t0-tok-z{z}-{r}"] == 1_000_000 - i
    assert _annotations(graph, "resources") == {}  # no GPU asked for
    other = _graph.unit_task(unit, cfg, specs, (0, 1), "other").__dask_graph__()
    assert not set(graph) & set(other)

    whole = cfg.replace(tile_size=448)
    fused = _graph.unit_task(unit, whole, specs, (0, 1), "tok").__dask_graph__()
    assert [str(k) for k in fused] == [f"{FUSED}-A_1_0-t0-tok"]
    unfused = _graph.unit_task(unit, whole, specs, (0, 1), "tok", fuse=False).__dask_graph__()
    assert {str(k).split("-")[0] for k in unfused} == set(STAGES)
    assert sum(str(k).startswith("flows-") for k in unfused) == 2  # one region, two planes
