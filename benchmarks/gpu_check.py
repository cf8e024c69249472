"""GPU readiness, in one run (not a test): the dask-cuda path end to end on a simulated plate.

Prints, measured side by side in this run:

(a) the network's forward-only throughput on the GPU (``predict_tiles``, half precision,
    the default there; and at fp32, with the ratio) and the engine's throughput on a
    dask-cuda cluster, in Mpx-channels/s of field, and their ratio (engine / forward-only:
    what the orchestration, normalization, integration and writes leave of the network's
    speed);
(b) matched F1 (IoU >= 0.5) of the GPU labels (half precision, GPU dynamics) against the
    CPU float32 labels of the same fields, per field and pooled;
(c) peak GPU memory per worker (``torch.cuda.max_memory_allocated``) after the run.

Installs nothing; needs torch with CUDA and dask-cuda in the environment. Run it with
``benchmarks/gpu_check.sh`` (under 8 minutes on one GPU with the defaults).

``--dry-run-on-cpu`` runs the same steps on the CPU (the default local cluster, the CPU's
``auto`` precision, peak resident memory instead of GPU memory), so that the script itself
is checked where no GPU is: its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def _forward_only(n_tiles: int, precision: str = "fp16", device: str = "cuda"
                  ) -> tuple[float, float]:
    """(tiles/s, Mpx-channels/s of field) of the shipped model's forward pass on a device."""
    import dataclasses

    import numpy as np
    import torch

    from structfree_dask.backbones import load_model, predict_tiles, resolve_model
    from structfree_dask.pipeline.tiling import NET_TILE, lattice_starts

    spec = dataclasses.replace(resolve_model(None), precision=precision)
    net = load_model(spec, torch.device(device))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    tiles = np.random.default_rng(0).random((n_tiles, NET_TILE, NET_TILE), dtype=np.float32)
    predict_tiles(net, tiles[:8], precision=precision)  # warm-up: kernels, cudnn autotuning
    sync()
    t0 = time.perf_counter()
    predict_tiles(net, tiles, precision=precision)
    sync()
    rate = n_tiles / (time.perf_counter() - t0)
    # lattice tiles per 1024x1024 field-channel (tiles overlap): field Mpx per tile
    per_field = len(lattice_starts(1024)) ** 2
    return rate, rate * 1024 * 1024 / per_field / 1e6


def _gpu_memory(client, device: str = "cuda") -> dict[str, float]:
    def peak() -> float:
        if device != "cuda":  # the dry run: the worker's peak resident memory
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        import torch

        return torch.cuda.max_memory_allocated() / 2**20

    return client.run(peak)


