#!/usr/bin/env bash
# Installs aics-witness (PyPI), a third-party C2SP tlog-witness, for the
# witnessing tests, and prints the path of its `aics-witness` command.
#
#   scripts/aics-witness.sh        installs into .cache/aics-witness (once, again only
#                                  when tests/witness/requirements.txt or the
#                                  interpreter changed) and prints the command's path
#
# aics-witness 0.1.0 declares Requires-Python >= 3.12. Debian 12 ships 3.11, on which
# it runs unchanged (tests/api/witness.rs passes on both), so without a python3.12 on
# PATH it is installed into a 3.11 venv with --ignore-requires-python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$ROOT/tests/witness/requirements.txt"
VENV="$ROOT/.cache/aics-witness"

PYTHON="${AICS_WITNESS_PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    PYTHON=python3.12
  else
    PYTHON=python3
  fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || { echo "python3 is required for aics-witness" >&2; exit 1; }
extra=()
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' || extra=(--ignore-requires-python)

stamp="$VENV/.tlog-requirements-sha256"
want="$( (sha256sum "$REQS"; "$PYTHON" -c 'import sys; print(sys.version, sys.executable)') | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x "$VENV/bin/aics-witness" ]; then
  echo "creating $VENV from tests/witness/requirements.txt" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-virtualenv "${extra[@]}" -r "$REQS" >&2
  echo "$want" >"$stamp"
fi
echo "$VENV/bin/aics-witness"
