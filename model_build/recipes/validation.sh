#!/usr/bin/env bash
# The shipped encoder: distillation from SFace with LFW dev folds 7-8's people held out of
# training, so that the figures and the calibrated threshold are on unseen people
# (docs/model.md, "Training"). About 40 min of labelling and 75 min of training on 2 cores.
set -u
cd "$(dirname "$0")/../.."
.venv/bin/model-build --no-progress --cache-dir cache train \
  --data ../shared/data/lfw --data ../shared/data/celeba_subset --data ../shared/data/kz_faces \
  --pairs ../shared/data/lfw_pairs_dev.txt --holdout-folds 7,8 \
  --teacher sface --losses distill=1 --views 4 --steps 3800 --eval-every 1900 --workers 2 \
  --run-dir runs/v2-holdout "$@"
.venv/bin/model-build --cache-dir cache export --run-dir runs/v2-holdout --out daemon/models
