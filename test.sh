#!/usr/bin/env bash
# Set up the environment (first run: a few minutes) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-env.sh
python -m pytest "$@"
