#!/usr/bin/env bash
# Runs the sigstore-python end-to-end tests and the OpenAPI schema check with pytest.
# Needs DATABASE_URL (a superuser URL of a throwaway cluster; scripts/test.sh sets it)
# and the tlog binary (TLOG_BIN, default target/debug/tlog).
# The rekord tests sign with each format's real tool: ssh-keygen (openssh-client),
# minisign and gpg (gnupg); missing ones are installed with apt-get (as root or
# through sudo), as scripts/pg.sh does for PostgreSQL.
# Dependencies are pinned by requirements.txt and installed into a virtualenv under
# the repo's ignored .cache/e2e-py/, again only when requirements.txt or the Python
# interpreter changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(cd ../../.. && pwd)"

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || { echo "python3 is required for the e2e tests" >&2; exit 1; }

declare -A PACKAGE=([ssh-keygen]=openssh-client [minisign]=minisign [gpg]=gnupg)
missing=()
for tool in ssh-keygen minisign gpg; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE[$tool]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} with apt-get for the rekord e2e tests"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need ${missing[*]} (apt-get install ${missing[*]}) but not root" >&2; exit 1; }
    sudo=(sudo -n)
  fi
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

VENV="$ROOT/.cache/e2e-py"
stamp="$VENV/.tlog-requirements-sha256"
want="$( (sha256sum requirements.txt; "$PYTHON" -c 'import sys; print(sys.version, sys.executable)') | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV from requirements.txt"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-virtualenv -r requirements.txt
  echo "$want" >"$stamp"
fi

# -p no:cacheprovider: no .pytest_cache in the source tree.
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -ra -v "$@"
