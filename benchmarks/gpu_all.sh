#!/usr/bin/env bash
# Every GPU measurement of BENCHMARKS.md in one go, most important first (a run cut short keeps what it logged).
#   bash benchmarks/gpu_all.sh [LOG]          # LOG defaults to ./gpu_all.log (appended to as it goes)
#   SMOKE=1 bash benchmarks/gpu_all.sh        # the same commands at toy sizes on the CPU (a dry run)
#   EXTRA=1 bash benchmarks/gpu_all.sh        # also 9605 classes, the other training modes, more inference modes
# Each measurement runs on its own with a time limit, so one failure does not stop the rest.
set -u
log=$(realpath -m "${1:-gpu_all.log}")  # relative to where it is started
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1
limit=300
if [ "${SMOKE:-0}" = 1 ]; then
  toy="--device cpu --iters 1 --warmup 0"
  L="--model-name tresnet_m --image-size 64 --batch-size 2 $toy"; M="$L"; XL="$L"; IL="$L"; H="--device cpu --batch-size 2 --iters 1"; N="--device cpu --shape 2,8,8,8 --iters 1"
  P=1; limit=900
  compiled=regional  # the CPU compiles slowly: one compiled mode per command in the dry run
else
  L="--model-name tresnet_l --image-size 448 --batch-size 56 --iters 15 --warmup 3"
  IL="--model-name tresnet_l --image-size 448 --batch-size 64 --iters 20 --warmup 3"
  M="--model-name tresnet_m --image-size 224 --batch-size 128 --iters 15 --warmup 3"
  XL="--model-name tresnet_xl --image-size 640 --batch-size 16 --iters 10 --warmup 3"
  H="--batch-size 56"; N=""
  P=3
  compiled=
fi
run() { echo "\$ python $*" | tee -a "$log"; timeout $limit python "$@" 2>&1 | tee -a "$log"; echo | tee -a "$log"; }
pick() { [ -n "$compiled" ] && echo "published,fast+$compiled" || echo "$1"; }
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo no-gpu
  python -c 'import torch; print("torch", torch.__version__)'; } | tee -a "$log"
# TResNet-L training: the memory-saving backward, whole-model compile (2.40x at 11.90 GiB on the H100, 2026-11-27);
# each mode prints a line when measured, compiled ones with their graph count (1 = no graph breaks).
run bench_train.py $L --modes "$(pick published,fast+lowmem+compile)" --profile $P
# inference with CUDA graphs: the compiled batch was 96% busy (17.1 ms of kernels in 17.8 ms), so the idle time is what they can remove
run bench_infer.py $IL --modes "$(pick published,fast+cudagraphs)" --profile $P
# TResNet-M with TResNet-L's best mode (its 2x target); XL regionally (a whole-model compile of XL does not fit here).
run bench_train.py $M --modes "$(pick published,fast+lowmem+compile)" --profile $P
run bench_train.py $XL --modes "$(pick published,fast+regional)" --profile $P
run bench_head.py $H
run bench_norm.py $N
if [ "${EXTRA:-0}" = 1 ]; then
  run bench_train.py $L --num-classes 9605 --num-of-groups 200 --modes published,fast
  run bench_train.py $L --modes published,fast,fast+compile,fast+lowmem+regional,fast+regional
  run bench_train.py $M --modes published,fast,fast+regional
  run bench_train.py $XL --modes published,fast,fast+lowmem+compile
  run bench_infer.py $IL --modes published,fast+compile,fast+freeze,fast+regional,fast+bf16+compile
fi
date -u | tee -a "$log"
