#!/usr/bin/env bash
# Every GPU measurement of BENCHMARKS.md in one go (about 7 minutes on one H100).
#   bash benchmarks/gpu_all.sh [LOG]          # LOG defaults to gpu_all.log
#   SMOKE=1 bash benchmarks/gpu_all.sh        # the same commands at toy sizes on the CPU (a dry run)
# Each measurement runs on its own, so one failure does not stop the rest.
set -u
cd "$(dirname "$0")"
log=${1:-gpu_all.log}
export PYTHONUNBUFFERED=1
if [ "${SMOKE:-0}" = 1 ]; then
  toy="--device cpu --iters 1 --warmup 0"
  L="--model-name tresnet_m --image-size 64 --batch-size 2 $toy"; M="$L"; XL="$L"; IL="$L"; H="--device cpu --batch-size 2 --iters 1"
else
  L="--model-name tresnet_l --image-size 448 --batch-size 56 --iters 15 --warmup 3"
  IL="--model-name tresnet_l --image-size 448 --batch-size 64 --iters 20 --warmup 3"
  M="--model-name tresnet_m --image-size 224 --batch-size 128 --iters 15 --warmup 3"
  XL="--model-name tresnet_xl --image-size 640 --batch-size 16 --iters 10 --warmup 3"
  H="--batch-size 56"
fi
run() { echo "\$ python $*" | tee -a "$log"; timeout 400 python "$@" 2>&1 | tee -a "$log"; echo | tee -a "$log"; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo no-gpu
  python -c 'import torch; print("torch", torch.__version__)'; } | tee "$log"
run bench_head.py $H
run bench_train.py $L --lowmem
run bench_infer.py $IL --compile
run bench_train.py $M
run bench_train.py $XL --lowmem
run bench_train.py $L --num-classes 9605 --num-of-groups 200 --modes published,fast
run bench_train.py $L --modes fast+lowmem --compile
