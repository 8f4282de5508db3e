{{/*
Names.
*/}}
{{- define "tasker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release name, plus the chart name unless the release name already
contains it. Trimmed to 50 chars so that "<fullname>-api" and friends fit in
63; "<fullname>-worker-<pool>" is checked against 63 per pool.
*/}}
{{- define "tasker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tasker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tasker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tasker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tasker.secretName" -}}
{{- if .Values.secret.existingSecret }}
{{- .Values.secret.existingSecret }}
{{- else }}
{{- include "tasker.fullname" . }}
{{- end }}
{{- end }}

{{/*
Labels. Call with (dict "ctx" $ "component" "api"), and for a worker pool
(dict "ctx" $ "component" "worker" "pool" "default").
*/}}
{{- define "tasker.labels" -}}
helm.sh/chart: {{ include "tasker.chart" .ctx }}
{{ include "tasker.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ include "tasker.name" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tasker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tasker.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with .pool }}
tasker.dev/pool: {{ . }}
{{- end }}
{{- end }}

{{- define "tasker.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The TOML configuration file. Values are written with toJson, whose strings,
numbers, booleans and arrays are valid TOML; null values are left out so that
the binary's default applies. Known sections come first in a fixed order, any
other section of .Values.config after them.
*/}}
{{- define "tasker.configToml" -}}
# Rendered by the Helm chart from .Values.config; see the README's
# configuration table. Secrets come from TASKER_…_FILE, not from here.
{{- $config := .Values.config }}
{{- $sections := list "database" "redis" "api" "auth" "worker" "cache" "log" "llm" }}
{{- range $name := keys $config | sortAlpha }}
{{- if and (not (has $name $sections)) (ne $name "task_queues") }}
{{- $sections = append $sections $name }}
{{- end }}
{{- end }}
{{- range $section := $sections }}
{{- $values := get $config $section | default dict }}

[{{ $section }}]
{{- if eq $section "api" }}
listen = {{ printf "0.0.0.0:%d" (int $.Values.api.containerPort) | toJson }}
ops_listen = {{ printf "0.0.0.0:%d" (int $.Values.api.opsPort) | toJson }}
{{- else if eq $section "worker" }}
listen = {{ printf "0.0.0.0:%d" (int $.Values.workerDefaults.containerPort) | toJson }}
{{- end }}
{{- range $key, $value := $values }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- end }}
{{- with $config.task_queues }}

[task_queues]
{{- range $task, $queue := . }}
{{ toJson $task }} = {{ toJson $queue }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Secret data as key → value, only the keys that have a value. Call with
(dict "ctx" $), plus "bootstrapToken" true for the release's Secret: the
bootstrap token is for the api pods only, so the migration hook's copy of the
Secret and the workers' checksum leave it out; and "migrateUrl" true for the
migration hook's copy, the only one with the direct URL for migrations.
*/}}
{{- define "tasker.secretData" -}}
{{- $s := .ctx.Values.secret -}}
{{ $s.keys.databaseUrl }}: {{ $s.databaseUrl | b64enc | quote }}
{{- if .migrateUrl }}
{{- with include "tasker.migrateUrlKey" .ctx }}
{{ . }}: {{ $s.migrateDatabaseUrl | b64enc | quote }}
{{- end }}
{{- end }}
{{ $s.keys.redisUrl }}: {{ $s.redisUrl | b64enc | quote }}
{{- if and $s.llmApiKey $s.keys.llmApiKey }}
{{ $s.keys.llmApiKey }}: {{ $s.llmApiKey | b64enc | quote }}
{{- end }}
{{- if .bootstrapToken }}
{{- with include "tasker.bootstrapToken" .ctx }}
{{ $s.keys.bootstrapToken }}: {{ . | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The bootstrap admin key's token in the Secret the chart creates (empty when
secret.create is false or secret.keys.bootstrapToken is ""):
secret.bootstrapToken when given; else the token already in the release's
Secret, so that upgrades keep it; else a new one, "tsk_" and 64 hex digits
(the SHA-256 of 64 random letters and digits). Without a cluster (helm
template, client-side --dry-run) lookup finds nothing and every render
generates a new token. Resolved once per render and kept in
.Values.secret, so that the Secret and the api pods' checksum/secret see the
same token.
*/}}
{{- define "tasker.bootstrapToken" -}}
{{- $s := .Values.secret }}
{{- if and $s.create $s.keys.bootstrapToken }}
{{- if not (hasKey $s "resolvedBootstrapToken") }}
{{- $token := trim ($s.bootstrapToken | default "") }}
{{- if not $token }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "tasker.fullname" .) }}
{{- with dig "data" $s.keys.bootstrapToken "" ($existing | default dict) }}
{{- $token = b64dec . }}
{{- end }}
{{- end }}
{{- if not $token }}
{{- $token = printf "tsk_%s" (randAlphaNum 64 | sha256sum) }}
{{- end }}
{{- $_ := set $s "resolvedBootstrapToken" $token }}
{{- end }}
{{- get $s "resolvedBootstrapToken" }}
{{- end }}
{{- end }}

