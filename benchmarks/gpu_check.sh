#!/usr/bin/env bash
# One device run, under ~8 minutes on an H100 or H200: environment, then every forward-pass candidate of issue 13
# on the 7B-shaped benchmark, each in one process against the mteb-style path:
#   1. short workload (median 220 tokens): mteb-style, model-card order, evalkit default (packed, flash),
#      a 131,072-token budget, liger-kernel's fused RMSNorm/RoPE/SwiGLU, the flash-attn package's varlen kernel
#   2. long workload (median 2,000 tokens, max_length 4096): mteb-style, card order, evalkit default -- peak memory
#      says whether 4,096-token documents fit an 80 GB card (the budget is capped at 65,536 tokens on both cards)
#   3. torch.compile of the packed forward against the default (compile time printed apart), last: it may run long
#   4. SMOKE=1: the GPU smoke test (packed = padded in float32, float16 paths vs float32)
# Everything is written to $OUT as it goes; a candidate whose package is absent fails in one line and the rest run.
#
#   bash benchmarks/gpu_check.sh                                          # on the GPU machine
#   SHAPE=tiny DEVICE=cpu TEXTS=64 LONG_TEXTS=8 bash benchmarks/gpu_check.sh   # a dry run of the script on a CPU
#
# Python packages evalkit needs that the machine may lack (omegaconf, antlr4; optionally liger_kernel and
# flash_attn to measure those candidates) and the Mistral tokenizer.model are read from ./.devsite when it
# exists (PYTHONPATH, --tokenizer).
set -uo pipefail
OUT=${OUT:-/tmp/evalkit-gpu-check}
SHAPE=${SHAPE:-7b}
DEVICE=${DEVICE:-cuda}
TEXTS=${TEXTS:-2048}
CARD_TEXTS=${CARD_TEXTS:-256}
LONG_TEXTS=${LONG_TEXTS:-256}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 EVALKIT_CACHE=${EVALKIT_CACHE:-/tmp/evalkit-cache}
PY=$(command -v python3 || command -v python)
TOKENIZER=()
if [ -d .devsite ]; then
  export PYTHONPATH=$PWD/.devsite${PYTHONPATH:+:$PYTHONPATH}
  [ -f .devsite/tokenizer.model.v1 ] && TOKENIZER=(--tokenizer .devsite/tokenizer.model.v1)
fi
DTYPE=float16; [ "$DEVICE" = cpu ] && DTYPE=float32
BENCH=("$PY" benchmarks/encode_throughput.py --shape "$SHAPE" --dtype "$DTYPE" --device "$DEVICE" "${TOKENIZER[@]}")

{
  date -u
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
  "$PY" -c "import sys, torch, transformers, importlib.util as u; print('python', sys.version.split()[0], 'torch',
torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.version.cuda, 'flash op',
hasattr(torch.ops.aten, '_flash_attention_forward'), 'liger_kernel', u.find_spec('liger_kernel') is not None,
'flash_attn', u.find_spec('flash_attn') is not None)"
} 2>&1 | tee "$OUT/env.txt"

echo "== 1. short workload ($SHAPE, $TEXTS texts, on $DEVICE)" | tee "$OUT/short.txt"
timeout 270 "${BENCH[@]}" --texts "$TEXTS" --card-texts "$CARD_TEXTS" \
  --variant packed/flash,max_tokens_per_batch=131072 --variant packed/flash,fused_ops=liger --variant packed/flash_attn \
  --json "$OUT/short.json" 2>&1 | tee -a "$OUT/short.txt"
echo "short exit: ${PIPESTATUS[0]}" | tee -a "$OUT/short.txt"

echo "== 2. long workload ($SHAPE, $LONG_TEXTS texts, median 2,000 tokens, on $DEVICE)" | tee "$OUT/long.txt"
timeout 120 "${BENCH[@]}" --workload long --texts "$LONG_TEXTS" --card-texts 32 \
  --json "$OUT/long.json" 2>&1 | tee -a "$OUT/long.txt"
echo "long exit: ${PIPESTATUS[0]}" | tee -a "$OUT/long.txt"

echo "== 3. torch.compile ($SHAPE, $TEXTS texts, on $DEVICE)" | tee "$OUT/compile.txt"
timeout "${COMPILE_LIMIT:-170}" "${BENCH[@]}" --texts "$TEXTS" --no-baselines --variant packed/flash,compile=true \
  --json "$OUT/compile.json" 2>&1 | tee -a "$OUT/compile.txt"
echo "compile exit: ${PIPESTATUS[0]}" | tee -a "$OUT/compile.txt"

if [ "${SMOKE:-0}" = 1 ]; then
  echo "== 4. smoke ($SHAPE on $DEVICE)" | tee "$OUT/smoke.txt"
  timeout 200 "$PY" benchmarks/gpu_smoke.py --shape "$SHAPE" --device "$DEVICE" "${TOKENIZER[@]}" 2>&1 | tee -a "$OUT/smoke.txt"
  echo "smoke exit: ${PIPESTATUS[0]}" | tee -a "$OUT/smoke.txt"
fi