def main(argv: list[str] | None = None) -> int:
    """Run the check; return 0, or 2 when no GPU or dask-cuda is there."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="field side in px (default 1024)")
    ap.add_argument("--wells", type=int, default=4, help="wells of one field (default 4)")
    ap.add_argument("--cpu-fields", type=int, default=2,
                    help="fields also segmented on the CPU for (b) (default 2)")
    ap.add_argument("--tiles", type=int, default=512, help="tiles of the forward-only pass")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--dry-run-on-cpu", action="store_true",
                    help="run the same steps on the CPU to check the script (no GPU figures)")
    args = ap.parse_args(argv)
    dry = args.dry_run_on_cpu
    try:
        import torch
        if not dry:
            import dask_cuda  # noqa: F401
    except ImportError as err:
        print(f"gpu_check: {err.name} is not installed (pip install 'structfree-dask[cuda]')",
              file=sys.stderr)
        return 2
    if not dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible to torch on this machine", file=sys.stderr)
        return 2

    import numpy as np

    from structfree_dask import SegmentationConfig, segment, simulate_plate
    from structfree_dask.backbones import resolve_precision
    from structfree_dask.config import ClusterSettings
    from structfree_dask.evaluation.metrics import evaluate, pooled_f1
    from structfree_dask.io import label_record, open_labels, open_plate
    from structfree_dask.runtime.cluster import close_client, local_client, make_client

    started = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    plate = simulate_plate(work / "plate.zarr", cell_line="CL1", rows=1, cols=args.wells,
                           size=args.size, seed=0)
    channels = ("cyto-reporter", "translocation-reporter", "ER", "mito")
    gpu_cfg = SegmentationConfig(channels=channels, diameter=20, name="gpu")  # auto: fp16
    cpu_cfg = gpu_cfg.replace(name="cpu", precision="fp32")
    device, half = ("cpu", resolve_precision("auto", "cpu")) if dry else ("cuda", "fp16")

    tiles_s, fwd_mpx = _forward_only(args.tiles, half, device)
    tiles32_s, _ = _forward_only(args.tiles, "fp32", device)
    client = make_client(ClusterSettings(kind="local" if dry else "cuda"))
    try:
        gpu = segment(str(plate), gpu_cfg, client=client)
        memory = _gpu_memory(client, device)
        n_gpus = len(client.scheduler_info()["workers"])
    finally:
        close_client(client)
    engine_mpx = gpu.megapixel_channels / gpu.seconds

    fields = list(open_plate(plate).field_paths)[: args.cpu_fields]
    wells = sorted({f.rsplit("/", 1)[0] for f in fields})
    client = local_client()
    try:
        cpu = segment(str(plate), cpu_cfg, client=client, wells=wells)
    finally:
        close_client(client)

    # auto as the workers resolved it (engine.cluster_precision): fp16 on GPU workers
    recorded = label_record(open_labels(open_plate(plate).field(fields[0]), "gpu"))["precision"]
    scores = []
    for f in fields:
        info = open_plate(plate).field(f)
        a = open_labels(info, "gpu").read()[0, 0].astype("int64")
        b = open_labels(info, "cpu").read()[0, 0].astype("int64")
        scores.append((f, evaluate(b, a)))

    if dry:
        print(f"DRY RUN ON THE CPU (checks the script; no GPU figures): {n_gpus} worker(s), "
              f"{half} for the 'GPU' side; {args.wells} field(s) of {args.size} px x "
              f"{len(channels)} channels")
    else:
        print(f"GPU check on {n_gpus} GPU worker(s), {torch.cuda.get_device_name(0)}; "
              f"{args.wells} field(s) of {args.size} px x {len(channels)} channels")
    print(f"(a) forward only: {tiles_s:.1f} tiles/s = {fwd_mpx:.2f} Mpx-channels/s of field "
          f"({'one process' if dry else 'one GPU'}); engine on "
          f"{'the local cluster' if dry else 'dask-cuda'}: {engine_mpx:.2f} Mpx-channels/s "
          f"({gpu.seconds:.1f} s, {len(gpu.done)} unit(s), first after "
          f"{gpu.first_unit_seconds or 0:.1f} s); ratio engine / forward-only per GPU = "
          f"{engine_mpx / n_gpus / fwd_mpx:.2f}")
    print(f"(a) forward only at fp32: {tiles32_s:.1f} tiles/s; {half} / fp32 = "
          f"{tiles_s / tiles32_s:.2f}x")
    print(f"(a) precision auto as the workers resolved it, recorded in labels/gpu: {recorded} "
          f"(expected {half}{'' if recorded == half else ': NOT MET'})")
    for f, s in scores:
        print(f"(b) {f}: matched F1 GPU (half) vs CPU (float32) = {s['f1']:.4f} "
              f"({s['n_pred']} vs {s['n_true']} cells)")
    counts = [[s["tp"], s["fp"], s["fn"]] for _, s in scores]
    print(f"(b) pooled matched F1 = {float(pooled_f1(np.sum(counts, axis=0))):.4f}; CPU run "
          f"{cpu.seconds:.1f} s")
    for worker, mib in sorted(memory.items()):
        print(f"(c) peak {'resident' if dry else 'GPU'} memory of {worker}: {mib:.0f} MiB")
    print(f"total {time.perf_counter() - started:.0f} s; plate in {work}")
    return 0 if gpu.ok and cpu.ok and recorded == half else 1


if __name__ == "__main__":
    sys.exit(main())
