"""Driver for cellpose's own ``cellpose.contrib.distributed_segmentation.distributed_eval``.

Run by ``bench_engine.py`` as a subprocess in its separate environment
(``benchmarks/.venv-cp-distributed``: cellpose 3.1.1.3, zarr < 3); it does not import
structfree_dask. Not a test.

In cellpose 3.1.1.3 ``distributed_eval`` only works on 3D volumes (2D input fails in the
face-merge step, a single-plane volume in the block write) and needs zarr 2
(``zarr.open(path, 'w', shape=...)``). Each input field is therefore given as a
``(2, Y, X)`` stack, the channel plane twice as z, with ``z_axis=0`` and ``do_3D=False`` so
that every plane is segmented in 2D; only plane 0 is returned. Both planes are processed.

Usage::

    python _cp_distributed_driver.py --model W.pth --out result.json \
        --workdir DIR --blocksize 512 --workers 2 --threads 1 field0.npy [field1.npy ...]

Each ``fieldK.npy`` holds a ``(Y, X)`` plane. Writes ``fieldK.labels.npy`` (plane 0 labels)
next to it and a JSON summary to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fields", nargs="+", type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--blocksize", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--diameter", type=float, default=30.0)
    ap.add_argument("--gpu", action="store_true")
    args = ap.parse_args()

    summary: dict = {"ok": False, "fields": []}
    t_start = time.perf_counter()
    try:
        import distributed
        import numpy as np
        import zarr
        from cellpose.contrib import distributed_segmentation as ds

        summary["versions"] = {"zarr": zarr.__version__, "distributed": distributed.__version__}
        import cellpose

        summary["versions"]["cellpose"] = getattr(cellpose, "version", "?")
        args.workdir.mkdir(parents=True, exist_ok=True)
        # distributed_eval uses overlap = 2 * diameter as a slice bound: it must be an int
        # (diameter=30.0 fails in the block read with "slice indices must be integers")
        diameter = int(args.diameter) if float(args.diameter).is_integer() else args.diameter
        # our own LocalCluster: cellpose's myLocalCluster would dump the whole dask config
        # into ~/.config/dask/ (read by every other dask process of this user)
        cluster = distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=args.threads, processes=True,
            host="127.0.0.1", dashboard_address=None,
        )
        cluster.client = distributed.Client(cluster)
        summary["cluster_start_s"] = time.perf_counter() - t_start
        try:
            bs = args.blocksize
            for k, f in enumerate(args.fields):
                plane = np.load(f)
                stack = np.stack([plane, plane])  # (2, Y, X): the plane twice as z
                zin = ds.numpy_array_to_zarr(
                    str(args.workdir / f"cp_input_{k}.zarr"), stack, chunks=(2, bs, bs))
                out_path = str(args.workdir / f"cp_output_{k}.zarr")
                t0 = time.perf_counter()
                seg, boxes = ds.distributed_eval(
                    input_zarr=zin,
                    blocksize=(2, bs, bs),
                    write_path=out_path,
                    model_kwargs={"gpu": args.gpu, "pretrained_model": args.model},
                    eval_kwargs={
                        "diameter": diameter, "channels": [0, 0], "z_axis": 0,
                        "do_3D": False, "flow_threshold": 0.4, "cellprob_threshold": 0.0,
                        "min_size": 15,
                    },
                    cluster=cluster,
                    temporary_directory=str(args.workdir),
                )
                seconds = time.perf_counter() - t0
                lab = np.asarray(seg[0])
                np.save(f.with_suffix(".labels.npy"), lab)
                summary["fields"].append({
                    "field": str(f), "shape": list(stack.shape), "seconds": seconds,
                    "n_labels_plane0": int(len(np.unique(lab)) - (1 if (lab == 0).any() else 0)),
                    "n_boxes": len(boxes),
                })
                print(f"[cp-distributed] field {k + 1}/{len(args.fields)}: {seconds:.1f} s",
                      flush=True)
        finally:
            cluster.client.close()
            cluster.close()
        summary["ok"] = True
    except BaseException as err:  # report any failure to the parent
        summary["error"] = f"{type(err).__name__}: {err}"
        summary["traceback"] = traceback.format_exc()
        traceback.print_exc()
    summary["total_s"] = time.perf_counter() - t_start
    args.out.write_text(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
