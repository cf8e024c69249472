"""Benchmark of the segmentation engine against plain cellpose (not a test).

On one plate of realistic fields (mosaics of the real Kc167 images in
``tests/data/real/Kc167``, or the folder given by ``--data-dir``: green = cytoplasm stain,
red = nuclear stain) and
the shipped generalist model, it measures

(a) a plain loop: ``CellposeModel.eval(..., compute_masks=False)`` per field and channel,
    dP and cellprob averaged over channels by hand, then
    ``cellpose.dynamics.resize_and_compute_masks`` once (cellpose defaults);
(b) ``structfree_dask.engine.segment`` on ``local_client(n_workers=1, threads_per_worker=2)``
    at the default precision (``auto``: bf16 on a CPU with AMX or AVX512-BF16, fp16 on a
    CUDA GPU, fp32 elsewhere);
(b32) the same at fp32, where the default is another precision (and the matched F1 of
    (b) against it);
(c) (b) on ``local_client(n_workers=2, threads_per_worker=1)``: the cluster the package
    starts by default on 2 cores (one worker per core, one thread each); (cw) the same warm;
(aw), (bw) (a) and (b) warm: the loop's model loaded and one field run before its clock
    starts, the engine's workers having segmented the plate once (under another name)
    before: the steady state of a long run, printed against each other and against the
    forward-only rate (the cold rows include model loading and first calls, which a plate
    of thousands of fields pays once);
(d) cellpose's ``cellpose.contrib.distributed_segmentation.distributed_eval`` on ONE channel,
    in a separate environment (``benchmarks/.venv-cp-distributed``, built on demand: it needs
    zarr < 3) through ``_cp_distributed_driver.py``; it only runs on 3D volumes, so each
    field is given as a (2, Y, X) stack and both planes are processed;

with wall seconds, megapixel-channels per second, speed relative to (a) and the matched F1
(IoU 0.5) of (b) and (c) against (a). It also prints the network's forward-pass-only
throughput (the ceiling) at fp32 and at the default precision, and their ratio, with the
CPU's flags, on a CPU in both engine layouts: one process with a torch thread per core (as
(b)) and one single-threaded process per core, started together (as (c)); each engine row
is set against the forward-only rate of its own layout and against the best of the two;
the F1 against the annotated masks of every image in ``--truth-dir`` (and below it) at
fp32 and at the default precision (or ``--gt-precision``, where the default is fp32); and
then the peak RSS of a single worker
(``n_workers=1, threads_per_worker=2``, ``--tile-size``) segmenting single-field,
1-channel plates of growing size (fresh cluster per size, started from a fresh process that
has not imported torch: a worker inherits the ``ru_maxrss`` of the process that forks it).
Both ``ru_maxrss`` and Linux's ``VmHWM`` of the worker are printed. Target: the peak at
8192 px within 1.25x of the peak at 1024 px.

Every run also prints the share of the CPU that other processes used meanwhile ("other
CPU %"): on a shared machine the timings are only comparable with each other, not with an
idle machine.

Usage::

    python benchmarks/bench_engine.py                      # see the timings below
    python benchmarks/bench_engine.py --quick              # ~5-10 min on 2 busy cores
    python benchmarks/bench_engine.py --sizes 1024,2048,4096   # ~18 min on 2 busy cores
    python benchmarks/bench_engine.py --sizes 1024,4096,8192 --channels 2 --fields 2

On 2 CPU cores shared with other work (a third to a half of the CPU taken) the throughput
part (2 fields of 1024 px x 2 channels, parts a-d, incl. the forward pass) took ~9 min and
the engine ran at ~0.03-0.05 Mpx/s on one worker, so the 8192 px memory run (67 Mpx) alone
needs ~25-40 min and the default run ~40-55 min.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _machine import cpu_flags

from structfree_dask.config import DEFAULT_TILE_SIZE

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: real Kc167 images shipped with the tests (3 of them); --data-dir for another folder
DATA_DIR = REPO / "tests" / "data" / "real" / "Kc167"
CP_VENV = HERE / ".venv-cp-distributed"
CP_DRIVER = HERE / "_cp_distributed_driver.py"
# torch first and alone (a pinned CPU wheel lies on disk; an unpinned torch would download GBs)
CP_TORCH = "torch==2.13.0"
CP_PACKAGES = ["cellpose==3.1.1.3", "zarr<3", "dask-image", "distributed",
               # imported at module level by cellpose.contrib.distributed_segmentation
               "dask-jobqueue", "imagecodecs", "pyyaml"]
CHANNEL_NAMES = ("green", "red")  # cytoplasm stain, nuclear stain (RGB indices 1, 0)
RGB_INDEX = {"green": 1, "red": 0}
DIAMETER = 30.0

T0 = time.perf_counter()


def _load() -> str:
    try:
        return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return ""


def log(msg: str) -> None:
    """Progress line with elapsed time and load average (flushed)."""
    print(f"[{time.perf_counter() - T0:7.1f} s | {_load()}] {msg}", flush=True)


class CpuWatch:
    """CPU time used on this machine by processes other than this one and its (waited-for)
    descendants, as a fraction of all cores over the wall time between start and stop.

    Other work on the machine slows every run here down; the fraction says by how much the
    machine was shared (Linux only: /proc/stat; None elsewhere). Child processes count as
    ours only once they have been waited for, so stop() after the cluster is closed.
    """

    def __init__(self) -> None:
        self._start = self._snap()

    @staticmethod
    def _snap() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as fh:
                vals = [int(v) for v in fh.readline().split()[1:]]
        except OSError:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(vals[:8]) - vals[3] - vals[4]) / hz  # all but idle and iowait
        own = sum(getattr(resource.getrusage(w), a) for w in
                  (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for a in ("ru_utime", "ru_stime"))
        return time.perf_counter(), busy, own

    def stop(self) -> float | None:
        end = self._snap()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        wall = end[0] - self._start[0]
        other = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return max(0.0, other / (wall * (os.cpu_count() or 1)))


# ----------------------------------------------------------------------------- test data


def load_sources(data_dir: Path = DATA_DIR) -> list[np.ndarray]:
    """The real Kc167 images as (2, h, w) uint8 (green, red); 400 or 450 px square."""
    files = sorted(glob.glob(str(data_dir / "*_img.png")))
    if not files:
        raise FileNotFoundError(f"no *_img.png images in {data_dir}")
    from skimage import io as skio

    out = []
    for f in files:
        rgb = skio.imread(f)
        out.append(np.stack([rgb[..., RGB_INDEX[c]] for c in CHANNEL_NAMES]))
    return out


def mosaic(sources: list[np.ndarray], size: int, n_channels: int, seed: int) -> np.ndarray:
    """A (c, size, size) field tiled from randomly chosen, flipped and rotated real images."""
    rng = np.random.default_rng(seed)
    tile = min(min(s.shape[-2:]) for s in sources)  # random tile-sized crops of each
    n = -(-size // tile)
    out = np.empty((n_channels, n * tile, n * tile), dtype=np.uint8)
    for i in range(n):
        for j in range(n):
            src = sources[int(rng.integers(len(sources)))][:n_channels]
            y0 = int(rng.integers(src.shape[1] - tile + 1))
            x0 = int(rng.integers(src.shape[2] - tile + 1))
            img = src[:, y0:y0 + tile, x0:x0 + tile]
            img = np.rot90(img, k=int(rng.integers(4)), axes=(1, 2))
            if rng.integers(2):
                img = img[:, ::-1]
            if rng.integers(2):
                img = img[:, :, ::-1]
            out[:, i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = img
    return np.ascontiguousarray(out[:, :size, :size])


def write_plate(path: Path, fields: list[np.ndarray]) -> list[str]:
    """Write fields into wells A/1, A/2, ... of an NGFF 0.4 plate; return the field paths."""
    from structfree_dask.io import create_plate

    cols = [str(k + 1) for k in range(len(fields))]
    with create_plate(str(path), rows=["A"], columns=cols, ngff_version="0.4",
                      overwrite=True) as plate:
        for col, img in zip(cols, fields, strict=True):
            plate.write_field("A", col, 0, img[None], axes="tcyx",
                              channel_names=list(CHANNEL_NAMES[:img.shape[0]]))
    return [f"A/{c}/0" for c in cols]


def read_labels(plate: str, field_path: str, name: str) -> np.ndarray:
    from structfree_dask.io import open_labels, open_plate

    info = open_plate(plate).field(field_path)
    lab = np.asarray(open_labels(info, name).open_array(0, mode="r")[...])
    return lab.reshape(lab.shape[-2:])


def n_cells(lab: np.ndarray) -> int:
    u = np.unique(lab)
    return int(len(u) - (1 if u[0] == 0 else 0))


# ----------------------------------------------------------------------------- results


@dataclass
class Row:
    name: str
    seconds: float | None = None
    mpx_channels: float = 0.0
    cells: int | None = None
    f1: str = ""
    note: str = ""
    other_cpu: float | None = None  # CPU share used by other processes meanwhile

    @property
    def rate(self) -> float | None:
        return self.mpx_channels / self.seconds if self.seconds else None


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    sys.stdout.flush()


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


# ----------------------------------------------------------------------------- forward pass


def _fwd_tiles(fields: list[np.ndarray], n_tiles: int) -> np.ndarray:
    """``n_tiles`` normalized 224 px tiles at random places of the first field's channel 0."""
    from structfree_dask.pipeline.normalize import normalize, percentile_bounds
    from structfree_dask.pipeline.tiling import NET_TILE

    img = fields[0][0]
    norm = normalize(img, *percentile_bounds(img)).astype(np.float32)
    rng = np.random.default_rng(0)
    ys = rng.integers(0, max(1, img.shape[0] - NET_TILE), n_tiles)
    xs = rng.integers(0, max(1, img.shape[1] - NET_TILE), n_tiles)
    return np.stack([norm[y:y + NET_TILE, x:x + NET_TILE] for y, x in zip(ys, xs, strict=True)])


