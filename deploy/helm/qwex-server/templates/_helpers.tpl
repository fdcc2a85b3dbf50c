{{/* The release's full name, cut to the 63 characters a label value allows. */}}
{{- define "qwex.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qwex.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qwex.labels" -}}
{{ include "qwex.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "qwex.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "qwex.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the jobs go: jobsNamespace, else the release's namespace. */}}
{{- define "qwex.jobsNamespace" -}}
{{- default .Release.Namespace .Values.jobsNamespace -}}
{{- end -}}

{{/* The server's qwex.toml: [server], [k8s] (its namespace the jobs'), [profiles.*]. */}}
{{- define "qwex.config" -}}
{{- $k8s := merge (dict "namespace" (include "qwex.jobsNamespace" .)) (deepCopy .Values.k8s) -}}
{{- $doc := dict "server" (deepCopy .Values.server) "k8s" $k8s -}}
{{- if .Values.profiles }}{{ $_ := set $doc "profiles" (deepCopy .Values.profiles) }}{{ end -}}
{{- include "qwex.integers" $doc -}}
{{- toToml $doc -}}
{{- end -}}

{{/* Whole numbers back to integers, in place (YAML values reach templates as floats, which
toToml would write `4.0`): every map and list under the one given. */}}
{{- define "qwex.integers" -}}
{{- $node := . -}}
{{- range $key, $value := $node -}}
{{- if kindIs "float64" $value -}}
{{- if eq $value (float64 (int64 $value)) }}{{ $_ := set $node $key (int64 $value) }}{{ end -}}
{{- else if kindIs "map" $value -}}
{{- include "qwex.integers" $value -}}
{{- else if kindIs "slice" $value -}}
{{- range $value }}{{ if kindIs "map" . }}{{ include "qwex.integers" . }}{{ end }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The server's environment: the database URL from its Secret, never in a value. */}}
{{- define "qwex.env" -}}
{{- if or .Values.database.existingSecret .Values.extraEnv -}}
env:
{{- if .Values.database.existingSecret }}
  - name: QWEX_SERVER_DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ .Values.database.existingSecret }}
        key: {{ .Values.database.key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "qwex.mounts" -}}
- name: config
  mountPath: /etc/qwex/qwex.toml
  subPath: qwex.toml
  readOnly: true
- name: data
  mountPath: /var/lib/qwex
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "qwex.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
