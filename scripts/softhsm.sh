#!/usr/bin/env bash
# A throwaway SoftHSM2 token for tests and benchmarks (issue 16).
#
#   scripts/softhsm.sh DIR     installs softhsm2 with apt-get when missing, writes
#                              DIR/softhsm2.conf (token directory DIR/tokens), makes
#                              the token "tlog-e2e" with the user PIN in DIR/pin, and
#                              writes DIR/env (SOFTHSM2_CONF, E2E_PKCS11_MODULE,
#                              E2E_PKCS11_TOKEN, E2E_PKCS11_PIN_FILE) to source.
#
# Remove DIR to throw the token away. The PINs are test values, never real ones.
set -euo pipefail

DIR="${1:?usage: scripts/softhsm.sh DIR}"

if ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "installing softhsm2 with apt-get for the PKCS#11 tests"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need softhsm2 (apt-get install softhsm2) but not root" >&2; exit 1; }
    sudo=(sudo -n)
  fi
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends softhsm2
fi

MODULE=""
for candidate in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
  /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so; do
  if [ -f "$candidate" ]; then MODULE="$candidate"; break; fi
done
[ -n "$MODULE" ] || { echo "softhsm2 is installed but libsofthsm2.so was not found" >&2; exit 1; }

mkdir -p "$DIR/tokens"
DIR="$(cd "$DIR" && pwd)"
cat >"$DIR/softhsm2.conf" <<CONF
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
CONF
printf '%s\n' "1234-e2e" >"$DIR/pin"
chmod 600 "$DIR/pin"
export SOFTHSM2_CONF="$DIR/softhsm2.conf"
softhsm2-util --init-token --free --label tlog-e2e --so-pin "5678-e2e-so" --pin "1234-e2e" >/dev/null
cat >"$DIR/env" <<ENV
SOFTHSM2_CONF=$DIR/softhsm2.conf
E2E_PKCS11_MODULE=$MODULE
E2E_PKCS11_TOKEN=tlog-e2e
E2E_PKCS11_PIN_FILE=$DIR/pin
ENV
echo "SoftHSM2 token tlog-e2e in $DIR/tokens (module $MODULE)"
