"""Campaign scale (not a test): how the engine's cost per unit grows with the number of units.

A synthetic plate of noise fields (``--size`` px, one channel, ``--timepoints`` per field)
is written at each of ``--units`` sizes and segmented by the engine with a small, randomly
initialised network, so that orchestration (planning, graphs, scheduling, completion
records) dominates. Printed side by side, measured in one run:

- time to the first finished unit (``RunResult.first_unit_seconds``), wall time per unit,
  the most units in flight, the driver's peak memory and its memory after each size, the
  scheduler's memory (with a LocalCluster, the driver process), and the ratio
  of per-unit time to the smallest size's;
- the engine against an in-process loop (``segment_array``) over the same fields of the
  smallest plate, with the same network (run last, so that the driver's memory at each
  size is the engine's);
- with ``--s3 s3://BUCKET/PREFIX``: the smallest plate written to that object store as
  well and segmented there, and the ratio of its time per unit to the local plate's
  (credentials and endpoint from the standard ``AWS_*`` environment).

A small plate is segmented first to start the workers (torch, the network, the compiled
dynamics), so that every size is measured on a warm cluster.

Usage::

    python benchmarks/bench_scale.py --units 300,3000 [--workers 2] [--s3 s3://bench/scale]

Figures and the machine they were measured on: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import cpu_flags


def _small_net(folder: Path) -> Path:
    import torch
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(0)
    net = CPnet([2, 8, 16, 32, 64], 3, sz=3, diam_mean=30.0)
    path = folder / "small.pth"
    torch.save(net.state_dict(), path)
    return path


def _plate(path: Path | str, units: int, timepoints: int, size: int,
           keep: bool = False) -> list[np.ndarray]:
    """Write a plate of ``units`` (field, timepoint) noise units; return its fields if kept.

    Only the fields of the plate that the in-process loop reads are kept, so that the
    driver's memory at each size is the engine's, not the plate's.
    """
    from structfree_dask.io import create_plate

    n_fields = math.ceil(units / timepoints)
    cols = math.ceil(math.sqrt(n_fields))
    rows = math.ceil(n_fields / cols)
    row_names = [chr(ord("A") + i % 26) * (1 + i // 26) for i in range(rows)]
    rng = np.random.default_rng(0)
    fields = []
    with create_plate(path, rows=row_names, columns=[str(c + 1) for c in range(cols)]) as pl:
        for i in range(n_fields):
            data = rng.integers(0, 4096, (timepoints, 1, size, size), dtype=np.uint16)
            pl.write_field(row_names[i // cols], str(i % cols + 1), 0, data,
                           channel_names=["reporter"], chunk_yx=size)
            if keep:
                fields.append(data)
    return fields


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _scheduler_rss(client) -> float:
    return float(client.run_on_scheduler(_rss_mib))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", default="300,3000", help="plate sizes in units (default 300,3000)")
    ap.add_argument("--timepoints", type=int, default=25, help="timepoints per field")
    ap.add_argument("--size", type=int, default=64, help="field side in px (default 64)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loop-units", type=int, default=50,
                    help="units of the smallest plate also run in-process (default 50)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--s3", default=None, metavar="URL",
                    help="also run the smallest plate in this object store prefix")
    args = ap.parse_args(argv)
    sizes = [int(u) for u in args.units.split(",")]

    from structfree_dask import SegmentationConfig, segment, segment_array
    from structfree_dask.runtime.cluster import close_client, local_client

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    weights = _small_net(work)
    cfg = SegmentationConfig(channels=(0,), model=str(weights), tile_size=64)
    client = local_client(args.workers, threads_per_worker=1)
    rows = []
    first_fields = None
    store = None
    try:
        _plate(work / "warm-up.zarr", 2 * args.workers, 1, args.size)
        segment(str(work / "warm-up.zarr"), cfg, client=client)
        for n in sizes:
            t0 = time.perf_counter()
            fields = _plate(work / f"plate_{n}.zarr", n, args.timepoints, args.size,
                            keep=first_fields is None)
            written = time.perf_counter() - t0
            sched_before = _scheduler_rss(client)
            result = segment(str(work / f"plate_{n}.zarr"), cfg, client=client)
            rows.append({
                "units": len(result.done), "write_s": written, "wall_s": result.seconds,
                "per_unit_ms": 1000 * result.seconds / max(1, len(result.done)),
                "first_s": result.first_unit_seconds, "in_flight": result.max_in_flight,
                "driver_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "driver_now_mib": _rss_mib(),
                "scheduler_mib": _scheduler_rss(client), "scheduler_before": sched_before,
                "failed": len(result.failed)})
            first_fields = fields if first_fields is None else first_fields
            print(f"{n} units done: {rows[-1]}", file=sys.stderr, flush=True)
        if args.s3:
            from structfree_dask.io import join, remove_tree

            url = join(args.s3, f"plate_{sizes[0]}.zarr")
            remove_tree(url)
            t0 = time.perf_counter()
            _plate(url, sizes[0], args.timepoints, args.size)
            written = time.perf_counter() - t0
            result = segment(url, cfg, client=client)
            store = {"url": url, "write_s": written, "wall_s": result.seconds,
                     "per_unit_ms": 1000 * result.seconds / max(1, len(result.done)),
                     "first_s": result.first_unit_seconds, "failed": len(result.failed)}
            print(f"{url} done: {store}", file=sys.stderr, flush=True)
            from structfree_dask.io import S3_CLIENT_VARIABLE, s3_client

            store["client"] = s3_client(url)  # what the workers' arrays go through
            store["client_note"] = f"{S3_CLIENT_VARIABLE} to choose"
    finally:
        close_client(client)
    planes = [f[t, 0] for f in first_fields for t in range(f.shape[0])][:args.loop_units]
    segment_array(planes[0], cfg)  # warm, as the workers are: torch, the network, numba
    t0 = time.perf_counter()
    for plane in planes:
        segment_array(plane, cfg)
    loop = (len(planes), time.perf_counter() - t0)

    base = rows[0]["per_unit_ms"]
    print(f"Engine at scale: {args.workers} worker(s) x 1 thread, fields of {args.size} px, "
          f"{args.timepoints} timepoints per field, small random CPnet")
    print(f"{'units':>7} {'write s':>8} {'wall s':>8} {'ms/unit':>8} {'x first size':>12} "
          f"{'first unit s':>12} {'in flight':>9} {'driver peak MiB':>15} "
          f"{'driver after MiB':>16} {'scheduler MiB':>13}")
    for r in rows:
        print(f"{r['units']:>7} {r['write_s']:>8.1f} {r['wall_s']:>8.1f} "
              f"{r['per_unit_ms']:>8.1f} {r['per_unit_ms'] / base:>12.2f} "
              f"{(r['first_s'] or float('nan')):>12.2f} {r['in_flight']:>9} "
              f"{r['driver_mib']:>15.0f} {r['driver_now_mib']:>16.0f} "
              f"{r['scheduler_mib']:>13.0f}")
    n_loop, loop_s = loop
    print(f"in-process loop (segment_array, 1 process): {1000 * loop_s / n_loop:.1f} ms/unit "
          f"over {n_loop} units; engine / loop time per unit at {rows[0]['units']} units = "
          f"{rows[0]['per_unit_ms'] / (1000 * loop_s / n_loop):.2f} "
          f"(the engine has {args.workers} workers)")
    if store is not None:
        print(f"object store {store['url']}: write {store['write_s']:.1f} s, "
              f"{store['per_unit_ms']:.1f} ms/unit, first unit {store['first_s']:.2f} s; "
              f"store / local disk time per unit at {rows[0]['units']} units = "
              f"{store['per_unit_ms'] / rows[0]['per_unit_ms']:.2f} (arrays through "
              f"{store['client']}; {store['client_note']})")
    print(f"CPU: {cpu_flags()}")
    print("targets: ms/unit at the largest size within 1.1x of the smallest; first unit "
          "within 30 s at any size; driver memory flat")
    failed = any(r["failed"] for r in rows) or bool(store and store["failed"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
