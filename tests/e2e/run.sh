#!/usr/bin/env bash
# End-to-end suite: the official Python SDK (platos-client 0.1.0) against a
# real `agentry` binary.
#
#   AGENTRY_BIN=path/to/agentry tests/e2e/run.sh [pytest args...]
#
# AGENTRY_BIN       the server binary (default: <repo>/target/debug/agentry)
# AGENTRY_E2E_VENV  the virtualenv to use (default: <repo>/target/e2e-venv);
#                   created with the machine's python3 when missing.
# PYTHON            interpreter that creates the venv (default: python3)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${AGENTRY_E2E_VENV:-$REPO/target/e2e-venv}"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS=("platos-client==0.1.0" "erdo==0.1.43" "pytest==8.*" "opentelemetry-proto==1.*" "prometheus-client==0.*" "schemathesis==4.32.*" "openapi-spec-validator==0.7.*")

die() { echo "tests/e2e/run.sh: error: $*" >&2; exit 1; }

AGENTRY_BIN="${AGENTRY_BIN:-$REPO/target/debug/agentry}"
[[ -f "$AGENTRY_BIN" ]] || die "AGENTRY_BIN=$AGENTRY_BIN does not exist (build it with 'cargo build', or set AGENTRY_BIN)"
[[ -x "$AGENTRY_BIN" ]] || die "AGENTRY_BIN=$AGENTRY_BIN is not executable"
AGENTRY_BIN="$(cd "$(dirname "$AGENTRY_BIN")" && pwd)/$(basename "$AGENTRY_BIN")"
export AGENTRY_BIN

# --- virtualenv -------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
        || die "platos-client needs Python >= 3.10; $PYTHON is $("$PYTHON" --version 2>&1)"
    echo "tests/e2e/run.sh: creating virtualenv $VENV" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

marker="$VENV/.agentry-e2e-requirements"
wanted="$(printf '%s\n' "${REQUIREMENTS[@]}")"
if [[ ! -f "$marker" ]] || [[ "$(cat "$marker")" != "$wanted" ]]; then
    echo "tests/e2e/run.sh: installing ${REQUIREMENTS[*]} into $VENV" >&2
    rm -f "$marker"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${REQUIREMENTS[@]}"
    printf '%s\n' "$wanted" >"$marker"
fi

# --- run ----------------------------------------------------------------------
cd "$REPO"
export PYTHONDONTWRITEBYTECODE=1
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

rc=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/e2e/python "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
    echo "tests/e2e/run.sh: error: pytest collected no tests (exit 5)" >&2
elif [[ $rc -ne 0 ]]; then
    echo "tests/e2e/run.sh: pytest failed (exit $rc)" >&2
fi
exit "$rc"
