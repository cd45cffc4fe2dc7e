#!/usr/bin/env bash
# What the `otel` feature costs a call, in instructions, which do not move with the host's load
# as throughput does. Counts the generated client's loopback calls at concurrency 64 under
# callgrind, with the feature off, on under a full pipeline, on with 10% of traces sampled, and
# on with nothing installed (no providers and no `tracing` subscriber, so no attempt span is
# even asked for); then, as the floor, raw reqwest and raw reqwest instrumented by hand under the
# full pipeline. Prints each thread's instructions per call.
#
#   bench/otel_instructions.sh            (needs valgrind; about ten minutes on two cores)
#
# A call's count is the difference between a run of 3 x 3,000 calls and one of 3 x 1,000,
# divided by 6,000, so start-up (TLS roots, the pools) and the 50 ms section drop out. The
# client's SHA-256 compression is shown apart: valgrind hides the CPU's SHA extensions, so
# sha2 runs its software rounds there, which cost ten times what they do on a host with them.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
for tool in valgrind callgrind_annotate; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done

# shellcheck source=bench/otel_builds.sh
source bench/otel_builds.sh

# count NAME BINARY VARIANT CALLS [VAR=VALUE...]: one callgrind run of one of the bench's
# variants, a file per thread.
count() {
    local name=$1 binary=$2 variant=$3 calls=$4
    shift 4
    env COMMS_BENCH_ONLY="=$variant" COMMS_BENCH_LEVELS=64 COMMS_BENCH_CALLS="$calls" "$@" \
        valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$work/$name-$calls.out" "$binary" --quick >/dev/null 2>&1
}

# thread FILE: "client" (the main thread runs the clients), "server" (the one parsing
# requests) or "other" (the SDK's export and metric threads).
thread() {
    case "$1" in
    *.out-01) echo client ;;
    *) if grep -q 'hyper::proto::h1::role::Server' "$1"; then echo server; else echo other; fi ;;
    esac
}

# sums NAME CALLS: "client sha server other" instruction totals of one run.
sums() {
    local client=0 sha=0 server=0 other=0 total file kind files
    files=("$work/$1-$2".out-*)
    [ -e "${files[0]}" ] || { echo "no callgrind output for $1 ($2 calls)" >&2; return 1; }
    for file in "${files[@]}"; do
        total=$(awk '/^summary:/ { print $2 }' "$file")
        [ -n "$total" ] || { echo "no summary in $file" >&2; return 1; }
        kind=$(thread "$file")
        case $kind in
        client)
            client=$((client + total))
            sha=$(callgrind_annotate --inclusive=yes "$file" 2>/dev/null |
                awk '/sha2::sha256::compress256/ && !seen { gsub(",", "", $1); print $1; seen = 1 }')
            ;;
        server) server=$((server + total)) ;;
        *) other=$((other + total)) ;;
        esac
    done
    echo "$client ${sha:-0} $server $other"
}

# NAME|BINARY|VARIANT|VARS. The last two are the floor: raw reqwest, and raw reqwest with the
# least the conventions ask of an instrumented call written by hand (a CLIENT span, the W3C
# context injected, the duration recorded), both under the full pipeline.
configs=(
    "off|off|generated client|"
    "on|on|generated client|"
    "sampled|on|generated client|COMMS_BENCH_OTEL_SAMPLE=0.1"
    "installed-nothing|on|generated client|COMMS_BENCH_OTEL=none"
    "raw reqwest|on|raw reqwest|"
    "reqwest, by hand|on|reqwest + otel by hand|"
)
printf '%-18s %12s %10s %12s %8s %8s\n' "per call" client "(SHA-256)" "client-SHA" server other
for config in "${configs[@]}"; do
    IFS='|' read -r name binary variant vars <<<"$config"
    # shellcheck disable=SC2086
    count "$name" "$work/$binary" "$variant" 1000 $vars &
    first=$!
    # shellcheck disable=SC2086
    count "$name" "$work/$binary" "$variant" 3000 $vars &
    second=$!
    wait "$first" || { echo "callgrind failed: $name, 1000 calls" >&2; exit 1; }
    wait "$second" || { echo "callgrind failed: $name, 3000 calls" >&2; exit 1; }
    few=$(sums "$name" 1000)
    many=$(sums "$name" 3000)
    read -r c1 s1 v1 o1 <<<"$few"
    read -r c3 s3 v3 o3 <<<"$many"
    awk -v n="$name" -v c=$((c3 - c1)) -v s=$((s3 - s1)) -v v=$((v3 - v1)) -v o=$((o3 - o1)) \
        'BEGIN { printf "%-18s %12.0f %10.0f %12.0f %8.0f %8.0f\n", n, c/6000, s/6000, (c-s)/6000, v/6000, o/6000 }'
done
