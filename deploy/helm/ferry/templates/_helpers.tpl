{{/*
The chart's name.
*/}}
{{- define "ferry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource's name: the release name, with the chart's
added unless the release name holds it already.
*/}}
{{- define "ferry.fullname" -}}
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

{{- define "ferry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "ferry.labels" -}}
helm.sh/chart: {{ include "ferry.chart" . }}
{{ include "ferry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferry
{{- end }}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Names of the chart's parts.
*/}}
{{- define "ferry.service.headless" -}}
{{- printf "%s-headless" (include "ferry.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferry.manager.name" -}}
{{- printf "%s-manager" (include "ferry.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferry.manager.serviceAccount" -}}
{{- if .Values.endpoint.serviceAccount.create }}
{{- default (include "ferry.manager.name" .) .Values.endpoint.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.endpoint.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ferry.worker.serviceAccount" -}}
{{- $sa := .Values.endpoint.workers.serviceAccount }}
{{- if $sa.create }}
{{- default (printf "%s-worker" (include "ferry.fullname" .) | trunc 63 | trimSuffix "-") $sa.name }}
{{- else }}
{{- $sa.name }}
{{- end }}
{{- end }}

{{- define "ferry.worker.namespace" -}}
{{- default .Release.Namespace .Values.endpoint.workers.namespace }}
{{- end }}

{{/*
The Secret holding the endpoint's credential (key `credential`).
*/}}
{{- define "ferry.credential.secret" -}}
{{- default (printf "%s-endpoint" (include "ferry.fullname" .) | trunc 63 | trimSuffix "-") .Values.endpoint.credential.existingSecret }}
{{- end }}

{{/*
The Secret holding TLS (`tls.crt`, `tls.key`, `ca.crt`).
*/}}
{{- define "ferry.tls.secret" -}}
{{- default (printf "%s-tls" (include "ferry.fullname" .) | trunc 63 | trimSuffix "-") .Values.tls.existingSecret }}
{{- end }}

{{/*
Images: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "ferry.service.image" -}}
{{- printf "%s:%s" .Values.service.image.repository (default .Chart.AppVersion .Values.service.image.tag) }}
{{- end }}

{{- define "ferry.endpoint.image" -}}
{{- printf "%s:%s" .Values.endpoint.image.repository (default .Chart.AppVersion .Values.endpoint.image.tag) }}
{{- end }}

{{/*
The URL endpoints dial.
*/}}
{{- define "ferry.serviceUrl" -}}
{{- if .Values.endpoint.serviceUrl }}
{{- .Values.endpoint.serviceUrl }}
{{- else }}
{{- printf "%s://%s.%s.svc:%d" (ternary "https" "http" .Values.tls.enabled) (include "ferry.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}
{{- end }}

{{/*
A number as a TOML float (`1` becomes `1.0`).
*/}}
{{- define "ferry.tomlFloat" -}}
{{- $s := toString . }}
{{- if regexMatch "^-?[0-9]+$" $s }}{{ $s }}.0{{ else }}{{ $s }}{{ end }}
{{- end }}

{{/*
The pods' security settings: the images' non-root user, whose group owns
the volumes.
*/}}
{{- define "ferry.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ferry.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end }}
