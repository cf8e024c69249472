"""structfree_dask.io._ngff: NGFF 0.4 / 0.5 metadata layouts and metadata errors naming files."""

from __future__ import annotations

import json
import re

import pytest
import zarr

from structfree_dask.io import SUPPORTED_VERSIONS, MetadataError, metadata_errors, open_plate
from structfree_dask.io._ngff import (
    array_kwargs,
    detect_version,
    format_for,
    open_group_readonly,
    read_ome,
    write_ome,
    zarr_format_for,
)

# ----------------------------------------------------------------------------- malformed JSON

BROKEN_JSON = '{"plate": {"name": }'  # json: Expecting value: line 1 column 20


@pytest.mark.parametrize(("version", "rel"), [
    ("0.4", ".zattrs"),                # plate root
    ("0.4", ".zgroup"),
    ("0.4", "A/1/.zattrs"),            # well
    ("0.4", "A/1/0/.zattrs"),          # field
    ("0.4", "A/1/0/0/.zarray"),        # array
    ("0.4", "A/1/0/labels/.zattrs"),   # label group of a field
    ("0.5", "zarr.json"),
    ("0.5", "A/1/0/zarr.json"),
    ("0.5", "A/1/0/0/zarr.json"),
    ("0.5", "A/1/0/labels/zarr.json"),
])
def test_malformed_json_names_the_file(tmp_path, version, rel, simulated):
    path = simulated(version)
    bad = path / rel
    assert bad.is_file()
    bad.write_text(BROKEN_JSON)
    expected = re.escape(f"{bad}: not valid JSON (Expecting value: line 1 column 20)")
    with pytest.raises(MetadataError, match=f"^{expected}$"):
        list(open_plate(path).fields())


def test_malformed_json_in_cli_info(tmp_path, capsys, simulated):
    from structfree_dask.cli import main

    path = simulated("0.4")
    bad = path / "A/1/0/.zattrs"
    bad.write_text(BROKEN_JSON)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: not valid JSON (Expecting value: line 1 column 20)"]


@pytest.mark.parametrize(("text", "found"), [
    ("", "the file is empty"),
    ("[1, 2]", "expected a JSON object; found an array"),
    ('"x"', "expected a JSON object; found a string"),
])
def test_metadata_that_is_not_an_object(tmp_path, text, found, simulated):
    path = simulated("0.4")
    (path / "A/1/0/0/.zarray").write_text(text)
    with pytest.raises(MetadataError) as info:
        open_plate(path).field("A/1/0")
    assert str(info.value).startswith(f"{path}/A/1/0/0/.zarray: not valid ")
    assert found in str(info.value)


def test_metadata_errors_helper(tmp_path, simulated):
    from structfree_dask.io._plate import MetadataError as Reexported

    assert Reexported is MetadataError and issubclass(MetadataError, ValueError)
    path = simulated("0.5")
    with pytest.raises(KeyError, match="unrelated"):  # other errors pass unchanged
        with metadata_errors(path, "A/1/0"):
            raise KeyError("unrelated")
    with pytest.raises(TypeError, match="unrelated"):  # metadata fine: not ours
        with metadata_errors(path, "A/1/0"):
            raise TypeError("unrelated")
    (path / "A/1/0/labels/zarr.json").write_text("{,}")
    with pytest.raises(MetadataError, match=r"A/1/0/labels/zarr\.json: not valid JSON"):
        with metadata_errors(path, "A/1/0/labels"):
            zarr.open_group(str(path), path="A/1/0/labels", mode="r")
    (path / "A/1/0/labels/zarr.json").write_text("{}")
    with pytest.raises(MetadataError, match="zarr metadata is not valid JSON"):
        with metadata_errors(path, "A/1/0/labels"):  # the file is fixed since: name the folder
            json.loads("{,}")


@pytest.mark.parametrize(("raw", "problem"), [
    (b'{"zarr_format": 2, "\xff": 1}', "not valid JSON (not UTF-8 text: invalid start byte at "
                                       "byte 20)"),
    (b"[" * 100_000, "not valid zarr metadata (nested too deeply to read)"),
    (b"null", "not valid zarr metadata (expected a JSON object; found null)"),
    (b"   \n", "not valid JSON (the file is empty)"),
])
def test_metadata_errors_say_what_is_wrong_with_the_file(tmp_path, raw, problem):
    root = tmp_path / "s.zarr"
    zarr.open_group(str(root), path="A", mode="w", zarr_format=2)
    bad = root / "A" / ".zattrs"
    bad.write_bytes(raw)
    with pytest.raises(MetadataError) as err:
        with metadata_errors(root, "A"):
            json.loads("{,}")  # what zarr raises when it parses the file
    assert str(err.value) == f"{bad}: {problem}"


