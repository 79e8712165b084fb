#!/usr/bin/env bash
# Every GPU measurement of BENCHMARKS.md in one go, most important first (a run cut short keeps what it logged).
#   bash benchmarks/gpu_all.sh [LOG]          # LOG defaults to ./gpu_all.log (appended to as it goes)
#   SMOKE=1 bash benchmarks/gpu_all.sh        # the same commands at toy sizes on the CPU (a dry run)
#   PART=explore bash benchmarks/gpu_all.sh   # instead: what main's changes give, then what to try next
#   PART=all bash benchmarks/gpu_all.sh       # both, then train.py, 9605 classes, other modes, head, norm
#   PART=jpeg,mxl bash benchmarks/gpu_all.sh  # some sections of main only (a second call after a cut-short one)
# PART=main is the sections ltrain (TResNet-L 448 training), linfer (its inference), jpeg (train.py and validate.py
# on JPEG files against the synthetic rate of ltrain's mode) and mxl (TResNet-M 224 and XL 640 training).
# Each measurement runs on its own with a time limit, so one failure does not stop the rest; if TResNet-L training
# or inference fails in main, the mode it was measured before that change is measured instead. Every benchmark
# prints its table (the published recipe measured in the same run as its baseline) to stdout and to LOG; the
# tables of BENCHMARKS.md are copied from there, with the command, the machine and the date.
set -u
part=${PART:-main}
sections=",$(echo "$part" | sed 's/\bmain\b/ltrain,linfer,jpeg,mxl/; s/\ball\b/ltrain,linfer,jpeg,mxl,explore,extra/'),"
for s in ${sections//,/ }; do
  case $s in ltrain|linfer|jpeg|mxl|explore|extra) ;;
    *) echo "PART: '$s' is not main, explore, all or a section (ltrain, linfer, jpeg, mxl, extra)" >&2; exit 2 ;;
  esac
done
want() { [[ $sections == *",$1,"* ]]; }
log=$(realpath -m "${1:-gpu_all.log}")  # relative to where it is started
mkdir -p "$(dirname "$log")"
profiles="$(dirname "$log")/profiles"  # every kernel of each profile, one CSV per mode
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1
py=$(command -v python3 || command -v python)  # (some CUDA images have python3 only)
limit=300
if [ "${SMOKE:-0}" = 1 ]; then
  toy="--device cpu --iters 1 --warmup 0"
  L="--model-name tresnet_m --image-size 64 --batch-size 2 $toy"; M="$L"; XL="$L"; IL="$L"; H="--device cpu --batch-size 2 --iters 1"; N="--device cpu --shape 2,8,8,8 --iters 1"
  # (the mode of the JPEG runs: fast, as compiling takes minutes on a CPU)
  J="--device cpu --model-name tresnet_m --image-size 64 --batch-size 4 --steps 3 --val-images 8 --distinct 10 --mode fast"
  J="$J --iters 1 --warmup 0 --loader-batches 2"; JM="$J --variants noaug"
  P=1; limit=900
else
  # published TResNet-M measured 910.8 and 1093.4 images/s minutes apart (15 steps): longer runs, a few seconds each
  L="--model-name tresnet_l --image-size 448 --batch-size 56 --iters 30 --warmup 5"
  IL="--model-name tresnet_l --image-size 448 --batch-size 64 --iters 40 --warmup 5"
  M="--model-name tresnet_m --image-size 224 --batch-size 128 --iters 40 --warmup 5"
  XL="--model-name tresnet_xl --image-size 640 --batch-size 16 --iters 20 --warmup 5"
  H="--batch-size 56"; N=""
  # train.py for 2 epochs of 200 steps on 640x480 JPEGs, with uint8 batches (its default) and with float32 ones
  J="--model-name tresnet_l --image-size 448 --batch-size 56 --steps 200 --variants default,float"
  JM="--model-name tresnet_m --image-size 224 --batch-size 128 --steps 150 --variants default,noaug"
  P=3
fi
long=$((limit > 480 ? limit : 480))  # the limit of a benchmark that runs train.py several times
prof=(--profile "$P" --profile-dir "$profiles")
run() {  # returns the benchmark's exit status (124: stopped by the time limit)
  local start=$SECONDS status
  echo "\$ python $*" | tee -a "$log"; timeout $limit "$py" "$@" 2>&1 | tee -a "$log"; status=${PIPESTATUS[0]}
  echo "# ($((SECONDS - start)) s; $SECONDS s since the script started; exit status $status)" | tee -a "$log"
  echo | tee -a "$log"; return "$status"
}
fallback() { echo "# that failed: measuring the fallback instead" | tee -a "$log"; run "$@"; }
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo no-gpu
  "$py" -c 'import torch; print("torch", torch.__version__)'
  # the host's CPUs and shared memory: the data loading runs there (loader processes hand batches over in /dev/shm)
  echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); /dev/shm: $(df -h /dev/shm | tail -1)"
} | tee -a "$log"
mode=published,fast+lowmem+regional+cudagraphs
first_line=$(($(wc -l < "$log") + 1))  # this invocation's part of the log
if want ltrain; then
  echo "# == TResNet-L 448 training ==" | tee -a "$log"
  # Training: the memory-saving backward, each distinct block compiled once, CUDA graphs, and inductor's raised
  # store-vs-recompute thresholds (compile.py RECOMPUTE_OPTIONS). Each mode prints a line when measured.
  # A fast mode is profiled only if it is below the given multiple of the published rate (a profile of what
  # limits it; PART=explore profiles all).
  run bench_train.py $L --modes $mode "${prof[@]}" --profile-below 3 ||
    fallback bench_train.py $L --modes published,fast+lowmem+cudagraphs "${prof[@]}" --profile-below 3
