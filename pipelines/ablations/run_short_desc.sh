#!/bin/bash
# Short-budget GIM ablations of the patch descriptor: every variant fine-tuned from the exported base weights
# (gimsfm/weights/dog_desc_base.pt) with the same short schedule (ITERS steps of 512 patch pairs, LR 3e-4,
# warmup 50, halving every ITERS/4 from ITERS/2), exported to runs/ablations/NAME.pt. Resumable.
#   pipelines/ablations/run_short_desc.sh full desc_no_propagation desc_single_method desc_no_augmentation
# then: gimsfm bench zeb --suite zeb-lite-real --matcher dog-desc-base \
#         --matcher dog-desc-gim:runs/ablations/desc_full.pt ... --out runs/bench/desc_ablations
set -euo pipefail
cd "$(dirname "$0")/../.."
ITERS=${ITERS:-400}
THREADS=${THREADS:-2}   # torch threads of the training process
WORKERS=${WORKERS:-2}   # processes caching the variant's records first
PY=${PY:-.venv/bin/python}
for v in "$@"; do
  if [ "$v" = full ]; then preset=pipelines/train_dog_desc_gim.yaml; else preset=pipelines/ablations/$v.yaml; fi
  name=desc_${v#desc_}${SEED:+_seed$SEED}
  set_args=(--set "name=$name" --set "out_dir=runs/ablations/{name}" --set optim.warmup=50
            --set optim.decay_start=$((ITERS / 2)) --set optim.decay_every=$((ITERS / 4)) --set train.val_every=1000000
            --set train.compact_checkpoint=null --set train.threads=$THREADS ${SEED:+--set data.sample_seed=$SEED})
  resume=(); [ -f "runs/ablations/$name/checkpoint.pt" ] && resume=(--resume)
  echo "[$(date +%T)] $name: caching records ($WORKERS workers)"
  "$PY" -m gimsfm train --preset "$preset" "${set_args[@]}" --prepare --workers "$WORKERS"
  echo "[$(date +%T)] $name: training to $ITERS steps"
  "$PY" -m gimsfm train --preset "$preset" "${set_args[@]}" "${resume[@]}" --max-iters "$ITERS" --no-progress --device cpu
  "$PY" -m gimsfm train --preset "$preset" "${set_args[@]}" --export "runs/ablations/$name.pt" \
      --notes "Short-budget ablation ($v): $ITERS steps from dog_desc_base (pipelines/ablations/run_short_desc.sh)."
done
