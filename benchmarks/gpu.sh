#!/usr/bin/env bash
# GPU benchmark run, ready for a lent GPU machine: installs jaxadl with CUDA jax (and the CPU torch
# build is not needed there), then times the CNN and U-Net steps and a whole GTSRB-sized CNN epoch.
# Usage: bash benchmarks/gpu.sh [OUT_DIR]     (results: OUT_DIR/*.json and OUT_DIR/gpu.log)
set -euo pipefail
out=${1:-${OUT:-runs/gpu-bench}}
mkdir -p "$out"
python -m venv .venv-gpu && . .venv-gpu/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[cuda12]"
python -c "import jax; print(jax.devices())" | tee "$out/gpu.log"
for args in "--model=cnn" "--model=cnn --batch-norm" "--model=unet --batch-size=4" "--model=unet --batch-size=16"; do
  name=$(echo "$args" | tr -c 'a-z0-9\n' '_')
  python -m benchmarks.step_time $args --windows=5 --json="$out/step_$name.json" | tee -a "$out/gpu.log"
done
# one epoch of 39,209 GTSRB-sized images (synthetic pixels of the same shape), scanned on the device
python -m benchmarks.step_time --model=cnn --epoch --epoch-steps=306 --json="$out/epoch_cnn.json" | tee -a "$out/gpu.log"
