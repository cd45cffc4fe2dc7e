# Sourced by the off_*.sh scripts, with $baseline set to a commit: builds the loopback bench as
# it was at that commit (its own clients and Cargo.lock, from a temporary worktree) and as it
# is in the working tree, both with the `otel` feature off, and copies the two executables into
# a fresh directory, `$work` (`$work/baseline`, `$work/head`), removed when the script exits.

# One target directory for both builds, this tree's unless CARGO_TARGET_DIR names another (made
# absolute, so that the baseline's build, run from its worktree, finds the same one).
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$baseline" >/dev/null

# executable DIR: builds DIR's loopback bench (into the one target directory, where the two
# builds share what they share) and prints its path.
executable() {
    local path
    # In a condition, a failed build reaches the message below rather than ending the script.
    if ! path=$(cd "$1" && CARGO_TARGET_DIR="$target_dir" \
        cargo bench -p comms-bench --bench loopback --no-run --message-format=json |
        grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4) || [ -z "$path" ]; then
        echo "the loopback bench in $1 did not build" >&2
        return 1
    fi
    echo "$path"
}
cp "$(executable "$work/base")" "$work/baseline"
cp "$(executable .)" "$work/head"
