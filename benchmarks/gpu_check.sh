#!/usr/bin/env bash
# GPU readiness in one command (under 8 minutes on one GPU): the dask-cuda path end to end
# on a simulated plate. Installs nothing: run it in an environment with torch (CUDA build),
# dask-cuda and this package (for example after ./test.sh on the GPU machine).
# Prints (a) forward-only vs engine throughput, (b) matched F1 of GPU (half precision)
# against CPU float32 labels, (c) peak GPU memory per worker. Arguments go to gpu_check.py
# (--dry-run-on-cpu: the same steps on the CPU, to check the script where no GPU is).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
exec timeout 480 "$PY" benchmarks/gpu_check.py "$@"
