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

{{/*
The CEL variables both admission policies (admission-policy.yaml) use: who asks, who created the
object, and what a request adds in approvals and acknowledgement (new or changed entries only:
what was there before was admitted before).
*/}}
{{- define "opex.approvalVariables" -}}
- name: user
  expression: request.userInfo.username
- name: creator
  expression: >-
    has(object.metadata.annotations) && 'opex.dev/created-by' in object.metadata.annotations
    ? object.metadata.annotations['opex.dev/created-by'] : ''
- name: oldCreator
  expression: >-
    oldObject != null && has(oldObject.metadata.annotations) && 'opex.dev/created-by' in oldObject.metadata.annotations
    ? oldObject.metadata.annotations['opex.dev/created-by'] : ''
- name: incident
  expression: request.resource.resource == 'incidents'
- name: approvals
  expression: >-
    variables.incident && has(object.spec.remediation) && has(object.spec.remediation.approvals)
    ? object.spec.remediation.approvals : []
- name: oldApprovals
  expression: >-
    variables.incident && oldObject != null && has(oldObject.spec.remediation)
    && has(oldObject.spec.remediation.approvals) ? oldObject.spec.remediation.approvals : []
- name: newApprovals
  expression: "variables.approvals.filter(a, !variables.oldApprovals.exists(o, o.step == a.step && o.by == a.by))"
- name: approvedSteps
  expression: >-
    variables.incident && has(object.spec.remediation) && has(object.spec.remediation.approvedSteps)
    ? object.spec.remediation.approvedSteps : []
- name: oldApprovedSteps
  expression: >-
    variables.incident && oldObject != null && has(oldObject.spec.remediation)
    && has(oldObject.spec.remediation.approvedSteps) ? oldObject.spec.remediation.approvedSteps : []
- name: newApprovedSteps
  expression: "variables.approvedSteps.filter(s, !(s in variables.oldApprovedSteps))"
- name: approvedByField
  expression: "request.resource.resource == 'driftchecks' ? 'spec.resolution.approvedBy' : 'spec.approvedBy'"
# DriftCheck: the approved plan checksum and its approver; Rollback: 'true' once approved, and its approver.
- name: approved
  expression: >-
    request.resource.resource == 'driftchecks'
    ? (has(object.spec.resolution) && has(object.spec.resolution.approvedPlanChecksum)
       ? object.spec.resolution.approvedPlanChecksum : '')
    : (request.resource.resource == 'rollbacks' && has(object.spec.approved) && object.spec.approved ? 'true' : '')
- name: approvedBy
  expression: >-
    request.resource.resource == 'driftchecks'
    ? (has(object.spec.resolution) && has(object.spec.resolution.approvedBy) ? object.spec.resolution.approvedBy : '')
    : (request.resource.resource == 'rollbacks' && has(object.spec.approvedBy) ? object.spec.approvedBy : '')
- name: oldApproved
  expression: >-
    oldObject == null ? ''
    : request.resource.resource == 'driftchecks'
    ? (has(oldObject.spec.resolution) && has(oldObject.spec.resolution.approvedPlanChecksum)
       ? oldObject.spec.resolution.approvedPlanChecksum : '')
    : (request.resource.resource == 'rollbacks' && has(oldObject.spec.approved) && oldObject.spec.approved ? 'true' : '')
- name: oldApprovedBy
  expression: >-
    oldObject == null ? ''
    : request.resource.resource == 'driftchecks'
    ? (has(oldObject.spec.resolution) && has(oldObject.spec.resolution.approvedBy)
       ? oldObject.spec.resolution.approvedBy : '')
    : (request.resource.resource == 'rollbacks' && has(oldObject.spec.approvedBy) ? oldObject.spec.approvedBy : '')
- name: newApproval
  expression: >-
    variables.approved != ''
    && (variables.approved != variables.oldApproved || variables.approvedBy != variables.oldApprovedBy)
- name: newAcknowledgement
  expression: >-
    variables.incident && has(object.spec.acknowledgement)
    && !(oldObject != null && has(oldObject.spec.acknowledgement)
         && oldObject.spec.acknowledgement == object.spec.acknowledgement)
{{- end -}}

{{- /* The pod's and the container's security context: the operator's Deployment and the plan Job
template (templates/plan-job.yaml) share them. */}}
{{- define "opex.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "opex.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- /* Namespaces where DriftChecks may run as Jobs: the runner ServiceAccount and its Role are created there. */}}
{{- define "opex.planJobNamespaces" -}}
{{- $names := concat (.Values.planJob.namespaces | default list) (.Values.watch.namespaces | default list) | uniq -}}
{{- range $names }}{{ if not (regexMatch "[*?\\[]" .) }}
- {{ . }}{{ end }}{{ end }}
{{- end }}

{{/* OPEX_EVENT_QUEUES: each queue as <url>, or <roleKey>=<url> to read it as a role of the policy. */}}
{{- define "opex.eventQueues" -}}
{{- $out := list -}}
{{- range .queues -}}
{{- $out = append $out (ternary (printf "%s=%s" .roleKey .url) .url (not (empty .roleKey))) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
