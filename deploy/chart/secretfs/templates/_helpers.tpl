{{/*
Names. A release named "secretfs" (the documented one) gives the objects
the names deploy/*.yaml have: secretfs-csi, secretfs-keeper.
*/}}
{{- define "secretfs.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Labels of every object. Selectors use only "app" (secretfs.selector):
a DaemonSet's selector is immutable, and it is the one the manifests of
earlier releases had, so `kubectl apply` of a newer deploy/ still works.
*/}}
{{- define "secretfs.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "secretfs.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* --mount-root: <kubeletDir>/pods unless set. */}}
{{- define "secretfs.mountRoot" -}}
{{- .Values.mountRoot | default (printf "%s/pods" (trimSuffix "/" .Values.kubeletDir)) -}}
{{- end -}}

{{/* --source, checked here because the schema cannot say "hostPath when file". */}}
{{- define "secretfs.source" -}}
{{- if eq .Values.source.type "file" -}}
file:{{ required "source.hostPath is required when source.type is file" .Values.source.hostPath }}
{{- else -}}
{{ .Values.source.type }}
{{- end -}}
{{- end -}}

{{- define "secretfs.keeperSocket" -}}
{{ trimSuffix "/" .Values.keeper.socketDir }}/keeper.sock
{{- end -}}

{{- define "secretfs.scheduling" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 0 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end -}}
