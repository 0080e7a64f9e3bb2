{{/* Labels every object of the release carries. */}}
{{- define "swarm-operator.labels" -}}
app.kubernetes.io/name: swarm-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* What selects the operator's pods. */}}
{{- define "swarm-operator.selector" -}}
app.kubernetes.io/name: swarm-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "swarm-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
