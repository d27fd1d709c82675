#!/usr/bin/env bash
# The discovery suite: one run per problem, all at once, each stopped cleanly (SIGINT)
# after SECONDS; then each run's front is certified (`evolve verify --limit 3`) and its
# best program exported as C. Used for the per-function table of docs/results.md (on one H200).
#   bash scripts/run_suite.sh OUT_DIR SECONDS SEED PROBLEM...
set -uo pipefail
out=$1 seconds=$2 seed=$3
shift 3
mkdir -p "$out"
evolve=(python3 -m evolve)
for p in "$@"; do
    timeout -s INT -k 60 "$seconds" "${evolve[@]}" run "$p" --seed "$seed" \
        --generations 1000000 --quiet --run-dir "$out/$p-$seed" >"$out/$p-$seed.log" 2>&1 &
done
wait
for p in "$@"; do
    run="$out/$p-$seed"
    "${evolve[@]}" verify "$run" --limit 3 --quiet >>"$run.log" 2>&1
    "${evolve[@]}" export "$run" --format c >"$run.c" 2>>"$run.log"
    echo "== $p: $(tail -1 "$run/metrics.csv" | cut -c1-200)"
done
