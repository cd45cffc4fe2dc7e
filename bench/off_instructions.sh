#!/usr/bin/env bash
# What a call costs with the `otel` feature off, against an earlier build of comms, in
# instructions (which do not move with the host's load as throughput does): the loopback
# bench's generated client, and raw reqwest as a control that no comms change touches, each
# built at BASELINE and at the working tree, counted under callgrind.
#
#   bench/off_instructions.sh BASELINE     e.g. c1a4dff^, the build before deadlines travelled
#                                          and before the otel feature (needs valgrind)
#
# Each build is the bench as it was at its commit (its own clients, its own Cargo.lock); the
# two share the variants' names and the COMMS_BENCH_ONLY and COMMS_BENCH_CALLS settings. A
# call's count is the difference between a --quick run of 1,200 calls a round and one of 400,
# at concurrency 1, 64 and 256 (5,400 calls apart: a quarter of a round at concurrency 1), so
# start-up and the warm-up drop out. The client's SHA-256 compression is shown apart: valgrind
# hides the CPU's SHA extensions, so sha2 runs its software rounds there.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
baseline=${1:?usage: $0 BASELINE (a commit)}
for tool in valgrind callgrind_annotate git; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done

# shellcheck source=bench/baseline_builds.sh
source bench/baseline_builds.sh

# count BUILD VARIANT CALLS: one callgrind run, a file per thread.
count() {
    env COMMS_BENCH_ONLY="=$2" COMMS_BENCH_CALLS="$3" \
        valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$work/$1-${2// /_}-$3.out" "$work/$1" --quick >/dev/null 2>&1
}

# sums BUILD VARIANT CALLS: "client sha server" instruction totals of one run (the main thread
# runs the clients; the server is the thread parsing requests).
sums() {
    local client=0 sha=0 server=0 total file files
    files=("$work/$1-${2// /_}-$3".out-*)
    [ -e "${files[0]}" ] || { echo "no callgrind output for $1, $2, $3 calls" >&2; return 1; }
    for file in "${files[@]}"; do
        total=$(awk '/^summary:/ { print $2 }' "$file")
        case "$file" in
        *.out-01)
            client=$((client + total))
            sha=$(callgrind_annotate --inclusive=yes "$file" 2>/dev/null |
                awk '/sha2::sha256::compress256/ && !seen { gsub(",", "", $1); print $1; seen = 1 }')
            ;;
        *) if grep -q 'hyper::proto::h1::role::Server' "$file"; then server=$((server + total)); fi ;;
        esac
    done
    echo "$client ${sha:-0} $server"
}

printf '%-10s %-18s %12s %10s %12s %8s\n' build variant client "(SHA-256)" client-SHA server
for variant in "generated client" "raw reqwest"; do
    for build in baseline head; do
        count "$build" "$variant" 400 &
        first=$!
        count "$build" "$variant" 1200 &
        second=$!
        wait "$first" || { echo "callgrind failed: $build, $variant, 400 calls" >&2; exit 1; }
        wait "$second" || { echo "callgrind failed: $build, $variant, 1200 calls" >&2; exit 1; }
        # Assigned first: a `sums` that fails ends the script, where `read` would go on.
        few=$(sums "$build" "$variant" 400)
        many=$(sums "$build" "$variant" 1200)
        read -r c1 s1 v1 <<<"$few"
        read -r c3 s3 v3 <<<"$many"
        awk -v b="$build" -v n="$variant" -v c=$((c3 - c1)) -v s=$((s3 - s1)) -v v=$((v3 - v1)) \
            'BEGIN { printf "%-10s %-18s %12.0f %10.0f %12.0f %8.0f\n", b, n, c/5400, s/5400, (c-s)/5400, v/5400 }'
    done
done
