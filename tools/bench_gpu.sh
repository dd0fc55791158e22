#!/usr/bin/env bash
# The GPU figures of issues 3 and 7 in one go: the base transformer's and tokenizer's bf16 training steps,
# compiled, at batch 32, each with its profile (GPU time by kernel kind: matmul, attention, fused, eager).
# VARIANTS replaces the list: "NAME|SCRIPT ARGS;NAME|SCRIPT ARGS". Every run is bounded (BENCH_LIMIT
# seconds, compilation included), so a failing variant costs only itself.
#
#   bash tools/bench_gpu.sh OUT_DIR            # on a machine with a CUDA GPU; then read OUT_DIR/summary.txt
#   VARIANTS="tr_flash|bench_transformer.py --compile --train-batch 32 --sdpa flash" bash tools/bench_gpu.sh OUT
#
# Needs tokgen's imports (torch, einops, vector-quantize-pytorch, x-transformers, safetensors, pyyaml).
set -u
out=${1:?usage: bench_gpu.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
limit=${BENCH_LIMIT:-180}  # seconds per run, compilation included
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv >"$out/gpu.txt" 2>&1

run() {  # run NAME SCRIPT ARGS...: one bench into NAME.json / NAME.log / NAME.*txt (profile)
  local name=$1 script=$2
  shift 2
  echo "=== $name: $script $*"
  timeout "$limit" python "tools/$script" "$@" --profile "$out/$name.prof" --out "$out/$name.json" >"$out/$name.log" 2>&1
  echo "exit $?"
  grep -E "train_step|training:|per step|^  [a-z]" "$out/$name.log" | tail -12
}

IFS=';' read -ra variants <<<"${VARIANTS:-tr_b32|bench_transformer.py --compile --train-batch 32;tok_b32|bench_tokenizer.py --compile --batch 32}"
for variant in "${variants[@]}"; do
  name=${variant%%|*}
  read -ra args <<<"${variant#*|}"
  run "$name" "${args[@]}"
done 2>&1 | tee "$out/summary.txt"
