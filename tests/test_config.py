"""The settings schema: one definition, every problem at once, the same checks everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.config import (
    DEFAULT_MIN_SIZE,
    FUSIONS,
    SegmentationConfig,
    SettingsError,
    TrainSettings,
)


def test_values_are_converted_once_checked():
    cfg = SegmentationConfig(channels=[np.int64(0), "mito"], tile_size=512.0, diameter=20,
                             min_size=np.int32(30))
    assert cfg.channels == (0, "mito") and isinstance(cfg.channels[0], int)
    assert isinstance(cfg.tile_size, int) and isinstance(cfg.diameter, float)
    assert cfg.min_size == 30 and type(cfg.min_size) is int
    assert hash(cfg) == hash(SegmentationConfig(channels=(0, "mito"), tile_size=512,
                                                diameter=20.0, min_size=30))


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        SegmentationConfig.from_mapping({"organelle": "cell", "channels": [], "halo": -1,
                                         "min_sise": 3, "fusion": "mean"}, where="seg")
    fields = [f for f, _ in raised.value.problems]
    assert fields == ["seg.organelle", "seg.channels", "seg.halo", "seg.min_sise",
                      "seg.fusion"]
    text = str(raised.value)
    assert text.startswith("5 problems: seg.organelle: expected one of cyto, nuclei")
    assert "seg.min_sise: unknown setting (did you mean 'min_size'?" in text
    assert f"expected one of {', '.join(FUSIONS)}; got 'mean'" in text


def test_relations_are_checked_after_the_fields():
    with pytest.raises(SettingsError, match="channel_models: names 1 model"):
        SegmentationConfig(channels=(0, 1), channel_models=("a.pth",))
    with pytest.raises(SettingsError, match="give either model or channel_models"):
        SegmentationConfig(channels=(0,), model="m", channel_models=("a.pth",))


def test_replace_checks_again_and_defaults_are_written_once():
    cfg = SegmentationConfig(channels=(1,))
    assert cfg.replace(min_size=5).min_size == 5
    with pytest.raises(SettingsError, match="min_size: expected a whole number"):
        cfg.replace(min_size=-5)
    assert cfg.min_size == DEFAULT_MIN_SIZE
    assert cfg.given() == {"channels": (1,)}


def test_check_mapping_checks_each_key_alone():
    values, problems = SegmentationConfig.check_mapping(
        {"organelle": "nuclei", "diameter": "20", "overwrite": True})
    assert values == {"organelle": "nuclei", "overwrite": True}
    assert problems == [("diameter", "expected a finite number between 0.001 and 100000 px; "
                                     "got '20'")]


def test_train_settings():
    st = TrainSettings.from_mapping({"max_epochs": 3, "lr": 1e-3})
    assert (st.max_epochs, st.lr, st.patience, st.tile_size) == (3, 1e-3, 50, 224)
    with pytest.raises(SettingsError, match="tile_size: expected a multiple of 16; got 100"):
        TrainSettings(tile_size=100)
    with pytest.raises(SettingsError, match="2 problems: max_epochs: .*; lr: "):
        TrainSettings(max_epochs=0, lr=float("nan"))


# ------------------------------------------------------------- cells and cluster settings

from pathlib import Path  # noqa: E402

from structfree_dask.config import CellsSettings, ClusterSettings, ScreenSettings  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cells_settings_defaults_and_derived_names():
    plain = CellsSettings(cells="cyto")
    assert (plain.link, plain.measure, plain.track, plain.max_gap, plain.divisions,
            plain.region, plain.report) == (False, True, False, 1, True, 1024, True)
    assert plain.inputs == ("cyto",) and plain.table_name == "cyto_features"
    linked = CellsSettings(cells="cyto", nuclei="nuc")  # one default for link, everywhere
    assert linked.link and linked.inputs == ("cyto", "nuc")
    assert linked.outputs() == ("cyto_nuclei", "cyto_cytoplasm")
    assert not CellsSettings(cells="cyto", nuclei="nuc", link=False).outputs()
    tracked = CellsSettings(cells="c", track=True, tracked_labels=True, max_distance=7,
                            max_gap=0, divisions=False, table="t")
    assert tracked.outputs() == ("c_tracked",) and tracked.table_name == "t"
    assert tracked.max_distance == 7.0 and isinstance(tracked.max_distance, float)


def test_cells_settings_report_every_problem_at_once():
    with pytest.raises(SettingsError) as info:
        CellsSettings(cells="c", nuclei="c", region=10, max_gap=-1)
    assert [k for k, _ in info.value.problems] == ["max_gap", "region"]  # fields first
    with pytest.raises(SettingsError) as info:
        CellsSettings(cells="c", nuclei="c", link=True, max_distance=3, tracked_labels=True,
                      divisions=False)
    assert dict(info.value.problems) == {
        "nuclei": "the same label image as cells ('c')",
        "max_distance": "only used when tracking (track: true; --track)",
        "tracked_labels": "only used when tracking (track: true; --track)",
        "divisions": "only used when tracking (track: true; --track)"}
    with pytest.raises(SettingsError, match="link: needs nuclei"):
        CellsSettings(cells="c", link=True)
    with pytest.raises(SettingsError, match="track: needs measure"):
        CellsSettings(cells="c", track=True, measure=False)
    with pytest.raises(SettingsError, match="cells: missing"):
        CellsSettings()
    with pytest.raises(SettingsError, match="table: expected a table name"):
        CellsSettings(cells="c", table="a/b")


def test_one_value_is_checked_like_its_field():
    assert CellsSettings.check_value("region", 512.0) == 512
    assert CellsSettings.check_value("max_distance", None) is None
    with pytest.raises(SettingsError, match=r"region: expected a whole number between 64"):
        CellsSettings.check_value("region", 12)
    with pytest.raises(SettingsError, match="max_gap: expected a whole number"):
        CellsSettings.check_value("max_gap", float("nan"))


def test_cluster_settings():
    assert ClusterSettings() == ClusterSettings(kind="local", threads_per_worker=1)
    remote = ClusterSettings(address="tls://10.0.0.5:8786", tls_ca="ca.pem",
                             tls_cert="c.pem", tls_key="k.pem")
    assert remote.kind == "scheduler" and remote.timeout == 10.0
    with pytest.raises(SettingsError) as info:
        ClusterSettings(kind="cuda", address="tcp://h:1", workers=0, timeout=float("inf"))
    assert [k for k, _ in info.value.problems] == ["workers", "timeout"]
    with pytest.raises(SettingsError) as info:
        ClusterSettings(kind="scheduler", workers=2)
    assert [k for k, _ in info.value.problems] == ["address", "workers"]
    with pytest.raises(SettingsError, match="address: expected tcp://HOST:PORT"):
        ClusterSettings(address="http://h:1")
    with pytest.raises(SettingsError, match="tls_ca: missing: a tls:// scheduler"):
        ClusterSettings(address="tls://h:1")
    with pytest.raises(SettingsError, match="tls_key: missing: TLS needs ca, cert and key"):
        ClusterSettings(address="tls://h:1", tls_ca="a", tls_cert="b")
    with pytest.raises(SettingsError, match="address: only used with kind 'scheduler'"):
        ClusterSettings(kind="cuda", address="tcp://h:1")


@pytest.mark.parametrize("settings", [CellsSettings, ClusterSettings, ScreenSettings])
def test_the_docs_table_lists_every_setting(settings):
    text = (DOCS / "cli.md").read_text()
    table = text.split("## Settings shared by commands and job files", 1)[1].split("\n## ")[0]
    for name, f in settings.settings_fields().items():
        key = "tls: {ca, cert, key}" if name.startswith("tls_") else name
        assert f"| `{key}` |" in table, name
        s = f.metadata["setting"]
        if s.cli:
            assert f"`{s.flag_name(name)}" in table, name
