#!/usr/bin/env bash
# What a call costs with the `otel` feature off, against an earlier build of comms, in
# throughput: pairs of loopback runs back to back, one of the bench built at BASELINE and one
# of the working tree's, the order within a pair alternating.
#
#   bench/off_pairs.sh BASELINE [PAIRS]     (default 6 pairs; about a minute a pair)
#
# Each run is the generated client with its three baselines, --quick, at concurrency 1, 64 and
# 256 (COMMS_BENCH_CALLS, default 4,000 a round, overrides the calls). The two builds may
# resolve different versions of reqwest, hyper and tokio (each has its Cargo.lock), so raw
# reqwest is not the same code in both: compare the generated client's ratio to raw reqwest
# in its own run ("vs raw"), not calls/s across builds. Printed: each run's lines, then per
# build and level the medians of calls/s, client CPU per call and vs raw.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
baseline=${1:?usage: $0 BASELINE (a commit) [PAIRS]}
pairs=${2:-6}
[[ $pairs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 BASELINE [PAIRS]" >&2; exit 2; }

# shellcheck source=bench/baseline_builds.sh
source bench/baseline_builds.sh

# run BUILD: one run, reduced to "build level calls/s cpu-µs vs-raw" lines.
run() {
    env COMMS_BENCH_ONLY=generated COMMS_BENCH_CALLS="${COMMS_BENCH_CALLS:-4000}" \
        "$work/$1" --quick 2>/dev/null |
        awk -v build="$1" '
            /^concurrency [0-9]+:/ { level = $2; sub(":", "", level) }
            /^  generated client / { cpu = $6; sub("µs", "", cpu); print build, level, $3, cpu, $8 }' |
        tr -d x
}

for ((i = 1; i <= pairs; i++)); do
    if ((i % 2)); then order=(baseline head); else order=(head baseline); fi
    for build in "${order[@]}"; do
        run "$build" | tee -a "$work/runs"
    done
done

# median BUILD LEVEL COLUMN: the median of a column over that build's runs at that level.
median() {
    awk -v b="$1" -v l="$2" -v k="$3" '$1 == b && $2 == l { print $k }' "$work/runs" | sort -n |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo
printf '%-9s %5s %9s %10s %7s\n' build level calls/s cpu/call "vs raw"
for build in baseline head; do
    for level in 1 64 256; do
        printf '%-9s %5s %9.0f %8.2fµs %7.3f\n' "$build" "$level" \
            "$(median "$build" "$level" 3)" "$(median "$build" "$level" 4)" "$(median "$build" "$level" 5)"
    done
done
