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

{{/* The exporter's configuration file (exporter/settings.py keys). */}}
{{- define "infersight.config" -}}
listen: "0.0.0.0:{{ .Values.exporter.port }}"
engine: {{ .Values.engine.kind }}
scrape_timeout_seconds: {{ .Values.exporter.scrapeTimeoutSeconds }}
max_models: {{ .Values.exporter.maxModels }}
log_level: {{ .Values.exporter.logLevel }}
gpu:
  source: {{ .Values.exporter.gpu.source }}
  {{- with .Values.exporter.gpu.dcgmUrl }}
  dcgm_url: {{ . | quote }}
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
targets:
{{- if eq .Values.mode "sidecar" }}
  - name: {{ .Values.engine.kind }}
    url: "http://127.0.0.1:{{ .Values.engine.ports.metrics }}{{ .Values.engine.metricsPath }}"
{{- else }}
{{ toYaml .Values.exporter.targets | indent 2 }}
{{- end }}
{{- end -}}

{{/* The exporter container, identical in both modes. */}}
{{- define "infersight.exporterContainer" -}}
- name: infersight-exporter
  image: "{{ .Values.exporter.image.repository }}:{{ .Values.exporter.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.exporter.image.pullPolicy }}
  args: ["exporter", "--config", "/etc/infersight/exporter.yaml"]
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
    {{- toYaml .Values.securityContext | nindent 4 }}
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
