#!/usr/bin/env bash
# The shipped encoder: distillation from SFace with LFW dev folds 7-8's people held out of
# training, so that the figures and the calibrated threshold are on unseen people
# (docs/model.md, "Training"). Thirteen warm-restarted stages: about 20 min of aligning and
# labelling, 50 + 50 + 80 min of training on 2 cores, then another 17 min of labelling for
# stage 4's views (seed 1) and 60 min of training, 23 + 74 min for stage 5 (seed 2) and
# 26 + 84 min for stage 6 (seed 3; its first 250 steps ran without malloc.sh) and 27 + 90 min
# for stage 7 (seed 4), then 13 + 24 min for stage 8 (seed 5) on a faster 2-core AMD EPYC
# (Zen 5, AVX-512), 35 + 74 min for stage 12 (eight seed-8 views) from stage 8's weights and
# 24 + 46 min for stage 13 (seed 9) from stage 12's on an AVX2-only AMD EPYC, then 15 + 42 min
# for stage 15 (seed 11) and 14 + 26 min for stage 16 (seed 12) on an AVX-512 VNNI AMD EPYC,
# then 16 + 41 min for stage 17 (seed 13) on another (the crops aligned afresh), then
# 18 + 60 min for stage 21 (seed 21) and 18 + 42 min for stage 22 (seed 22) on a third.
# Stages 9-11 were trained and not shipped (docs/model.md, "Stage 9" and "Stage 10"), nor was
# stage 14 (a tie; "Centre loss", recipes/ablation.sh); stage 15 was a tie on its own, stage 16
# from its weights was shipped, then stage 17 from stage 16's; stages 18 (from stage 17's),
# 19 (from 18's) and 20 (from 17's at half the peak rate, "Stage 20") were not better, nor was
# stage 21 on its own (from 17's, with blended views and a moving average of the weights,
# "Stage 21"); stage 22 from 21's is shipped, exported with the batch norms folded ("Stage 22",
# "Folding").
# Stages 1-8 were built with Keras's batch-norm epsilon 1e-3 in the global depthwise conv;
# this checkout builds 1e-2 (GDC_BN_EPSILON, models/encoder.py), as stages 12-22 were. To
# reproduce the shipped weights exactly, run stages 1-8 from commit db0957e, then 12-22 from here.
set -eu
cd "$(dirname "$0")/../.."
. model_build/recipes/malloc.sh
DATA="--data ../shared/data/lfw --data ../shared/data/celeba_subset --data ../shared/data/kz_faces \
  --pairs ../shared/data/lfw_pairs_dev.txt --holdout-folds 7,8 --teacher sface --losses distill=1 --views 4 --workers 2"
# Every stage: the same data, teacher and loss; only its schedule, seed and start differ.
train() { .venv/bin/model-build --no-progress --cache-dir cache train $DATA "$@"; }
# Stage 1: 3800 steps, peak learning rate 3e-3.
train --steps 3800 --eval-every 1900 --run-dir runs/v2-holdout
# Stage 2: a warm restart from stage 1, 2800 steps at half the peak learning rate.
train --steps 2800 --lr 1.5e-3 --eval-every 1400 --init-from runs/v2-holdout/encoder.keras --run-dir runs/v2-stage2
# Stage 3: another warm restart, 5000 steps at 1.2e-3 (in a later session, from the stage-2
# weights that model_build/weights/encoder.keras then held).
train --steps 5000 --lr 1.2e-3 --eval-every 2500 --init-from runs/v2-stage2/encoder.keras --run-dir runs/v2-stage3
# Stage 4: from stage 3, on four new views of every image (--seed 1 renders other augmented
# pixels, which the teacher labels again), 4500 steps at 1e-3.
train --steps 4500 --lr 1e-3 --seed 1 --eval-every 2250 --init-from runs/v2-stage3/encoder.keras --run-dir runs/v2-stage4
# Stage 5: from stage 4, on four more new views (--seed 2), 5500 steps at 1e-3.
train --steps 5500 --lr 1e-3 --seed 2 --eval-every 2750 --init-from runs/v2-stage4/encoder.keras --run-dir runs/v2-stage5
# Stage 6: from stage 5, on four more new views (--seed 3), 4500 steps at 1e-3.
train --steps 4500 --lr 1e-3 --seed 3 --eval-every 2250 --init-from runs/v2-stage5/encoder.keras --run-dir runs/v2-stage6
# Stage 7: from stage 6, on four more new views (--seed 4), 4500 steps at 1e-3.
train --steps 4500 --lr 1e-3 --seed 4 --eval-every 2250 --init-from runs/v2-stage6/encoder.keras --run-dir runs/v2-stage7
# Stage 8: from stage 7, on four more new views (--seed 5), 4000 steps at 1e-3.
train --steps 4000 --lr 1e-3 --seed 5 --eval-every 2000 --init-from runs/v2-stage7/encoder.keras --run-dir runs/v2-stage8
.venv/bin/model-build --cache-dir cache export --run-dir runs/v2-stage8 --out runs/v2-stage8/export
# Stage 12: from stage 8, on eight new views (--seed 8), 7000 steps at 1e-3, with the bounded
# batch norm (stage 9's longer schedule, which int8 could not follow before it).
train --views 8 \
  --steps 7000 --lr 1e-3 --seed 8 --eval-every 3500 --init-from runs/v2-stage8/encoder.keras --run-dir runs/v2-stage12
.venv/bin/model-build --cache-dir cache export --run-dir runs/v2-stage12 --out runs/v2-stage12/export
# Stage 13: from stage 12, on four new views (--seed 9), 3000 steps at 1e-3.
train --steps 3000 --lr 1e-3 --seed 9 --eval-every 1500 --init-from runs/v2-stage12/encoder.keras --run-dir runs/v2-stage13
.venv/bin/model-build --cache-dir cache export --run-dir runs/v2-stage13 --out runs/v2-stage13/export
# Stage 15: from stage 13, on four new views (--seed 11), 5000 steps at 1e-3 (a tie with stage 13).
train --steps 5000 --lr 1e-3 --seed 11 --eval-every 2500 --init-from runs/v2-stage13/encoder.keras --run-dir runs/v2-stage15
# Stage 16: from stage 15, on four new views (--seed 12), 3000 steps at 1e-3.
train --steps 3000 --lr 1e-3 --seed 12 --eval-every 1500 --init-from runs/v2-stage15/encoder.keras --run-dir runs/v2-stage16
# Stage 17: from stage 16, on four new views (--seed 13), 5000 steps at 1e-3.
train --steps 5000 --lr 1e-3 --seed 13 --eval-every 2500 --init-from runs/v2-stage16/encoder.keras --run-dir runs/v2-stage17
# Stage 21: from stage 17, seed-21 views, a quarter blended with another face, a moving average saved.
train --steps 5000 --lr 1e-3 --seed 21 --eval-every 2500 --blend 0.25 --ema-decay 0.999 \
  --init-from runs/v2-stage17/encoder.keras --run-dir runs/v2-stage21
# Stage 22 (shipped): from stage 21's average, the same options on seed-22 views, 3500 steps.
train --steps 3500 --lr 1e-3 --seed 22 --eval-every 1750 --blend 0.25 --ema-decay 0.999 \
  --init-from runs/v2-stage21/encoder.keras --run-dir runs/v2-stage22
.venv/bin/model-build --cache-dir cache export --run-dir runs/v2-stage22 --out daemon/models
