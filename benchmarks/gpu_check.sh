#!/usr/bin/env bash
# One device run: environment, GPU smoke test of the encoder, 7B-shaped throughput benchmark.
# Everything is written to $OUT as it goes.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine (SHAPE=7b)
#   SHAPE=tiny DEVICE=cpu TEXTS=64 bash benchmarks/gpu_check.sh    # a dry run of the script on a CPU
#
# Python packages evalkit needs that the machine may lack (omegaconf, antlr4) and the Mistral
# tokenizer.model are read from ./.devsite when it exists (PYTHONPATH, --tokenizer).
set -uo pipefail
OUT=${OUT:-/tmp/evalkit-gpu-check}
SHAPE=${SHAPE:-7b}
DEVICE=${DEVICE:-cuda}
TEXTS=${TEXTS:-2048}
CARD_TEXTS=${CARD_TEXTS:-512}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 EVALKIT_CACHE=${EVALKIT_CACHE:-/tmp/evalkit-cache}
PY=$(command -v python3 || command -v python)
TOKENIZER=()
if [ -d .devsite ]; then
  export PYTHONPATH=$PWD/.devsite${PYTHONPATH:+:$PYTHONPATH}
  [ -f .devsite/tokenizer.model.v1 ] && TOKENIZER=(--tokenizer .devsite/tokenizer.model.v1)
fi

{
  date -u
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
  "$PY" -c "import sys, torch, transformers; print('python', sys.version.split()[0], 'torch', torch.__version__,
'transformers', transformers.__version__, 'cuda', torch.version.cuda,
'flash op', hasattr(torch.ops.aten, '_flash_attention_forward'))"
} 2>&1 | tee "$OUT/env.txt"

echo "== smoke ($SHAPE on $DEVICE)" | tee "$OUT/smoke.txt"
timeout 200 "$PY" benchmarks/gpu_smoke.py --shape "$SHAPE" --device "$DEVICE" "${TOKENIZER[@]}" 2>&1 | tee -a "$OUT/smoke.txt"
echo "smoke exit: ${PIPESTATUS[0]}" | tee -a "$OUT/smoke.txt"

echo "== throughput ($SHAPE, $TEXTS texts, on $DEVICE)" | tee "$OUT/bench.txt"
DTYPE=float16; [ "$DEVICE" = cpu ] && DTYPE=float32
timeout 420 "$PY" benchmarks/encode_throughput.py --shape "$SHAPE" --dtype "$DTYPE" --device "$DEVICE" \
  --texts "$TEXTS" --card-texts "$CARD_TEXTS" --variant padded/auto --variant packed/sdpa --variant packed/flex \
  --json "$OUT/bench.json" "${TOKENIZER[@]}" 2>&1 | tee -a "$OUT/bench.txt"
echo "bench exit: ${PIPESTATUS[0]}" | tee -a "$OUT/bench.txt"
