{{/*
Names.
*/}}
{{- define "tasker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release name, plus the chart name unless the release name already
contains it. Trimmed so that "<fullname>-worker" and friends fit in 63 chars.
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
Labels. Call with (dict "ctx" $ "component" "api").
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
{{- $sections := list "database" "redis" "api" "worker" "cache" "log" "llm" }}
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
{{- else if eq $section "worker" }}
listen = {{ printf "0.0.0.0:%d" (int $.Values.worker.containerPort) | toJson }}
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
Secret data as key → value, only the keys that have a value.
*/}}
{{- define "tasker.secretData" -}}
{{- $s := .Values.secret -}}
{{ $s.keys.databaseUrl }}: {{ $s.databaseUrl | b64enc | quote }}
{{ $s.keys.redisUrl }}: {{ $s.redisUrl | b64enc | quote }}
{{- if and $s.llmApiKey $s.keys.llmApiKey }}
{{ $s.keys.llmApiKey }}: {{ $s.llmApiKey | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
Whether the LLM key is wired into the pods.
*/}}
{{- define "tasker.hasLlmKey" -}}
{{- if .Values.secret.existingSecret }}
{{- if .Values.secret.keys.llmApiKey }}true{{ end }}
{{- else if and .Values.secret.llmApiKey .Values.secret.keys.llmApiKey }}true
{{- end }}
{{- end }}

{{/*
Environment shared by every Tasker container. Call with (dict "ctx" $ "extra" list).
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
Volumes. Call with (dict "ctx" $ "configMap" name "secret" name).
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
Topology spread constraints with the component's selector filled in when the
constraint gives none. Call with (dict "ctx" $ "component" "api" "constraints" list).
*/}}
{{- define "tasker.topologySpread" -}}
{{- $selector := fromYaml (include "tasker.selectorLabels" (dict "ctx" .ctx "component" .component)) }}
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
The worker's queues as a regular expression for PromQL.
*/}}
{{- define "tasker.workerQueueRegex" -}}
{{- $queues := .Values.config.worker.queues | default list }}
{{- if $queues }}
{{- $escaped := list }}
{{- range $queues }}
{{- $escaped = append $escaped (regexQuoteMeta .) }}
{{- end }}
{{- join "|" $escaped }}
{{- else }}
{{- ".+" }}
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
{{- end }}
