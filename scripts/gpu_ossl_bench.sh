#!/usr/bin/env bash
# GPU throughput of the open-set SSL recipes (issue 5): the CIFAR-10 IOMatch and FixMatch
# configs on `cuda`, next to USB's train_step in PyTorch on the same GPU in the same run.
#
#   scripts/gpu_ossl_bench.sh [TRAINER_BINARY] [OUT_DIR]
#
# TRAINER_BINARY is a `cargo build --release -p trainer --features cuda` binary (default
# target/release/trainer). Without nvcc, cudarc's build script falls back to the newest CUDA
# API it knows (13.4); to match the 13.2 wheels torch installs, put a stub `nvcc` on PATH
# that prints `Cuda compilation tools, release 13.2, V13.2.51` as its 4th line. Built so
# in its own target folder and stripped (`strip -o target/gpu/trainer ...`), the binary is
# 57 MB. What it runs, each result under OUT_DIR:
#  1. `trainer bench --config <cifar10 iomatch|fixmatch config> --device cuda --torch`: the
#     training iteration (64 labelled + 2 x 448 unlabelled views, WRN-28-2, loss, SGD, EMA) on
#     synthetic images, ours and scripts/bench_ossl_torch.py's (USB's train_step);
#  2. `trainer bench --model wrn28_2_usb --batch 960`: the network alone (CE + SGD), both;
#  3. `trainer train` of the IOMatch config for 3 x 50 iterations on a synthetic CIFAR-10
#     (random bytes in the official binary format; there is no network access on the GPU
#     machine): the real loop, view generation and uploads included (`it/s` per epoch).
# Needs python3 with torch. CUDA headers and NVRTC come from CUDA_PATH, /usr/local/cuda, or
# the nvidia/cu13 wheel torch installs (include/, lib/).
set -u
BIN=${1:-target/release/trainer}
OUT=${2:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
exec > >(tee "$OUT/log.txt") 2>&1

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
nproc

if [ -z "${CUDA_PATH:-}" ] && [ ! -d /usr/local/cuda ]; then
  SP=$($PY -c "import site; print(site.getsitepackages()[0])")
  for d in "$SP"/nvidia/cu13 "$SP"/nvidia/cu12; do
    if [ -f "$d/include/cuda_fp16.h" ]; then export CUDA_PATH="$d"; break; fi
  done
fi
CP=${CUDA_PATH:-/usr/local/cuda}
export LD_LIBRARY_PATH="$CP/lib:$CP/lib64:${LD_LIBRARY_PATH:-}"
echo "CUDA_PATH=$CP"; ls "$CP"/lib*/libnvrtc* 2>&1 | head -3

for recipe in iomatch fixmatch; do
  echo "== trainer bench --config configs/papers/${recipe}_cifar10_6-4_25labels.toml --device cuda --torch"
  timeout 120 "$BIN" bench --config "configs/papers/${recipe}_cifar10_6-4_25labels.toml" \
    --device cuda --input 3x32x32 --iters 50 --warmup 10 --torch --python "$PY" \
    --json "$OUT/bench_${recipe}.json"
  echo "exit $?"
done

echo "== trainer bench --model wrn28_2_usb --batch 960 (the network alone, CE + SGD) --torch"
timeout 90 "$BIN" bench --model wrn28_2_usb --batch 960 --input 3x32x32 --classes 6 \
  --device cuda --iters 30 --warmup 10 --torch --python "$PY" --json "$OUT/bench_wrn.json"
echo "exit $?"

echo "== trainer train (IOMatch CIFAR-6-150 config, synthetic CIFAR-10, 3 x 50 iterations)"
DATA=data/cifar10/cifar-10-batches-bin
mkdir -p "$DATA"
$PY - "$DATA" <<'EOF'
import os, sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
def write(name, n):
    rec = np.empty((n, 3073), np.uint8)
    rec[:, 0] = np.arange(n) % 10
    rec[:, 1:] = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    rec.tofile(os.path.join(d, name))
for i in range(1, 6):
    write(f"data_batch_{i}.bin", 10000)
write("test_batch.bin", 10000)
EOF
timeout 150 "$BIN" train --config configs/papers/iomatch_cifar10_6-4_25labels.toml --device cuda \
  --set train.epochs=3 --set ossl.iters_per_epoch=50 --set ossl.eval_every_iters=0 \
  --set output_dir=/tmp/gpu_ossl_runs --overwrite 2>&1
echo "exit $?"
cp /tmp/gpu_ossl_runs/iomatch_cifar10_6-4_25labels/metrics.json "$OUT/train_metrics.json" 2>/dev/null