def _time_forward(tiles: np.ndarray, batch_size: int, device: Any, precision: str,
                  threads: int, barrier: Any = None) -> float:
    """Seconds of ``predict_tiles`` on ``tiles`` after one untimed batch (torch ``threads``)."""
    import dataclasses

    import torch

    from structfree_dask.backbones import load_model, predict_tiles, resolve_model

    if device.type == "cpu":
        torch.set_num_threads(threads)
    net = load_model(dataclasses.replace(resolve_model(None), precision=precision), device)
    predict_tiles(net, tiles[:batch_size], batch_size=batch_size, precision=precision)
    if barrier is not None:
        barrier.wait()
    t0 = time.perf_counter()
    predict_tiles(net, tiles, batch_size=batch_size, precision=precision)
    return time.perf_counter() - t0


_BARRIER: Any = None


def _fwd_child_init(barrier: Any) -> None:
    global _BARRIER
    _BARRIER = barrier


def _fwd_child(tiles: np.ndarray, batch_size: int, precision: str) -> float:
    import torch

    return _time_forward(tiles, batch_size, torch.device("cpu"), precision, 1, _BARRIER)


def forward_pass(fields: list[np.ndarray], n_tiles: int, batch_size: int, device: Any,
                 field_size: int, precision: str = "fp32",
                 processes: int = 1) -> dict[str, float]:
    """Network forward pass only on 224 px tiles of a real field (predict_tiles).

    ``processes`` 1: one process, as many torch threads as cores (engine layout (b));
    more: that many processes with one torch thread each, started together on
    ``n_tiles`` tiles each (the default cluster's layout, (c)); the rate is their tiles
    over the slowest one's seconds.
    """
    from structfree_dask.pipeline.tiling import NET_TILE, FieldGeometry

    tiles = _fwd_tiles(fields, n_tiles)
    if processes == 1:
        sec = _time_forward(tiles, batch_size, device, precision, os.cpu_count() or 1)
        done = n_tiles
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(processes)
        with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_fwd_child_init,
                                 initargs=(barrier,)) as pool:
            secs = list(pool.map(_fwd_child, [tiles] * processes, [batch_size] * processes,
                                 [precision] * processes))
        sec, done = max(secs), n_tiles * processes
    g = FieldGeometry((field_size, field_size), tile_size=field_size, halo=0)
    per_field = len(g.lattice[0]) * len(g.lattice[1])
    tiles_s = done / sec
    return {"tiles": done, "seconds": sec, "tiles_per_s": tiles_s,
            "tile_mpx_s": tiles_s * NET_TILE * NET_TILE / 1e6,
            "field_mpx_ch_s": tiles_s * field_size * field_size / per_field / 1e6,
            "tiles_per_field": per_field}


