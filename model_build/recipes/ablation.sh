#!/usr/bin/env bash
# Ablation: the same 500-step budget (batch 64, seed 0) for each loss alone and combined,
# scored on held-out LFW folds 7-8. Two runs at a time, one thread each.
set -u
cd "$(dirname "$0")/../.."
. model_build/recipes/malloc.sh
DATA="--data ../shared/data/lfw --data ../shared/data/celeba_subset --data ../shared/data/kz_faces \
 --pairs ../shared/data/lfw_pairs_dev.txt --holdout-folds 7,8"
COMMON="$DATA --steps 500 --eval-every 500 --checkpoint-every 250 --workers 1 --threads 1"
run() { name=$1; shift; .venv/bin/model-build --no-progress --cache-dir cache train $COMMON --run-dir runs/abl-$name "$@" > runs/abl-$name.log 2>&1; }
run distill --losses distill=1 & run relational --losses relational=1 & wait
run triplet --losses triplet-semi-hard=1 & run combo --losses distill=1,relational=4,triplet-semi-hard=0.5 & wait
run distill-rel --losses distill=1,relational=4 & \
  run combo-mbf --teacher mbf --losses distill=1,relational=4,triplet-semi-hard=0.5 & wait
# Stage 14's pair (docs/model.md, "Centre loss"): 2 000 steps from stage 13's weights (what
# model_build/weights/encoder.keras held at commit 93df572) on four seed-10 views,
# distillation alone vs with the centre loss (P x K + U batches).
S14="$DATA --teacher sface --views 4 --threads 1 --steps 2000 --lr 1e-3 --seed 10 --eval-every 1000 \
 --init-from model_build/weights/encoder.keras"
.venv/bin/model-build --no-progress --cache-dir cache train $S14 --workers 2 --losses distill=1 \
  --run-dir runs/s14-distill > runs/s14-distill.log 2>&1 &
first=$!
# The first run renders and labels the views; the second starts once it trains, reusing them
# (or at once if the first has died, so that its own error shows).
while kill -0 $first 2>/dev/null && ! grep -q 'model_build.train' runs/s14-distill.log 2>/dev/null; do sleep 30; done
.venv/bin/model-build --no-progress --cache-dir cache train $S14 --workers 1 --losses distill=1,centre=0.5 \
  --run-dir runs/s14-centre > runs/s14-centre.log 2>&1
wait
