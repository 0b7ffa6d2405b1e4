#!/bin/bash
# Short-budget GIM ablations: every variant fine-tuned from the base weights with the same short schedule
# (ITERS iterations under torchrun x2 on CPU: 4 pair samples per iteration; LR 1e-4, warmup 100, halving
# every 100 from 300), exported to runs/ablations/NAME.pt. Resumable: a variant with a checkpoint continues.
#   pipelines/ablations/run_short.sh full gim_control_no_video gim_no_propagation ...   (ITERS=600 default)
#   SEED=1 pipelines/ablations/run_short.sh gim_video_synth_x4   # a repeat drawing other samples (run-to-run
#                                                                # noise): runs/ablations/abl_video_synth_x4_seed1.pt
# then: gimsfm bench zeb --suite zeb-lite --max-keypoints 1024 --matcher sift-lightglue-base \
#         --matcher sift-lightglue-gim:runs/ablations/abl_full.pt ... --out runs/bench/ablations
set -euo pipefail
cd "$(dirname "$0")/../.."
ITERS=${ITERS:-600}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
for v in "$@"; do
  if [ "$v" = full ]; then preset=pipelines/train_sift_lightglue_gim.yaml; else preset=pipelines/ablations/$v.yaml; fi
  name=abl_${v#gim_}${SEED:+_seed$SEED}
  set_args=(--set "name=$name" --set "out_dir=runs/ablations/{name}" --set optim.warmup=100
            --set optim.decay_start=300 --set optim.decay_every=100 --set train.val_every=1000000
            --set train.compact_checkpoint=null ${SEED:+--set data.sample_seed=$SEED})
  resume=(); [ -f "runs/ablations/$name/checkpoint.pt" ] && resume=(--resume)
  echo "[$(date +%T)] $name: training to $ITERS iterations"
  "$PY" -m torch.distributed.run --standalone --nproc-per-node 2 -m gimsfm train --preset "$preset" \
      "${set_args[@]}" "${resume[@]}" --max-iters "$ITERS" --no-progress --device cpu
  "$PY" -m gimsfm train --preset "$preset" "${set_args[@]}" --export "runs/ablations/$name.pt" \
      --notes "Short-budget ablation ($v): $ITERS iterations from sift_lightglue_base (pipelines/ablations/run_short.sh)."
done
