#!/usr/bin/env bash
# Runs examples/python_migration.py against examples/service.rs at both ends of a migration:
# first with legacy signatures accepted (both calls accepted), then with legacy turned off
# (the legacy call refused, the RFC 9421 one accepted). Used by .ci/run; runs from any folder.
set -euo pipefail
cd "$(dirname "$0")/../.."

python="$(tests/interop/venv.sh)"
cargo build --locked --quiet --example service
# Where cargo put it: `CARGO_TARGET_DIR` when set (relative to the root, as cargo reads it).
service="${CARGO_TARGET_DIR:-target}/debug/examples/service"
secret="migration-example-secret"
port=$((20000 + RANDOM % 20000))
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT

run_stage() {
  local accept_legacy=$1 expect_legacy=$2
  PORT=$port BILLING_SECRET=$secret ACCEPT_LEGACY=$accept_legacy "$service" &
  pid=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  "$python" examples/python_migration.py --url "http://127.0.0.1:$port" --secret "$secret" \
    --expect-legacy "$expect_legacy" --expect-rfc9421 accepted
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
}

echo "-- stage 1: the service accepts legacy signatures"
run_stage 1 accepted
echo "-- stage 3: legacy turned off"
run_stage 0 refused
