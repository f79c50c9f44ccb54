{{- define "infersight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "infersight.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "infersight.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "infersight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "infersight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "infersight.labels" -}}
{{ include "infersight.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels of an object Prometheus or Alertmanager selects: the chart's, monitorLabels, its own. */}}
{{- define "infersight.monitorLabels" -}}
{{ include "infersight.labels" .root }}
{{- with .root.Values.monitorLabels }}
{{ toYaml . }}
{{- end }}
{{- with .own }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "infersight.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "infersight.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Values that render but would mislead: refuse them with the reason. */}}
{{- define "infersight.validate" -}}
{{- include "infersight.autoscaling.validate" . -}}
{{- if and .Values.serviceMonitor.enabled .Values.podMonitor.enabled -}}
{{- fail "serviceMonitor.enabled and podMonitor.enabled: choose one; both would scrape every pod twice and double every series" -}}
{{- end -}}
{{- if eq .Values.mode "standalone" -}}
{{- if gt (int .Values.exporter.replicas) 1 -}}
{{- fail (printf "exporter.replicas=%d in standalone mode: every replica scrapes every target, so each series would be reported %d times; use 1 (or one release per group of targets)" (int .Values.exporter.replicas) (int .Values.exporter.replicas)) -}}
{{- end -}}
{{- if not .Values.exporter.targets -}}
{{- fail "standalone mode needs exporter.targets (name, url, engine)" -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.mode "sidecar" -}}
{{- $gpu := .Values.exporter.gpu -}}
{{- if eq $gpu.source "nvml" -}}
{{- fail "exporter.gpu.source=nvml in sidecar mode: the exporter's container holds no GPU; use engine (Triton), dcgm (node-local) or none (dcgm-exporter joined on pod)" -}}
{{- end -}}
{{- if eq $gpu.source "dcgm" -}}
{{- if and $gpu.dcgmUrl (not $gpu.dcgmNodeLocal) -}}
{{- fail (printf "exporter.gpu.dcgmUrl=%s: a cluster Service answers with a random node's GPUs; leave it empty for the node's own dcgm-exporter (http://$(HOST_IP):9400/metrics), or set dcgmNodeLocal: true for a Service with internalTrafficPolicy: Local" $gpu.dcgmUrl) -}}
{{- end -}}
{{- if not (or $gpu.devices $gpu.wholeNode) -}}
{{- fail "exporter.gpu.source=dcgm in sidecar mode needs a device filter: exporter.gpu.devices (this pod's GPU UUIDs), or wholeNode: true when each pod holds every GPU of its node; otherwise use source: none and dcgm-exporter's own series joined on pod" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The exporter's configuration file (exporter/settings.py keys). In sidecar mode the target
     (named after the pod) and a node-local dcgm URL come from the container's arguments, which
     Kubernetes expands from the downward API. */}}
{{- define "infersight.config" -}}
listen: "0.0.0.0:{{ .Values.exporter.port }}"
engine: {{ .Values.engine.kind }}
scrape_timeout_seconds: {{ .Values.exporter.scrapeTimeoutSeconds }}
max_models: {{ .Values.exporter.maxModels }}
max_gpus: {{ .Values.exporter.maxGpus }}
max_label_bytes: {{ .Values.exporter.maxLabelBytes }}
max_cache_bytes: {{ int64 .Values.exporter.maxCacheBytes }}
log_level: {{ .Values.exporter.logLevel }}
gpu:
  source: {{ .Values.exporter.gpu.source }}
  {{- if and .Values.exporter.gpu.dcgmUrl (ne .Values.mode "sidecar") }}
  dcgm_url: {{ .Values.exporter.gpu.dcgmUrl | quote }}
  {{- end }}
  {{- with .Values.exporter.gpu.devices }}
  devices: {{ toJson . }}
  {{- end }}
cost:
  gpu_count: {{ .Values.exporter.cost.gpuCount }}
  {{- with .Values.exporter.cost.gpuType }}
  gpu_type: {{ . | quote }}
  {{- end }}
  {{- if not (kindIs "invalid" .Values.exporter.cost.gpuHourlyDollars) }}
  gpu_hourly_dollars: {{ .Values.exporter.cost.gpuHourlyDollars }}
  {{- end }}
  licence_monthly_dollars: {{ .Values.exporter.cost.licenceMonthlyDollars }}
{{- if .Values.exporter.bearerTokenSecret.name }}
auth:
  bearer_token_file: /var/run/secrets/infersight/engine-token
{{- end }}
{{- if ne .Values.mode "sidecar" }}
targets:
{{ toYaml .Values.exporter.targets | indent 2 }}
{{- end }}
{{- end -}}

{{- define "infersight.dcgmUrl" -}}
{{- default "http://$(HOST_IP):9400/metrics" .Values.exporter.gpu.dcgmUrl -}}
{{- end -}}

{{/* The exporter container, in both modes. */}}
{{- define "infersight.exporterContainer" -}}
{{- $image := .Values.exporter.image -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
{{- $dcgm := and $sidecar (eq .Values.exporter.gpu.source "dcgm") -}}
- name: infersight-exporter
  image: "{{ $image.repository }}:{{ $image.tag | default .Chart.AppVersion }}{{ with $image.digest }}@{{ . }}{{ end }}"
  imagePullPolicy: {{ $image.pullPolicy }}
  args:
    - exporter
    - --config
    - /etc/infersight/exporter.yaml
    {{- if $sidecar }}
    # one target per replica, named after the pod
    - --target
    - "$(POD_NAME)=http://127.0.0.1:{{ .Values.engine.ports.metrics }}{{ .Values.engine.metricsPath }}"
    {{- end }}
    {{- if $dcgm }}
    # the dcgm-exporter of this pod's node, never a random node's
    - --dcgm-url
    - {{ include "infersight.dcgmUrl" . | quote }}
    {{- end }}
  {{- if $sidecar }}
  env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    {{- if $dcgm }}
    - name: HOST_IP
      valueFrom: {fieldRef: {fieldPath: status.hostIP}}
    {{- end }}
  {{- end }}
  ports:
    - {name: metrics, containerPort: {{ .Values.exporter.port }}, protocol: TCP}
  readinessProbe:
    httpGet: {path: /-/ready, port: metrics}
    periodSeconds: 10
  livenessProbe:
    httpGet: {path: /-/healthy, port: metrics}
    periodSeconds: 20
  resources:
    {{- toYaml .Values.exporter.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.exporter.securityContext | nindent 4 }}
  volumeMounts:
    - {name: infersight-config, mountPath: /etc/infersight, readOnly: true}
    {{- if .Values.exporter.bearerTokenSecret.name }}
    - {name: infersight-engine-token, mountPath: /var/run/secrets/infersight, readOnly: true}
    {{- end }}
{{- end -}}

{{- define "infersight.exporterVolumes" -}}
- name: infersight-config
  configMap: {name: {{ include "infersight.fullname" . }}-config}
{{- if .Values.exporter.bearerTokenSecret.name }}
- name: infersight-engine-token
  secret:
    secretName: {{ .Values.exporter.bearerTokenSecret.name }}
    items: [{key: {{ .Values.exporter.bearerTokenSecret.key }}, path: engine-token}]
{{- end }}
{{- end -}}

{{/* The engine container (sidecar mode). */}}
{{- define "infersight.engineContainer" -}}
{{- $engine := .Values.engine -}}
- name: engine
  image: {{ $engine.image }}
  imagePullPolicy: {{ $engine.imagePullPolicy }}
  {{- with $engine.command }}
  command:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $engine.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $engine.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - {name: http, containerPort: {{ $engine.ports.http }}, protocol: TCP}
    {{- if ne (int $engine.ports.metrics) (int $engine.ports.http) }}
    - {name: engine-metrics, containerPort: {{ $engine.ports.metrics }}, protocol: TCP}
    {{- end }}
  startupProbe:
    {{- toYaml $engine.probes.startup | nindent 4 }}
  livenessProbe:
    {{- toYaml $engine.probes.liveness | nindent 4 }}
  readinessProbe:
    {{- toYaml $engine.probes.readiness | nindent 4 }}
  {{- if gt (int $engine.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      exec: {command: [sleep, "{{ $engine.preStopSleepSeconds }}"]}
  {{- end }}
  resources:
    {{- toYaml $engine.resources | nindent 4 }}
  securityContext:
    {{- toYaml $engine.securityContext | nindent 4 }}
  {{- if or $engine.shm $engine.modelCache.existingClaim $engine.volumeMounts }}
  volumeMounts:
    {{- if $engine.shm }}
    - {name: shm, mountPath: /dev/shm}
    {{- end }}
    {{- with $engine.modelCache.existingClaim }}
    - {name: model-cache, mountPath: {{ $engine.modelCache.mountPath }}, readOnly: {{ $engine.modelCache.readOnly }}}
    {{- end }}
    {{- with $engine.volumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end -}}

{{- define "infersight.engineVolumes" -}}
{{- $engine := .Values.engine -}}
{{- with $engine.shm }}
- name: shm
  emptyDir: {medium: Memory, sizeLimit: {{ .sizeLimit }}}
{{- end }}
{{- with $engine.modelCache.existingClaim }}
- name: model-cache
  persistentVolumeClaim: {claimName: {{ . }}, readOnly: {{ $engine.modelCache.readOnly }}}
{{- end }}
{{- with $engine.volumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Alertmanager matcher strings (name="value", name=~"regex") as AlertmanagerConfig matchers. */}}
{{- define "infersight.amMatchers" -}}
{{- $re := "^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)\"(.*)\"$" -}}
{{- range . }}
- name: {{ regexReplaceAll $re . "${1}" }}
  matchType: {{ regexReplaceAll $re . "${2}" | quote }}
  value: {{ regexReplaceAll $re . "${3}" | quote }}
{{- end }}
{{- end -}}

{{/* Autoscaling (files/autoscaling-queries.yaml, generated from the schema and alerts/slos.yaml). */}}
{{- define "infersight.autoscaling.enabled" -}}
{{- if or .Values.autoscaling.keda.enabled .Values.autoscaling.hpa.enabled }}true{{ end -}}
{{- end -}}

{{/* true when the autoscaler owns this release's own Deployment's replica count */}}
{{- define "infersight.autoscaling.ownsDeployment" -}}
{{- if and (include "infersight.autoscaling.enabled" .) (eq .Values.mode "sidecar") (not .Values.autoscaling.scaleTargetRef.name) }}true{{ end -}}
{{- end -}}

{{- define "infersight.autoscaling.queries" -}}
{{- .Files.Get "files/autoscaling-queries.yaml" -}}
{{- end -}}

{{- define "infersight.autoscaling.engine" -}}
{{- default .Values.engine.kind .Values.autoscaling.engine -}}
{{- end -}}

{{- define "infersight.autoscaling.scaleTargetRef" -}}
{{- $ref := .Values.autoscaling.scaleTargetRef -}}
apiVersion: {{ $ref.apiVersion }}
kind: {{ $ref.kind }}
name: {{ default (include "infersight.fullname" .) $ref.name }}
{{- end -}}

{{/* The threshold of trigger .name: its value, or the TTFT SLO's from the generated file. */}}
{{- define "infersight.autoscaling.threshold" -}}
{{- $values := index .root.Values.autoscaling.triggers .name -}}
{{- if eq .name "ttftP99" -}}
{{- if kindIs "invalid" $values.thresholdSeconds }}{{ .trigger.sloThresholdSeconds }}{{ else }}{{ $values.thresholdSeconds }}{{ end -}}
{{- else -}}
{{- $values.threshold -}}
{{- end -}}
{{- end -}}

{{/* A trigger's query for this workload, filled the way prometheus-adapter fills it: the selector's
     labels by name (engine, model), then the namespace. */}}
{{- define "infersight.autoscaling.query" -}}
{{- $matchers := printf "engine=%q,model=%q,namespace=%q" (include "infersight.autoscaling.engine" .root) .root.Values.autoscaling.model .root.Release.Namespace -}}
{{- .trigger.metricsQuery | replace "<<.Series>>" .trigger.series | replace "<<.LabelMatchers>>" $matchers -}}
{{- end -}}

{{/* The HPA's selector of the workload's external metrics. A Kubernetes label value cannot hold a
     model name such as meta-llama/Llama-3.1-70B-Instruct: such a name is selected with In, which the
     adapter turns into a regex matcher, every character a label value cannot hold becoming ".". */}}
{{- define "infersight.autoscaling.hpaSelector" -}}
{{- $model := .Values.autoscaling.model -}}
{{- $labelValue := "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$" -}}
{{- if and (regexMatch $labelValue $model) (le (len $model) 63) }}
matchLabels:
  engine: {{ include "infersight.autoscaling.engine" . }}
  model: {{ $model | quote }}
{{- else }}
matchLabels:
  engine: {{ include "infersight.autoscaling.engine" . }}
matchExpressions:
  - key: model
    operator: In
    values: [{{ regexReplaceAll "[^-A-Za-z0-9_.]" $model "." | quote }}]
{{- end }}
{{- end -}}

{{- define "infersight.autoscaling.validate" -}}
{{- $a := .Values.autoscaling -}}
{{- if and $a.keda.enabled $a.hpa.enabled -}}
{{- fail "autoscaling.keda.enabled and autoscaling.hpa.enabled: choose one; KEDA creates its own HPA and the two would fight over the replica count" -}}
{{- end -}}
{{- if include "infersight.autoscaling.enabled" . -}}
{{- if eq .Values.mode "monitoring" -}}
{{- fail "autoscaling in monitoring mode: enable it in the engine's release (sidecar or standalone), which knows the workload" -}}
{{- end -}}
{{- if and (eq .Values.mode "standalone") (not $a.scaleTargetRef.name) -}}
{{- fail "autoscaling in standalone mode needs autoscaling.scaleTargetRef.name: the engine's Deployment or StatefulSet (this release's Deployment is the exporter)" -}}
{{- end -}}
{{- if not $a.model -}}
{{- fail "autoscaling needs autoscaling.model: the served model name, the model label of the workload's series" -}}
{{- end -}}
{{- $engine := include "infersight.autoscaling.engine" . -}}
{{- $known := list "vllm" "triton" "nim" "sglang" "tgi" "trtllm" -}}
{{- if not (has $engine $known) -}}
{{- fail (printf "autoscaling needs the workload's engine, not %q: set autoscaling.engine (one of %s)" $engine (join ", " $known)) -}}
{{- end -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "autoscaling.minReplicas=%d is above autoscaling.maxReplicas=%d" (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- end -}}
{{- if and $a.keda.scaleToZero (not $a.keda.enabled) -}}
{{- fail "autoscaling.keda.scaleToZero needs KEDA (autoscaling.keda.enabled); an HPA keeps at least one replica" -}}
{{- end -}}
{{- if and $a.keda.scaleToZero (not $a.keda.extraTriggers) -}}
{{- fail "autoscaling.keda.scaleToZero needs an activation trigger in autoscaling.keda.extraTriggers: at zero replicas no exporter reports a queue, KV cache or TTFT, so nothing would scale the workload up again" -}}
{{- end -}}
{{- $file := include "infersight.autoscaling.queries" . | fromYaml -}}
{{- $any := false -}}
{{- range $name, $trigger := $file.triggers -}}
{{- if (index $a.triggers $name).enabled -}}
{{- $any = true -}}
{{- if not (has $engine $trigger.engines) -}}
{{- fail (printf "autoscaling.triggers.%s: %s's exporter has no %s; disable the trigger for this engine" $name $engine $trigger.series) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (or $any $a.keda.extraTriggers) -}}
{{- fail "autoscaling: every trigger is disabled; enable at least one of autoscaling.triggers" -}}
{{- end -}}
{{- end -}}
{{- end -}}
