#!/usr/bin/env bash
# The BO numbers of the README: the expression protocol on the trained grae and grae-gmm runs
# (after `python benchmarks/sequence_models.py --grammar expressions --presets grae grae-gmm
# --epochs 15`), and an end-to-end molecule run on the small CPU model (after
# `benchmarks/sequence_models.py --grammar smiles --limit 20000 ...`, see the README).
# Results are copied to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-5}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# each model twice: the published loop (EI over the whole box of the training latents) and
# with --trust-region (EI in an adaptive box around the best point so far)
for model in grae grae-gmm; do
  for variant in "" "-tr"; do
    run="$model$variant"
    grammar-ae benchmark bo --target expression --checkpoint "benchmarks/runs/expressions/$model" --seeds "$SEEDS" \
      --max-training-points 10000 ${variant:+--trust-region} --label "$model${variant:+, trust region}" \
      --device cpu --quiet --out "benchmarks/runs/bo/expressions-$run"
    cp "benchmarks/runs/bo/expressions-$run/bo_benchmark.md" "benchmarks/results/bo_expressions_$run.md"
    cp "benchmarks/runs/bo/expressions-$run/bo_benchmark.json" "benchmarks/results/bo_expressions_$run.json"
  done
done
grammar-ae optimize --target logp --checkpoint benchmarks/runs/smiles/grae --iterations 3 --batch-size 20 \
  --samples-per-point 100 --max-training-points 5000 --device cpu --seed 0 --quiet --out benchmarks/runs/bo/logp-grae-cpu
cp benchmarks/runs/bo/logp-grae-cpu/summary.json benchmarks/results/bo_logp_grae_cpu.json
cp benchmarks/runs/bo/logp-grae-cpu/top3.png benchmarks/results/bo_logp_grae_cpu_top3.png
