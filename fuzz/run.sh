#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each) with cargo-fuzz.
#
#   bash fuzz/run.sh [seconds-per-target]
#
# Targets: verify_headers (random header values), verify_signed (requests it signs itself, so
# that they verify, checked against a model of the profile), classify_response.
#
# Not part of CI. The toolchain here is stable, so nightly-only compiler flags that cargo-fuzz
# needs are enabled with RUSTC_BOOTSTRAP for this build only. New inputs that libFuzzer finds
# interesting are added to fuzz/corpus/<target>/ and the corpus is minimised afterwards; commit it.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
for target in verify_headers verify_signed classify_response; do
  echo "== $target for ${seconds}s"
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096
  # Keep only the inputs that add coverage, so the committed corpus stays small (a set cover:
  # about half the files of a plain merge, for the same features).
  cargo fuzz cmin "$target" "corpus/$target" -- -set_cover_merge=1
done
