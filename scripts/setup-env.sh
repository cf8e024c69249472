#!/usr/bin/env bash
# Create .venv (once) and install the package with its test tools.
# Sourced by ./demo.sh and ./test.sh. Torch is installed first so that the right build
# is chosen: TORCH_SPEC (default torch==2.13.0) on a fresh environment; an already
# installed torch (for example a CUDA build on a GPU machine) is kept as it is.
set -euo pipefail
VENV="${STRUCTFREE_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if ! python -c "import torch" >/dev/null 2>&1; then
  python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
fi
if ! python -c "import structfree_dask, pytest" >/dev/null 2>&1 || [ "${STRUCTFREE_REINSTALL:-0}" = 1 ]; then
  python -m pip install --quiet -e ".[test]"
fi
