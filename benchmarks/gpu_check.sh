#!/usr/bin/env bash
# The train-step check of a GPU machine in one command, sized for a machine lent for 10 minutes:
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # from the repository root; OUT_DIR defaults to $OUT, then /tmp/gpu_check
#
# It runs benchmarks/train_step_bench.py three times, most wanted first, each under a share of one deadline
# (GPU_CHECK_SECONDS, default 480; a row already started runs to its end):
#   1. IMR-R18 (PMSP+CTP, 112 px), bfloat16, batch 64 and 128: ours, the reference network in JAX, its PyTorch
#      reference eager and compiled, torchvision's r3d_18 x 3; a jax.profiler trace of our step, summarised;
#   2. the same network in float32 at batch 64: ours and the PyTorch reference;
#   3. IMR-R50 (224 px), bfloat16, batch 32: ours and the PyTorch reference.
# OUT_DIR gets bench.log (the tables, as printed), rows.jsonl (one JSON line per row, written as each row
# ends, so a run cut off keeps what it timed) and machine.txt (GPU, driver, package versions).
# Needs jax, flax, optax, orbax-checkpoint, torch, torchvision, clu and ml_collections; a bare jax + torch
# image lacks the last two: put their wheels in .whl/ (docs/EXPERIMENTS.md says how) and they are
# installed into /tmp/site first. PYTHON names the interpreter (default python3); GPU_CHECK_ARGS, flags
# added to every run (they win over the script's), make a smoke run elsewhere (tests/test_benchmarks.py).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/gpu_check}}
python=${PYTHON:-python3}
read -ra extra <<< "${GPU_CHECK_ARGS:-}"
mkdir -p "$out"
if compgen -G '.whl/*.whl' > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || exit 1
fi
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$python" -c 'import jax, flax, optax, torch, torchvision; print("jax", jax.__version__, "flax", flax.__version__,
    "optax", optax.__version__, "torch", torch.__version__, "torchvision", torchvision.__version__,
    "cuDNN", torch.backends.cudnn.version())' 2>&1
} | tee "$out/machine.txt"

deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-480}))
# Starts no row after `share` percent of the time left, so the later runs keep some.
bench() {
  local share=$1
  shift
  local budget=$(((deadline - SECONDS) * share / 100))
  if ((budget <= 0)); then
    echo "gpu_check: no time left for: $*" | tee -a "$out/bench.log"
    return
  fi
  echo "+ train_step_bench $* ${extra[*]} --time_budget_s=$budget" | tee -a "$out/bench.log"
  "$python" -m benchmarks.train_step_bench --results="$out/rows.jsonl" --time_budget_s="$budget" "$@" "${extra[@]}" 2>&1 \
    | tee -a "$out/bench.log"
}
bench 60 --dtypes=bfloat16 --batch_sizes=64,128 --profile_dir="$(mktemp -d)" \
  --rows=imr,imr_reference,torch_reference,torch_reference_compiled,torchvision_r3d_18
bench 50 --dtypes=float32 --batch_sizes=64 --rows=imr,torch_reference
bench 60 --config=configs/pmsp_ctp.py:r50 --dtypes=bfloat16 --batch_sizes=32 --rows=imr,torch_reference
