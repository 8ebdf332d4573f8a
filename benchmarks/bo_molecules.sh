#!/usr/bin/env bash
# The molecule BO numbers of the README: penalized logP from the model's ZINC-250k training set,
# BO (latent points decoded; and bo-offspring: children of the best molecules by mol_ga's operators,
# encoded and chosen by Thompson sampling on the latent GP) against random latent points and
# mol_ga's Graph GA, 5 seeds x 250 objective calls on new molecules each, every latent point
# decoded 10 times by Gumbel sampling (the most frequent valid molecule kept;
# benchmarks/bo_seed_studies.py --study decoding); results are copied to
# benchmarks/results/bo_molecules_<NAME>.*.
#
#   benchmarks/bo_molecules.sh [CHECKPOINT] [NAME]      # defaults: zinc (the shipped model), zinc
#   SEEDS=1 BUDGET=20 benchmarks/bo_molecules.sh RUN tiny  # a quick check of the pipeline
#   RETRAIN=50 METHODS=bo benchmarks/bo_molecules.sh zinc zinc_retraining
#       # BO with weighted retraining before batch 1 and after every 50 new molecules (grammar_ae.bo.retraining)
#
# The first run encodes and scores the 225k training molecules once (cached under $GRAMMAR_AE_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKPOINT=${1:-zinc}
NAME=${2:-$(basename "$CHECKPOINT")}
SEEDS=${SEEDS:-5}
BUDGET=${BUDGET:-250}
SAMPLES=${SAMPLES:-10}  # decodes per latent point
RETRAIN=${RETRAIN:-0}  # objective calls between weighted retrainings of the model (0: never)
METHODS=${METHODS:-bo,bo-offspring,random,ga}
OUT=${OUT:-benchmarks/runs/bo/molecules-$NAME}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
grammar-ae benchmark bo --target logp --checkpoint "$CHECKPOINT" --method "$METHODS" --seeds "$SEEDS" --budget "$BUDGET" --samples-per-point "$SAMPLES" \
  --retrain-every "$RETRAIN" --label "$NAME" --device cpu --quiet --out "$OUT"
for extension in md json csv; do cp "$OUT/bo_benchmark.$extension" "benchmarks/results/bo_molecules_$NAME.$extension"; done
for file in best_so_far.png best_new_molecules.png; do cp "$OUT/$file" "benchmarks/results/bo_molecules_${NAME}_$file"; done
