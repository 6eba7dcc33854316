{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "trustpub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of the release's resources. When the release name already contains the
chart name it is used alone ("trustpub", not "trustpub-trustpub").
*/}}
{{- define "trustpub.fullname" -}}
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

{{/*
Chart label value: name-version, "+" is not allowed in label values.
*/}}
{{- define "trustpub.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "trustpub.labels" -}}
helm.sh/chart: {{ include "trustpub.chart" . }}
app.kubernetes.io/name: {{ include "trustpub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trustpub
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector of the trustpub pods. The component label keeps the evaluation Redis pods of the same
release out of trustpub's Service and NetworkPolicy. Selectors are immutable: never change them.
*/}}
{{- define "trustpub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trustpub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/*
Selector of the evaluation Redis pod.
*/}}
{{- define "trustpub.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "trustpub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: evaluation-redis
{{- end }}

{{- define "trustpub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trustpub.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: the digest wins over the tag; the tag defaults to the chart's appVersion.
*/}}
{{- define "trustpub.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Names of the resources the chart may manage. */}}
{{- define "trustpub.policiesConfigMapName" -}}
{{- default (printf "%s-policies" (include "trustpub.fullname" .)) .Values.existingPoliciesConfigMap }}
{{- end }}

{{- define "trustpub.signingKeysSecretName" -}}
{{- default (printf "%s-signing-keys" (include "trustpub.fullname" .)) .Values.signingKeys.existingSecret }}
{{- end }}

{{- define "trustpub.clientsSecretName" -}}
{{- default (printf "%s-clients" (include "trustpub.fullname" .)) .Values.clients.existingSecret }}
{{- end }}

{{- define "trustpub.redisName" -}}
{{- printf "%s-redis" (include "trustpub.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The chart-managed Secret with the Redis URL or Sentinel password from values. */}}
{{- define "trustpub.redisSecretName" -}}
{{- printf "%s-redis-auth" (include "trustpub.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
True ("true") when the clients file is configured, by Secret or by values.
*/}}
{{- define "trustpub.clientsEnabled" -}}
{{- if or .Values.clients.existingSecret .Values.clients.toml }}true{{ end }}
{{- end }}

{{/*
Which Redis the release uses: url, existingSecret, sentinel, evaluation, inMemory, or a
comma-separated list when several are chosen (refused by trustpub.validate).
*/}}
{{- define "trustpub.redisMode" -}}
{{- $modes := list }}
{{- if .Values.redis.url }}{{ $modes = append $modes "url" }}{{ end }}
{{- if .Values.redis.existingSecret }}{{ $modes = append $modes "existingSecret" }}{{ end }}
{{- if .Values.redis.sentinel.enabled }}{{ $modes = append $modes "sentinel" }}{{ end }}
{{- if .Values.redis.evaluation.enabled }}{{ $modes = append $modes "evaluation" }}{{ end }}
{{- if .Values.redis.inMemory }}{{ $modes = append $modes "inMemory" }}{{ end }}
{{- join "," $modes }}
{{- end }}

{{/*
Sentinel address list "h1:26379,h2:26379": a host without a port gets Sentinel's 26379.
*/}}
{{- define "trustpub.sentinelHosts" -}}
{{- $hosts := list }}
{{- range .Values.redis.sentinel.hosts }}
{{- $hosts = append $hosts (ternary . (printf "%s:26379" .) (contains ":" .)) }}
{{- end }}
{{- join "," $hosts }}
{{- end }}

{{/*
Environment variables of the Redis choice. A password never appears in the manifest: it comes
from a Secret, and Kubernetes expands $(REDIS_PASSWORD) into the Sentinel URL.
*/}}
{{- define "trustpub.redisEnv" -}}
{{- $mode := include "trustpub.redisMode" . }}
{{- if eq $mode "url" }}
- name: TRUSTPUB_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "trustpub.redisSecretName" . }}
      key: redis-url
{{- else if eq $mode "existingSecret" }}
- name: TRUSTPUB_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else if eq $mode "sentinel" }}
{{- $sentinel := .Values.redis.sentinel }}
{{- $auth := "" }}
{{- if or $sentinel.password $sentinel.existingSecret }}
{{- $auth = ":$(REDIS_PASSWORD)@" }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if $sentinel.existingSecret }}
      name: {{ $sentinel.existingSecret }}
      key: {{ $sentinel.existingSecretPasswordKey }}
      {{- else }}
      name: {{ include "trustpub.redisSecretName" . }}
      key: redis-password
      {{- end }}
{{- end }}
- name: TRUSTPUB_REDIS_URL
  value: {{ printf "%s://%s%s/%s/%d" (ternary "rediss+sentinel" "redis+sentinel" $sentinel.tls) $auth (include "trustpub.sentinelHosts" .) $sentinel.masterName (int $sentinel.db) | quote }}
{{- else if eq $mode "evaluation" }}
- name: TRUSTPUB_REDIS_URL
  value: {{ printf "redis://%s:6379/0" (include "trustpub.redisName" .) | quote }}
{{- end }}
{{- end }}

{{/*
Ports of an egress rule, comma-separated: the configured ones and every port that a "host:port"
of the values names (an issuer of GitLab on :8443, a Sentinel on :26380), which the rule would
otherwise block. Called with (list <ports> <host or host:port>...).
*/}}
{{- define "trustpub.egressPorts" -}}
{{- $ports := list }}
{{- range index . 0 }}
{{- $ports = append $ports (int .) }}
{{- end }}
{{- range index . 1 }}
{{- with regexFind ":[0-9]+$" . }}
{{- $ports = append $ports (trimPrefix ":" . | int) }}
{{- end }}
{{- end }}
{{- $ports | uniq | join "," }}
{{- end }}
