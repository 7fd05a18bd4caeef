#!/usr/bin/env bash
# End-to-end suite, Node side: socket.io-client (the transport of
# @platosdev/client) against a real `agentry` binary, with node:test.
#
#   AGENTRY_BIN=path/to/agentry tests/e2e/run-node.sh [node --test args...]
#
# AGENTRY_BIN  the server binary (default: <repo>/target/debug/agentry)
# NODE, NPM    the interpreters to use (default: node, npm); Node >= 18.17
#
# Dependencies come from tests/e2e/node/package-lock.json: `npm ci` runs when
# node_modules is missing or older than the lock or package.json.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NODE_DIR="$REPO/tests/e2e/node"
NODE="${NODE:-node}"
NPM="${NPM:-npm}"

die() { echo "tests/e2e/run-node.sh: error: $*" >&2; exit 1; }

AGENTRY_BIN="${AGENTRY_BIN:-$REPO/target/debug/agentry}"
[[ -f "$AGENTRY_BIN" ]] || die "AGENTRY_BIN=$AGENTRY_BIN does not exist (build it with 'cargo build', or set AGENTRY_BIN)"
[[ -x "$AGENTRY_BIN" ]] || die "AGENTRY_BIN=$AGENTRY_BIN is not executable"
AGENTRY_BIN="$(cd "$(dirname "$AGENTRY_BIN")" && pwd)/$(basename "$AGENTRY_BIN")"
export AGENTRY_BIN

# --- node and dependencies ----------------------------------------------------
command -v "$NODE" >/dev/null 2>&1 || die "$NODE not found (the Node suite needs Node >= 18.17)"
"$NODE" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 17) ? 0 : 1)' \
    || die "the Node suite needs Node >= 18.17; $NODE is $("$NODE" --version)"

lock="$NODE_DIR/package-lock.json"
installed="$NODE_DIR/node_modules/.package-lock.json"
[[ -f "$lock" ]] || die "$lock is missing"
if [[ ! -f "$installed" || "$lock" -nt "$installed" || "$NODE_DIR/package.json" -nt "$installed" ]]; then
    command -v "$NPM" >/dev/null 2>&1 || die "$NPM not found (needed to install $NODE_DIR/node_modules)"
    echo "tests/e2e/run-node.sh: installing dependencies (npm ci) in tests/e2e/node" >&2
    (cd "$NODE_DIR" && "$NPM" ci --no-audit --no-fund --loglevel=error >&2) \
        || die "npm ci failed in $NODE_DIR"
fi

# --- run ----------------------------------------------------------------------
cd "$REPO"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

shopt -s nullglob
files=("$NODE_DIR"/*.test.mjs)
shopt -u nullglob
[[ ${#files[@]} -gt 0 ]] || die "no test files (*.test.mjs) in $NODE_DIR"

tap="$(mktemp "${TMPDIR:-/tmp}/agentry-node-e2e.XXXXXX")"
trap 'rm -f "$tap"' EXIT

rc=0
"$NODE" --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "$@" "${files[@]}" || rc=$?

count() { sed -n "s/^# $1 \\([0-9][0-9]*\\)\$/\\1/p" "$tap" | tail -n 1; }
pass="$(count pass)"
fail="$(count fail)"
cancelled="$(count cancelled)"
if [[ -z "$pass" ]]; then
    echo "tests/e2e/run-node.sh: error: no test summary from node --test (exit $rc)" >&2
    [[ $rc -ne 0 ]] || rc=1
elif [[ $((pass + ${fail:-0} + ${cancelled:-0})) -eq 0 ]]; then
    echo "tests/e2e/run-node.sh: error: no test ran" >&2
    [[ $rc -ne 0 ]] || rc=1
elif [[ $rc -ne 0 ]]; then
    echo "tests/e2e/run-node.sh: node --test failed (exit $rc; ${fail:-?} failed, ${cancelled:-0} cancelled)" >&2
fi
exit "$rc"
