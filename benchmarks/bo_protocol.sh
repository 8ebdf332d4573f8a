#!/usr/bin/env bash
# The expression BO numbers of the README, 5 seeds each; results are copied to benchmarks/results/.
#
#   benchmarks/bo_protocol.sh discovery [MODEL]   # default MODEL: benchmarks/runs/discovery/grae (trained when missing)
#   benchmarks/bo_protocol.sh published [MODEL]   # default MODEL: the shipped `expressions`
#   benchmarks/bo_protocol.sh published-old [MODEL]
#   benchmarks/bo_protocol.sh published-narrow [MODEL]
#
# discovery: MODEL learned the published set without every expression scoring below 0.5
#   (benchmarks/discovery_data.py, then `grammar-ae train --grammar expressions --model grae
#   --epochs 15 --data FILE`; its training time goes into bo_discovery_model.json). Starting from its training strings, BO, random latent points and
#   the derivation-tree GA, and BO choosing among the GA operators' children of the best strings
#   (bo-offspring), each get 250 objective calls on new strings; the table counts the
#   seeds that found a string scoring below 0.1 and the exact fit. Batches (GA: generations) of 10
#   (README: BO finds the exact fit in them, not in batches of 50).
# published: the published protocol on the full-data grae model (5 iterations x 50 points,
#   rediscoveries included) with the new defaults; published-old: the old defaults (sparse GP on
#   10,000 points, batch log-EI, 25 samples per point, every acquired point proposed, the region widened only
#   when a batch brings nothing new, never restarted) in the trust region; published-narrow: the new defaults
#   with the region widened only when a batch brings nothing new and never restarted, as before those settings.
set -euo pipefail
cd "$(dirname "$0")/.."
PART=${1:?usage: bo_protocol.sh discovery|published|published-old|published-narrow [MODEL]}
SEEDS=${SEEDS:-5}
OUT=${OUT:-benchmarks/runs/bo}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

copy() {  # run folder, result name
  for extension in md json csv; do cp "$1/bo_benchmark.$extension" "benchmarks/results/$2.$extension"; done
  cp "$1/best_so_far.png" "benchmarks/results/$2_best_so_far.png"
}

case "$PART" in
  discovery)
    MODEL=${2:-benchmarks/runs/discovery/grae}
    if [ ! -f "$MODEL/best.pt" ]; then
      python benchmarks/discovery_data.py --out benchmarks/runs/discovery/expressions_0.5.txt
      grammar-ae train --grammar expressions --model grae --epochs 15 --quiet \
        --data benchmarks/runs/discovery/expressions_0.5.txt --out "$MODEL"
    fi
    grammar-ae evaluate "$MODEL" --json | python benchmarks/training_time.py "$MODEL" benchmarks/results/bo_discovery_model.json
    grammar-ae benchmark bo --target expression --checkpoint "$MODEL" --method bo,bo-offspring,random,ga --seeds "$SEEDS" \
      --budget 250 --batch-size 10 --threshold 0.1 --label "grae without scores below 0.5" --device cpu --quiet --out "$OUT/discovery"
    copy "$OUT/discovery" bo_discovery
    ;;
  published|published-old|published-narrow)
    MODEL=${2:-expressions}
    OPTIONS=(--label "grae, new defaults")
    NARROW=(--min-new-fraction 0 --restart-after 0)  # the region as before those settings
    if [ "$PART" = published-old ]; then
      OPTIONS=(--surrogate sparse --acquisition ei --samples-per-point 25 --max-training-points 10000 --trust-region
               --candidates-per-point 1 "${NARROW[@]}" --label "grae, old defaults, trust region")
    elif [ "$PART" = published-narrow ]; then
      OPTIONS=("${NARROW[@]}" --label "grae, new defaults, region widened only on nothing new")
    fi
    grammar-ae benchmark bo --target expression --checkpoint "$MODEL" --seeds "$SEEDS" --iterations 5 --budget 250 \
      --device cpu --quiet --out "$OUT/expressions-$PART" "${OPTIONS[@]}"
    copy "$OUT/expressions-$PART" "bo_expressions_$PART"
    ;;
  *) echo "unknown part $PART: expected discovery, published, published-old or published-narrow" >&2; exit 2 ;;
esac
