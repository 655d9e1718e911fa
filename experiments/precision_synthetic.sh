#!/usr/bin/env bash
# What --mixed_precision=mixed_bfloat16 costs in metrics: for each seed, the
# demo model (configs/demo.cfg: ResNet-18 x0.25 RCM, 96x128, 300 steps per
# task) trained twice from the same pretrained bank, same data order and
# same initialization, once in float32 and once in mixed_bfloat16, both
# scored in float32 on the 64 synthetic validation scenes; dm of the
# bfloat16 row is against the float32 row of the same seed. Then the mean
# ± standard deviation over seeds (experiments/seeds_table.py).
#
#   SEEDS="0 1 2" bash experiments/precision_synthetic.sh [RUN_DIR]
#   # runs/precision_synthetic; TASKS (default "semseg depth") and OUTPUT
#   # (default experiments/results/precision_synthetic.md) as in
#   # experiments/rcm_synthetic.sh.
#
# Without native bfloat16 (AMX, AVX512-BF16) the bfloat16 runs are emulated
# by Eigen: about 8x slower per step on an AVX2 EPYC, and the accumulations
# may round differently from the native instructions. Rerun after an interruption: train.py resumes a
# killed run and skips the tasks a model already has.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/precision_synthetic}
read -r -a TASKS <<< "${TASKS:-semseg depth}"
read -r -a SEED_LIST <<< "${SEEDS:-0 1 2}"
OUT=${OUTPUT:-experiments/results/precision_synthetic.md}
TASK_LIST=$(IFS=,; echo "${TASKS[*]}")

TABLES=()
for seed in "${SEED_LIST[@]}"; do
  run="$RUN/seed$seed"
  common=(--flagfile=configs/demo.cfg --export_dir= --seed="$seed"
          --tasks="$TASK_LIST")
  python train.py "${common[@]}" --model_dir="$run/float32"
  python train.py "${common[@]}" --model_dir="$run/mixed_bfloat16" \
      --mixed_precision=mixed_bfloat16 --bank="npz:$run/float32/bank.npz"
  python experiments/results_table.py --row="float32=$run/float32" \
      --row="mixed_bfloat16=$run/mixed_bfloat16" --reference=float32 \
      --eval_examples=64 --batch_size=8 --output="$run.md"
  TABLES+=("$run.json")
done
python experiments/seeds_table.py --output="$OUT" "${TABLES[@]}"
