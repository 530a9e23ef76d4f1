#!/usr/bin/env bash
# Runs the sigstore-js end-to-end tests with Node's built-in test runner.
# Needs DATABASE_URL (a superuser URL of a throwaway cluster; scripts/test.sh sets it)
# and the tlog binary (TLOG_BIN, default target/debug/tlog). Each test file starts its
# own server (lib/server.js); rekor-v2.test.js asks for one with a Rekor v2 log too
# (a separate Ed25519 key file, also when E2E_SIGNER=pkcs11 puts the v1 key on SoftHSM2).
# Dependencies are pinned by package-lock.json and installed with `npm ci` only when
# the lock file changed since the last install (node_modules/ is ignored by git).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v node >/dev/null 2>&1 || { echo "node is required for the e2e tests" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "npm is required for the e2e tests" >&2; exit 1; }
# rekor-v2.test.js makes its signer's self-signed certificate with the openssl CLI
# (.ci/run installs it).
command -v openssl >/dev/null 2>&1 || { echo "openssl is required for the e2e tests" >&2; exit 1; }

stamp=node_modules/.tlog-lock-sha256
want="$( (sha256sum package-lock.json; node --version) | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "npm ci (tests/e2e/js)"
  npm ci --no-audit --no-fund --engine-strict --loglevel=error
  echo "$want" >"$stamp"
fi

exec node --test --test-reporter=spec --test-concurrency=1 test/*.test.js
