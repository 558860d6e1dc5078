#!/usr/bin/env bash
# Ablation: the same 500-step budget (batch 64, seed 0) for each loss alone and combined,
# scored on held-out LFW folds 7-8. Two runs at a time, one thread each.
set -u
cd "$(dirname "$0")/../.."
. model_build/recipes/malloc.sh
COMMON="--data ../shared/data/lfw --data ../shared/data/celeba_subset --data ../shared/data/kz_faces \
 --pairs ../shared/data/lfw_pairs_dev.txt --holdout-folds 7,8 --steps 500 --eval-every 500 \
 --checkpoint-every 250 --workers 1 --threads 1"
run() { name=$1; shift; .venv/bin/model-build --no-progress --cache-dir cache train $COMMON --run-dir runs/abl-$name "$@" > runs/abl-$name.log 2>&1; }
run distill --losses distill=1 & run relational --losses relational=1 & wait
run triplet --losses triplet-semi-hard=1 & run combo --losses distill=1,relational=4,triplet-semi-hard=0.5 & wait
run distill-rel --losses distill=1,relational=4 & \
  run combo-mbf --teacher mbf --losses distill=1,relational=4,triplet-semi-hard=0.5 & wait
