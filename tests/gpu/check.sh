#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and its driver: does TensorFlow see the GPU, and how
# fast do cnn and resnet50 train on it? Builds no image: it trains through the command
# the image runs (`python -m smvision.local train`) on scikit-learn's digits, about 300
# steps each, and prints images/s per algorithm and phase (the median epoch after the
# phase's first, which also traces and compiles).
#
#   tests/gpu/check.sh                       # venv: build/gpu-venv, made from requirements/gpu.txt if missing
#   GPU_VENV=/path/to/venv tests/gpu/check.sh
#   GPU_PYTHON=/usr/bin/python3.11 tests/gpu/check.sh   # the Python that makes the venv
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${GPU_VENV:-build/gpu-venv}"
WORK="${GPU_CHECK_DIR:-build/gpu-check}"
PY="$VENV/bin/python"
export SAGEMAKER_BASE_DIR="$PWD/$WORK/unused-opt-ml"

command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: this check needs an NVIDIA GPU and its driver." >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if ! { [ -x "$PY" ] && "$PY" -c 'import smvision, tensorflow' 2>/dev/null; }; then
    PYTHON="${GPU_PYTHON:-python3.11}"
    command -v "$PYTHON" >/dev/null || { echo "$PYTHON not found: install Python 3.11 (or set GPU_PYTHON, or GPU_VENV to a venv that holds requirements/gpu.txt)." >&2; exit 1; }
    echo "Installing requirements/gpu.txt into $VENV ..."
    "$PYTHON" -m venv "$VENV"
    "$PY" -m pip install --quiet -r requirements/gpu.txt
    "$PY" -m pip install --quiet --no-deps -e .
fi

"$PY" - <<'PY'
import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")
build = tf.sysconfig.get_build_info()
print(f"TensorFlow {tf.__version__} (CUDA {build.get('cuda_version')}, cuDNN "
      f"{build.get('cudnn_version')}) sees {len(gpus)} GPU(s): {[g.name for g in gpus]}")
if not gpus:
    raise SystemExit("TensorFlow sees no GPU: check nvidia-smi and that the venv holds "
                     "requirements/gpu.txt (tensorflow[and-cuda]), not tensorflow-cpu.")
PY

rm -rf "$WORK"
mkdir -p "$WORK"
"$PY" -m smvision.local.samples digits "$WORK/digits" >/dev/null

train() {  # ALGORITHM --hp KEY=VALUE ...
    local algorithm="$1"; shift
    local log="$WORK/$algorithm.log"
    echo "Training $algorithm ($*) ..."
    "$PY" -m smvision.local train --algorithm "$algorithm" --job-dir "$WORK/$algorithm" \
        --channel train="$WORK/digits/train" --channel validation="$WORK/digits/validation" \
        "$@" >"$log" 2>&1 || { tail -40 "$log"; echo "$algorithm failed; log: $log" >&2; exit 1; }
    grep 'images/s' "$log" | tail -2
    "$PY" - "$log" "$algorithm" <<'PY'
import re
import statistics
import sys

path, algorithm = sys.argv[1:]
epoch = re.compile(r"\((\S+) (\d+)/\d+\) .* \((\d+) images/s\)")
phases: dict[str, list[float]] = {}
for line in open(path):
    found = epoch.search(line)
    if found and int(found[2]) > 1:  # a phase's first epoch also traces and compiles
        phases.setdefault(found[1], []).append(float(found[3]))
for phase, speeds in phases.items():
    print(f"{algorithm} {phase}: {statistics.median(speeds):.0f} images/s "
          f"(median of {len(speeds)} epochs after the phase's first)")
PY
}

# 1078 training images: 17 batches of 64 per epoch, 18 epochs, about 300 steps.
train cnn --hp epochs=18 --hp batch_size=64 --hp early_stopping_patience=0
# 34 batches of 32 per epoch at 224 x 224 in float16: 5 head + 4 fine-tuning epochs.
train resnet50 --hp weights=none --hp image_size=224 --hp mixed_precision=true \
    --hp epochs=5 --hp fine_tune_epochs=4 --hp batch_size=32 --hp early_stopping_patience=0
