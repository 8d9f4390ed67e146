{{- define "opex.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "opex.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "opex.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "opex.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "opex.selectorLabels" -}}
app.kubernetes.io/name: {{ include "opex.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "opex.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "opex.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "opex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "opex.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "opex.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "opex.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "opex.fullname" .)) .Values.existingPolicyConfigMap -}}
{{- end -}}

{{/*
The Deployments to render: one without a shard (everything), or one per sharding.shards entry.
Returns YAML: a list of {name, shard, lease, replicas, resources} (shard "" = not sharded).
*/}}
{{- define "opex.instances" -}}
{{- $full := include "opex.fullname" . -}}
{{- $out := list -}}
{{- if .Values.sharding.shards -}}
{{- $names := list -}}
{{- range .Values.sharding.shards -}}
{{- if has .name $names -}}
{{- fail (printf "sharding.shards: shard %q is listed twice" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- $name := printf "%s-%s" $full .name | trunc 63 | trimSuffix "-" -}}
{{- $lease := ternary (printf "%s-%s" $.Values.leaderElection.leaseName .name) $name (ne $.Values.leaderElection.leaseName "") -}}
{{- $out = append $out (dict "name" $name "shard" .name "lease" $lease
      "replicas" (default $.Values.replicas .replicas) "resources" (default $.Values.resources .resources)) -}}
{{- end -}}
{{- if not (has .Values.sharding.defaultShard $names) -}}
{{- fail (printf "sharding.defaultShard %q is not one of sharding.shards %v: unlabelled objects would be reconciled by no Deployment" .Values.sharding.defaultShard $names) -}}
{{- end -}}
{{- else -}}
{{- $out = append $out (dict "name" $full "shard" "" "lease" (default $full .Values.leaderElection.leaseName)
      "replicas" .Values.replicas "resources" .Values.resources) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Watched namespaces as OPEX_NAMESPACES wants them (comma-separated). */}}
{{- define "opex.watchNamespaces" -}}
{{- if and (eq .Values.watch.scope "Namespaced") (not .Values.watch.namespaces) -}}
{{- fail "watch.scope Namespaced needs watch.namespaces: the namespaces to create a Role in" -}}
{{- end -}}
{{- join "," .Values.watch.namespaces -}}
{{- end -}}

{{/* True ("true") when a watched namespace is a glob: Kopf then lists and watches namespaces. */}}
{{- define "opex.namespaceGlobs" -}}
{{- range .Values.watch.namespaces -}}
{{- if regexMatch "[*?\\[]" . -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod labels that pick one Deployment's pods (argument: one entry of opex.instances). */}}
{{- define "opex.podSelector" -}}
app.kubernetes.io/component: operator
{{- if .shard }}
opex.dev/shard: {{ .shard }}
{{- end }}
{{- end -}}

{{/* aws.rates as OPEX_AWS_RATES wants them: service[:Operation]=calls per second, comma-separated. */}}
{{- define "opex.awsRates" -}}
{{- $out := list -}}
{{- range $name, $rate := .Values.aws.rates -}}
{{- $out = append $out (printf "%s=%v" $name $rate) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* OPEX_EVENT_QUEUES: each queue as <url>, or <roleKey>=<url> to read it as a role of the policy. */}}
{{- define "opex.eventQueues" -}}
{{- $out := list -}}
{{- range .queues -}}
{{- $out = append $out (ternary (printf "%s=%s" .roleKey .url) .url (not (empty .roleKey))) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