{{/*
Whether the api pods get a bootstrap token (the key secret.keys.bootstrapToken
of the created or existing Secret).
*/}}
{{- define "tasker.hasBootstrapToken" -}}
{{- if .Values.secret.keys.bootstrapToken }}true{{ end }}
{{- end }}

{{/*
Whether the LLM key is wired into the pods.
*/}}
{{/*
The Secret key of the direct URL for migrations, when there is one: the
existing Secret's keys.migrateDatabaseUrl, or with `create` the key
migrateDatabaseUrl is stored under.
*/}}
{{- define "tasker.migrateUrlKey" -}}
{{- $s := .Values.secret }}
{{- if $s.existingSecret }}
{{- $s.keys.migrateDatabaseUrl }}
{{- else if $s.migrateDatabaseUrl }}
{{- $s.keys.migrateDatabaseUrl | default "migrate-database-url" }}
{{- end }}
{{- end }}

{{- define "tasker.hasLlmKey" -}}
{{- if .Values.secret.existingSecret }}
{{- if .Values.secret.keys.llmApiKey }}true{{ end }}
{{- else if and .Values.secret.llmApiKey .Values.secret.keys.llmApiKey }}true
{{- end }}
{{- end }}

{{/*
Environment of a Tasker container: what every container shares, then a
worker pool's own variables, the global extraEnv and the container's extra
ones (a later variable of the same name wins). Call with
(dict "ctx" $ "extra" list), plus "pool" list for a worker pool,
"bootstrapToken" true for the api (the only container given the bootstrap
token; it must match the "bootstrapToken" of tasker.volumes) and "migrateUrl"
true for the migration Job (likewise, the direct URL for migrations).
*/}}
{{- define "tasker.env" -}}
- name: TASKER_CONFIG
  value: /etc/tasker/tasker.toml
- name: TASKER_DATABASE__URL_FILE
  value: /run/secrets/tasker/database-url
- name: TASKER_REDIS__URL_FILE
  value: /run/secrets/tasker/redis-url
{{- if include "tasker.hasLlmKey" .ctx }}
- name: TASKER_LLM__API_KEY_FILE
  value: /run/secrets/tasker/llm-api-key
{{- end }}
{{- if and .bootstrapToken (include "tasker.hasBootstrapToken" .ctx) }}
- name: TASKER_AUTH__BOOTSTRAP_TOKEN_FILE
  value: /run/secrets/tasker/bootstrap-token
{{- end }}
{{- if and .migrateUrl (include "tasker.migrateUrlKey" .ctx) }}
- name: TASKER_DATABASE__MIGRATE_URL_FILE
  value: /run/secrets/tasker/migrate-database-url
{{- end }}
{{- with .pool }}
{{ toYaml . }}
{{- end }}
{{- with .ctx.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tasker.volumeMounts" -}}
- name: config
  mountPath: /etc/tasker
  readOnly: true
- name: secrets
  mountPath: /run/secrets/tasker
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
Volumes. Call with (dict "ctx" $ "configMap" name "secret" name), plus
"bootstrapToken" true for the api pods (only they get the bootstrap token)
and "migrateUrl" true for the migration Job (only it gets the direct URL).
*/}}
{{- define "tasker.volumes" -}}
{{- $s := .ctx.Values.secret -}}
- name: config
  configMap:
    name: {{ .configMap }}
    items:
      - key: tasker.toml
        path: tasker.toml
- name: secrets
  secret:
    secretName: {{ .secret }}
    # 0440: readable by the owner and by the pod's fsGroup, nobody else.
    defaultMode: 288
    items:
      - key: {{ $s.keys.databaseUrl }}
        path: database-url
      - key: {{ $s.keys.redisUrl }}
        path: redis-url
      {{- if include "tasker.hasLlmKey" .ctx }}
      - key: {{ $s.keys.llmApiKey }}
        path: llm-api-key
      {{- end }}
      {{- if and .bootstrapToken (include "tasker.hasBootstrapToken" .ctx) }}
      - key: {{ $s.keys.bootstrapToken }}
        path: bootstrap-token
      {{- end }}
      {{- if .migrateUrl }}
      {{- with include "tasker.migrateUrlKey" .ctx }}
      - key: {{ . }}
        path: migrate-database-url
      {{- end }}
      {{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/*
Pod-level settings shared by api, worker and the migration Job.
enableServiceLinks is off: Kubernetes would otherwise inject variables such as
TASKER_API_PORT for the Service "tasker-api", which the TASKER_ configuration
prefix would read as an (unknown) configuration key.
*/}}
{{- define "tasker.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Topology spread constraints with the component's (and worker pool's) selector
filled in when the constraint gives none. Call with
(dict "ctx" $ "component" "api" "constraints" list), plus "pool" for a worker pool.
*/}}
{{- define "tasker.topologySpread" -}}
{{- $selector := fromYaml (include "tasker.selectorLabels" (dict "ctx" .ctx "component" .component "pool" .pool)) }}
{{- $out := list }}
{{- range .constraints }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $out = append $out $c }}
{{- end }}
{{- with $out -}}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A list of queues as a regular expression for PromQL (".+" for an empty list:
every queue). Call with the list.
*/}}
{{- define "tasker.queueRegex" -}}
{{- $escaped := list }}
{{- range . }}
{{- $escaped = append $escaped (regexQuoteMeta .) }}
{{- end }}
{{- join "|" $escaped | default ".+" }}
{{- end }}