fi
if want linfer; then
  # Inference: CUDA graphs and the matrix products autotuned (compile.py GEMM_AUTOTUNE_OPTIONS: 1x1 convolutions
  # as Triton matrix products with the bias, activation and residual applied as they write, if they time faster).
  run bench_infer.py $IL --modes published,fast+cudagraphs+mmtune "${prof[@]}" --profile-below 2.5 ||
    fallback bench_infer.py $IL --modes published,fast+cudagraphs "${prof[@]}" --profile-below 2.5
fi
if want jpeg; then
  # train.py and validate.py on JPEG files, in ltrain's fast mode; its synthetic rate is taken from ltrain's line
  # above when this call measured it (else bench_jpeg_train.py measures it).
  synthetic=$(tail -n +"$first_line" "$log" | sed -n "s/^# ${mode#published,}: \([0-9.]*\) images\/s.*/\1/p" | tail -1)
  [ "${SMOKE:-0}" = 1 ] && synthetic=""  # (the dry run's JPEG mode is another)
  if "$py" -c 'import pycocotools' 2>/dev/null; then
    # (about 4 minutes: two train.py runs of two epochs. Their training graphs are the ones ltrain compiled, which
    # inductor's on-disk cache hands over when both run on the same machine: on the CPU, TResNet-M 64 block by
    # block, train.py's first step took 17.9 s after bench_train.py's compile of 141.7 s; evaluation compiles anew)
    limit=$long run bench_jpeg_train.py --mode "${mode#published,}" $J \
      ${synthetic:+--synthetic-rate "$synthetic"}
  else
    echo "# jpeg: skipped, as pycocotools (which reads the COCO layout) is not installed: pip install pycocotools" |
      tee -a "$log"
  fi
fi
if want mxl; then
  run bench_train.py $M --modes $mode "${prof[@]}" --profile-below 2
  run bench_train.py $XL --modes $mode "${prof[@]}" --profile-below 2
fi
echo "# == $part done after $SECONDS s ==" | tee -a "$log"; echo | tee -a "$log"
if want explore; then
  # What each change of main gives, measured against the same thing without it: inference without the autotuned
  # matrix products, TResNet-L training with inductor's own thresholds (+stock).
  run bench_infer.py $IL --modes published,fast+cudagraphs "${prof[@]}"
  run bench_train.py $L --modes published,fast+lowmem+regional+cudagraphs+stock "${prof[@]}"
  # Next to try: every Triton kernel's block sizes tuned on the device (cdtune), then max-autotune's convolution
  # templates too.
  run bench_train.py $L --modes published,fast+lowmem+regional+cudagraphs+cdtune "${prof[@]}"
  run bench_infer.py $IL --modes published,fast+cudagraphs+mmtune+cdtune "${prof[@]}"
  run bench_train.py $L --modes published,fast+lowmem+regional+cudagraphs+autotune "${prof[@]}"
fi
if want extra; then
  # train.py itself with CUDA graphs against its eager default, demo data, same seed: loss and mAP per epoch
  run ../train.py --demo --epochs 3 --output-dir /tmp/gpu_all_demo_eager
  run ../train.py --demo --epochs 3 --compile --compile-mode reduce-overhead --compile-scope regional --lowmem \
    --output-dir /tmp/gpu_all_demo_cudagraphs
  # TResNet-M 224 on JPEGs: the fastest training, so the data pipeline's hardest case (with and without augmentation)
  limit=$long run bench_jpeg_train.py --mode "${mode#published,}" $JM
  # the whole-model compile with CUDA graphs and without, eager, and 9605 classes
  run bench_train.py $L --modes published,fast+lowmem+cudagraphs,fast+lowmem+compile "${prof[@]}"
  run bench_train.py $M --modes published,fast+lowmem+cudagraphs,fast
  run bench_train.py $L --num-classes 9605 --num-of-groups 200 --modes published,fast+lowmem+regional+cudagraphs
  run bench_train.py $XL --modes published,fast,fast+lowmem+cudagraphs
  run bench_infer.py $IL --modes published,fast+compile,fast+freeze,fast+regional,fast+bf16+compile
  run bench_head.py $H
  run bench_norm.py $N
fi
date -u | tee -a "$log"
