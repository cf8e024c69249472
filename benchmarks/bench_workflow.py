"""One command against the separate commands: from a plate to a tracked per-cell table.

On copies of one simulated plate (CL1, ``--wells`` wells, ``--timepoints`` timepoints,
``--size`` px fields), side by side in one run, alternating (one, separate, one,
separate...) so that drift in the machine's load falls on both:

- one command: ``structfree-dask segment PLATE ... --with-nuclei CH --measure --track``
  (one cluster; linking done once, inside the measuring units);
- separate commands: ``segment ... --with-nuclei CH`` (which links), ``measure --labels
  cyto --nuclei nuclei`` (which reads the linked nuclei; it still counts the overlaps for
  ``n_nuclei``), ``track --table cyto_features``: three clusters started.

Printed: wall seconds of each run, the medians, and their ratio (separate / one), with the
CPU model and the flags that matter to the network's speed. The tables of both are equal
row for row (``tests/test_workflow.py``); this script checks it again on its plate.

Run: ``python benchmarks/bench_workflow.py [--size 256] [--wells 2] [--timepoints 4]
[--repeats 2] [--workers 2]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEGMENT = ["--channels", "0,1,2,3", "--diameter", "20", "--with-nuclei",
           "translocation-reporter", "--no-progress"]


def cpu() -> str:
    """The CPU model and the flags that matter to torch's speed."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    have = " ".join(f for f in wanted if f in flags) or f"none of {', '.join(wanted)}"
    return f"{model}; flags: {have}"


def command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("structfree-dask")
    return [str(script), *args] if script.is_file() else [sys.executable, "-m",
                                                          "structfree_dask", *args]


def timed(*commands: list[str]) -> float:
    start = time.perf_counter()
    for argv in commands:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--wells", type=int, default=2)
    parser.add_argument("--timepoints", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import pandas as pd

    from structfree_dask.io import open_plate, read_plate_dataset
    from structfree_dask.simulate import simulate_plate

    workers = ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.zarr"
        simulate_plate(template, cell_line="CL1", rows=1, cols=args.wells,
                       timepoints=args.timepoints, size=args.size, seed=0)
        fields = len(open_plate(template).field_paths)
        print(f"plate: {fields} field(s) x {args.timepoints} timepoint(s) of {args.size} px, "
              f"4 reporter channels; {args.workers} worker(s)")
        print(f"machine: {cpu()}")
        times: dict[str, list[float]] = {"one": [], "separate": []}
        tables = {}
        for i in range(args.repeats):
            for kind in ("one", "separate"):
                plate = Path(tmp) / f"{kind}-{i}.zarr"
                shutil.copytree(template, plate)
                if kind == "one":
                    seconds = timed(command("segment", str(plate), *SEGMENT, "--track",
                                            *workers))
                else:
                    seconds = timed(
                        command("segment", str(plate), *SEGMENT, *workers),
                        command("measure", str(plate), "--labels", "cyto", "--nuclei",
                                "nuclei", "--no-progress", *workers),
                        command("track", str(plate), "--table", "cyto_features",
                                "--no-progress", *workers))
                times[kind].append(seconds)
                tables[kind] = read_plate_dataset(str(plate), "cyto_features")
                print(f"  run {i + 1} {kind:>8}: {seconds:7.1f} s")
        pd.testing.assert_frame_equal(tables["one"], tables["separate"])
        one, separate = (statistics.median(times[k]) for k in ("one", "separate"))
        print(f"median: one command {one:.1f} s, separate commands {separate:.1f} s; "
              f"separate / one = {separate / one:.2f}x; tables equal row for row "
              f"({len(tables['one'])} rows)")


if __name__ == "__main__":
    main()
