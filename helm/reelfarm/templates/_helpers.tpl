{{/* Names: the release name, unless it already contains the chart name. */}}
{{- define "reelfarm.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "reelfarm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "reelfarm.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "reelfarm.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "reelfarm.secretName" -}}
{{- .Values.secret.existingSecret | default (printf "%s-secret" (include "reelfarm.fullname" .)) -}}
{{- end -}}

{{- define "reelfarm.postgresqlName" -}}
{{- printf "%s-postgresql" (include "reelfarm.fullname" .) -}}
{{- end -}}

{{- define "reelfarm.artifactsClaim" -}}
{{- .Values.artifacts.persistence.existingClaim | default (printf "%s-artifacts" (include "reelfarm.fullname" .)) -}}
{{- end -}}

{{/* Where the app writes archives: the object-store URL, else the mounted volume. */}}
{{- define "reelfarm.artifactsPath" -}}
{{- .Values.artifacts.url | default .Values.artifacts.mountPath -}}
{{- end -}}

{{/* The Serve pool name of a pool key: high -> High (deployment PoolHigh). */}}
{{- define "reelfarm.poolName" -}}
{{- . | title -}}
{{- end -}}

{{/*
ServingConfig (serving/config.py) as the Serve app's args. Built as a dict and rendered with
toYaml so that the YAML inside serveConfigV2 is always well formed; CI validates it against
ServingConfig itself.
*/}}
{{- define "reelfarm.servingArgs" -}}
{{- $pools := list -}}
{{- range $key, $p := .Values.pools -}}
{{- $pool := dict "name" (include "reelfarm.poolName" $key) "holds" $p.holds "replicas" (mul $p.workers.replicas $p.replicasPerWorker) "slots" $p.slots "num_cpus" $p.numCpus "num_gpus" $p.numGpus "torch_threads" $p.torchThreads "preload" (default false $p.preload) -}}
{{- if $p.model -}}
{{- $_ := set $pool "model" $p.model -}}
{{- end -}}
{{- if $p.acceleratorType -}}
{{- $_ := set $pool "accelerator_type" $p.acceleratorType -}}
{{- end -}}
{{- if $p.adapterCacheGb -}}
{{- $_ := set $pool "adapter_cache_gb" $p.adapterCacheGb -}}
{{- end -}}
{{- if $p.offload -}}
{{- $_ := set $pool "offload" $p.offload -}}
{{- end -}}
{{- $pools = append $pools $pool -}}
{{- end -}}
{{- $d := .Values.director -}}
{{- $director := dict "max_unfinished_films" $d.maxUnfinishedFilms "max_unfinished_per_tenant" $d.maxUnfinishedPerTenant "liveness_timeout_s" $d.livenessTimeoutS "max_attempts" $d.maxAttempts "film_order" $d.filmOrder "num_cpus" $d.numCpus -}}
{{- $args := dict "models" .Values.model.served "device" .Values.model.device "dtype" .Values.model.dtype "artifacts" (include "reelfarm.artifactsPath" .) "pools" $pools "director" $director -}}
{{- if .Values.api.auth -}}
{{- $_ := set $args "tokens_file" "/etc/reelfarm/secret/tokens" -}}
{{- end -}}
{{- $m := .Values.media -}}
{{- $_ := set $args "media" (dict "max_bytes" (int64 $m.maxBytes) "max_seconds" $m.maxSeconds "require_rights" $m.requireRights) -}}
{{- if .Values.signing.existingSecret -}}
{{- $_ := set $args "signing" (dict "key" "/etc/reelfarm/signing/key.pem" "cert_chain" "/etc/reelfarm/signing/chain.pem") -}}
{{- end -}}
{{- toYaml $args -}}
{{- end -}}

{{- define "reelfarm.serveConfig" -}}
# reelfarm Serve config (rendered by the Helm chart from its values).
proxy_location: EveryNode
http_options:
  host: 0.0.0.0
  port: {{ .Values.api.httpPort }}
grpc_options:
  port: {{ .Values.api.grpcPort }}
  grpc_servicer_functions:
    - reelfarm.v1.film_service_pb2_grpc.add_FilmServiceServicer_to_server
    - grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server
applications:
  - name: reelfarm
    # Serve's proxies, the gRPC one too, only route to applications with a prefix.
    route_prefix: /reelfarm
    import_path: serving.app:build_app
    args:
      {{- include "reelfarm.servingArgs" . | nindent 6 }}
{{- end -}}

{{/* What the balancer needs to know about the pools it moves replicas between. */}}
{{- define "reelfarm.balancerPolicy" -}}
{{- $pools := dict -}}
{{- range $key, $p := .Values.pools -}}
{{- if gt (float64 $p.balanceSteps) 0.0 -}}
{{- $_ := set $pools (include "reelfarm.poolName" $key) (dict "group" $key "replicasPerWorker" $p.replicasPerWorker "steps" $p.balanceSteps) -}}
{{- end -}}
{{- end -}}
{{- dict "pools" $pools | toJson -}}
{{- end -}}

