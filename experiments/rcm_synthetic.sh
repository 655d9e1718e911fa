#!/usr/bin/env bash
# Variants on the embedded synthetic benchmark, five tasks (semseg, depth,
# normals, edge, saliency), demo-sized networks (configs/demo.cfg: ResNet-18
# x0.25, 96x128, 300 steps per task), then the results table with dm.
#
#   VARIANTS=rc_ri_nff REFERENCE_VARIANT=rc_ri_nff \
#       bash experiments/rcm_synthetic.sh [RUN_DIR]   # runs/rcm_synthetic
#   # The paper's comparison (TASKS: any subset, default all five):
#   TASKS="semseg depth" REFERENCE_VARIANT=conv \
#       VARIANTS="shared ra_series ra_parallel rc_ri_nff" \
#       OUTPUT=experiments/results/variants_synthetic.md \
#       bash experiments/rcm_synthetic.sh runs/variants_synthetic
#
# Rows:
#   "<REFERENCE_VARIANT>, one model per task": five models, one task each,
#     the reference of dm (the paper's: fine-tuned single-task networks).
#   "<variant>, one model, 5 tasks": for each of VARIANTS, one model with
#     the tasks added one after another.
# Unset variables use the configs' default variant ("default" in the
# table). Every run starts from the same pretrained weights (bank.npz of the
# first run). RCM trains nothing shared, so with RCM on both sides the rows
# differ only by each head's random initialization: dm then measures that
# noise, not interference.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/rcm_synthetic}
read -r -a TASKS <<< "${TASKS:-semseg depth normals edge saliency}"
read -r -a VARIANT_LIST <<< "${VARIANTS:-default}"
REFERENCE=${REFERENCE_VARIANT:-default}
COMMON=(--flagfile=configs/demo.cfg --export_dir= --seed=0)

variant_flag() { [ "$1" = default ] || echo "--variant=$1"; }

FIRST="$RUN/${VARIANT_LIST[0]}_5tasks"
ROWS=()
for variant in "${VARIANT_LIST[@]}"; do
  dir="$RUN/${variant}_5tasks"
  bank=()
  [ "$dir" = "$FIRST" ] || bank=(--bank="npz:$FIRST/bank.npz")
  python train.py "${COMMON[@]}" $(variant_flag "$variant") "${bank[@]}" \
      --model_dir="$dir" --tasks="$(IFS=,; echo "${TASKS[*]}")"
  ROWS+=(--row="$variant, one model, ${#TASKS[@]} tasks=$dir")
done
SINGLE=()
for task in "${TASKS[@]}"; do
  dir="$RUN/${REFERENCE}_$task"
  python train.py "${COMMON[@]}" $(variant_flag "$REFERENCE") \
      --model_dir="$dir" --tasks="$task" --bank="npz:$FIRST/bank.npz"
  SINGLE+=("$dir")
done
python experiments/results_table.py \
    --row="$REFERENCE, one model per task=$(IFS=,; echo "${SINGLE[*]}")" \
    "${ROWS[@]}" --reference="$REFERENCE, one model per task" \
    --eval_examples=64 --batch_size=8 \
    --output="${OUTPUT:-experiments/results/rcm_synthetic.md}"
