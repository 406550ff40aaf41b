{{/*
Names, labels and small shared snippets. Component templates only call these helpers, so a name is spelled
in one place.
*/}}

{{- define "sentryroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `<release>-<chart>`, or just the release name when it already contains the chart name. */}}
{{- define "sentryroute.fullname" -}}
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

{{- define "sentryroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name of a component: `<fullname>-operator`, `<fullname>-forwarder`. Call with (list $ "operator"). */}}
{{- define "sentryroute.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "sentryroute.fullname" $root | trunc 52 | trimSuffix "-") (index . 1) }}
{{- end }}

{{/* Labels that never change for a component: used in selectors. Call with (list $ "operator"). */}}
{{- define "sentryroute.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "sentryroute.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Standard labels of every object. Call with (list $ "operator"). */}}
{{- define "sentryroute.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "sentryroute.chart" $root }}
{{ include "sentryroute.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: sentryroute
{{- end }}

{{- define "sentryroute.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "sentryroute.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "sentryroute.componentName" (list . "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sentryroute.forwarder.serviceAccountName" -}}
{{- if .Values.forwarder.serviceAccount.create }}
{{- default (include "sentryroute.componentName" (list . "forwarder")) .Values.forwarder.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.forwarder.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMaps fixed by SPEC §1; the operator creates both in its own (the release) namespace. */}}
{{- define "sentryroute.routesConfigMap" -}}sentryroute-routes{{- end }}
{{- define "sentryroute.reportConfigMap" -}}sentryroute-requests{{- end }}

{{/* Does the forwarder talk to the Kubernetes API at all? Only then does it get a token and a Role. */}}
{{- /* The Secrets the operator reads Sentry tokens from (its RBAC names exactly these), as a JSON list. */}}
{{- define "sentryroute.tokenSecretNames" -}}
{{- $names := list }}
{{- range .Values.sentry.connections }}
{{- if .existingSecret }}
{{- $names = append $names .existingSecret }}
{{- else if .token }}
{{- $names = append $names (printf "%s-sentry-tokens" (include "sentryroute.fullname" $)) }}
{{- end }}
{{- end }}
{{- $names | uniq | toJson }}
{{- end }}

{{- define "sentryroute.forwarder.usesApi" -}}
{{- if or .Values.forwarder.report.enabled (eq .Values.forwarder.routes.source "configmap") (eq .Values.forwarder.tenancy.namespaceFrom "peer") }}true{{- end }}
{{- end }}

{{/*
Whole seconds in a duration string like `20s`, `5m`, `1m30s` or `500ms` (rounded up), so the template can
compare the forwarder's shutdown bound with terminationGracePeriodSeconds. Fails on anything else.
*/}}
{{- define "sentryroute.durationSeconds" -}}
{{- $text := toString . }}
{{- if not (regexMatch "^([0-9]+(ms|s|m|h))+$" $text) }}
{{- fail (printf "invalid duration %q: use forms like 500ms, 20s, 5m, 1h" $text) }}
{{- end }}
{{- $millis := 0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" $text -1 }}
{{- $number := regexFind "^[0-9]+" . | atoi }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- $scale := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit }}
{{- $millis = add $millis (mul $number $scale) }}
{{- end }}
{{- div (add $millis 999) 1000 }}
{{- end }}

{{/* Pod-level settings both pods share: the security context and the image pull secrets. */}}
{{- define "sentryroute.podCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Egress rules both pods share: DNS, the Kubernetes API, Sentry, and the user's extra rules. */}}
{{- define "sentryroute.egressRules" -}}
{{- $egress := .Values.networkPolicy.egress }}
{{- if $egress.dns }}
- ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}
{{- range $rule := list $egress.kubernetesApi $egress.sentry }}
- ports:
  {{- range $rule.ports }}
    - {protocol: TCP, port: {{ . }}}
  {{- end }}
  {{- with $rule.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- with $egress.extra }}
{{ toYaml . }}
{{- end }}
{{- end }}
