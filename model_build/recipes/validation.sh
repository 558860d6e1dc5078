#!/usr/bin/env bash
# The shipped encoder: distillation from SFace with LFW dev folds 7-8's people held out of
# training, so that the figures and the calibrated threshold are on unseen people
# (docs/model.md, "Training"). Three stages on the same cached views and teacher labels:
# about 25 min of aligning and labelling, then 50 + 50 + 80 min of training on 2 cores.
set -eu
cd "$(dirname "$0")/../.."
DATA="--data ../shared/data/lfw --data ../shared/data/celeba_subset --data ../shared/data/kz_faces \
  --pairs ../shared/data/lfw_pairs_dev.txt --holdout-folds 7,8 --teacher sface --losses distill=1 --views 4 --workers 2"
# Stage 1: 3800 steps, peak learning rate 3e-3.
.venv/bin/model-build --no-progress --cache-dir cache train $DATA \
  --steps 3800 --eval-every 1900 --run-dir runs/v2-holdout
# Stage 2: a warm restart from stage 1, 2800 steps at half the peak learning rate.
.venv/bin/model-build --no-progress --cache-dir cache train $DATA \
  --steps 2800 --lr 1.5e-3 --eval-every 1400 --init-from runs/v2-holdout/encoder.keras --run-dir runs/v2-stage2
# Stage 3: another warm restart, 5000 steps at 1.2e-3 (in a later session, from the stage-2
# weights that model_build/weights/encoder.keras then held).
.venv/bin/model-build --no-progress --cache-dir cache train $DATA \
  --steps 5000 --lr 1.2e-3 --eval-every 2500 --init-from runs/v2-stage2/encoder.keras --run-dir runs/v2-stage3
.venv/bin/model-build --cache-dir cache export --run-dir runs/v2-stage3 --out daemon/models
