#!/usr/bin/env bash
# Set up the environment, then run the main job end to end on the embedded default:
# a simulated plate in a local Zarr store, segmented on a local Dask cluster, evaluated.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-env.sh
OUT="${1:-demo-out}"
mkdir -p "$OUT"
if [ -e "$OUT/plate.zarr" ]; then
  # never delete what was made on it since (tables, tracks): segmenting again resumes
  echo "reusing $OUT/plate.zarr (delete it to start from a new plate)" >&2
else
  structfree-dask simulate "$OUT/plate.zarr" --cell-line CL1 --rows 1 --cols 2 --fields 1 \
    --timepoints 2 --size 512 --seed 0
fi
structfree-dask segment "$OUT/plate.zarr" --organelle cyto \
  --channels cyto-reporter,translocation-reporter,ER,mito --diameter 20 \
  --performance-report "$OUT/performance-report.html"
structfree-dask evaluate "$OUT/plate.zarr" --pred cyto --gt gt_cyto --csv "$OUT/scores.csv"
structfree-dask info "$OUT/plate.zarr"
