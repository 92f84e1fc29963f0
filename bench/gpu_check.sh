#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): float32 and mixed precision under MirroredStrategy, the distiller, and an
# exported model's CPU predictions. On a GPU machine:   bash bench/gpu_check.sh
# On any machine, to see that it works:                 bash bench/gpu_check.sh --cpu-smoke --out /tmp/check.json
# PYTHON names the interpreter (default: python). The run is cut at 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec timeout 480 "${PYTHON:-python}" bench/gpu_check.py "$@"
