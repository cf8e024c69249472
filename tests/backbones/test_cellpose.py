"""Model resolution: weights are checked on the calling process, with clear messages."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from structfree_dask.backbones import DEFAULT_MODEL, file_sha256, resolve_model
from structfree_dask.backbones import cellpose as cp_backbone

EXPECTED = "expected weights saved by cellpose or by 'structfree-dask zoo build'"


def _zero_byte(tmp_path: Path, small: Path) -> Path:
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    return path


def _random_bytes(tmp_path: Path, small: Path) -> Path:
    path = tmp_path / "random.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _truncated(tmp_path: Path, small: Path) -> Path:
    path = tmp_path / "truncated.pth"
    data = small.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _other_architecture(tmp_path: Path, small: Path) -> Path:
    import torch

    path = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 3).state_dict(), path)
    return path


def _cpnet_with_extra_layer(tmp_path: Path, small: Path) -> Path:
    import torch

    state = torch.load(small, weights_only=True)
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    return path


BAD_FILES = {
    "zero-byte": (_zero_byte, "the file is empty"),
    "random bytes": (_random_bytes, "torch.load failed: UnpicklingError"),
    "truncated": (_truncated, "torch.load failed: RuntimeError: PytorchStreamReader"),
    "other architecture": (_other_architecture,
                           "no CPnet layers 'downsample.down.res_down_*'; found 'weight', "
                           "'bias'"),
    "extra layer": (_cpnet_with_extra_layer, "layers do not match a CPnet with nbase "
                                             "[2, 8, 16, 32, 64]: unexpected 'extra.weight'"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_weights_file_is_refused_on_the_driver(tmp_path, small_cpnet_path, kind):
    make, reason = BAD_FILES[kind]
    path = make(tmp_path, small_cpnet_path)
    with pytest.raises(ValueError) as info:
        resolve_model(path)
    msg = str(info.value)
    assert msg.startswith(f"model {path}: not a Cellpose CPnet weights file (")
    assert msg.endswith(f"); {EXPECTED}")
    assert reason in msg
    assert "\n" not in msg and len(msg) < 400  # short: no torch essay
    assert not [k for k in cp_backbone._VALIDATED if k[0] == str(path.resolve())]


def test_directory_as_model(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    with pytest.raises(ValueError, match=re.escape(f"model {folder}: is a directory; expected "
                                                   "a Cellpose CPnet weights file")):
        resolve_model(folder)


def test_unknown_name_is_file_not_found():
    with pytest.raises(FileNotFoundError, match="not a file and not a cellpose built-in name"):
        resolve_model("no-such-model-here")


def test_good_small_cpnet_is_validated_once(own_small_cpnet_path, monkeypatch):
    import torch

    path = own_small_cpnet_path
    spec = resolve_model(path)
    assert spec.name == str(path) and spec.path == str(path)
    assert spec.diam_mean == 30.0 and spec.sha256 == file_sha256(path)

    def no_load(*args, **kwargs):
        raise AssertionError("torch.load called again")

    with monkeypatch.context() as m:  # cached per (path, size, mtime): no reload
        m.setattr(torch, "load", no_load)
        assert resolve_model(str(path)) == spec
    path.write_bytes(b"")  # a new version of the file is checked again
    os.utime(path, ns=(1, 1))
    with pytest.raises(ValueError, match="the file is empty"):
        resolve_model(path)


@pytest.mark.parametrize("model", [None, DEFAULT_MODEL])
def test_shipped_generalist(model):
    spec = resolve_model(model)
    assert spec.name == DEFAULT_MODEL and Path(spec.path).is_file()
    assert spec.diam_mean == 30.0 and len(spec.sha256) == 16


# ----------------------------------------------------------------------------- precision


def test_precision_is_resolved_per_device(tmp_path):
    from structfree_dask.backbones import native_bf16, resolve_precision

    amx = tmp_path / "amx"
    amx.write_text("processor : 0\nflags : fpu sse avx2 avx512f amx_tile amx_bf16\n")
    plain = tmp_path / "plain"
    plain.write_text("processor : 0\nflags : fpu sse avx2\n")
    assert native_bf16(amx) and not native_bf16(plain)
    assert not native_bf16(tmp_path / "missing")  # no flags to read: not claimed
    # oneDNN capped below bf16 (AMX switched off, or a machine without it emulated)
    for cap in ("AVX2", "avx512_core_vnni"):
        assert not native_bf16(amx, {"ONEDNN_MAX_CPU_ISA": cap})
        assert not native_bf16(amx, {"DNNL_MAX_CPU_ISA": cap})
    for cap in ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "DEFAULT", ""):
        assert native_bf16(amx, {"ONEDNN_MAX_CPU_ISA": cap})
    for asked in ("fp32", "bf16", "fp16"):
        assert resolve_precision(asked, "cpu") == asked == resolve_precision(asked, "cuda")
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16() else "fp32")
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        resolve_precision("fp64", "cpu")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_flows_are_close_to_fp32(small_cpnet_path, precision):
    import dataclasses

    import torch

    from structfree_dask.backbones import load_model, predict_tiles

    fp32 = dataclasses.replace(resolve_model(str(small_cpnet_path)), precision="fp32")
    low = dataclasses.replace(fp32, precision=precision)
    net32 = load_model(fp32, torch.device("cpu"))
    net_low = load_model(low, torch.device("cpu"))
    assert net_low is not net32  # laid out channels-last, cached apart
    conv = next(p for p in net_low.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    tiles = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)
    ref = predict_tiles(net32, tiles, precision="fp32")
    out = predict_tiles(net_low, tiles, precision=precision)
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert not np.array_equal(out, ref)  # it did run at the lower precision
    assert np.abs(out - ref).mean() <= 0.05 * np.abs(ref).mean()
    # fp32 on the channels-last net is cellpose's fp32, to rounding
    np.testing.assert_allclose(predict_tiles(net_low, tiles, precision="fp32"), ref,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_it_warns(own_small_cpnet_path, monkeypatch, caplog, native):
    import dataclasses
    import logging

    import torch

    from structfree_dask.backbones import cellpose as backbone

    path = own_small_cpnet_path  # not a net cached by another test
    monkeypatch.setattr(backbone, "native_bf16", lambda *a, **k: native)
    spec = dataclasses.replace(resolve_model(str(path)), precision="bf16")
    with caplog.at_level(logging.WARNING, logger=backbone.__name__):
        backbone.load_model(spec, torch.device("cpu"))
        backbone.load_model(dataclasses.replace(spec, precision="fp32"), torch.device("cpu"))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ([] if native else [backbone.EMULATED_BF16])
    assert "fp32" in backbone.EMULATED_BF16 and "bf16" in backbone.EMULATED_BF16


# ----------------------------------------------------------------------------- CLI


def _plate_without_labels(path: Path) -> Path:
    from structfree_dask.io import create_plate

    rng = np.random.default_rng(0)
    with create_plate(path, rows=["A"], columns=["1"]) as plate:
        plate.write_field("A", "1", 0, rng.integers(0, 4000, (1, 2, 64, 64)).astype("uint16"))
    return path


@pytest.mark.parametrize("kind", ["zero-byte", "other architecture", "directory"])
def test_cli_segment_with_bad_model(tmp_path, small_cpnet_path, capsys, kind):
    from structfree_dask.cli import main

    plate = _plate_without_labels(tmp_path / "p.zarr")
    before = sorted(p.relative_to(plate) for p in plate.rglob("*"))
    if kind == "directory":
        bad = tmp_path / "weights"
        bad.mkdir()
    else:
        bad = BAD_FILES[kind][0](tmp_path, small_cpnet_path)
    assert main(["segment", str(plate), "--channels", "0", "--model", str(bad)]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: model {bad}: ")
    assert not (plate / "A" / "1" / "0" / "labels").exists()
    assert sorted(p.relative_to(plate) for p in plate.rglob("*")) == before
