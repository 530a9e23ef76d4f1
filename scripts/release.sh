#!/usr/bin/env bash
# Release tlog: build the image → CycloneDX SBOM → cosign sign + attest the SBOM
# by digest, recorded in OUR tlog → verify with the tlog's public key → helm
# package + push the chart as an OCI artifact.
#
# Usage:
#   scripts/release.sh all          the whole release (default)
#   scripts/release.sh sbom         CycloneDX SBOM of the sources, validated (runs offline, in CI)
#   scripts/release.sh ci-selftest  sign a release blob into a running tlog and verify it
#                                   (driven by the e2e suite with TLOG_URL set)
#
# Environment for `all`:
#   IMAGE            image name without tag, e.g. ghcr.io/tlog/tlog (required)
#   VERSION          release version (default: Cargo.toml's)
#   TLOG_URL         our log, e.g. https://rekor.example.com (required)
#   COSIGN_KEY       cosign private key (default cosign.key; COSIGN_PASSWORD as cosign reads it)
#   COSIGN_PUB       its public key (default cosign.pub)
#   TLOG_PUBLIC_KEY  the log's public key PEM (default: fetched from TLOG_URL)
#   CHART_REPO       OCI repository for the chart, e.g. oci://ghcr.io/tlog/charts (required)
# Environment for `ci-selftest`: TLOG_URL (required), TLOG_SELFTEST_KEY (a PEM
# ECDSA P-256 private key; default: a fresh one).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/.cache/tools
WORK=${TLOG_RELEASE_DIR:-$ROOT/.cache/release}

die() { echo "release: $*" >&2; exit 2; }
step() { echo "==> $*" >&2; }

# need TOOL...: fail before doing anything if a tool is missing.
need() {
  local missing=() t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (see docs/deploy.md, 'Releasing')"
}

need_env() {
  local v
  for v in "$@"; do
    [[ -n ${!v:-} ]] || die "set $v (see the header of $0)"
  done
}

# cosign v3 needs --use-signing-config=false to take --rekor-url; v2 lacks the flag.
cosign_log_flags() {
  if cosign sign --help 2>&1 | grep -q -- '--use-signing-config'; then
    echo "--use-signing-config=false --rekor-url $TLOG_URL"
  else
    echo "--rekor-url $TLOG_URL"
  fi
}

version() {
  sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1
}

# CycloneDX SBOM of the Rust dependency graph (Cargo.lock), validated.
cmd_sbom() {
  local out=${TLOG_SBOM_OUT:-$WORK}
  [[ -d $TOOLS/venv ]] && export PATH=$TOOLS/bin:$TOOLS/venv/bin:$PATH
  command -v syft >/dev/null || die "missing syft: run scripts/validate-deploy.sh setup (installs the pinned tools)"
  mkdir -p "$out"
  SYFT_CHECK_FOR_APP_UPDATE=false syft scan "dir:$ROOT" --quiet \
    --exclude './target/**' --exclude './.cache/**' --exclude './tests/**' \
    --source-name tlog --source-version "$(version)" \
    -o "cyclonedx-json=$out/tlog.cdx.json"
  python3_tools "$ROOT/scripts/deploy-tools/checks.py" sbom "$out/tlog.cdx.json"
}

python3_tools() {
  if [[ -x $TOOLS/venv/bin/python ]]; then "$TOOLS/venv/bin/python" "$@"; else python3 "$@"; fi
}

build_image() {
  local ref=$1
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    docker build --pull -t "$ref" "$ROOT" >&2
    docker push "$ref" >&2
    docker inspect --format '{{index .RepoDigests 0}}' "$ref" | sed 's/.*@//'
  elif command -v buildah >/dev/null; then
    buildah bud --pull -t "$ref" "$ROOT" >&2
    buildah push --digestfile "$WORK/digest" "$ref" >&2
    cat "$WORK/digest"
  else
    die "neither a running docker engine nor buildah is available to build the image"
  fi
}

