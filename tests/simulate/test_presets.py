"""Tests of structfree_dask.simulate.presets: reporter channels and cell-line presets."""

from __future__ import annotations

import dataclasses

import pytest

from structfree_dask.simulate import PRESETS, CellLinePreset, ChannelSpec, Localization

_CONSTANT_STRUCTURAL = {Localization.NUCLEI, Localization.CYTOPLASM, Localization.NUCLEI_CYTOPLASM}


def test_presets_have_three_or_four_nonstructural_channels() -> None:
    assert sorted(PRESETS) == ["CL1", "CL2", "CL3", "CL4", "CL5"]
    for key, preset in PRESETS.items():
        assert preset.name == key
        assert 3 <= len(preset.channels) <= 4
        assert len(set(preset.channel_names)) == len(preset.channels)
        assert any(loc.is_dynamic for loc in preset.localizations)
    assert not _CONSTANT_STRUCTURAL & set(PRESETS["CL5"].localizations)
    for loc in Localization:
        assert any(loc in p.localizations for p in PRESETS.values()), loc


def test_localization_values_and_dynamics() -> None:
    assert [loc.value for loc in Localization] == [
        "cytoplasm", "nuclei+cytoplasm", "translocation", "nuclei", "er", "mitochondria",
        "membrane"]
    assert {loc for loc in Localization if loc.is_dynamic} == {
        Localization.TRANSLOCATION, Localization.ER, Localization.MITOCHONDRIA,
        Localization.MEMBRANE}
    assert Localization("nuclei+cytoplasm") is Localization.NUCLEI_CYTOPLASM
    assert Localization.MEMBRANE == "membrane"  # a StrEnum


def test_channel_spec_defaults_and_coercion() -> None:
    ch = ChannelSpec("tr", "translocation")
    assert ch.localization is Localization.TRANSLOCATION
    assert (ch.brightness, ch.heterogeneity, ch.dark_fraction, ch.contrast) == (
        800.0, 0.4, 0.15, 1.0)
    assert (ch.nc_ratio_start, ch.nc_ratio_end) == (0.5, 2.5)
    assert (ch.onset_h, ch.onset_spread_h, ch.responder_fraction) == (30.0, 12.0, 0.85)
    assert ChannelSpec("x", Localization.ER).localization is Localization.ER
    assert ChannelSpec("x", "er", onset_h=-5.0).onset_h == -5.0  # no lower bound on the onset
    with pytest.raises(dataclasses.FrozenInstanceError):
        ch.brightness = 1.0  # type: ignore[misc]


def test_bad_specs_raise_helpful_errors() -> None:
    with pytest.raises(ValueError, match=r"localization must be one of .*'membrane'"):
        ChannelSpec("x", "golgi")
    with pytest.raises(ValueError, match=r"dark_fraction"):
        ChannelSpec("x", "er", dark_fraction=1.5)
    with pytest.raises(ValueError, match=r"at least one channel"):
        CellLinePreset(name="empty", description="", channels=())
    with pytest.raises(ValueError, match=r"repeat"):
        CellLinePreset(
            name="dup", description="", channels=(ChannelSpec("a", "er"), ChannelSpec("a", "er"))
        )


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"name": ""}, TypeError, r"ChannelSpec.name must be a non-empty str, got ''"),
    ({"brightness": 0.0}, ValueError,
     r"ChannelSpec\('x'\)\.brightness must be in \(0\.0, inf\], got 0\.0"),
    ({"brightness": True}, TypeError, r"brightness must be a real number, got bool"),
    ({"brightness": "9"}, TypeError, r"brightness must be a real number, got str"),
    ({"heterogeneity": 3.5}, ValueError, r"heterogeneity must be in \[0\.0, 3\.0\], got 3\.5"),
    ({"contrast": 0.0}, ValueError, r"contrast must be in \(0\.0, 1\.0\]"),
    ({"nc_ratio_end": -1.0}, ValueError, r"nc_ratio_end must be in \(0\.0, inf\]"),
    ({"onset_spread_h": float("nan")}, ValueError, r"onset_spread_h must be in"),
    ({"responder_fraction": 1.01}, ValueError, r"responder_fraction must be in \[0\.0, 1\.0\]"),
])
def test_channel_spec_checks_each_parameter(kwargs: dict, error: type, match: str) -> None:
    args = {"name": "x", "localization": "er", **kwargs}
    with pytest.raises(error, match=match):
        ChannelSpec(**args)


def test_cell_line_preset_defaults_and_properties() -> None:
    channels = [ChannelSpec("m", "membrane"), ChannelSpec("n", "nuclei")]
    preset = CellLinePreset(name="p", description="d", channels=channels)  # type: ignore[arg-type]
    assert isinstance(preset.channels, tuple) and preset.channels == tuple(channels)
    assert preset.channel_names == ("m", "n")
    assert preset.localizations == (Localization.MEMBRANE, Localization.NUCLEI)
    assert preset.cell_diameter_um == 26.0 and preset.nucleus_ratio == 0.45
    assert preset.confluence == 0.55 and preset.doubling_time_h == 30.0


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"channels": ("er",)}, TypeError,
     r"CellLinePreset\('p'\)\.channels must hold ChannelSpec objects, got str"),
    ({"cell_diameter_um": 1.0}, ValueError, r"cell_diameter_um must be in \[2\.0, 500\.0\]"),
    ({"nucleus_ratio": 0.8}, ValueError, r"nucleus_ratio must be in \[0\.1, 0\.75\], got 0\.8"),
    ({"irregularity": 0.5}, ValueError, r"irregularity must be in \[0\.0, 0\.4\]"),
    ({"confluence": 0}, ValueError, r"confluence must be in \(0\.0, 1\.0\], got 0"),
    ({"doubling_time_h": 0.5}, ValueError, r"doubling_time_h must be in \[1\.0, inf\]"),
    ({"death_rate_per_h": None}, TypeError, r"death_rate_per_h must be a real number"),
    ({"motility_um_per_h": 101}, ValueError, r"motility_um_per_h must be in \[0\.0, 100\.0\]"),
])
def test_cell_line_preset_checks_each_parameter(kwargs: dict, error: type, match: str) -> None:
    args = {"name": "p", "description": "", "channels": (ChannelSpec("a", "er"),), **kwargs}
    with pytest.raises(error, match=match):
        CellLinePreset(**args)


def test_preset_channel_details() -> None:
    cl1, cl2 = PRESETS["CL1"], PRESETS["CL2"]
    assert cl1.channel_names == ("cyto-reporter", "translocation-reporter", "ER", "mito")
    # CL1 imports its translocation reporter into the nucleus, CL2 exports it
    assert cl1.channels[1].nc_ratio_start < 1.0 < cl1.channels[1].nc_ratio_end
    assert cl2.channels[1].nc_ratio_start > 1.0 > cl2.channels[1].nc_ratio_end
    # CL5's reporters are all structurally weak
    assert all(ch.contrast < 1.0 for ch in PRESETS["CL5"].channels)
    assert PRESETS["CL4"].cell_diameter_um > PRESETS["CL3"].cell_diameter_um