# ----------------------------------------------------------------------------- (a) plain loop


def run_plain(plate: str, paths: list[str], n_channels: int, use_gpu: bool,
              batch_size: int = 8, name: str = "(a) plain cellpose loop + FA by hand",
              warm: bool = False) -> tuple[Row, list[np.ndarray], list[np.ndarray]]:
    """Plain cellpose loop with Flow Averaging by hand. Returns the row, the FA labels and
    (untimed) labels from channel 0 alone, the reference of (d). ``batch_size`` is
    ``CellposeModel.eval``'s (cellpose's default: 8). ``warm``: the model loaded and the
    first field segmented once before the clock starts (steady state, as (bw))."""
    import torch
    from cellpose import dynamics, models

    from structfree_dask.backbones import default_model_path
    from structfree_dask.io import open_plate

    torch.set_num_threads(os.cpu_count() or 1)
    row = Row(name)
    labels, single = [], []
    seconds = 0.0
    t0 = time.perf_counter()
    model = models.CellposeModel(gpu=use_gpu, pretrained_model=str(default_model_path()))
    seconds += time.perf_counter() - t0
    pl = open_plate(plate)
    if warm:  # untimed: the model loaded, one field through eval and the dynamics
        seconds = 0.0
        first = np.asarray(pl.field(paths[0]).open_array(0)[0, 0])
        _, flows, _ = model.eval(first, channels=[0, 0], diameter=DIAMETER,
                                 compute_masks=False, batch_size=batch_size)
        dynamics.resize_and_compute_masks(
            np.asarray(flows[1], np.float32), np.asarray(flows[2], np.float32), niter=200,
            cellprob_threshold=0.0, flow_threshold=0.4, interp=True, do_3D=False,
            min_size=15, max_size_fraction=0.4, resize=None, device=model.device)
    for k, p in enumerate(paths):
        t0 = time.perf_counter()
        arr = pl.field(p).open_array(0)
        dps, cps = [], []
        for c in range(n_channels):
            img = np.asarray(arr[0, c])
            _, flows, _ = model.eval(img, channels=[0, 0], diameter=DIAMETER,
                                     compute_masks=False, batch_size=batch_size)
            dps.append(np.asarray(flows[1], dtype=np.float32))
            cps.append(np.asarray(flows[2], dtype=np.float32))
        dP = np.mean(dps, axis=0)
        cellprob = np.mean(cps, axis=0)
        masks = dynamics.resize_and_compute_masks(
            dP, cellprob, niter=200, cellprob_threshold=0.0, flow_threshold=0.4, interp=True,
            do_3D=False, min_size=15, max_size_fraction=0.4, resize=None, device=model.device)
        sec = time.perf_counter() - t0
        seconds += sec
        labels.append(np.asarray(masks))
        row.mpx_channels += img.size * n_channels / 1e6
        log(f"(a) field {k + 1}/{len(paths)}: {sec:.1f} s, {n_cells(masks)} cells")
        # untimed: channel 0 alone, the reference for (d)
        single.append(np.asarray(dynamics.resize_and_compute_masks(
            dps[0], cps[0], niter=200, cellprob_threshold=0.0, flow_threshold=0.4,
            interp=True, do_3D=False, min_size=15, max_size_fraction=0.4, resize=None,
            device=model.device)))
    row.seconds = seconds
    row.cells = sum(n_cells(m) for m in labels)
    row.note = ("warm: model loaded and one field run before timing" if warm
                else "incl. model load") + "; 1 process, torch threads = cores"
    return row, labels, single


# ----------------------------------------------------------------------------- (b), (c) engine


def run_engine(tag: str, title: str, plate: str, paths: list[str], n_channels: int,
               n_workers: int, threads: int, tile_size: int, precision: str = "auto",
               warm: bool = False) -> tuple[Row, list[np.ndarray] | None]:
    """One engine run on a fresh local cluster; ``warm``: the plate segmented once before
    (under another label name) on the same workers, so that the timed run finds the model
    loaded and everything compiled (the steady state of a long run)."""
    from structfree_dask.config import SegmentationConfig
    from structfree_dask.engine import segment
    from structfree_dask.runtime.cluster import local_client

    row = Row(title)
    name = f"bench_{tag}"
    cfg = SegmentationConfig(organelle="cyto", channels=tuple(range(n_channels)), name=name,
                             overwrite=True, tile_size=tile_size, precision=precision)
    log(f"{tag}: starting local_client(n_workers={n_workers}, threads_per_worker={threads})")
    client = local_client(n_workers=n_workers, threads_per_worker=threads)
    if warm:
        log(f"{tag}: warming the workers (the same plate under another name, untimed)")
        segment(plate, cfg.replace(name=f"{name}_warmup"), client=client)
    t_start = time.perf_counter()

    done_at: list[float] = []

    def progress(done: int, total: int) -> None:
        done_at.append(time.perf_counter() - t_start)
        log(f"{tag}: {done}/{total} field(s) done")

    from distributed import get_task_stream

    try:
        with get_task_stream(client) as stream:  # compute per task prefix (graph units)
            res = segment(plate, cfg, client=client, progress=progress)
        wall = time.perf_counter() - t_start
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    if res.failed:
        row.note = f"FAILED: {res.failed[0][2][:200]}"
        return row, None
    row.seconds = wall
    row.mpx_channels = res.megapixel_channels
    labels = [read_labels(plate, p, name) for p in paths]
    row.cells = sum(n_cells(m) for m in labels)
    stages = ", ".join(f"{stage} {sec:.2f} s ({res.stage_steps.get(stage, 0)} steps)"
                       for stage, sec in sorted(res.stage_seconds.items()))
    if not stages:  # units run as graphs: the task stream's compute time per task prefix
        from dask.utils import key_split

        spent: dict[str, list[float]] = {}
        for task in stream.data:
            for ss in task.get("startstops", ()):
                if ss.get("action") == "compute":
                    entry = spent.setdefault(key_split(task["key"]), [0, 0.0])
                    entry[0] += 1
                    entry[1] += ss["stop"] - ss["start"]
        stages = ", ".join(f"{name} {sec:.2f} s ({n} tasks)"
                           for name, (n, sec) in sorted(spent.items()))
    row.note = (f"engine's own RunResult.seconds {res.seconds:.1f}; cluster start/close "
                f"excluded; last field written at {done_at[-1]:.1f} s "
                f"({row.mpx_channels / done_at[-1]:.3f} Mpx-ch/s), segment() returned at "
                f"{wall:.1f} s; task compute by stage (summed over tasks): {stages or 'none'}")
    return row, labels


