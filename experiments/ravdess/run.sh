#!/usr/bin/env bash
# The RAVDESS study in one command (experiments/ravdess/README.md):
#   bash experiments/ravdess/run.sh              # every arm x EmoBox's 6 folds; LoRA on LORA_FOLDS (default: 1)
#   LORA_FOLDS=1,2,3,4,5,6 bash experiments/ravdess/run.sh
# Finished jobs are reused (reuse_finished), so a rerun only fills gaps and rebuilds the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${MMEMO_SHARED:-../shared}
PY=${PY:-.venv/bin/python}
mmemo() { "$PY" -m mmemo.cli "$@"; }
start=$(date +%s)

# 1. EmoBox's RAVDESS split files over the real audio (read from ../shared, never copied)
if [ ! -f data/emobox/ravdess/corpus.json ]; then
  mmemo data prepare emobox --root "$SHARED/emobox/ravdess" --audio-root "$SHARED/realdata/ravdess" \
    --out data/emobox/ravdess
fi
mmemo data check data/emobox/ravdess

# 2. every arm that caches frozen features or trains from scratch, on all 6 folds
ARMS=ravdess/mfcc_svm,ravdess/spectral,ravdess/probe_base,ravdess/tiny_weighted,ravdess/tiny_emobox
ARMS=$ARMS,ravdess/base_weighted,ravdess/base_emobox,ravdess/text_only,ravdess/base_text
mmemo train -m "experiment=$ARMS" data.fold=1,2,3,4,5,6 logger=csv

# 3. LoRA fine-tuning of Whisper base (re-encodes audio every step: the expensive arm)
mmemo train -m experiment=ravdess/base_lora "data.fold=${LORA_FOLDS:-1}" logger=csv ${LORA_OVERRIDES:-}

# 4. one table: this study's rows and EmoBox's published ones, marked as such
mmemo table runs/ravdess --rows study.arm --columns dataset --cited experiments/ravdess/emobox_table4.csv \
  --out experiments/ravdess/results --name ravdess --plot --chance 12.5 \
  --title "RAVDESS, EmoBox's 6 speaker-independent folds (8 classes)"
echo "RAVDESS study: $(( $(date +%s) - start )) s on $(nproc) cores" | tee experiments/ravdess/results/time.txt
