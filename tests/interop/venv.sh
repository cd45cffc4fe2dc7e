#!/usr/bin/env bash
# Creates (or reuses) the Python virtualenv for the interop tests and prints the path of its
# python as the last line on stdout. Everything else goes to stderr.
#
#   py="$(tests/interop/venv.sh)" && "$py" tests/interop/verify.py KEY_ID SECRET < requests.json
#
# Where:      ${COMMS_INTEROP_VENV:-<repo root>/target/interop-venv}
# Interpreter: ${COMMS_INTEROP_PYTHON:-python3} (3.11 or newer)
# What:       tests/interop/requirements.txt, every package pinned
#
# Safe to run from several processes at once (cargo runs tests in parallel): the check and the
# build happen under an exclusive flock on <venv>.lock, so one process builds and the others
# wait for it and then reuse its venv. When the venv exists and its stamp (the hash of
# requirements.txt) matches, it returns in milliseconds without touching the network.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${COMMS_INTEROP_VENV:-$root/target/interop-venv}"
python="${COMMS_INTEROP_PYTHON:-python3}"
requirements="$here/requirements.txt"
# Bump when this script changes how it builds, so existing venvs are rebuilt.
layout=1

log() { printf 'interop-venv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v flock >/dev/null 2>&1 || die "flock not found (Debian package util-linux)"
[[ -f "$requirements" ]] || die "$requirements not found"

mkdir -p "$(dirname "$venv")"
venv="$(cd "$(dirname "$venv")" && pwd)/$(basename "$venv")"
stamp_file="$venv/.comms-interop-stamp"
want_stamp="layout=$layout python=$python requirements=$(sha256sum "$requirements" | cut -d' ' -f1)"

# One builder at a time; the others wait here (up to 15 min) and then find the stamp.
exec 9>"$venv.lock"
flock -w 900 9 || die "timed out waiting for the lock $venv.lock"

if [[ -x "$venv/bin/python" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$want_stamp" ]] &&
  "$venv/bin/python" -c '' 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi

command -v "$python" >/dev/null 2>&1 || die "$python not found; install Python 3.11+ (Debian: apt-get install python3)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "$python is $("$python" -c 'import sys; print(sys.version.split()[0])'); the pinned packages need 3.11 or newer (set COMMS_INTEROP_PYTHON)"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# Never delete a directory that is not one of ours (a mistyped COMMS_INTEROP_VENV).
if [[ -d "$venv" && ! -f "$venv/pyvenv.cfg" && -n "$(ls -A "$venv")" ]]; then
  die "$venv exists and is not a virtualenv; refusing to replace it"
fi

log "building $venv with $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
rm -rf "$venv"

# The venv module with pip bootstrapped by ensurepip. Debian splits ensurepip into the package
# python3-venv; without it `python3 -m venv` fails, and we fall back to a venv without pip filled
# by the interpreter's own pip (pip >= 22.3 has --python), then to the virtualenv command.
pip=()
if "$python" -m venv "$venv" >&2; then
  pip=("$venv/bin/python" -m pip)
else
  log "'$python -m venv' failed (on Debian/Ubuntu the package python3-venv provides ensurepip: apt-get install python3-venv); trying fallbacks"
  rm -rf "$venv"
  if "$python" -m pip --version >/dev/null 2>&1 &&
    "$python" -m pip --help 2>/dev/null | grep -q -- '--python' &&
    "$python" -m venv --without-pip "$venv" >&2; then
    log "using a venv without pip, filled by '$python -m pip --python'"
    pip=("$python" -m pip --python "$venv/bin/python")
  elif command -v virtualenv >/dev/null 2>&1; then
    rm -rf "$venv"
    log "using virtualenv"
    virtualenv -q -p "$python" "$venv" >&2
    pip=("$venv/bin/python" -m pip)
  else
    rm -rf "$venv"
    die "cannot create a virtualenv: '$python -m venv' needs ensurepip (Debian/Ubuntu: apt-get install python3-venv), and neither pip >= 22.3 for '$python' nor virtualenv is available"
  fi
fi

"${pip[@]}" install --quiet --requirement "$requirements" >&2 ||
  die "pip install -r $requirements failed (is PyPI reachable?)"
"$venv/bin/python" -c 'import requests, requests_http_signature, http_message_signatures' ||
  die "the venv at $venv does not import the interop packages"

# Written last: an interrupted build leaves no stamp and is redone by the next call.
printf '%s' "$want_stamp" >"$stamp_file"
log "ready"
echo "$venv/bin/python"
