#!/usr/bin/env bash
# The one device check (issue 19): on one H100/H200 in under 8 minutes, base size, bf16, sequence
# 512: our training step against LukeForMaskedLM (tokens/s, MFU, peak memory), eager and compiled;
# the SDPA kernel attention runs; mep_memory.py's CUDA peaks at 1M entities; a 200-step fit on the
# demo with conf/trainer/gpu.yaml and conf/strategy/zero2.yaml. Everything goes to one results file
# (and bench/results.csv gets its rows).
#
#   bash bench/gpu_check.sh [RESULTS_FILE]            # on the GPU
#   bash bench/gpu_check.sh --dry-run [RESULTS_FILE]  # every step at tiny size on the CPU
#
# --peak-tflops: H100 SXM dense bf16 989; an H200 has the same compute.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=false
if [[ "${1:-}" == "--dry-run" ]]; then dry=true; shift; fi
results="${1:-${OUT:-/tmp}/gpu_check.txt}"
python="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
run_dir="$(mktemp -d)"
cp bench/results.csv "$run_dir/results.csv"
if $dry; then  # a dry run's figures are the CPU's at tiny size: bench/results.csv is put back as it was
  trap 'cp "$run_dir/results.csv" bench/results.csv; rm -rf "$run_dir"' EXIT
else
  trap 'rm -rf "$run_dir"' EXIT
fi

if $dry; then
  size=tiny seq=64 precision=fp32 steps=(--repeats 1 --steps 1) vocab=(--vocab 10000 --quick) entities=(--entity-vocab 1000)
  pass_workers=(2)
  fit=(--config conf/trainer/cpu.yaml --config conf/strategy/cpu-zero2.yaml --trainer.max_steps 4 --trainer.log_every_n_steps 2)
else
  size=base seq=512 precision=bf16 steps=(--repeats 3 --steps 5) vocab=(--vocab 1000000) entities=(--entity-vocab 500000)
  pass_workers=(2 4 8 15)
  fit=(--config conf/trainer/gpu.yaml --config conf/strategy/zero2.yaml --trainer.devices 1 --trainer.max_steps 200 --trainer.log_every_n_steps 10)
fi

step() {  # a titled step whose output goes to the results file too; a failure is recorded, then the rest runs
  local title="$1"; shift
  echo "== $title ($(date -u +%H:%M:%S))" | tee -a "$results"
  local start=$SECONDS
  if ! "$@" 2>&1 | tee -a "$results"; then echo "!! failed: $title" | tee -a "$results"; failed=1; fi
  echo "   ($((SECONDS - start)) s)" | tee -a "$results"
}

failed=0
: > "$results"
{ echo "gpu_check $(git rev-parse --short HEAD 2>/dev/null || echo '?') dry_run=$dry"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"; } | tee -a "$results"
step "train step vs LukeForMaskedLM, eager" "$python" bench/train_step.py --size $size --seq-len $seq --precision $precision --batch-size 16 "${steps[@]}" "${entities[@]}"
step "compiled encoder vs eager" "$python" bench/compile_speed.py --size $size --seq-len $seq --precision $precision --batch-size 16 "${steps[@]}" "${entities[@]}"
step "SDPA kernel" "$python" bench/attention_kernel.py --size $size --seq-len $seq
step "mep_vocab memory at 1M entities" "$python" bench/mep_memory.py "${vocab[@]}"
step "fit on the demo, ZeRO-2" "$python" -m lightning_kg fit --data.data_dir shards/demo --run_dir "$run_dir/fit" \
  --trainer.enable_progress_bar false --trainer.limit_val_batches 0 "${fit[@]}"
step "fit metrics (last rows)" bash -c "tail -n 3 '$run_dir/fit/metrics.csv'"
step "prepare's Wikidata passes by worker count (CPU)" "$python" bench/prepare_scale.py --quick --passes-only \
  --pass-workers "${pass_workers[@]}"
echo "done: $results (failed steps: $failed)" | tee -a "$results"
exit $failed