def test_zarr_json_whose_attributes_are_not_an_object(tmp_path):
    root = tmp_path / "s.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=3)
    doc = json.loads((root / "zarr.json").read_text())
    (root / "zarr.json").write_text(json.dumps({**doc, "attributes": [1]}))
    with pytest.raises(MetadataError) as err:
        with metadata_errors(root):
            raise TypeError("attributes")
    assert str(err.value) == (f"{root / 'zarr.json'}: not valid zarr metadata (expected "
                              "'attributes' to be a JSON object; found an array)")


# ----------------------------------------------------------------------------- versions


def test_format_for_each_supported_version():
    assert SUPPORTED_VERSIONS == ("0.4", "0.5")
    assert format_for("0.4").zarr_format == 2 and format_for("0.4").version == "0.4"
    assert format_for("0.5").zarr_format == 3 and format_for("0.5").version == "0.5"
    with pytest.raises(ValueError, match=r"^ngff_version must be one of 0\.4, 0\.5; got '0\.3'$"):
        format_for("0.3")
    # the zarr format without ome-zarr (a worker's label writes): ome-zarr's own
    assert [zarr_format_for(v) for v in SUPPORTED_VERSIONS] == [
        format_for(v).zarr_format for v in SUPPORTED_VERSIONS]
    with pytest.raises(ValueError, match=r"^ngff_version must be one of 0\.4, 0\.5; got '0\.6'$"):
        zarr_format_for("0.6")


def test_array_kwargs_per_version():
    assert array_kwargs("0.5", ("t", "c", "y", "x")) == {
        "dimension_names": ["t", "c", "y", "x"]}
    assert array_kwargs("0.4", ("y", "x")) == {
        "chunk_key_encoding": {"name": "v2", "separator": "/"}}


@pytest.mark.parametrize(("version", "zarr_format"), [("0.4", 2), ("0.5", 3)])
def test_write_ome_merges_in_the_versions_layout(tmp_path, version, zarr_format):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=zarr_format)
    assert read_ome(group) == {} and detect_version(group) == version  # from the format
    write_ome(group, {"labels": ["a"]}, version=version)
    write_ome(group, {"labels": ["a", "b"], "other": 1}, version=version)
    reopened = zarr.open_group(str(tmp_path / "g.zarr"), mode="r")
    if version == "0.5":
        assert dict(reopened.attrs) == {"ome": {"labels": ["a", "b"], "other": 1,
                                                "version": "0.5"}}
        assert json.loads((tmp_path / "g.zarr/zarr.json").read_text())["attributes"]["ome"][
            "version"] == "0.5"
    else:
        assert dict(reopened.attrs) == {"labels": ["a", "b"], "other": 1}
        assert json.loads((tmp_path / "g.zarr/.zattrs").read_text())["labels"] == ["a", "b"]
    assert read_ome(reopened)["labels"] == ["a", "b"]
    assert detect_version(reopened) == version


def test_detect_version_reads_the_metadata(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [], "datasets": []}]
    assert detect_version(group) == "0.4"
    v3 = zarr.open_group(str(tmp_path / "h.zarr"), mode="w", zarr_format=3)
    v3.attrs["ome"] = "not an object"
    assert read_ome(v3) == {} and detect_version(v3) == "0.5"


def test_open_group_readonly(tmp_path):
    zarr.open_group(str(tmp_path / "s.zarr"), path="A/1", mode="w", zarr_format=2)
    group = open_group_readonly(str(tmp_path / "s.zarr"), "A/1")
    assert group.path == "A/1" and group.read_only
    with pytest.raises(FileNotFoundError) as err:
        open_group_readonly(str(tmp_path / "s.zarr"), "B")
    assert str(err.value) == f"expected a zarr group at {tmp_path / 's.zarr'}/B; found none"
    (tmp_path / "s.zarr/A/1/.zgroup").write_text("{")
    with pytest.raises(MetadataError, match=re.escape(f"{tmp_path / 's.zarr'}/A/1/.zgroup: not "
                                                      "valid JSON (Expecting")):
        open_group_readonly(str(tmp_path / "s.zarr"), "A/1")


def test_open_group_as_falls_back_to_probing_when_the_format_disagrees(tmp_path):
    """A group opened as its NGFF version's zarr format; one whose metadata and zarr
    format disagree (a zarr v3 group said to be 0.4) is still opened, by zarr's probing."""
    import zarr

    from structfree_dask.io._ngff import open_group_as

    zarr.open_group(str(tmp_path / "v3.zarr"), mode="w", zarr_format=3).attrs["x"] = 1
    zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2).attrs["x"] = 2
    assert open_group_as(str(tmp_path / "v2.zarr"), "", "r", "0.4").attrs["x"] == 2
    assert open_group_as(str(tmp_path / "v3.zarr"), "", "r", "0.5").attrs["x"] == 1
    fallback = open_group_as(str(tmp_path / "v3.zarr"), "", "r", "0.4")
    assert fallback.metadata.zarr_format == 3 and fallback.attrs["x"] == 1
    with pytest.raises((FileNotFoundError, zarr.errors.GroupNotFoundError)):
        open_group_as(str(tmp_path / "none.zarr"), "", "r", "0.4")
