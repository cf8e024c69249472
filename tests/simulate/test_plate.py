"""Tests of structfree_dask.simulate.plate: simulated plates written as OME-Zarr."""

from __future__ import annotations

import hashlib
import logging
import pathlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr

from structfree_dask.cli import main
from structfree_dask.config import TRUTH_TABLE, true_ratio_column
from structfree_dask.io import (
    import_folder,
    open_labels,
    open_plate,
    read_feature_table,
    read_plate_dataset,
)
from structfree_dask.simulate import (
    PRESETS,
    CellLinePreset,
    ChannelSpec,
    simulate_field,
    simulate_plate,
    simulate_plate_from_shapes,
)

_RATIO = true_ratio_column("translocation-reporter")


def _ids(lab: np.ndarray) -> set[int]:
    return {int(i) for i in np.unique(lab) if i}


# ------------------------------------------------------------------ simulate_plate


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": 0}, r"rows must be >= 1, got 0"),
        ({"fields": 0}, r"fields must be >= 1"),
        ({"cell_line": "CLX"}, r"unknown cell line"),
        ({"mode": "tirf"}, r"unknown mode"),
    ],
)
def test_simulate_plate_validates_before_writing(
    tmp_path: pathlib.Path, kwargs: dict[str, object], match: str
) -> None:
    out = tmp_path / "bad.zarr"
    with pytest.raises(ValueError, match=match):
        simulate_plate(out, size=64, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()


# ------------------------------------------------------------------ plate writer


@pytest.mark.parametrize("ngff_version", ["0.4", "0.5"])
def test_simulate_plate_writes_valid_ome_zarr(
    tmp_path: pathlib.Path, ngff_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    from ome_zarr_models import open_ome_zarr

    path = tmp_path / "plate.zarr"
    with caplog.at_level(logging.INFO, logger="structfree_dask.simulate"):
        out = simulate_plate(
            path, cell_line="CL5", rows=2, cols=2, fields=2, timepoints=2, size=64, seed=3,
            ngff_version=ngff_version,
        )
    assert out == path and path.is_dir()
    model = open_ome_zarr(zarr.open_group(str(path), mode="r"))
    assert type(model).__name__ == "HCS"

    messages = [r.getMessage() for r in caplog.records if r.name == "structfree_dask.simulate"]
    assert len(messages) == 2 * 2 * 2

    root = zarr.open_group(str(path), mode="r")
    image_a = np.asarray(root["A/1/0/0"])
    assert image_a.shape == (2, 4, 64, 64) and image_a.dtype == np.uint16
    labels = np.asarray(root["A/1/0/labels/gt_nuclei/0"])
    cyto = np.asarray(root["A/1/0/labels/gt_cyto/0"])
    assert labels.shape[0] == 2 and labels.shape[-2:] == (64, 64)
    assert np.all((labels == 0) | (labels == cyto))
    # per-field seeds: fields differ, and each equals a direct simulation with its derived seed
    image_b = np.asarray(root["B/2/1/0"])
    assert not np.array_equal(image_a, image_b)
    direct = simulate_field(
        "CL5", size=64, timepoints=2,
        seed=np.random.SeedSequence(entropy=3, spawn_key=(1, 1, 1)),
    )
    assert np.array_equal(image_b, direct.image)


def _field_truth(cell_line: str | CellLinePreset, plate_seed: int, where: tuple[int, int, int],
                 timepoints: int) -> pd.DataFrame:
    seed = np.random.SeedSequence(entropy=plate_seed, spawn_key=where)
    return simulate_field(cell_line, size=64, timepoints=timepoints, seed=seed).truth


def test_simulate_plate_writes_the_truth_tables(tmp_path: pathlib.Path) -> None:
    ngio = pytest.importorskip("ngio")
    path = simulate_plate(tmp_path / "plate.zarr", cell_line="CL1", cols=2, timepoints=3,
                          size=64, seed=5)
    expected = {col: _field_truth("CL1", 5, (0, int(col) - 1, 0), 3) for col in ("1", "2")}
    assert all(len(e) for e in expected.values())

    # the field's feature table, read with ngio (``label`` is its index)
    for col, want in expected.items():
        table = ngio.open_ome_zarr_plate(str(path)).get_image("A", col, "0").get_table(
            TRUTH_TABLE)
        got = table.dataframe.reset_index()
        got = got.sort_values(["t", "label"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
    attrs = dict(zarr.open_group(str(path), mode="r")[f"A/1/0/tables/{TRUTH_TABLE}"].attrs)
    assert attrs["type"] == "feature_table"
    assert attrs["region"] == {"path": "../labels/gt_cyto"}
    assert attrs["measurement_columns"] == [_RATIO]

    # the plate-level dataset, read with pandas
    plate = pd.read_parquet(path / "measurements" / TRUTH_TABLE)
    plate = plate.sort_values(["column", "t", "label"]).reset_index(drop=True)
    want = pd.concat(
        [e.assign(well=f"A{col}", row="A", column=col, field=np.int32(0))
         for col, e in expected.items()], ignore_index=True,
    )
    want = want[["well", "row", "column", "field", *expected["1"].columns]]
    pd.testing.assert_frame_equal(plate, want, check_dtype=False)
    assert [str(d) for d in plate.dtypes[3:]] == ["int32", "int64", "int32", "int64", "float64"]


def test_simulate_plate_writes_empty_truth_parts(tmp_path: pathlib.Path) -> None:
    # one short-lived cell: it dies after the first timepoint, leaving the field empty
    lonely = CellLinePreset(
        name="lonely", description="", channels=(ChannelSpec("tr", "translocation"),),
        confluence=0.01, death_rate_per_h=1.0, cell_diameter_um=60.0,
    )
    path = simulate_plate(tmp_path / "plate.zarr", cell_line=lonely, timepoints=2, size=64,
                          seed=2)
    expected = _field_truth(lonely, 2, (0, 0, 0), 2)
    assert expected["t"].tolist() == [0]
    part = path / "A/1/0/tables" / TRUTH_TABLE / "table.parquet" / "t00001.parquet"
    plate_part = path / "measurements" / TRUTH_TABLE / "A-1-0-t00001.parquet"
    assert pq.read_table(part).num_rows == pq.read_table(plate_part).num_rows == 0
    assert pq.read_schema(part).names == list(expected.columns)
    assert pq.read_schema(plate_part).names == [
        "well", "row", "column", "field", *expected.columns]
    from structfree_dask.io import open_plate, read_feature_table

    got = read_feature_table(open_plate(path).field("A/1/0"), TRUTH_TABLE)
    pd.testing.assert_frame_equal(got, expected)


def test_simulate_plate_writes_the_truth_tables_to_an_object_store(s3_env) -> None:
    from structfree_dask.io import open_plate, read_feature_table, read_plate_dataset, remove_tree

    s3_env("admin")
    url = "s3://plates/truth.zarr"
    remove_tree(url)
    assert simulate_plate(url, cell_line="CL2", timepoints=2, size=64, seed=4) == url
    expected = _field_truth("CL2", 4, (0, 0, 0), 2)
    got = read_feature_table(open_plate(url).field("A/1/0"), TRUTH_TABLE)
    pd.testing.assert_frame_equal(got, expected)
    plate = read_plate_dataset(url, TRUTH_TABLE)
    assert plate["well"].unique().tolist() == ["A1"]
    pd.testing.assert_frame_equal(plate.drop(columns=["well", "row", "column", "field"]),
                                  expected)


def test_an_interrupted_simulation_leaves_nothing_on_an_object_store(
        s3_env, monkeypatch: pytest.MonkeyPatch) -> None:
    import structfree_dask.simulate.plate as module
    from structfree_dask.io import exists, remove_tree

    s3_env("admin")
    url = "s3://plates/stopped.zarr"
    remove_tree(url)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "_write_truth", stop)  # after the first field's image
    with pytest.raises(KeyboardInterrupt):
        simulate_plate(url, cell_line="CL2", timepoints=1, size=64, seed=4)
    assert not exists(url)


def test_simulate_plate_layout_and_names(tmp_path: pathlib.Path) -> None:
    out = simulate_plate(tmp_path / "plate.zarr", cell_line="CL4", rows=3, cols=2, fields=1,
                         size=64, seed=0)
    assert isinstance(out, pathlib.Path)
    plate = open_plate(out)
    assert plate.rows == ("A", "B", "C") and plate.columns == ("1", "2")
    assert sorted(plate.field_paths) == [f"{r}/{c}/0" for r in "ABC" for c in "12"]
    info = plate.field("B/2/0")
    assert info.channel_names == PRESETS["CL4"].channel_names
    assert info.labels == ("gt_nuclei", "gt_cyto")
    assert info.pixel_size["x"] == pytest.approx(1.24)
    table = read_feature_table(info, TRUTH_TABLE)
    assert list(table.columns) == ["label", "t", "parent_label"]  # CL4: no translocation


def test_simulate_plate_refuses_an_existing_path_unless_overwriting(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "plate.zarr"
    simulate_plate(path, cols=3, timepoints=2, size=64, seed=1)
    with pytest.raises(FileExistsError, match="already exists"):
        simulate_plate(path, size=64)
    out = simulate_plate(path, cols=1, size=64, seed=2, overwrite=True)
    assert open_plate(out).field_paths == ("A/1/0",)
    dataset = read_plate_dataset(str(out), TRUTH_TABLE)
    assert dataset["well"].unique().tolist() == ["A1"]  # nothing left of the old plate
    assert dataset["t"].unique().tolist() == [0]
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"is not an OME-Zarr plate .*overwrite "
                                              r"replaces only a plate"):
        simulate_plate(junk, size=64, overwrite=True)
    assert (junk / "notes.txt").read_text() == "keep me"


def test_an_interrupted_simulation_leaves_no_plate(tmp_path: pathlib.Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped after its first field, simulate leaves nothing that looks like a plate; an
    overwrite stopped so keeps the plate that was there."""
    import structfree_dask.simulate.plate as module

    real = module.simulate_field
    calls = []

    def stop_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "simulate_field", stop_at_the_second)
    path = tmp_path / "plate.zarr"
    with pytest.raises(KeyboardInterrupt):
        simulate_plate(path, cols=2, timepoints=1, size=64, seed=1)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(module, "simulate_field", real)
    simulate_plate(path, cols=1, timepoints=1, size=64, seed=1)
    calls.clear()
    monkeypatch.setattr(module, "simulate_field", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        simulate_plate(path, cols=3, timepoints=1, size=64, seed=2, overwrite=True)
    assert open_plate(path).field_paths == ("A/1/0",)
    assert read_plate_dataset(str(path), TRUTH_TABLE)["well"].unique().tolist() == ["A1"]
    assert [p.name for p in tmp_path.iterdir()] == ["plate.zarr"]


# ------------------------------------------------------------------ simulate_plate_from_shapes


@pytest.fixture(scope="module")
def kc_plate(real_dev: pathlib.Path, tmp_path_factory) -> pathlib.Path:
    """The real Kc167 test images imported as a plate (labels gt_cyto)."""
    return import_folder(real_dev / "Kc167", tmp_path_factory.mktemp("kc") / "kc.zarr")


def _tree_digest(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_plate_from_real_shapes(kc_plate, tmp_path, real_dev):
    before = _tree_digest(kc_plate)
    out = simulate_plate_from_shapes(tmp_path / "cl5.zarr", kc_plate, cell_line="CL5",
                                     timepoints=2, seed=1, mode="widefield")
    assert _tree_digest(kc_plate) == before  # the source is only read
    src, got = open_plate(kc_plate), open_plate(out)
    assert got.field_paths == src.field_paths and got.wells == src.wells
    for path in src.field_paths:
        info = got.field(path)
        assert info.channel_names == PRESETS["CL5"].channel_names
        assert info.sizes["t"] == 2 and info.labels == ("gt_nuclei", "gt_cyto")
        truth_cells = open_labels(src.field(path), "gt_cyto").read()
        cyto = open_labels(info, "gt_cyto").read()
        assert np.array_equal(cyto[0].squeeze(), truth_cells.squeeze())
        assert info.pixel_size["x"] == pytest.approx(0.32)
        table = read_feature_table(info, TRUTH_TABLE)
        assert sorted(table[table["t"] == 0]["label"]) == sorted(_ids(truth_cells))
    again = simulate_plate_from_shapes(tmp_path / "again.zarr", kc_plate, cell_line="CL5",
                                       timepoints=2, seed=1, mode="widefield")
    first = open_plate(out).field(src.field_paths[0]).open_array(0)[:]
    assert np.array_equal(first, open_plate(again).field(src.field_paths[0]).open_array(0)[:])


def test_plate_from_shapes_with_nuclei_keeps_them(tmp_path):
    src = simulate_plate(tmp_path / "src.zarr", cell_line="CL3", cols=2, size=96, seed=2)
    out = simulate_plate_from_shapes(tmp_path / "out.zarr", src, nuclei="gt_nuclei",
                                     cell_line="CL2")
    for path in open_plate(src).field_paths:
        for name in ("gt_cyto", "gt_nuclei"):
            want = open_labels(open_plate(src).field(path), name).read()
            assert np.array_equal(open_labels(open_plate(out).field(path), name).read(), want)


def test_plate_from_shapes_validates_before_writing(kc_plate, tmp_path):
    out = tmp_path / "out.zarr"
    with pytest.raises(ValueError, match=r"no field of .* has a label image 'cells'; "
                                         r"label images there: gt_cyto"):
        simulate_plate_from_shapes(out, kc_plate, labels="cells")
    with pytest.raises(ValueError, match=r"has 'gt_cyto' but no nuclei 'gt_nuclei'"):
        simulate_plate_from_shapes(out, kc_plate, nuclei="gt_nuclei")
    with pytest.raises(ValueError, match="cell line"):
        simulate_plate_from_shapes(out, kc_plate, cell_line="CL9")
    assert not out.exists()


def test_cli_simulate_shapes_from(kc_plate, tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    assert main(["simulate", str(out), "--shapes-from", str(kc_plate), "--cell-line", "CL5",
                 "--mode", "widefield", "--timepoints", "2", "--seed", "3"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert open_plate(out).field_paths == open_plate(kc_plate).field_paths
    assert main(["simulate", str(tmp_path / "x.zarr"), "--shapes-from", str(kc_plate),
                 "--rows", "2"]) != 0
    assert "--rows: with --shapes-from the plate layout" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "y.zarr"), "--labels", "gt_cyto"]) != 0
    assert "--labels and --nuclei name label images of --shapes-from" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "z.zarr"), "--shapes-from",
                 str(tmp_path / "nowhere.zarr")]) != 0
    assert "nowhere.zarr" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("x.zarr", "y.zarr", "z.zarr"))


def test_plate_from_shapes_refuses_bad_arguments_before_writing(tmp_path):
    src = simulate_plate(tmp_path / "src.zarr", size=64, seed=0)
    out = tmp_path / "out.zarr"
    with pytest.raises(ValueError, match=r"nuclei: the nucleus label image is the cells' own "
                                         r"\('gt_cyto'\)"):
        simulate_plate_from_shapes(out, src, nuclei="gt_cyto")
    with pytest.raises(ValueError, match=r"timepoints must be >= 1, got 0"):
        simulate_plate_from_shapes(out, src, timepoints=0)
    with pytest.raises(ValueError, match=r"unknown mode"):
        simulate_plate_from_shapes(out, src, mode="tirf")
    assert not out.exists()
    inner = src / "inner.zarr"
    with pytest.raises(ValueError, match=r"overlap; write the new plate outside the source"):
        simulate_plate_from_shapes(inner, src)
    assert not inner.exists()


# ------------------------------------------------------------------ stage jitter


def test_simulate_plate_writes_the_stage_shifts(tmp_path: pathlib.Path) -> None:
    path = simulate_plate(tmp_path / "plate.zarr", cell_line="CL1", cols=2, timepoints=3,
                          size=64, seed=6, stage_jitter_px=15)
    plate = open_plate(path)
    for ci, col in enumerate("12"):
        direct = simulate_field("CL1", size=64, timepoints=3, stage_jitter_px=15,
                                seed=np.random.SeedSequence(entropy=6, spawn_key=(0, ci, 0)))
        assert direct.stage_shift[1:].any()
        info = plate.field(f"A/{col}/0")
        # the images and both label images are the jittered field's, shifted alike
        assert np.array_equal(np.asarray(zarr.open_group(str(path), mode="r")[
            f"A/{col}/0/0"]), direct.image)
        for name, want in (("gt_cyto", direct.cyto), ("gt_nuclei", direct.nuclei)):
            got = np.asarray(open_labels(info, name).open_array(0, mode="r")[:])
            assert np.array_equal(got.reshape(want.shape), want), name
        table = read_feature_table(info, TRUTH_TABLE)
        pd.testing.assert_frame_equal(table, direct.truth)
        assert list(table.columns[:5]) == ["label", "t", "parent_label", "stage_dy", "stage_dx"]
        attrs = dict(zarr.open_group(str(path), mode="r")[f"A/{col}/0/tables/{TRUTH_TABLE}"]
                     .attrs)
        assert attrs["measurement_columns"] == [_RATIO]
        assert attrs["metadata_columns"] == ["t", "parent_label", "stage_dy", "stage_dx"]
        assert attrs["stage_jitter_px"] == 15
        assert attrs["stage_dy"] == direct.stage_shift[:, 0].tolist()
        assert attrs["stage_dx"] == direct.stage_shift[:, 1].tolist()
    dataset = read_plate_dataset(str(path), TRUTH_TABLE)
    assert [str(dataset[c].dtype) for c in ("stage_dy", "stage_dx")] == ["int32", "int32"]
    per_t = dataset.groupby(["column", "t"])[["stage_dy", "stage_dx"]].nunique()
    assert (per_t == 1).all().all()  # one shift per (field, timepoint)
    first = dataset[dataset["t"] == 0]
    assert not first["stage_dy"].any() and not first["stage_dx"].any()


def test_simulate_plate_without_jitter_writes_no_stage_truth(tmp_path: pathlib.Path) -> None:
    a = simulate_plate(tmp_path / "a.zarr", timepoints=2, size=64, seed=2)
    b = simulate_plate(tmp_path / "b.zarr", timepoints=2, size=64, seed=2, stage_jitter_px=0)
    assert _tree_digest(a) == _tree_digest(b)  # the same plate, bit for bit
    attrs = dict(zarr.open_group(str(b), mode="r")[f"A/1/0/tables/{TRUTH_TABLE}"].attrs)
    assert not {"stage_jitter_px", "stage_dy", "stage_dx"} & set(attrs)
    assert "stage_dy" not in read_plate_dataset(str(b), TRUTH_TABLE)


def test_simulate_plate_stage_shift_of_a_timepoint_without_cells(tmp_path: pathlib.Path) -> None:
    lonely = CellLinePreset(
        name="lonely", description="", channels=(ChannelSpec("tr", "translocation"),),
        confluence=0.01, death_rate_per_h=1.0, cell_diameter_um=60.0,
    )
    path = simulate_plate(tmp_path / "plate.zarr", cell_line=lonely, timepoints=3, size=64,
                          seed=2, stage_jitter_px=20)
    direct = simulate_field(lonely, size=64, timepoints=3, stage_jitter_px=20,
                            seed=np.random.SeedSequence(entropy=2, spawn_key=(0, 0, 0)))
    empty = sorted(set(range(3)) - set(direct.truth["t"]))
    assert empty  # a timepoint without cells: its shift is still in the attributes
    part = path / "A/1/0/tables" / TRUTH_TABLE / "table.parquet" / f"t{empty[0]:05d}.parquet"
    assert pq.read_schema(part).names == list(direct.truth.columns)
    attrs = dict(zarr.open_group(str(path), mode="r")[f"A/1/0/tables/{TRUTH_TABLE}"].attrs)
    assert attrs["stage_dy"] == direct.stage_shift[:, 0].tolist()


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (-1, ValueError, r"stage_jitter_px must be >= 0, got -1"),
        (1.5, TypeError, r"stage_jitter_px must be an int >= 0, got float 1.5"),
        (33, ValueError, r"stage_jitter_px must be <= 32"),
    ],
)
def test_simulate_plate_refuses_bad_stage_jitter_before_writing(
    tmp_path: pathlib.Path, value: object, error: type, match: str
) -> None:
    out = tmp_path / "bad.zarr"
    with pytest.raises(error, match=match):
        simulate_plate(out, size=64, stage_jitter_px=value)  # type: ignore[arg-type]
    assert not out.exists()


# ------------------------------------------------------------------ defocus and motion scale


def test_simulate_plate_writes_the_defocused_timepoints(tmp_path: pathlib.Path) -> None:
    path = simulate_plate(tmp_path / "plate.zarr", cell_line="CL3", cols=2, timepoints=4,
                          size=64, seed=0, defocus_p=0.5, motion_scale=10.0)
    plate = open_plate(path)
    drawn = []
    for ci, col in enumerate("12"):
        direct = simulate_field("CL3", size=64, timepoints=4, defocus_p=0.5, motion_scale=10.0,
                                seed=np.random.SeedSequence(entropy=0, spawn_key=(0, ci, 0)))
        drawn.append(direct.defocused.tolist())
        info = plate.field(f"A/{col}/0")
        assert np.array_equal(np.asarray(zarr.open_group(str(path), mode="r")[
            f"A/{col}/0/0"]), direct.image)
        got = np.asarray(open_labels(info, "gt_cyto").open_array(0, mode="r")[:])
        assert np.array_equal(got.reshape(direct.cyto.shape), direct.cyto)
        table = read_feature_table(info, TRUTH_TABLE)
        pd.testing.assert_frame_equal(table, direct.truth)
        assert list(table.columns[:4]) == ["label", "t", "parent_label", "defocused"]
        attrs = dict(zarr.open_group(str(path), mode="r")[f"A/{col}/0/tables/{TRUTH_TABLE}"]
                     .attrs)
        assert attrs["measurement_columns"] == [
            true_ratio_column("translocation-reporter")]
        assert attrs["metadata_columns"] == ["t", "parent_label", "defocused"]
        assert attrs["defocus_p"] == 0.5 and attrs["motion_scale"] == 10.0
        assert attrs["defocused_timepoints"] == np.flatnonzero(direct.defocused).tolist()
        assert not {"stage_jitter_px", "stage_dy", "stage_dx"} & set(attrs)
    # drawn per field: both fields have timepoints in and out of focus, not the same ones
    assert drawn == [[False, True, False, True], [False, True, False, False]]
    dataset = read_plate_dataset(str(path), TRUTH_TABLE)
    assert str(dataset["defocused"].dtype) == "bool"
    per_t = dataset.groupby(["column", "t"])["defocused"].agg(["nunique", "first"])
    assert (per_t["nunique"] == 1).all()
    assert not dataset.loc[dataset["t"] == 0, "defocused"].any()
    for (col, t), first in per_t["first"].items():
        assert first == drawn[int(col) - 1][t]


def test_simulate_plate_defaults_write_no_defocus_or_motion_truth(
    tmp_path: pathlib.Path,
) -> None:
    a = simulate_plate(tmp_path / "a.zarr", timepoints=2, size=64, seed=2)
    b = simulate_plate(tmp_path / "b.zarr", timepoints=2, size=64, seed=2, defocus_p=0.0,
                       motion_scale=1.0)
    assert _tree_digest(a) == _tree_digest(b)  # the same plate, bit for bit
    attrs = dict(zarr.open_group(str(b), mode="r")[f"A/1/0/tables/{TRUTH_TABLE}"].attrs)
    assert not {"defocus_p", "defocused_timepoints", "motion_scale"} & set(attrs)
    assert "defocused" not in read_plate_dataset(str(b), TRUTH_TABLE)


def test_simulate_plate_defocus_of_a_timepoint_without_cells(tmp_path: pathlib.Path) -> None:
    lonely = CellLinePreset(
        name="lonely", description="", channels=(ChannelSpec("tr", "translocation"),),
        confluence=0.01, death_rate_per_h=1.0, cell_diameter_um=60.0,
    )
    path = simulate_plate(tmp_path / "plate.zarr", cell_line=lonely, timepoints=3, size=64,
                          seed=2, defocus_p=1.0)
    part = path / "A/1/0/tables" / TRUTH_TABLE / "table.parquet" / "t00002.parquet"
    assert pq.read_table(part).num_rows == 0
    assert str(pq.read_schema(part).field("defocused").type) == "bool"
    attrs = dict(zarr.open_group(str(path), mode="r")[f"A/1/0/tables/{TRUTH_TABLE}"].attrs)
    assert attrs["defocused_timepoints"] == [1, 2]  # also the one without cells


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"defocus_p": 1.5}, ValueError, r"defocus_p must be in \[0, 1\], got 1\.5"),
        ({"defocus_p": "0.5"}, TypeError, r"defocus_p must be a number"),
        ({"motion_scale": -2}, ValueError, r"motion_scale must be in \[0, 100\], got -2\.0"),
        ({"motion_scale": None}, TypeError, r"motion_scale must be a number"),
    ],
)
def test_simulate_plate_refuses_bad_defocus_or_motion_before_writing(
    tmp_path: pathlib.Path, kwargs: dict[str, object], error: type, match: str
) -> None:
    out = tmp_path / "bad.zarr"
    with pytest.raises(error, match=match):
        simulate_plate(out, size=64, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()
