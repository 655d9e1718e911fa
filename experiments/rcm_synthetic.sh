#!/usr/bin/env bash
# Variants on the embedded synthetic benchmark, five tasks (semseg, depth,
# normals, edge, saliency), demo-sized networks (configs/demo.cfg: ResNet-18
# x0.25, 96x128, 300 steps per task), then the results table with dm.
#
#   VARIANTS=rc_ri_nff REFERENCE_VARIANT=rc_ri_nff \
#       bash experiments/rcm_synthetic.sh [RUN_DIR]   # runs/rcm_synthetic
#   # The paper's comparison (TASKS: any subset, default all five), over
#   # three seeds (mean ± standard deviation, docs/evaluation.md):
#   TASKS="semseg depth" REFERENCE_VARIANT=conv SEEDS="0 1 2" \
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
# table). Within a seed every run starts from the same pretrained weights
# (bank.npz of the seed's first run). RCM trains nothing shared, so with
# RCM on both sides the rows differ only by each head's random
# initialization: dm then measures that noise, not interference.
#
# EXTRA_FLAGS: more train.py flags for every run (word-split), e.g.
# EXTRA_FLAGS=--mixed_precision=mixed_bfloat16.
# SEEDS (default "0"): with one seed, the table goes to OUTPUT; with
# several, each seed's runs go to RUN_DIR/seed<N> and its table to
# RUN_DIR/seed<N>.md, and OUTPUT gets the mean ± sample standard deviation
# of every cell (experiments/seeds_table.py). --seed changes the pretrained
# bank, the data order and every initialization; the 64 validation scenes
# are the same for all seeds. Rerun after an interruption: train.py
# resumes a killed run and skips the tasks a model already has.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/rcm_synthetic}
read -r -a TASKS <<< "${TASKS:-semseg depth normals edge saliency}"
read -r -a VARIANT_LIST <<< "${VARIANTS:-default}"
read -r -a SEED_LIST <<< "${SEEDS:-0}"
REFERENCE=${REFERENCE_VARIANT:-default}
EXTRA_FLAGS=${EXTRA_FLAGS:-}  # e.g. --mixed_precision=mixed_bfloat16
OUT=${OUTPUT:-experiments/results/rcm_synthetic.md}

variant_flag() { [ "$1" = default ] || echo "--variant=$1"; }

one_seed() {  # one_seed SEED RUN_DIR TABLE.md
  local seed=$1 run=$2 table=$3
  local common=(--flagfile=configs/demo.cfg --export_dir= --seed="$seed"
                $EXTRA_FLAGS)
  local first="$run/${VARIANT_LIST[0]}_5tasks" rows=() single=()
  for variant in "${VARIANT_LIST[@]}"; do
    local dir="$run/${variant}_5tasks" bank=()
    [ "$dir" = "$first" ] || bank=(--bank="npz:$first/bank.npz")
    python train.py "${common[@]}" $(variant_flag "$variant") "${bank[@]}" \
        --model_dir="$dir" --tasks="$(IFS=,; echo "${TASKS[*]}")"
    rows+=(--row="$variant, one model, ${#TASKS[@]} tasks=$dir")
  done
  for task in "${TASKS[@]}"; do
    local dir="$run/${REFERENCE}_$task"
    python train.py "${common[@]}" $(variant_flag "$REFERENCE") \
        --model_dir="$dir" --tasks="$task" --bank="npz:$first/bank.npz"
    single+=("$dir")
  done
  python experiments/results_table.py \
      --row="$REFERENCE, one model per task=$(IFS=,; echo "${single[*]}")" \
      "${rows[@]}" --reference="$REFERENCE, one model per task" \
      --eval_examples=64 --batch_size=8 --output="$table"
}

if [ "${#SEED_LIST[@]}" -eq 1 ]; then
  one_seed "${SEED_LIST[0]}" "$RUN" "$OUT"
  exit 0
fi
TABLES=()
for seed in "${SEED_LIST[@]}"; do
  one_seed "$seed" "$RUN/seed$seed" "$RUN/seed$seed.md"
  TABLES+=("$RUN/seed$seed.json")
done
python experiments/seeds_table.py --output="$OUT" "${TABLES[@]}"
