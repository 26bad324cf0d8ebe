{{/* Names and labels. */}}
{{- define "slurm-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "slurm-exporter.fullname" -}}
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

{{- define "slurm-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slurm-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "slurm-exporter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "slurm-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Secrets: every JWT key as {name, volume, secret, item, dir}. "name" is "" for the top-level
key, else the cluster's name. The key file is always DIR/jwt_key.
*/}}
{{- define "slurm-exporter.keys" -}}
{{- $keys := list }}
{{- $created := printf "%s-jwt-keys" (include "slurm-exporter.fullname" .) }}
{{- with .Values.jwtKey }}
{{- if and .existingSecret .value }}
{{- fail "jwtKey: set existingSecret or value, not both" }}
{{- end }}
{{- if .existingSecret }}
{{- $keys = append $keys (dict "name" "" "volume" "jwt-key" "secret" .existingSecret "item" (default "jwt_key" .secretKey) "dir" "/etc/slurm-exporter/jwt") }}
{{- else if .value }}
{{- $keys = append $keys (dict "name" "" "volume" "jwt-key" "secret" $created "item" "jwt_key" "dir" "/etc/slurm-exporter/jwt") }}
{{- end }}
{{- end }}
{{- range $name, $c := .Values.clusters }}
{{- $k := default (dict) $c.jwtKey }}
{{- $volume := printf "jwt-key-%s" (adler32sum $name) }}
{{- $dir := printf "/etc/slurm-exporter/clusters/%s" $name }}
{{- if and $k.existingSecret $k.value }}
{{- fail (printf "clusters.%s.jwtKey: set existingSecret or value, not both" $name) }}
{{- end }}
{{- if $k.existingSecret }}
{{- $keys = append $keys (dict "name" $name "volume" $volume "secret" $k.existingSecret "item" (default "jwt_key" $k.secretKey) "dir" $dir) }}
{{- else if $k.value }}
{{- $keys = append $keys (dict "name" $name "volume" $volume "secret" $created "item" (printf "%s.jwt_key" $name) "dir" $dir) }}
{{- end }}
{{- end }}
{{- toJson $keys }}
{{- end }}

{{/* No secret in the ConfigMap: the keys the exporter refuses in its config file
(INLINE_SECRETS, exporter/settings.py); keys come by jwtKey, as a Secret. */}}
{{- define "slurm-exporter.noSecrets" -}}
{{- $where := index . 0 }}
{{- range $k, $_ := index . 1 }}
{{- if has (replace "-" "_" (lower $k)) (list "token" "jwt" "jwt_key" "slurm_jwt" "key" "password" "secret") }}
{{- fail (printf "%s.%s: no secret in the config file's ConfigMap: give the key as jwtKey (existingSecret, or value for a Secret the chart makes)" $where $k) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The config file: values rendered into the keys of --config-file, checked first. */}}
{{- define "slurm-exporter.config" -}}
{{- include "slurm-exporter.noSecrets" (list "config" .Values.config) }}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen_address" (printf ":%v" .Values.port) }}
{{- with .Values.slurmrestdUrl }}{{ $_ := set $cfg "slurmrestd_url" . }}{{ end }}
{{- with .Values.jwtUser }}{{ $_ := set $cfg "jwt_user" . }}{{ end }}
{{- $keyDirs := dict }}
{{- range (include "slurm-exporter.keys" . | fromJsonArray) }}
{{- $_ := set $keyDirs .name .dir }}
{{- end }}
{{- if hasKey $keyDirs "" }}
{{- $_ := set $cfg "jwt_key_file" (printf "%s/jwt_key" (get $keyDirs "")) }}
{{- end }}
{{- if .Values.clusters }}
{{- $clusters := dict }}
{{- range $name, $c := .Values.clusters }}
{{- if or (not (regexMatch "^[A-Za-z0-9_.-]+$" $name)) (eq $name ".") (eq $name "..") }}
{{- fail (printf "clusters: %q is not a cluster name (letters, digits, _ . -)" $name) }}
{{- end }}
{{- $cc := omit (default (dict) $c) "jwtKey" }}
{{- include "slurm-exporter.noSecrets" (list (printf "clusters.%s" $name) $cc) }}
{{- if hasKey $keyDirs $name }}
{{- $_ := set $cc "jwt_key_file" (printf "%s/jwt_key" (get $keyDirs $name)) }}
{{- end }}
{{- if not (or $cc.slurmrestd_url (hasKey $cfg "slurmrestd_url")) }}
{{- fail (printf "clusters.%s: slurmrestd_url is missing (and no slurmrestdUrl for every cluster)" $name) }}
{{- end }}
{{- $_ := set $clusters $name $cc }}
{{- end }}
{{- $_ := set $cfg "clusters" $clusters }}
{{- else if not (hasKey $cfg "slurmrestd_url") }}
{{- fail "slurmrestdUrl: set slurmrestd's URL (or clusters: for many clusters)" }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
