{{/*
Chart name, truncated to a DNS label.
*/}}
{{- define "usersecrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every object this chart creates. Truncated to 51 characters so that
the Service names derived from it ("<fullname>-webhook", "<fullname>-metrics") stay DNS labels.
*/}}
{{- define "usersecrets.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 51 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 51 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 51 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "usersecrets.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable).
*/}}
{{- define "usersecrets.selectorLabels" -}}
app.kubernetes.io/name: {{ include "usersecrets.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Standard labels on every object.
*/}}
{{- define "usersecrets.labels" -}}
helm.sh/chart: {{ include "usersecrets.chart" . }}
{{ include "usersecrets.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: usersecrets
{{- end }}

{{/*
Names of derived objects.
*/}}
{{- define "usersecrets.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "usersecrets.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "usersecrets.webhookServiceName" -}}
{{- printf "%s-webhook" (include "usersecrets.fullname" .) }}
{{- end }}

{{- define "usersecrets.metricsServiceName" -}}
{{- printf "%s-metrics" (include "usersecrets.fullname" .) }}
{{- end }}

{{/* Secret holding the operator's self-managed CA and serving certificate (certManager off). */}}
{{- define "usersecrets.webhookCertSecretName" -}}
{{- printf "%s-webhook-tls" (include "usersecrets.fullname" .) }}
{{- end }}

{{/* Secret cert-manager writes the serving certificate to (certManager on). */}}
{{- define "usersecrets.certManagerSecretName" -}}
{{- printf "%s-webhook-cert" (include "usersecrets.fullname" .) }}
{{- end }}

{{- define "usersecrets.leaseName" -}}
{{- printf "%s-leader" (include "usersecrets.fullname" .) }}
{{- end }}

{{/* The Leases' names, one per shard, as a YAML list (rules.sharding.Shard.lease_name). */}}
{{- define "usersecrets.leaseNames" -}}
{{- $lease := include "usersecrets.leaseName" . }}
{{- if eq (int .Values.shards) 1 }}
- {{ $lease | quote }}
{{- else }}
{{- range $shard := until (int .Values.shards) }}
- {{ printf "%s-%d-of-%d" $lease $shard (int $.Values.shards) | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The MutatingWebhookConfiguration is cluster-scoped: its name is the full name. */}}
{{- define "usersecrets.webhookConfigName" -}}
{{- include "usersecrets.fullname" . }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag (appVersion).
*/}}
{{- define "usersecrets.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
KUBERNETES_SERVICE_HOST/PORT for in-cluster clients when apiServer.host is set (Service IPs
that do not route from pods); nothing otherwise. An env entry overrides kubelet's own.
*/}}
{{- define "usersecrets.apiServerEnv" -}}
{{- with .Values.apiServer.host }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ . | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ $.Values.apiServer.port | quote }}
{{- end }}
{{- end }}

{{/*
Development only: the https URL of one of the operator's webhook paths, from webhook.url (the
pod webhook's URL, ending in /mutate-pods). Usage: include "usersecrets.webhookURL" (list . "/path")
*/}}
{{- define "usersecrets.webhookURL" -}}
{{- $root := index . 0 -}}
{{- printf "%s%s" ($root.Values.webhook.url | trimSuffix "/mutate-pods") (index . 1) -}}
{{- end }}

{{/* ConfigMap holding the CA of the kube-apiserver's webhook client certificate. */}}
{{- define "usersecrets.webhookClientCAName" -}}
{{- printf "%s-webhook-client-ca" (include "usersecrets.fullname" .) }}
{{- end }}

{{/*
The web UI: its own app.kubernetes.io/name, so that no selector of the operator's (Deployment,
Services, PodDisruptionBudget) ever matches a UI pod.
*/}}
{{- define "usersecrets.ui.fullname" -}}
{{- printf "%s-ui" (include "usersecrets.fullname" .) }}
{{- end }}

{{- define "usersecrets.ui.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-ui" (include "usersecrets.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "usersecrets.ui.labels" -}}
helm.sh/chart: {{ include "usersecrets.chart" . }}
{{ include "usersecrets.ui.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: usersecrets
app.kubernetes.io/component: ui
{{- end }}
