#!/usr/bin/env bash
# What the `otel` feature costs the generated client in throughput and in client CPU, measured
# as pairs of loopback runs back to back, one with the feature off and one with it on, so that
# a change in the host's load between pairs cancels out of each pair's ratio. The order within
# a pair alternates, so neither build always runs first.
#
#   bench/otel_pairs.sh [PAIRS] [BENCH ARGS...]   (default 8 pairs; about a minute a pair)
#
# BENCH ARGS go to each run of the bench: `--shared` runs server and clients on one
# multi-threaded runtime, as a service's `#[tokio::main]` does, instead of the client on one
# thread (its cpu column is then empty: the client's CPU is not one thread's).
#
# Each run is the loopback bench's generated client with its three baselines, at concurrency
# 1 and 64 (COMMS_BENCH_LEVELS and COMMS_BENCH_CALLS override these). The "on" run takes the
# loopback bench's other OpenTelemetry settings from the environment (COMMS_BENCH_OTEL,
# COMMS_BENCH_OTEL_SAMPLE). Printed per pair and level, and as medians over the pairs:
#
#   throughput   calls/s on over calls/s off
#   vs raw       the same, each first divided by raw reqwest's calls/s in its own run
#   cpu          client CPU per call off over on (the client thread's, user and system)
#
# Each is 1.0 when the feature costs nothing, and 0.9 is 10% below off.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
pairs=${1:-8}
[[ $pairs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [PAIRS] [BENCH ARGS...]" >&2; exit 2; }
bench_args=("${@:2}")

# shellcheck source=bench/otel_builds.sh
source bench/otel_builds.sh

# run BUILD: one run, reduced to "level calls/s raw-calls/s cpu-µs" lines.
run() {
    env COMMS_BENCH_ONLY=generated COMMS_BENCH_LEVELS="${COMMS_BENCH_LEVELS:-1,64}" \
        COMMS_BENCH_CALLS="${COMMS_BENCH_CALLS:-5000}" "$work/$1" --quick "${bench_args[@]}" 2>/dev/null |
        awk '
            /^concurrency [0-9]+:/ { level = $2; sub(":", "", level) }
            /^  raw reqwest / { raw[level] = $3 }
            /^  generated client / { calls[level] = $3; cpu[level] = $6; sub("µs", "", cpu[level]) }
            END { for (l in calls) print l, calls[l], raw[l], cpu[l] }' | sort
}

printf '%-6s %-6s %11s %9s %7s\n' pair level throughput "vs raw" cpu
for ((i = 1; i <= pairs; i++)); do
    if ((i % 2)); then
        off=$(run off)
        on=$(run on)
    else
        on=$(run on)
        off=$(run off)
    fi
    join <(echo "$off") <(echo "$on") |
        awk -v pair="$i" '{
            # level, off: calls raw cpu, on: calls raw cpu
            printf "%-6s %-6s %11.3f %9.3f %7.3f\n", pair, $1, $5 / $2, ($5 / $6) / ($2 / $3), $4 / $7
        }' | sort -k2,2n | tee -a "$work/ratios"
done

echo
echo "median over $pairs pairs:"
for level in $(awk '{ print $2 }' "$work/ratios" | sort -nu); do
    median() {
        awk -v l="$level" -v c="$1" '$2 == l { print $c }' "$work/ratios" | sort -g |
            awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
    }
    printf '%-6s %-6s %11.3f %9.3f %7.3f\n' "" "$level" "$(median 3)" "$(median 4)" "$(median 5)"
done