# ----------------------------------------------------------------------------- (d) cellpose


def _pip(py: Path, args: list[str], logf: Path) -> None:
    with open(logf, "a") as fh:
        fh.write(f"\n$ {py} -m pip install {' '.join(args)}\n")
        fh.flush()
        r = subprocess.run([str(py), "-m", "pip", "install", *args], stdout=fh,
                           stderr=subprocess.STDOUT, timeout=3600)
    if r.returncode:
        tail = logf.read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"pip install {' '.join(args)} failed (rc {r.returncode}): "
                           + " | ".join(tail))


def _cp_env(workdir: Path, threads: int) -> dict[str, str]:
    """Environment of the (d) subprocesses: thread caps, and a private dask config folder
    (dask-jobqueue writes a default jobqueue.yaml into the dask config folder on import)."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    env["DASK_CONFIG"] = str(workdir / "dask-config")
    env.pop("PYTHONPATH", None)
    return env


def ensure_cp_venv(logf: Path) -> Path:
    """Build benchmarks/.venv-cp-distributed once; return its python."""
    py = CP_VENV / "bin" / "python"
    ready = CP_VENV / ".bench-ready"
    spec = json.dumps([CP_TORCH, *CP_PACKAGES])
    if ready.is_file() and ready.read_text() == spec and py.exists():
        return py
    log(f"(d) building {CP_VENV.relative_to(REPO)} (log {logf}) ...")
    if CP_VENV.exists():
        shutil.rmtree(CP_VENV)
    base = getattr(sys, "_base_executable", sys.executable)
    r = subprocess.run([base, "-m", "venv", str(CP_VENV)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"python -m venv failed: {r.stderr.strip()[-300:]}")
    _pip(py, [CP_TORCH], logf)  # first and alone
    _pip(py, [*CP_PACKAGES, CP_TORCH], logf)
    r = subprocess.run([str(py), "-c", "import cellpose.contrib.distributed_segmentation"],
                       capture_output=True, text=True, env=_cp_env(logf.parent, 1))
    if r.returncode:
        raise RuntimeError("cellpose.contrib.distributed_segmentation does not import: "
                           + r.stderr.strip().splitlines()[-1])
    ready.write_text(spec)
    log("(d) environment ready")
    return py


def run_cp_distributed(workdir: Path, fields: list[np.ndarray], single_ref: list[np.ndarray],
                       use_gpu: bool, blocksize: int, workers: int, threads: int,
                       timeout: int) -> Row:
    from structfree_dask.evaluation.metrics import matched_f1

    row = Row(f"(d) cellpose distributed_eval, 1 ch, {workers} workers x {threads} thread")
    logf = workdir / "cp_distributed.log"
    try:
        py = ensure_cp_venv(logf)
    except Exception as err:  # report, do not stop the benchmark
        row.note = f"environment not built: {err}"[:400]
        return row
    ddir = workdir / "cp_distributed"
    ddir.mkdir(exist_ok=True)
    files = []
    for k, f in enumerate(fields):
        p = ddir / f"field{k}.npy"
        np.save(p, f[0])
        files.append(p)
    from structfree_dask.backbones import default_model_path

    out = ddir / "result.json"
    cmd = [str(py), str(CP_DRIVER), "--model", str(default_model_path()), "--out", str(out),
           "--workdir", str(ddir), "--blocksize", str(blocksize), "--workers", str(workers),
           "--threads", str(threads), "--diameter", str(DIAMETER),
           *(["--gpu"] if use_gpu else []), *map(str, files)]
    env = _cp_env(workdir, threads)
    log(f"(d) running distributed_eval on {len(files)} field(s) (subprocess, log {logf})")
    t0 = time.perf_counter()
    try:
        with open(logf, "a") as fh:
            fh.write("\n$ " + " ".join(cmd) + "\n")
            fh.flush()
            r = subprocess.run(cmd, cwd=ddir, env=env, stdout=fh, stderr=subprocess.STDOUT,
                               timeout=timeout)
    except subprocess.TimeoutExpired:
        row.note = f"timed out after {timeout} s"
        return row
    total = time.perf_counter() - t0
    if not out.is_file():
        row.note = f"driver exited {r.returncode} without a result (see {logf})"
        return row
    res = json.loads(out.read_text())
    if not res.get("ok"):
        row.note = f"distributed_eval failed: {res.get('error', '?')}"[:400]
        return row
    row.seconds = sum(f["seconds"] for f in res["fields"])
    row.mpx_channels = sum(f[0].size for f in fields) / 1e6
    labs = [np.load(p.with_suffix(".labels.npy")) for p in files]
    row.cells = sum(n_cells(m) for m in labs)
    f1s = [matched_f1(a, b) for a, b in zip(labs, single_ref, strict=True)]
    row.f1 = f"({min(f1s):.3f})"
    row.note = (f"blocks (2, {blocksize}, {blocksize}); "
                f"processes 2 planes/field (2x the pixels counted); F1 in () vs (a)'s "
                f"channel-0-only masks; cluster start + imports excluded (subprocess "
                f"{total:.0f} s in all)")
    return row


# ----------------------------------------------------------------------------- memory


def _worker_memory() -> dict[str, int]:
    """In a worker: ru_maxrss (KiB) and, on Linux, VmHWM / VmRSS (KiB) of the process."""
    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def memory_child(plate: str, tile_size: int) -> int:
    """Body of the memory run, in a fresh, light process (``--mem-child``).

    A worker process inherits the RSS high-water mark of the process that starts it
    (Linux keeps ``ru_maxrss`` across fork + exec): started from the benchmark's main
    process (torch, the model and the fields loaded: ~1.4 GB) every worker would report at
    least that much whatever it did. Started from this process, which has imported no
    torch, the floor is this process's own RSS (about 100-200 MiB), reported as "start".
    """
    from structfree_dask.config import SegmentationConfig
    from structfree_dask.engine import segment
    from structfree_dask.runtime.cluster import local_client

    cfg = SegmentationConfig(organelle="cyto", channels=(0,), name="bench_mem", overwrite=True,
                             tile_size=tile_size)
    client = local_client(n_workers=1, threads_per_worker=2)
    done_at: list[float] = []
    try:
        before = list(client.run(_worker_memory).values())[0]
        t0 = time.perf_counter()
        res = segment(plate, cfg, client=client,
                      progress=lambda d, n: done_at.append(time.perf_counter() - t0))
        sec = time.perf_counter() - t0
        after = list(client.run(_worker_memory).values())[0]
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    print("MEMCHILD " + json.dumps({"seconds": sec, "done_s": done_at[-1] if done_at else None,
                                    "before": before, "after": after,
                                    "cells": sum(res.cells.values()),
                                    "failed": [list(f) for f in res.failed]}), flush=True)
    return 0


def run_memory(workdir: Path, sources: list[np.ndarray], size: int,
               tile_size: int) -> dict[str, Any]:
    plate = workdir / f"mem_{size}.zarr"
    img = mosaic(sources, size, 1, seed=1000 + size)
    write_plate(plate, [img])
    del img
    try:
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--mem-child",
                            str(plate), "--tile-size", str(tile_size)],
                           stdout=subprocess.PIPE, text=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("MEMCHILD ")]
        if r.returncode or not lines:
            raise RuntimeError(f"memory child exited {r.returncode}: {r.stdout[-300:]}")
        m = json.loads(lines[-1][len("MEMCHILD "):])
    finally:
        shutil.rmtree(plate, ignore_errors=True)
    before, after = m["before"], m["after"]
    return {"size": size, "seconds": m["seconds"], "done_s": m.get("done_s"),
            "mpx": size * size / 1e6,
            "maxrss_mib": after["ru_maxrss"] / 1024,
            "start_mib": before["ru_maxrss"] / 1024,
            "hwm_mib": after["VmHWM"] / 1024 if "VmHWM" in after else None,
            "cells": m["cells"], "failed": m["failed"]}


# ----------------------------------------------------------------------------- main


def precision_against_truth(data_dir: Path, default: str) -> None:
    """Labels at fp32 and at the default precision against the annotated masks.

    Every ``*_img.png`` with a ``*_masks.png`` under ``data_dir`` (searched recursively),
    segmented whole in this process (``segment_array``, green and red channels, Flow
    Averaging); prints each image's F1 at both precisions, their agreement and the pooled
    F1s. For scale, two agreements that do not involve the precision: fp32 against fp32 on
    the image moved one pixel right (labels compared back in place), and the two
    precisions without the flow-error check (``flow_threshold`` 0), which is where whole
    cells come and go.
    """
    from skimage import io as skio

    from structfree_dask import SegmentationConfig, segment_array
    from structfree_dask.evaluation.metrics import evaluate, matched_f1, pooled_f1

    files = sorted(glob.glob(str(data_dir / "**" / "*_img.png"), recursive=True))
    counts: dict[str, list[list[int]]] = {"fp32": [], default: []}
    agree, moved, unchecked = [], [], []
    print()
    print(f"Labels against the annotated masks of {len(files)} real image(s), fp32 and "
          f"{default} (segment_array, green + red, FA):")
    for f in files:
        masks = Path(f.replace("_img.png", "_masks.png"))
        if not masks.exists():
            continue
        rgb = skio.imread(f)
        truth = skio.imread(masks).astype(np.int64)
        truth = truth[..., 0] if truth.ndim == 3 else truth
        img = np.stack([rgb[..., RGB_INDEX[c]] for c in CHANNEL_NAMES])
        labels = {}
        for prec in counts:
            labels[prec] = segment_array(img, SegmentationConfig(
                channels=(0, 1), precision=prec)).astype(np.int64)
            s = evaluate(truth, labels[prec])
            counts[prec].append([s["tp"], s["fp"], s["fn"]])
        agree.append(matched_f1(labels["fp32"], labels[default]))
        shifted = np.concatenate([img[..., :1], img[..., :-1]], axis=-1)
        back = segment_array(shifted, SegmentationConfig(channels=(0, 1), precision="fp32"))
        moved.append(matched_f1(labels["fp32"][..., :-1], back[..., 1:].astype(np.int64)))
        free = [segment_array(img, SegmentationConfig(channels=(0, 1), precision=prec,
                                                      flow_threshold=0.0)).astype(np.int64)
                for prec in ("fp32", default)]
        unchecked.append(matched_f1(*free))
        each = ", ".join(f"{p} {float(pooled_f1(np.array(c[-1]))):.3f}" for p, c in counts.items())
        print(f"  {Path(f).parent.name}/{Path(f).name}: F1 vs truth {each}; {default} vs fp32 "
              f"{agree[-1]:.4f}; fp32 vs fp32 moved 1 px {moved[-1]:.4f}; {default} vs fp32 "
              f"without the flow-error check {unchecked[-1]:.4f}")
    for prec, c in counts.items():
        print(f"  pooled F1 vs truth at {prec}: {float(pooled_f1(np.sum(c, axis=0))):.4f}")
    if agree:
        print(f"  {default} vs fp32 matched F1: min {min(agree):.4f}, mean {np.mean(agree):.4f}",
              flush=True)
        print(f"  fp32 vs fp32 moved 1 px: min {min(moved):.4f}, mean {np.mean(moved):.4f}; "
              f"{default} vs fp32 without the flow-error check: min {min(unchecked):.4f}, "
              f"mean {np.mean(unchecked):.4f}", flush=True)


def _git_state() -> str:
    """Commit of the repository and whether the package has uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--",
                                "structfree_dask"], capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "git state unknown"
    return f"commit {head or '?'}" + (" + uncommitted changes in structfree_dask/"
                                      if dirty else " (structfree_dask/ clean)")


