#!/usr/bin/env bash
# The one device check (issues 19, 31): on one H100/H200 in under 8 minutes, base size, bf16, on
# padded batches from real shards (the demo's 128-token rows and synthetic 512-token rows): our
# training step against LukeForMaskedLM (tokens/s, MFU of real tokens, peak memory); the SDPA
# kernel attention runs, padded and unpadded, in training (dropout, backward); mep_memory.py's
# CUDA peaks at 1M entities in bf16; a 200-step fit of the base model on the demo with
# conf/trainer/gpu.yaml and conf/strategy/zero2.yaml; compiled against eager (cold compile apart
# from warm speed); then prepare's Wikidata passes on the machine's CPU cores.
#
# Each step has its own time limit, cut to what is left of the whole check's (GPU_CHECK_SECONDS,
# default 440), and the most wanted figures run first. Everything goes to RESULTS_FILE as it
# comes, the bench rows to gpu_results.csv beside it and the fit's metrics to fit_metrics.csv: on
# the lent machine that folder is $OUT (docs/GPU_CHECK.md: the one command that installs and runs).
#
#   bash bench/gpu_check.sh [RESULTS_FILE]            # on the GPU (default $OUT/gpu_check.txt)
#   bash bench/gpu_check.sh --dry-run [RESULTS_FILE]  # every step at tiny size on the CPU
#
# --peak-tflops: H100 SXM dense bf16 989; an H200 has the same compute.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=false
if [[ "${1:-}" == "--dry-run" ]]; then dry=true; shift; fi
results="${1:-${OUT:-/tmp}/gpu_check.txt}"
out_dir="$(dirname "$results")"
python="${PYTHON:-$(command -v python || command -v python3)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Every bench's rows go beside the results file as they are measured, never into bench/results.csv.
export LIGHTNING_KG_BENCH_RESULTS="$out_dir/gpu_results.csv"
run_dir="$(mktemp -d)"
trap 'rm -rf "$run_dir"' EXIT

if $dry; then
  size=tiny seq=64 precision=fp32 rows=4 steps=(--repeats 1 --steps 1) synthetic=(--seq-len $seq --entity-vocab 1000)
  vocab=(--vocab 10000 --quick) pass_workers=(2) budget=${GPU_CHECK_SECONDS:-3000}
  fit=(--config conf/trainer/cpu.yaml --config conf/strategy/cpu-zero2.yaml --trainer.max_steps 4 --trainer.log_every_n_steps 2)
else
  size=base seq=512 precision=bf16 rows=32 steps=(--repeats 3 --steps 5) synthetic=(--seq-len $seq --entity-vocab 500000)
  vocab=(--vocab 1000000) pass_workers=(2 4 8 15) budget=${GPU_CHECK_SECONDS:-440}
  fit=(--config conf/model/base.yaml --config conf/trainer/gpu.yaml --config conf/strategy/zero2.yaml --trainer.devices 1
       --trainer.max_steps 200 --trainer.log_every_n_steps 10 --data.batch_size $rows --data.fact_batch_size $rows --data.num_workers 4)
fi
$dry && scale=10 || scale=1  # a dry run's CPU is slower than the GPU by far: its limits are 10x
deadline=$((SECONDS + budget))
summary=()

step() {  # step LIMIT_S TITLE COMMAND...: output into the results file too; a failure or timeout is recorded, then the rest runs
  local limit=$(($1 * scale)) title="$2"; shift 2
  local left=$((deadline - SECONDS)) start=$SECONDS status=0
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    echo "!! skipped, the check's ${budget} s are spent: $title" | tee -a "$results"; summary+=("skipped  $title"); failed=1; return
  fi
  echo "== $title ($(date -u +%H:%M:%S), limit ${limit} s)" | tee -a "$results"
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$results" || status=${PIPESTATUS[0]}
  local took=$((SECONDS - start))
  if ((status == 124 || status == 137)); then
    echo "!! timed out after $limit s: $title" | tee -a "$results"; summary+=("timeout  ${took} s  $title"); failed=1
  elif ((status)); then
    echo "!! failed (exit $status): $title" | tee -a "$results"; summary+=("failed   ${took} s  $title"); failed=1
  else
    summary+=("ok       ${took} s  $title")
  fi
  echo "   ($took s)" | tee -a "$results"
}

failed=0
mkdir -p "$out_dir"
: > "$results"
rm -f "$LIGHTNING_KG_BENCH_RESULTS"  # bench/common.py writes the header into a file that does not exist yet
echo "gpu_check $(git rev-parse --short HEAD 2>/dev/null || echo '?') dry_run=$dry budget=${budget} s" | tee -a "$results"
step 30 "machine and versions" "$python" -c "
import importlib.metadata as m, torch
print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU', torch.__version__, 'cuda', torch.version.cuda)
print(', '.join(f'{n} {m.version(n)}' for n in ('lightning', 'transformers', 'deepspeed', 'jsonargparse', 'webdataset')))
from importlib.util import find_spec  # what unpadded attention could run on here (docs/PACKING.md)
print('varlen attention:', ', '.join(f'{n} {bool(find_spec(n))}' for n in ('torch.nn.attention.varlen', 'flash_attn')))"
train_step=("$python" bench/train_step.py --size $size --precision $precision --batch-size $rows "${steps[@]}")
step 100 "train step vs LukeForMaskedLM, synthetic 512-token shards" "${train_step[@]}" "${synthetic[@]}"
step 60 "train step vs LukeForMaskedLM, demo shards" "${train_step[@]}"
step 30 "SDPA kernel, training (dropout, backward)" "$python" bench/attention_kernel.py --size $size --seq-len $seq
step 45 "mep_vocab memory at 1M entities, $precision" "$python" bench/mep_memory.py --precision $precision "${vocab[@]}"
step 100 "fit of the $size model on the demo, ZeRO-2" "$python" -m lightning_kg fit --data.data_dir shards/demo --run_dir "$run_dir/fit" \
  --trainer.enable_progress_bar false --trainer.limit_val_batches 0 "${fit[@]}"
cp "$run_dir/fit/metrics.csv" "$out_dir/fit_metrics.csv" 2>/dev/null || true
step 5 "fit metrics (last rows)" bash -c "tail -n 3 '$out_dir/fit_metrics.csv'"
step 120 "compiled model vs eager: cold compile, then warm steps" "$python" bench/compile_speed.py --size $size --precision $precision \
  --batch-size $rows "${steps[@]}" "${synthetic[@]}"
step 45 "prepare's Wikidata passes by worker count (CPU)" "$python" bench/prepare_scale.py --quick --passes-only \
  --pass-workers "${pass_workers[@]}"
{ echo "== summary ($((SECONDS)) s of ${budget})"; printf '   %s\n' "${summary[@]}"; echo "done: $results (failed steps: $failed)"; } | tee -a "$results"
exit $failed
