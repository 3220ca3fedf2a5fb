{{/*
The names and labels every object shares, as Helm's own chart template and the charts users
know (prefect-helm, community-charts' mlflow) spell them. Template names start with "chart."
so that no copy of the project's name lives here (the chart's name is .Chart.Name).
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "chart.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: fullnameOverride, else <release>-<chart> (the release alone when it
contains the chart's name). Every object's name starts with it. */}}
{{- define "chart.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "chart.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "chart.labels" -}}
helm.sh/chart: {{ include "chart.chart" . }}
{{ include "chart.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels (add app.kubernetes.io/component per workload). */}}
{{- define "chart.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chart.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The service account the pods run as. */}}
{{- define "chart.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chart.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference: registry/repository, then @digest when a digest is given, else :tag.
Call with (dict "image" .Values.image "default" <repository> "root" $). */}}
{{- define "chart.image" -}}
{{- $repository := default .default .image.repository }}
{{- if .image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .image.registry) $repository }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repository .image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion .image.tag | toString) }}
{{- end }}
{{- end }}

{{/* The serving image (Dockerfile target serving): default repository the chart's name. */}}
{{- define "chart.servingImage" -}}
{{- include "chart.image" (dict "image" .Values.image "default" .Chart.Name "root" .) }}
{{- end }}

{{/* The pipeline image (Dockerfile target pipeline): default repository <chart>-pipeline. */}}
{{- define "chart.pipelineImage" -}}
{{- include "chart.image" (dict "image" .Values.pipelineImage "default" (printf "%s-pipeline" .Chart.Name) "root" .) }}
{{- end }}

{{/* The MLflow tracking URL: the chart's server, else mlflow.externalUrl (required). */}}
{{- define "chart.mlflowUrl" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s-mlflow:%d" (include "chart.fullname" .) (int .Values.mlflow.service.port) }}
{{- else }}
{{- required "mlflow.externalUrl is required when mlflow.enabled is false (the tracking server the jobs and the API use, e.g. https://mlflow.example.com)" .Values.mlflow.externalUrl }}
{{- end }}
{{- end }}

{{/* The API's in-cluster URL (monitoring reads its /metrics; the test pod asks its /ready). */}}
{{- define "chart.apiUrl" -}}
{{- printf "http://%s:%d" (include "chart.fullname" .) (int .Values.api.service.port) }}
{{- end }}

{{/* A value from an existing Secret (never a value in the chart). */}}
{{- define "chart.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end }}

{{/* The environment every workload shares: docker-compose.yml's production profile
(x-churn-env), the names Settings (src/churn/config/settings.py), MLflow, boto3 and the pipeline
image's entrypoint read. Secrets come from the Secrets named in values (existingSecret). */}}
{{- define "chart.commonEnv" -}}
- name: CHURN_ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: MLFLOW_TRACKING_URI
  value: {{ include "chart.mlflowUrl" . | quote }}
{{- with .Values.mlflow.auth.existingSecret }}
{{ include "chart.secretEnv" (dict "name" "MLFLOW_TRACKING_USERNAME" "secret" . "key" $.Values.mlflow.auth.usernameKey) }}
{{ include "chart.secretEnv" (dict "name" "MLFLOW_TRACKING_PASSWORD" "secret" . "key" $.Values.mlflow.auth.passwordKey) }}
{{- end }}
{{ include "chart.secretEnv" (dict "name" "CHURN_PREDICTION_LOG_URL" "secret" (required "database.existingSecret is required: the Secret holding the prediction log's SQLAlchemy URL (docs/kubernetes.md)" .Values.database.existingSecret) "key" .Values.database.predictionLogUrlKey) }}
{{- with .Values.s3.existingSecret }}
{{ include "chart.secretEnv" (dict "name" "AWS_ACCESS_KEY_ID" "secret" . "key" $.Values.s3.accessKeyIdKey) }}
{{ include "chart.secretEnv" (dict "name" "AWS_SECRET_ACCESS_KEY" "secret" . "key" $.Values.s3.secretAccessKeyKey) }}
{{- end }}
{{- with .Values.s3.endpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
- name: NUMBA_CACHE_DIR
  value: /tmp/numba
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* The pipeline jobs' environment: the common one, the DVC remote, Prefect, the API's URL. */}}
{{- define "chart.pipelineEnv" -}}
{{ include "chart.commonEnv" . }}
{{- with .Values.s3.dvcRemoteUrl }}
- name: CHURN_DVC_REMOTE_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.prefect.apiUrl }}
- name: PREFECT_API_URL
  value: {{ . | quote }}
{{- end }}
- name: CHURN_SERVICE_URL
  value: {{ include "chart.apiUrl" . | quote }}
{{- end }}

{{/* The pod's security context: non-root, the images' user (10001), RuntimeDefault seccomp. */}}
{{- define "chart.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* Every container's security context: no privilege escalation, no capabilities, a read-only
root file system (what a container writes goes to an emptyDir or a volume). */}}
{{- define "chart.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* A pipeline job's pod: the image's /app copied into a writable emptyDir first (DVC's
config, the data stages, reports: the root file system stays read-only). Call with
(dict "root" $ "job" .Values.training "component" "training"). */}}
{{- define "chart.pipelinePod" -}}
{{- $root := .root }}
metadata:
  labels:
    {{- include "chart.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  serviceAccountName: {{ include "chart.serviceAccountName" $root }}
  automountServiceAccountToken: false
  restartPolicy: Never
  securityContext:
    {{- include "chart.podSecurityContext" $root | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  initContainers:
    - name: project
      image: {{ include "chart.pipelineImage" $root | quote }}
      imagePullPolicy: {{ $root.Values.pipelineImage.pullPolicy }}
      command: ["cp", "-a", "/app/.", "/project/"]
      securityContext:
        {{- include "chart.containerSecurityContext" $root | nindent 8 }}
      resources:
        {{- toYaml .job.resources | nindent 8 }}
      volumeMounts:
        - name: project
          mountPath: /project
  containers:
    - name: {{ .component }}
      image: {{ include "chart.pipelineImage" $root | quote }}
      imagePullPolicy: {{ $root.Values.pipelineImage.pullPolicy }}
      args:
        {{- toYaml .job.args | nindent 8 }}
      env:
        {{- include "chart.pipelineEnv" $root | nindent 8 }}
      securityContext:
        {{- include "chart.containerSecurityContext" $root | nindent 8 }}
      resources:
        {{- toYaml .job.resources | nindent 8 }}
      volumeMounts:
        - name: project
          mountPath: /app
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: project
      emptyDir:
        sizeLimit: {{ .job.workspaceSizeLimit }}
    - name: tmp
      emptyDir:
        sizeLimit: 1Gi
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The MLflow server's environment: its secrets by reference, the S3 endpoint. */}}
{{- define "chart.mlflowEnv" -}}
{{- with .Values.mlflow.backendStore.existingSecret }}
# --backend-store-uri, read by MLflow from its own variable (a URL with a password).
{{- include "chart.secretEnv" (dict "name" "MLFLOW_BACKEND_STORE_URI" "secret" . "key" $.Values.mlflow.backendStore.uriKey) | nindent 0 }}
{{- end }}
{{- with .Values.s3.existingSecret }}
{{- include "chart.secretEnv" (dict "name" "AWS_ACCESS_KEY_ID" "secret" . "key" $.Values.s3.accessKeyIdKey) | nindent 0 }}
{{- include "chart.secretEnv" (dict "name" "AWS_SECRET_ACCESS_KEY" "secret" . "key" $.Values.s3.secretAccessKeyKey) | nindent 0 }}
{{- end }}
{{- with .Values.s3.endpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- if .Values.mlflow.auth.enabled }}
- name: MLFLOW_AUTH_CONFIG_PATH
  value: /etc/mlflow/basic_auth.ini
{{- $secret := required "mlflow.auth.existingSecret is required when mlflow.auth.enabled is true (docs/kubernetes.md)" .Values.mlflow.auth.existingSecret }}
{{- include "chart.secretEnv" (dict "name" "MLFLOW_AUTH_ADMIN_USERNAME" "secret" $secret "key" .Values.mlflow.auth.usernameKey) | nindent 0 }}
{{- include "chart.secretEnv" (dict "name" "MLFLOW_AUTH_ADMIN_PASSWORD" "secret" $secret "key" .Values.mlflow.auth.passwordKey) | nindent 0 }}
{{- include "chart.secretEnv" (dict "name" "MLFLOW_FLASK_SERVER_SECRET_KEY" "secret" $secret "key" .Values.mlflow.auth.flaskSecretKeyKey) | nindent 0 }}
{{- end }}
{{- end }}
