# Sourced by the off_*.sh scripts, with $baseline set to a commit: builds the loopback bench as
# it was at that commit (its own clients and Cargo.lock, from a temporary worktree) and as it
# is in the working tree, both with the `otel` feature off, and copies the two executables into
# a fresh directory, `$work` (`$work/baseline`, `$work/head`), removed when the script exits.

work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$baseline" >/dev/null

# executable DIR: builds DIR's loopback bench (into this tree's target directory, where the
# two builds share what they share) and prints its path.
executable() {
    local path
    path=$(cd "$1" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OLDPWD/target}" \
        cargo bench -p comms-bench --bench loopback --no-run --message-format=json |
        grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)
    [ -n "$path" ] || { echo "the loopback bench in $1 did not build" >&2; return 1; }
    echo "$path"
}
cp "$(executable "$work/base")" "$work/baseline"
cp "$(executable .)" "$work/head"
