#!/usr/bin/env bash
# GPU benchmark run for a GPU machine: the CNN and U-Net steps side by side with PyTorch, and a whole
# GTSRB-sized CNN epoch. Uses the machine's jax when it already sees a GPU (no network needed), else
# installs jaxadl with CUDA jax into .venv-gpu.
# Usage: bash benchmarks/gpu.sh [OUT_DIR]     (results: OUT_DIR/*.json and OUT_DIR/gpu.log)
set -euo pipefail
out=${1:-${OUT:-runs/gpu-bench}}
mkdir -p "$out"
py=python3
if ! $py -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  $py -m venv .venv-gpu && . .venv-gpu/bin/activate && py=python
  $py -m pip install -q --upgrade pip
  $py -m pip install -q -e ".[cuda12,torch]"
fi
$py -c "import jax; print(jax.__version__, jax.devices())" | tee "$out/gpu.log"
compare=$($py -c "import torch" 2>/dev/null && echo "--compare=torch" || true)
for args in "--model=cnn" "--model=cnn --batch-norm" "--model=unet --batch-size=4" "--model=unet --batch-size=16"; do
  name=$(echo "$args" | tr -c 'a-z0-9\n' '_')
  $py -m benchmarks.step_time $args $compare --windows=5 --json="$out/step_$name.json" | tee -a "$out/gpu.log"
done
# one epoch of 39,209 GTSRB-sized images (synthetic pixels of the same shape), scanned on the device
$py -m benchmarks.step_time --model=cnn --epoch --epoch-steps=306 --json="$out/epoch_cnn.json" | tee -a "$out/gpu.log"
# eight trials of the CNN as one program (vmapped) against eight epochs one by one: seconds per trial
$py -m benchmarks.step_time --model=cnn --trials-together=8 --epoch-steps=306 --json="$out/together_cnn.json" | tee -a "$out/gpu.log"
$py -m benchmarks.step_time --model=unet --batch-size=4 --trials-together=2 --epoch-steps=28 --json="$out/together_unet.json" | tee -a "$out/gpu.log"
# time to 98 % validation accuracy on real GTSRB, when its arrays are given (jaxadl.data.arrays.save_npz
# of load_gtsrb(...), as this machine may lack tensorflow-datasets): GTSRB_NPZ=gtsrb28.npz bash gpu.sh
if [ -n "${GTSRB_NPZ:-}" ]; then
  $py -m benchmarks.time_to_accuracy --dataset=npz --data-dir="$GTSRB_NPZ" --target=0.98 --epochs=10 \
    $([ -n "$compare" ] || echo --compare=none) --wait-idle=0 --json="$out/time_to_accuracy.json" | tee -a "$out/gpu.log"
fi
