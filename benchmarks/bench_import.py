"""Importing a microscope's export: fields read and written in threads, or one at a time.

A folder of ``--wells`` wells x ``--fields`` fields x ``--channels`` channels, one 2D
uint16 TIFF of ``--size`` px per channel as Harmony exports them
(``r02c03f01p01-ch1sk1fk1fl1.tiff``, with an ``Index.idx.xml``), is written to a temporary
folder (noise over smooth blobs, so that the compressor has work), then imported into an
OME-Zarr plate in one run with one field at a time (``IMPORT_THREADS = 1``) and with the
default (:data:`structfree_dask.io._importer.IMPORT_THREADS` fields read and written in
threads), alternated ``--repeats`` times. The page cache is dropped before each import
where the machine allows it (root: ``/proc/sys/vm/drop_caches``), else said.

Printed: the seconds and megabytes per second of each import, their ratio, whether the two
plates hold the same fields and pixels, and the CPU's model and flags.

Run: ``python benchmarks/bench_import.py [--wells 4] [--fields 4] [--channels 3]
[--size 1024] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from _machine import cpu_flags

from structfree_dask.io import _importer, import_folder, open_plate


def write_export(folder: Path, wells: int, fields: int, channels: int, size: int) -> int:
    """Write the Harmony-named channel files and index; return the bytes of pixels."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images = []
    for w in range(wells):
        for f in range(1, fields + 1):
            for c in range(1, channels + 1):
                centre = rng.uniform(0, size, 2)
                blob = 2000 * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2)
                                     / (2 * (size / 6) ** 2))
                pixels = (blob + rng.poisson(100, (size, size))).astype(np.uint16)
                name = f"r02c{w + 1:02d}f{f:02d}p01-ch{c}sk1fk1fl1.tiff"
                tifffile.imwrite(folder / name, pixels)
                images.append(f'<Image Version="1"><URL>{name}</URL><ChannelID>{c}</ChannelID>'
                              f"<ChannelName>channel {c}</ChannelName>"
                              '<ImageResolutionX Unit="m">6.5E-07</ImageResolutionX>'
                              '<ImageResolutionY Unit="m">6.5E-07</ImageResolutionY></Image>')
    (folder / "Index.idx.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><EvaluationInputData xmlns="http://www.'
        f'perkinelmer.com/PEHH/HarmonyV5"><Images>{"".join(images)}</Images>'
        "</EvaluationInputData>")
    return wells * fields * channels * size * size * 2


def drop_page_cache() -> bool:
    """Drop the page cache (root only); return whether it was dropped."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def timed_import(src: Path, out: Path, threads: int) -> tuple[float, bool]:
    """Import with ``threads`` fields at once; return seconds and a dropped cache."""
    shutil.rmtree(out, ignore_errors=True)
    dropped = drop_page_cache()
    _importer.IMPORT_THREADS = threads
    start = time.perf_counter()
    import_folder(src, out)
    return time.perf_counter() - start, dropped


def same_pixels(a: Path, b: Path) -> bool:
    pa, pb = open_plate(a), open_plate(b)
    return pa.field_paths == pb.field_paths and all(
        np.array_equal(pa.field(p).open_array(0)[...], pb.field(p).open_array(0)[...])
        for p in pa.field_paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wells", type=int, default=4)
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    default = _importer.IMPORT_THREADS
    print(f"CPU: {cpu_flags()}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "Images"
        src.mkdir()
        megabytes = write_export(src, args.wells, args.fields, args.channels, args.size) / 2**20
        print(f"export: {args.wells * args.fields} fields x {args.channels} channels of "
              f"{args.size} px ({megabytes:.0f} MiB of pixels)")
        times: dict[int, list[float]] = {1: [], default: []}
        dropped = True
        for _ in range(args.repeats):  # alternated, so that drift hits both alike
            for threads in (1, default):
                seconds, cold = timed_import(src, Path(tmp) / f"t{threads}.zarr", threads)
                times[threads].append(seconds)
                dropped &= cold
        _importer.IMPORT_THREADS = default
        print("page cache dropped before each import" if dropped else
              "page cache NOT dropped (not root): the files are read from memory")
        for threads, ts in times.items():
            best = min(ts)
            print(f"{threads} field(s) at once: {best:.2f} s (best of {len(ts)}; all "
                  f"{', '.join(f'{t:.2f}' for t in ts)}), {megabytes / best:.0f} MiB/s")
        ratio = min(times[1]) / min(times[default])
        print(f"ratio {default} fields at once / one at a time: {ratio:.2f}x faster")
        same = same_pixels(Path(tmp) / "t1.zarr", Path(tmp) / f"t{default}.zarr")
        print(f"same pixels: {same}")


if __name__ == "__main__":
    main()