cmd_all() {
  need_env IMAGE TLOG_URL CHART_REPO
  need cosign helm syft curl python3 openssl
  command -v docker >/dev/null || command -v buildah >/dev/null || die "missing tools: docker or buildah"
  local key=${COSIGN_KEY:-cosign.key} pub=${COSIGN_PUB:-cosign.pub} ver
  [[ -f $key && -f $pub ]] || die "cosign key pair not found ($key, $pub): cosign generate-key-pair"
  ver=${VERSION:-$(version)}
  mkdir -p "$WORK"

  step "trust material for $TLOG_URL"
  "$ROOT/scripts/trust-root.sh" "$TLOG_URL" "$WORK/trust" ${TLOG_PUBLIC_KEY:+"$TLOG_PUBLIC_KEY"}

  step "build $IMAGE:$ver"
  local digest ref
  digest=$(build_image "$IMAGE:$ver")
  [[ $digest == sha256:* ]] || die "could not read the pushed image digest"
  ref="$IMAGE@$digest"

  step "SBOM of $ref"
  SYFT_CHECK_FOR_APP_UPDATE=false syft scan "registry:$ref" -o "cyclonedx-json=$WORK/image.cdx.json"
  python3_tools "$ROOT/scripts/deploy-tools/checks.py" sbom "$WORK/image.cdx.json"

  step "sign and attest $ref into $TLOG_URL"
  # shellcheck disable=SC2046 # the flags are meant to split
  cosign sign --key "$key" --yes $(cosign_log_flags) "$ref"
  # shellcheck disable=SC2046
  cosign attest --key "$key" --yes --type cyclonedx --predicate "$WORK/image.cdx.json" $(cosign_log_flags) "$ref"

  step "verify with the log's public key"
  cosign verify --key "$pub" --trusted-root "$WORK/trust/trusted_root.json" "$ref" >/dev/null
  cosign verify-attestation --key "$pub" --type cyclonedx --trusted-root "$WORK/trust/trusted_root.json" "$ref" >/dev/null

  step "helm package and push to $CHART_REPO"
  helm package "$ROOT/charts/tlog" --version "$ver" --app-version "$ver" -d "$WORK"
  helm push "$WORK/tlog-$ver.tgz" "$CHART_REPO"
  echo "released $ref and chart tlog-$ver"
}

# Sign a release blob into the tlog at TLOG_URL with a real client, then verify
# it with the log's public key, and check that verification fails with another
# key. cosign when present; otherwise curl + openssl speak the Rekor v1 API.
cmd_ci_selftest() {
  need_env TLOG_URL
  need curl openssl python3
  local dir
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' RETURN
  printf 'tlog release self-test %s\n' "$(date -u +%s%N)" >"$dir/blob"
  if [[ -n ${TLOG_SELFTEST_KEY:-} ]]; then
    cp "$TLOG_SELFTEST_KEY" "$dir/signer.key"
  else
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/signer.key" 2>/dev/null
  fi
  openssl pkey -in "$dir/signer.key" -pubout -out "$dir/signer.pub"
  "$ROOT/scripts/trust-root.sh" "$TLOG_URL" "$dir/trust" >&2
  openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkey -pubout -out "$dir/wrong.pub"
  "$ROOT/scripts/trust-root.sh" "$TLOG_URL" "$dir/wrong-trust" "$dir/wrong.pub" >&2

  if command -v cosign >/dev/null; then
    step "cosign sign-blob into $TLOG_URL"
    # cosign reads an encrypted cosign key or a plain PEM private key.
    # shellcheck disable=SC2046
    COSIGN_PASSWORD='' cosign sign-blob --yes --key "$dir/signer.key" $(cosign_log_flags) \
      --bundle "$dir/blob.bundle" "$dir/blob" >/dev/null
    cosign verify-blob --key "$dir/signer.pub" --bundle "$dir/blob.bundle" \
      --trusted-root "$dir/trust/trusted_root.json" "$dir/blob"
    if cosign verify-blob --key "$dir/signer.pub" --bundle "$dir/blob.bundle" \
      --trusted-root "$dir/wrong-trust/trusted_root.json" "$dir/blob" 2>/dev/null; then
      die "verification passed with the wrong log key"
    fi
  else
    step "hashedrekord into $TLOG_URL with curl + openssl (cosign not installed)"
    openssl dgst -sha256 -sign "$dir/signer.key" -out "$dir/blob.sig" "$dir/blob"
    python3 "$ROOT/scripts/deploy-tools/rekor_v1.py" proposal "$dir/blob" "$dir/blob.sig" "$dir/signer.pub" >"$dir/proposal.json"
    curl -fsS -H 'Content-Type: application/json' --data-binary "@$dir/proposal.json" \
      "$TLOG_URL/api/v1/log/entries" -o "$dir/entry.json"
    python3 "$ROOT/scripts/deploy-tools/rekor_v1.py" verify "$dir/entry.json" "$dir/trust/tlog.pub" "$dir/blob"
    if python3 "$ROOT/scripts/deploy-tools/rekor_v1.py" verify "$dir/entry.json" "$dir/wrong.pub" "$dir/blob" 2>/dev/null; then
      die "verification passed with the wrong log key"
    fi
  fi
  echo "ci-selftest: signed into $TLOG_URL and verified; a wrong log key is refused"
}

case ${1:-all} in
  all) cmd_all ;;
  sbom) cmd_sbom ;;
  ci-selftest) cmd_ci_selftest ;;
  -h | --help | help) sed -n '2,25p' "$0" ;;
  *) die "unknown command $1 (all | sbom | ci-selftest)" ;;
esac