def main() -> int:
    ap = argparse.ArgumentParser(description="Benchmark the structfree_dask engine (not a test).")
    ap.add_argument("--sizes", default=None,
                    help="field sizes (px) of the memory part, comma separated "
                         "(default 1024,4096,8192; --quick: 512,1024,2048)")
    ap.add_argument("--channels", type=int, default=None, choices=(1, 2),
                    help="channels of the throughput part (default 2; --quick: 1)")
    ap.add_argument("--fields", type=int, default=2, help="fields in the throughput part")
    ap.add_argument("--field-size", type=int, default=None,
                    help="field side of the throughput part (default 1024; --quick: 512)")
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: "
                    "fwd,gt,a,aw,a2,b,b32,bw,c,cw,d,mem")
    ap.add_argument("--fwd-tiles", type=int, default=None,
                    help="tiles in the forward-pass measurement (default 48 CPU, 1024 GPU)")
    ap.add_argument("--cp-blocksize", type=int, default=512,
                    help="blocksize (y, x) of distributed_eval (at most half the field side: "
                         "a single block fails in its merge step)")
    ap.add_argument("--cp-timeout", type=int, default=3600)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="scratch folder (default: a new temporary folder, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE,
                    help=f"engine task region side in px (default {DEFAULT_TILE_SIZE}, the "
                         "engine's)")
    ap.add_argument("--truth-dir", type=Path, default=DATA_DIR.parent,
                    help="annotated images (*_img.png with *_masks.png, searched "
                         "recursively) for the precision check against the truth")
    ap.add_argument("--gt-precision", default=None, choices=("bf16", "fp16"),
                    help="the precision set against fp32 in the check against the truth "
                         "(default: the machine's default, skipped where that is fp32; bf16 "
                         "on a CPU without native bf16 is emulated, slowly)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR,
                    help="folder of real *_img.png images (RGB: green = cytoplasm, red = "
                         "nuclei) to tile the fields from (default tests/data/real/Kc167, "
                         "three images; the published figures used all five Kc167 images "
                         "of scellseg 0.1.8's assets/contrast_data)")
    ap.add_argument("--mem-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child:
        return memory_child(args.mem_child, args.tile_size)

    sizes = [int(s) for s in (args.sizes or ("512,1024,2048" if args.quick
                                             else "1024,4096,8192")).split(",") if s]
    n_ch = args.channels or (1 if args.quick else 2)
    fsize = args.field_size or (512 if args.quick else 1024)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    import cellpose
    import dask
    import distributed
    import torch
    import zarr

    import structfree_dask

    use_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if use_gpu else "cpu")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_engine_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print("structfree_dask engine benchmark (not a test)")
    print(f"  command : {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"  machine : {platform.platform()}, {os.cpu_count()} CPU cores, device {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if use_gpu else ""))
    print(f"  CPU flags: {cpu_flags()}")
    print(f"  versions: structfree_dask {structfree_dask.__version__}, cellpose "
          f"{getattr(cellpose, 'version', '?')}, torch {torch.__version__}, dask "
          f"{dask.__version__}, distributed {distributed.__version__}, zarr {zarr.__version__}")
    print(f"  package : {_git_state()}")
    data_dir = args.data_dir.resolve()
    shown = data_dir.relative_to(REPO) if data_dir.is_relative_to(REPO) else data_dir
    print(f"  data    : mosaics of {shown}/*_img.png "
          f"(channels {', '.join(CHANNEL_NAMES[:n_ch])}); scratch {workdir}")
    print(f"  engine tile size {args.tile_size} px")
    print(f"  throughput: {args.fields} field(s) of {fsize}x{fsize} px x {n_ch} channel(s); "
          f"memory: sizes {sizes} x 1 channel", flush=True)

    status = 0
    try:
        sources = load_sources(data_dir)
        fields = [mosaic(sources, fsize, n_ch, seed=k) for k in range(args.fields)]
        plate = str(workdir / "throughput.zarr")
        paths = write_plate(Path(plate), fields)
        log(f"wrote {plate} ({len(paths)} fields)")

        # ---- forward pass only, at fp32 and at the default precision
        from structfree_dask.backbones import resolve_precision

        default = resolve_precision("auto", device)
        if "fwd" not in skip:
            n_tiles = args.fwd_tiles or (1024 if use_gpu else (16 if args.quick else 48))
            from structfree_dask.backbones import default_batch_size

            fbs = default_batch_size(device)
            ncpu = os.cpu_count() or 1
            layouts = [1] if use_gpu or ncpu == 1 else [1, ncpu]
            rates: dict[tuple[str, int], float] = {}
            for prec in dict.fromkeys(("fp32", default)):
                for procs in layouts:
                    watch = CpuWatch()
                    fp = forward_pass(fields, n_tiles, fbs, device, fsize, prec, procs)
                    other = watch.stop()
                    rates[prec, procs] = fp["tiles_per_s"]
                    tiles_field_mpx = fp["field_mpx_ch_s"] / fp["tiles_per_s"]
                    where = ("-" if use_gpu else f"1 process x {ncpu} torch threads"
                             if procs == 1 else f"{procs} processes x 1 torch thread")
                    print()
                    print(f"Network forward pass only at {prec} ({device}, predict_tiles, batch "
                          f"{fbs}, {fp['tiles']} tiles of 224 px, {where}):")
                    print(f"  {fp['tiles_per_s']:.2f} tiles/s = {fp['tile_mpx_s']:.3f} Mpx/s "
                          f"of tiles = {fp['field_mpx_ch_s']:.3f} Mpx-channels/s of field "
                          f"({fp['tiles_per_field']} lattice tiles per {fsize}x{fsize} "
                          "field-channel)" + (
                              f"; other processes used {other:.0%} of the CPU meanwhile"
                              if other is not None else ""), flush=True)
            if default != "fp32":
                for procs in layouts:
                    print(f"  forward-only rate {default} / fp32 ({procs} process(es)): "
                          f"{rates[default, procs] / rates['fp32', procs]:.2f}x", flush=True)

        compared = args.gt_precision or default
        if "gt" not in skip and compared != "fp32":
            precision_against_truth(args.truth_dir.resolve(), compared)

        rows: list[Row] = []
        ref = single = None
        if "a" not in skip:
            log("(a) plain cellpose loop")
            watch = CpuWatch()
            row_a, ref, single = run_plain(plate, paths, n_ch, use_gpu)
            row_a.other_cpu = watch.stop()
            rows.append(row_a)
        if "aw" not in skip:
            log("(aw) plain cellpose loop, warm")
            watch = CpuWatch()
            row_aw = run_plain(plate, paths, n_ch, use_gpu, warm=True,
                               name="(aw) the same loop, warm (model loaded, one field run)")[0]
            row_aw.other_cpu = watch.stop()
            rows.append(row_aw)
        if "a2" not in skip and not use_gpu:
            # the engine's CPU default batch, so that (b)/(a) is not only a batch-size effect
            from structfree_dask.backbones import default_batch_size

            bs = default_batch_size("cpu")
            log(f"(a') plain cellpose loop, batch_size={bs}")
            watch = CpuWatch()
            row_a2 = run_plain(plate, paths, n_ch, use_gpu, batch_size=bs,
                               name=f"(a') the same loop, batch_size={bs}")[0]
            row_a2.other_cpu = watch.stop()
            rows.append(row_a2)
        engine_labels = {}
        parts = [("b", f"(b) engine, 1 worker x 2 threads, {default}", 1, 2, default),
                 ("bw", f"(bw) engine, warm workers, 1 worker x 2 threads, {default}", 1, 2,
                  default),
                 ("c", f"(c) engine, 2 workers x 1 thread (the default cluster), {default}",
                  2, 1, default),
                 ("cw", f"(cw) engine, warm workers, 2 workers x 1 thread, {default}", 2, 1,
                  default)]
        if default != "fp32":
            parts.insert(1, ("b32", "(b32) engine, 1 worker x 2 threads, fp32", 1, 2, "fp32"))
        for tag, title, nw, nt, prec in parts:
            if tag in skip:
                continue
            watch = CpuWatch()
            try:
                row, labs = run_engine(tag, title, plate, paths, n_ch, nw, nt, args.tile_size,
                                       prec, warm=tag.endswith("w"))
            except Exception as err:
                traceback.print_exc()
                row, labs = Row(title, note=f"ERROR {type(err).__name__}: {err}"[:300]), None
                status = 1
            row.other_cpu = watch.stop()
            if labs is not None and ref is not None:
                from structfree_dask.evaluation.metrics import matched_f1

                f1s = [matched_f1(a, b) for a, b in zip(labs, ref, strict=True)]
                row.f1 = f"{min(f1s):.3f}" + (f" (mean {np.mean(f1s):.3f})"
                                              if len(f1s) > 1 else "")
            if labs is not None:
                engine_labels[tag] = labs
            rows.append(row)
        if "d" not in skip:
            if single is None:
                rows.append(Row("(d) cellpose distributed_eval", note="skipped: needs (a)"))
            else:
                watch = CpuWatch()
                # one block per field fails in its merge step (no faces to concatenate)
                cp_bs = min(args.cp_blocksize, max(64, fsize // 2))
                row = run_cp_distributed(workdir, fields, single, use_gpu, cp_bs, 2, 1,
                                         args.cp_timeout)
                row.other_cpu = watch.stop()
                rows.append(row)

        print()
        print(f"Throughput: {args.fields} field(s) of {fsize}x{fsize} px, {n_ch} channel(s) "
              f"(FA), shipped generalist model, diameter {DIAMETER:g}, device {device}")
        base = rows[0].rate if rows and rows[0].name.startswith("(a)") else None
        table = []
        for r in rows:
            rate = r.rate
            table.append([r.name, fmt(r.seconds), fmt(r.mpx_channels, ".2f"),
                          fmt(rate, ".3f"),
                          fmt(rate / base if (rate and base) else None, ".2f"),
                          "-" if r.cells is None else str(r.cells), r.f1 or "-",
                          fmt(None if r.other_cpu is None else 100 * r.other_cpu, ".0f")])
        print_table(["run", "wall s", "Mpx-ch", "Mpx-ch/s", "x (a)", "cells",
                     "F1@0.5 vs (a) (min)", "other CPU %"], table)
        for r in rows:
            if r.note:
                print(f"  {r.name.split(')')[0]}): {r.note}")
        by_tag = {r.name.split(")")[0].lstrip("("): r for r in rows}
        for eng, loop in (("b", "a"), ("bw", "aw"), ("c", "a"), ("cw", "aw")):
            if eng in by_tag and loop in by_tag and by_tag[eng].rate and by_tag[loop].rate:
                print(f"  ({eng}) / ({loop}): {by_tag[eng].rate / by_tag[loop].rate:.2f}x")
        if "fwd" not in skip:
            # each engine layout against the forward-only rate of the same layout, and
            # against the best forward-only rate of any layout (the ceiling)
            best = max(r for (p, _), r in rates.items() if p == default) * tiles_field_mpx
            for eng in ("b", "bw", "c", "cw"):
                if eng not in by_tag or not by_tag[eng].rate:
                    continue
                procs = 1 if eng.startswith("b") else max(procs for _, procs in rates)
                same = rates[default, procs] * tiles_field_mpx
                print(f"  ({eng}) / the forward-only rate at {default}, same layout "
                      f"({same:.3f} Mpx-ch/s): {by_tag[eng].rate / same:.0%}; "
                      f"/ the best layout's ({best:.3f}): {by_tag[eng].rate / best:.0%}")
        if "b" in engine_labels and "b32" in engine_labels:
            from structfree_dask.evaluation.metrics import matched_f1

            f1s = [matched_f1(x, y) for x, y in zip(engine_labels["b"], engine_labels["b32"],
                                                     strict=True)]
            print(f"  (b) at {default} against (b32) at fp32: matched F1 min {min(f1s):.4f}, "
                  f"mean {np.mean(f1s):.4f}")
        if "b" in engine_labels and "c" in engine_labels:
            same = all(np.array_equal(x, y) for x, y in zip(engine_labels["b"],
                                                            engine_labels["c"], strict=True))
            print(f"  (b) and (c) labels bitwise identical: {same}")
        if use_gpu:
            gpu_rows = [r for r in rows if r.name.startswith(("(b)", "(c)")) and r.rate]
            for r in gpu_rows:
                print(f"  GPU engine throughput {r.name}: {r.rate:.3f} Mpx-channels/s")
        print("  x (a) = throughput relative to (a) (= (a) seconds per Mpx-ch / this one's).")
        print("  (d) Mpx-ch counts field pixels x 1 channel although it processes 2 planes.")
        print("  other CPU % = share of all cores used by processes outside this benchmark "
              "during the run (0 = machine to itself).", flush=True)
        if any(r.seconds is None for r in rows):
            status = 1

        # ---- memory
        if "mem" not in skip:
            print()
            log(f"peak worker memory: sizes {sizes}, 1 channel, 1 worker x 2 threads, "
                f"tile size {args.tile_size}")
            mem = []
            for s in sizes:
                log(f"memory run {s}x{s} ...")
                watch = CpuWatch()
                try:
                    m = run_memory(workdir, sources, s, args.tile_size)
                except Exception as err:
                    traceback.print_exc()
                    m = {"size": s, "error": f"{type(err).__name__}: {err}"}
                    status = 1
                m["other_cpu"] = watch.stop()
                mem.append(m)
                if "error" in m:
                    log(f"memory run {s}: ERROR {m['error']}")
                else:
                    log(f"memory run {s}: {m['seconds']:.1f} s (field written at "
                        f"{fmt(m['done_s'])} s), ru_maxrss "
                        f"{m['maxrss_mib']:.0f} MiB, VmHWM {fmt(m['hwm_mib'], '.0f')} MiB, "
                        f"{m['cells']} cells" + (f", FAILED {m['failed']}" if m["failed"] else ""))
            ok = [m for m in mem if "error" not in m and not m["failed"]]
            print()
            print("Peak worker memory (fresh cluster per size, started from a fresh light "
                  f"process; 1 channel; n_workers=1, threads_per_worker=2, tile_size "
                  f"{args.tile_size}):")
            print("  ru_maxrss = resource.getrusage(RUSAGE_SELF).ru_maxrss in the worker right "
                  "after the run (floor: the starting process's RSS, column 'start');")
            print("  VmHWM = the worker process's own RSS high-water mark since exec "
                  "(/proc/self/status; no inherited floor).")
            s0 = ok[0] if ok else None
            table = []
            for m in mem:
                if m not in ok:
                    why = m.get("error") or f"run failed: {m['failed']}"
                    table.append([f"{m['size']}"] + ["-"] * 9 + [why[:80]])
                    continue
                table.append([
                    f"{m['size']}", f"{m['mpx']:.1f}", f"{m['seconds']:.1f}", fmt(m["done_s"]),
                    f"{m['mpx'] / m['seconds']:.3f}", f"{m['start_mib']:.0f}",
                    f"{m['maxrss_mib']:.0f}", f"{m['maxrss_mib'] / s0['maxrss_mib']:.2f}",
                    fmt(m["hwm_mib"], ".0f"),
                    fmt(m["hwm_mib"] / s0["hwm_mib"] if m["hwm_mib"] and s0["hwm_mib"]
                        else None, ".2f"),
                    fmt(None if m["other_cpu"] is None else 100 * m["other_cpu"], ".0f")])
            ref_px = s0["size"] if s0 else "?"
            print_table(["field px", "Mpx", "wall s", "written s", "Mpx/s", "start MiB",
                         "ru_maxrss MiB",
                         f"x {ref_px} px", "VmHWM MiB", f"x {ref_px} px", "other CPU %"], table)
            by = {m["size"]: m for m in ok}
            lo, hi = (1024, 8192) if {1024, 8192} <= set(by) else (
                (min(by), max(by)) if by else (None, None))
            if lo is not None and lo != hi:
                for key, what in (("maxrss_mib", "ru_maxrss"), ("hwm_mib", "VmHWM")):
                    if not by[hi][key] or not by[lo][key]:
                        continue
                    ratio = by[hi][key] / by[lo][key]
                    verdict = "MET" if ratio <= 1.25 else "NOT MET"
                    print(f"  target: peak ({what}) at {hi} px within 1.25x of {lo} px -> "
                          f"{ratio:.2f}x ({verdict})" + (
                              "" if (lo, hi) == (1024, 8192)
                              else "  [sizes differ from the 1024/8192 target]"))
            sys.stdout.flush()
    finally:
        if args.keep or args.workdir is not None:
            print(f"\nscratch kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"total wall time {time.perf_counter() - T0:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
