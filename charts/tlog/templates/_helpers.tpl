{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "tlog.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "tlog.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tlog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tlog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{- define "tlog.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tlog.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tlog.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tlog.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag@digest; by digest when one is given. */}}
{{- define "tlog.imageRef" -}}
{{- $img := .image -}}
{{- $tag := default .appVersion $img.tag -}}
{{- if $img.digest -}}
{{- printf "%s/%s@%s" $img.registry $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $img.registry $img.repository $tag -}}
{{- end -}}
{{- end }}

{{- define "tlog.image" -}}
{{- include "tlog.imageRef" (dict "image" .Values.image "appVersion" .Chart.AppVersion) }}
{{- end }}

{{- define "tlog.dataImage" -}}
{{- include "tlog.imageRef" (dict "image" .Values.replica.db.image "appVersion" "latest") }}
{{- end }}

{{- define "tlog.publicKeyConfigMap" -}}
{{- default (printf "%s-public-key" (include "tlog.fullname" .)) .Values.replica.publicKey.existingConfigMap }}
{{- end }}

{{- define "tlog.v2PublicKeyConfigMap" -}}
{{- default (printf "%s-v2-public-key" (include "tlog.fullname" .)) .Values.replica.v2Tiles.publicKey.existingConfigMap }}
{{- end }}

{{/* Path of the v2 tiles directory inside the replica container. */}}
{{- define "tlog.v2TilesPath" -}}
/var/lib/tlog/v2-tiles{{ with .Values.replica.v2Tiles.path }}/{{ . }}{{ end }}
{{- end }}

{{- define "tlog.dbConfigMap" -}}
{{- default (printf "%s-db" (include "tlog.fullname" .)) .Values.replica.db.configMap.existingConfigMap }}
{{- end }}

{{/* The server's config file: server.config, with the write policy's
identities merged in (their files come from volumes, by environment). */}}
{{- define "tlog.configFile" -}}
{{- $cfg := deepCopy (.Values.server.config | default dict) }}
{{- with .Values.writePolicy.allowedIdentities }}
{{- $wp := deepCopy (get $cfg "write_policy" | default dict) }}
{{- $_ := set $wp "allowed_identities" . }}
{{- $_ := set $cfg "write_policy" $wp }}
{{- end }}
{{- if $cfg }}{{ toYaml $cfg }}{{ end }}
{{- end }}

{{/* Refuses value combinations the schema cannot express. */}}
{{- define "tlog.validate" -}}
{{- if not .Values.server.hostname }}
{{- fail "server.hostname is required: the public host name clients use (it is the checkpoint signer name and the Ingress host)" }}
{{- end }}
{{- if eq .Values.mode "readwrite" }}
{{- if eq .Values.signer.kind "pkcs11" }}
{{- $p := .Values.signer.pkcs11 }}
{{- if or (not $p.module) (not $p.moduleVolume) (not $p.tokenLabel) (not $p.keyLabel) (not $p.pinSecret) }}
{{- fail "signer.kind pkcs11 needs signer.pkcs11.module, moduleVolume, tokenLabel, keyLabel and pinSecret" }}
{{- end }}
{{- else if not .Values.signer.existingSecret }}
{{- fail "readwrite mode needs signer.existingSecret: a Secret holding the PKCS#8 PEM key from `tlog keygen`" }}
{{- end }}
{{- if and (not .Values.database.existingSecret) (not .Values.persistence.enabled) }}
{{- fail "readwrite mode needs database.existingSecret (Postgres) or persistence.enabled (embedded file store)" }}
{{- end }}
{{- $wp := .Values.writePolicy }}
{{- if and $wp.allowedIdentities (not $wp.trustedRoots.configMap) }}
{{- fail "writePolicy.allowedIdentities needs writePolicy.trustedRoots.configMap: without a trusted issuer anyone can make a certificate with any identity" }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling is for replica mode: a read-write log has a single writer" }}
{{- end }}
{{- else }}
{{- $wp := .Values.writePolicy }}
{{- if or $wp.allowedKeys.configMap $wp.trustedRoots.configMap $wp.allowedIdentities $wp.bearerTokens.secret }}
{{- fail "writePolicy is for readwrite mode: a replica takes no writes" }}
{{- end }}
{{- if and (not .Values.replica.publicKey.pem) (not .Values.replica.publicKey.existingConfigMap) }}
{{- fail "replica mode needs replica.publicKey.pem or replica.publicKey.existingConfigMap" }}
{{- end }}
{{- $db := .Values.replica.db }}
{{- if and (eq $db.source "configMap") (not $db.configMap.data) (not $db.configMap.existingConfigMap) }}
{{- fail "replica.db.source=configMap needs replica.db.configMap.data (--set-file) or existingConfigMap" }}
{{- end }}
{{- $cmBytes := len $db.configMap.data }}
{{- range $db.configMap.frozenShardData }}{{ $cmBytes = add $cmBytes (len .) }}{{ end }}
{{- if and (eq $db.source "configMap") (gt $cmBytes 1000000) }}
{{- fail "replica.db.configMap.data (with frozenShardData) exceeds what a ConfigMap holds (1 MiB): use replica.db.source=image or pvc" }}
{{- end }}
{{- /* Frozen shards come from the active snapshot's source, each once. */}}
{{- $active := dict "configMap" $db.configMap.key "image" $db.image.path "pvc" $db.pvc.fileName }}
{{- range $source := list "configMap" "image" "pvc" }}
{{- $frozen := (get $db $source).frozenShards }}
{{- if and $frozen (ne $source $db.source) }}
{{- fail (printf "replica.db.%s.frozenShards is set but replica.db.source is %s: the frozen shards come from the active snapshot's source" $source $db.source) }}
{{- end }}
{{- if has (get $active $source) $frozen }}
{{- fail (printf "replica.db.%s.frozenShards lists the active snapshot %s: list only the frozen shards" $source (get $active $source)) }}
{{- end }}
{{- end }}
{{- $cm := $db.configMap }}
{{- range $k, $_ := $cm.frozenShardData }}
{{- if not (has $k $cm.frozenShards) }}
{{- fail (printf "replica.db.configMap.frozenShardData has %s, which replica.db.configMap.frozenShards does not list (the list gives their order)" $k) }}
{{- end }}
{{- end }}
{{- if and $cm.existingConfigMap $cm.frozenShardData }}
{{- fail "replica.db.configMap.frozenShardData is for the chart's ConfigMap: with existingConfigMap, put the frozen shards in that ConfigMap" }}
{{- end }}
{{- if and (eq $db.source "configMap") (not $cm.existingConfigMap) }}
{{- range $cm.frozenShards }}
{{- if not (hasKey $cm.frozenShardData .) }}
{{- fail (printf "replica.db.configMap.frozenShards lists %s, which needs replica.db.configMap.frozenShardData.%s (or use existingConfigMap)" . .) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (eq $db.source "image") (not $db.image.tag) (not $db.image.digest) }}
{{- fail "replica.db.source=image needs replica.db.image.digest (or tag)" }}
{{- end }}
{{- if and (eq $db.source "image") (eq $db.image.mount "volume") (not (semverCompare ">=1.33-0" .Capabilities.KubeVersion.Version)) }}
{{- fail "replica.db.image.mount=volume needs Kubernetes >= 1.33 (image volumes)" }}
{{- end }}
{{- if and (eq $db.source "pvc") (not $db.pvc.claimName) }}
{{- fail "replica.db.source=pvc needs replica.db.pvc.claimName" }}
{{- end }}
{{- $v2 := .Values.replica.v2Tiles }}
{{- $v2Key := or $v2.publicKey.pem $v2.publicKey.existingConfigMap }}
{{- if and $v2.volume (not $v2Key) }}
{{- fail "replica.v2Tiles.volume needs replica.v2Tiles.publicKey.pem or existingConfigMap: the v2 log's Ed25519 public key" }}
{{- end }}
{{- if and (not $v2.volume) (or $v2Key $v2.path) }}
{{- fail "replica.v2Tiles.publicKey and path need replica.v2Tiles.volume: the volume holding the tiles directory" }}
{{- end }}
{{- if and (hasKey $v2.volume "image") (not (semverCompare ">=1.33-0" .Capabilities.KubeVersion.Version)) }}
{{- fail "replica.v2Tiles.volume.image needs Kubernetes >= 1.33 (image volumes)" }}
{{- end }}
{{- end }}
{{- if and .Values.tracing.enabled (eq .Values.mode "replica") .Values.networkPolicy.enabled }}
{{- fail "tracing in replica mode: the NetworkPolicy gives a replica no egress but DNS; disable one of the two" }}
{{- end }}
{{- if and .Values.tracing.enabled (not .Values.tracing.otlpEndpoint) }}
{{- fail "tracing.enabled needs tracing.otlpEndpoint" }}
{{- end }}
{{- $min := toString .Values.pdb.minAvailable }}
{{- $max := toString .Values.pdb.maxUnavailable }}
{{- if and .Values.pdb.enabled (ne $min "") (ne $max "") }}
{{- fail "pdb: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if and .Values.pdb.enabled (eq $min "") (eq $max "") }}
{{- fail "pdb: set minAvailable or maxUnavailable" }}
{{- end }}
{{- end }}

{{/* Path of db.jsonl inside the replica container. */}}
{{- define "tlog.dbPath" -}}
{{- if eq .Values.replica.db.source "pvc" -}}
/var/lib/tlog/db/{{ .Values.replica.db.pvc.fileName }}
{{- else if and (eq .Values.replica.db.source "image") (eq .Values.replica.db.image.mount "volume") -}}
/var/lib/tlog/db{{ .Values.replica.db.image.path }}
{{- else -}}
/var/lib/tlog/db/db.jsonl
{{- end -}}
{{- end }}

{{/* Paths of the frozen shards' snapshots inside the replica container,
oldest first, as a JSON list: under the same mount as db.jsonl. */}}
{{- define "tlog.frozenShardPaths" -}}
{{- $db := .Values.replica.db }}
{{- $paths := list }}
{{- if eq $db.source "configMap" }}
{{- range $db.configMap.frozenShards }}{{ $paths = append $paths (printf "/var/lib/tlog/db/frozen/%s" .) }}{{ end }}
{{- else if eq $db.source "pvc" }}
{{- range $db.pvc.frozenShards }}{{ $paths = append $paths (printf "/var/lib/tlog/db/%s" .) }}{{ end }}
{{- else if eq $db.image.mount "volume" }}
{{- range $db.image.frozenShards }}{{ $paths = append $paths (printf "/var/lib/tlog/db%s" .) }}{{ end }}
{{- else }}
{{- /* initContainer: fetch-frozen-shard-N copies the Nth into the emptyDir. */}}
{{- range $i, $_ := $db.image.frozenShards }}{{ $paths = append $paths (printf "/var/lib/tlog/db/frozen-%d.jsonl" $i) }}{{ end }}
{{- end }}
{{- toJson $paths }}
{{- end }}

{{/* The monitor's pod template; .once runs one poll (CronJob). */}}
{{- define "tlog.monitorPod" -}}
{{- $root := .root }}
{{- $m := $root.Values.monitor -}}
metadata:
  labels:
    {{- toYaml .labels | nindent 4 }}
  annotations:
    checksum/config: {{ toYaml .config | sha256sum }}
    {{- if and (not .once) $root.Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/path: /metrics
    prometheus.io/port: {{ $root.Values.server.metricsPort | quote }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- if .once }}
  restartPolicy: Never
  {{- end }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: monitor
      image: {{ include "tlog.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["--config", "/etc/tlog/monitor/config.yaml", "monitor"{{ if .once }}, "--once"{{ end }}]
      env:
        - name: RUST_LOG
          value: {{ $root.Values.server.logLevel | quote }}
      {{- if not .once }}
      ports:
        - name: metrics
          containerPort: {{ $root.Values.server.metricsPort }}
          protocol: TCP
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml $m.resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/tlog/monitor
          readOnly: true
        - name: public-key
          mountPath: /etc/tlog/monitor-key
          readOnly: true
        - name: state
          mountPath: /var/lib/tlog/monitor
        {{- if $m.caCertificate.existingConfigMap }}
        - name: ca-certificate
          mountPath: /etc/tlog/monitor-ca
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ .name }}
    - name: public-key
      configMap:
        name: {{ .keyMap }}
    - name: state
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-state" .name) $m.state.existingClaim }}
    {{- if $m.caCertificate.existingConfigMap }}
    - name: ca-certificate
      configMap:
        name: {{ $m.caCertificate.existingConfigMap }}
    {{- end }}
{{- end }}
