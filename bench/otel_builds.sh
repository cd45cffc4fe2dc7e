# Sourced by the otel_*.sh scripts: builds the loopback bench with the `otel` feature off and
# on, and copies the two executables into a fresh directory, `$work` (`$work/off`,
# `$work/on`), removed when the script exits.

# executable [cargo flags]: builds the loopback bench and prints its path.
executable() {
    local path
    # In a condition, a failed build reaches the message below rather than ending the script.
    if ! path=$(cargo bench -p comms-bench --bench loopback "$@" --no-run --message-format=json |
        grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4) || [ -z "$path" ]; then
        echo "the loopback bench did not build" >&2
        return 1
    fi
    echo "$path"
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$(executable)" "$work/off"
cp "$(executable --features otel)" "$work/on"
