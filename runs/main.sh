#!/usr/bin/env bash
# The validation run: the shipped recipe with LFW dev folds 7-8's people held out.
set -u
cd "$(dirname "$0")/.."
.venv/bin/model-build --no-progress --cache-dir cache train \
  --data ../shared/data/lfw --data ../shared/data/celeba_subset --data ../shared/data/kz_faces \
  --pairs ../shared/data/lfw_pairs_dev.txt --holdout-folds 7,8 \
  --teacher sface --losses distill=1 --steps 5000 --eval-every 1000 --workers 2 \
  --run-dir runs/v2-holdout "$@"