{{/* Refuse values whose Serve replicas cannot fit the pods that should host them. */}}
{{- define "reelfarm.checkPools" -}}
{{- range $key, $p := .Values.pools -}}
{{- $w := $p.workers -}}
{{- if gt (mulf $p.numGpus $p.replicasPerWorker) (float64 $w.gpus) -}}
{{- fail (printf "pools.%s: replicasPerWorker (%v) x numGpus (%v) exceeds workers.gpus (%v)" $key $p.replicasPerWorker $p.numGpus $w.gpus) -}}
{{- end -}}
{{- if gt (mulf $p.numCpus $p.replicasPerWorker) (float64 $w.cpu) -}}
{{- fail (printf "pools.%s: replicasPerWorker (%v) x numCpus (%v) exceeds workers.cpu (%v)" $key $p.replicasPerWorker $p.numCpus $w.cpu) -}}
{{- end -}}
{{- if or (lt (int $w.replicas) (int $w.minReplicas)) (gt (int $w.replicas) (int $w.maxReplicas)) -}}
{{- fail (printf "pools.%s.workers: replicas (%v) must lie within minReplicas (%v) and maxReplicas (%v)" $key $w.replicas $w.minReplicas $w.maxReplicas) -}}
{{- end -}}
{{- if and $p.model (not (has $p.model $.Values.model.served)) -}}
{{- fail (printf "pools.%s.model %q is not in model.served (%s)" $key $p.model (join ", " $.Values.model.served)) -}}
{{- end -}}
{{- if and (not $p.model) (gt (len $.Values.model.served) 1) -}}
{{- fail (printf "pools.%s.model: name the model the pool holds (model.served has several: %s)" $key (join ", " $.Values.model.served)) -}}
{{- end -}}
{{- if and (gt (float64 $p.numGpus) 0.0) (eq $.Values.model.device "cpu") -}}
{{- fail (printf "pools.%s: numGpus > 0 with model.device cpu would hold GPUs that are never used" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Volumes and mounts shared by every Ray container. */}}
{{- define "reelfarm.volumes" -}}
- name: shm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.shm.sizeLimit }}
{{- if .Values.model.weights.enabled }}
- name: weights
  {{- toYaml .Values.model.weights.volume | nindent 2 }}
{{- end }}
{{- if not .Values.artifacts.url }}
- name: artifacts
  persistentVolumeClaim:
    claimName: {{ include "reelfarm.artifactsClaim" . }}
{{- end }}
{{- if .Values.api.auth }}
- name: secret
  secret:
    secretName: {{ include "reelfarm.secretName" . }}
    items:
      - {key: tokens, path: tokens}
    # Ray runs as a non-root user: the file must be readable by it.
    defaultMode: 0444
{{- end }}
{{- if .Values.signing.existingSecret }}
- name: signing
  secret:
    secretName: {{ .Values.signing.existingSecret }}
    items:
      - {key: key.pem, path: key.pem}
      - {key: chain.pem, path: chain.pem}
    # Readable by Ray's non-root user only (the key signs in the farm's name).
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "reelfarm.volumeMounts" -}}
- {name: shm, mountPath: /dev/shm}
{{- if .Values.model.weights.enabled }}
- {name: weights, mountPath: {{ .Values.model.weights.mountPath }}, readOnly: true}
{{- end }}
{{- if not .Values.artifacts.url }}
- {name: artifacts, mountPath: {{ .Values.artifacts.mountPath }}}
{{- end }}
{{- if .Values.api.auth }}
- {name: secret, mountPath: /etc/reelfarm/secret, readOnly: true}
{{- end }}
{{- if .Values.signing.existingSecret }}
- {name: signing, mountPath: /etc/reelfarm/signing, readOnly: true}
{{- end }}
{{- end -}}

{{- define "reelfarm.env" -}}
# Nothing is fetched from a hub at run time.
- {name: HF_HUB_OFFLINE, value: "1"}
- {name: TRANSFORMERS_OFFLINE, value: "1"}
{{- if .Values.database.postgresql.enabled }}
{{- if .Values.secret.databaseUrl }}
{{- fail "database.postgresql.enabled runs the job store in the chart: leave secret.databaseUrl empty (or disable it to use that external database)" }}
{{- end }}
# The job store the chart runs (templates/postgresql.yaml): the director's
# ServingConfig.job_store_url, with the password from its Secret ($(...) is expanded by
# Kubernetes from the variable above it).
- name: REELFARM_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.postgresql.existingSecret | default (include "reelfarm.postgresqlName" .) }}
      key: password
- name: REELFARM_DATABASE_URL
  value: "postgresql+psycopg://reelfarm:$(REELFARM_DATABASE_PASSWORD)@{{ include "reelfarm.postgresqlName" . }}.{{ .Release.Namespace }}.svc:5432/reelfarm"
{{- else if or .Values.secret.existingSecret .Values.secret.databaseUrl }}
# The job store's SQLAlchemy URL, for the director (ServingConfig.job_store_url); without
# it the director keeps a SQLite file on the artifacts volume.
- name: REELFARM_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "reelfarm.secretName" . }}
      key: database-url
      optional: true
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Ports of a Ray container: Ray's metrics export and the Serve proxies (every node). */}}
{{- define "reelfarm.servePorts" -}}
- {name: metrics, containerPort: 8080, protocol: TCP}
- {name: serve, containerPort: {{ .Values.api.httpPort }}, protocol: TCP}
- {name: serve-grpc, containerPort: {{ .Values.api.grpcPort }}, protocol: TCP}
{{- end -}}
