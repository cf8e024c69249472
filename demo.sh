#!/usr/bin/env bash
# Set up the environment, then run the main job end to end on the embedded default:
# a simulated plate in a local Zarr store, segmented on a local Dask cluster.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-env.sh
OUT="${1:-demo-out}"
mkdir -p "$OUT"
rm -rf "$OUT/plate.zarr"
structfree-dask simulate "$OUT/plate.zarr" --cell-line CL1 --rows 1 --cols 2 --fields 1 \
  --timepoints 2 --size 512 --seed 0
structfree-dask info "$OUT/plate.zarr"