{{/*
Deep merge of .src into the map .dst, in place: maps are merged key by key,
anything else in .src (lists included) replaces the value in .dst, and a null
in .src removes the key.
*/}}
{{- define "tasker.mergeInto" -}}
{{- $dst := .dst }}
{{- range $key, $value := .src }}
{{- if kindIs "invalid" $value }}
{{- $_ := unset $dst $key }}
{{- else if and (kindIs "map" $value) (kindIs "map" (get $dst $key)) }}
{{- include "tasker.mergeInto" (dict "dst" (get $dst $key) "src" $value) }}
{{- else }}
{{- $_ := set $dst $key (deepCopy $value) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The worker pools: fills the map .out with pool name → workerDefaults merged
with that pool's settings (see tasker.mergeInto), plus "queues" (a list,
empty for every queue). Call with (dict "ctx" $ "out" (dict)); checks what
the schema cannot see, the merged result.
*/}}
{{- define "tasker.workerPools" -}}
{{- $ctx := .ctx }}
{{- $fullname := include "tasker.fullname" $ctx }}
{{- $defaults := omit $ctx.Values.workerDefaults "containerPort" }}
{{- if not $ctx.Values.workers }}
{{- fail "workers: define at least one worker pool (the chart's default is workers.default with queues: [])" }}
{{- end }}
{{- range $name, $settings := $ctx.Values.workers }}
{{- $pool := deepCopy $defaults }}
{{- include "tasker.mergeInto" (dict "dst" $pool "src" ($settings | default dict)) }}
{{- $_ := set $pool "queues" ($pool.queues | default list) }}
{{- $resource := printf "%s-worker-%s" $fullname $name }}
{{- if gt (len $resource) 63 }}
{{- fail (printf "workers.%s: the pool's resources would be named %s, longer than 63 characters; shorten the pool name or fullnameOverride" $name $resource) }}
{{- end }}
{{- $as := $pool.autoscaling }}
{{- if $as.enabled }}
{{- if and (eq $as.mode "hpa") (lt (int $as.minReplicas) 1) }}
{{- fail (printf "workers.%s.autoscaling.minReplicas: the HPA needs at least 1 (only KEDA scales to zero)" $name) }}
{{- end }}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) }}
{{- fail (printf "workers.%s.autoscaling: minReplicas %v is above maxReplicas %v" $name $as.minReplicas $as.maxReplicas) }}
{{- end }}
{{- end }}
{{- $_ := set $.out $name $pool }}
{{- end }}
{{- end }}

{{/*
Checks that templates cannot express in the schema.
*/}}
{{- define "tasker.validate" -}}
{{- if and .Values.secret.create .Values.secret.existingSecret }}
{{- fail "secret.create and secret.existingSecret are mutually exclusive: set secret.create=false to use an existing Secret" }}
{{- end }}
{{- if and (not .Values.secret.create) (not .Values.secret.existingSecret) }}
{{- fail "set secret.existingSecret, or secret.create=true with secret.databaseUrl and secret.redisUrl" }}
{{- end }}
{{- if and .Values.migrations.enabled (eq (toString .Values.config.database.pooler) "transaction") (not (include "tasker.migrateUrlKey" .)) }}
{{- fail "config.database.pooler is \"transaction\": migrations cannot run through the pooler; set secret.migrateDatabaseUrl to a direct PostgreSQL URL (with an existing Secret: secret.keys.migrateDatabaseUrl)" }}
{{- end }}
{{- if hasKey .Values "worker" }}
{{- fail "worker: chart 0.2.0 replaced it by worker pools: shared settings go in workerDefaults, each pool in workers.<name> (see the chart README, \"Worker pools\")" }}
{{- end }}
{{- if hasKey .Values.config.worker "queues" }}
{{- fail "config.worker.queues: each worker pool names its queues, in workers.<name>.queues (see the chart README, \"Worker pools\")" }}
{{- end }}
{{- if hasKey .Values.config.worker "concurrency" }}
{{- fail "config.worker.concurrency: set workerDefaults.concurrency, or workers.<name>.concurrency for one pool (see the chart README, \"Worker pools\")" }}
{{- end }}
{{- end }}
