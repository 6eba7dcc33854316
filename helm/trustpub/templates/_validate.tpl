{{/*
Combinations of values that cannot work. values.schema.json checks each value's type and
range; these checks need several values at once. Every problem is listed in one message, so an
operator fixes them in one go. Included at the top of deployment.yaml; no other template fails
on its own, so this is the message Helm shows.
*/}}
{{- define "trustpub.validate" -}}
{{- $errors := list }}
{{- $v := .Values }}

{{- /* The audience: trustpub would refuse to start; say so before anything is deployed. */}}
{{- if not $v.trustpub.audience }}
{{- $errors = append $errors "trustpub.audience is required: set it to a value unique to this index (for example its host name, pypi.example.com); CI tokens must be requested for exactly this audience" }}
{{- else if eq (lower $v.trustpub.audience) "pypi" }}
{{- $errors = append $errors (printf "trustpub.audience %q belongs to pypi.org: a token minted for one index must not be usable at another, so give this deployment its own audience" $v.trustpub.audience) }}
{{- end }}

{{- /* Redis: exactly one choice. */}}
{{- $mode := include "trustpub.redisMode" . }}
{{- if not $mode }}
{{- $errors = append $errors "redis: choose where replay records and revocations live: redis.url, redis.existingSecret (a Secret holding the URL), redis.sentinel.enabled, or redis.evaluation.enabled (a bundled single-node Redis, NOT for production)" }}
{{- else if contains "," $mode }}
{{- $errors = append $errors (printf "redis: choose exactly one of redis.url, redis.existingSecret, redis.sentinel.enabled, redis.evaluation.enabled, redis.inMemory; got %s" (replace "," ", " $mode)) }}
{{- end }}
{{- if and $v.redis.sentinel.enabled (not $v.redis.sentinel.hosts) }}
{{- $errors = append $errors "redis.sentinel.hosts is empty: list the Sentinel addresses (host or host:port)" }}
{{- end }}
{{- if and $v.redis.sentinel.password $v.redis.sentinel.existingSecret }}
{{- $errors = append $errors "redis.sentinel: set password or existingSecret, not both" }}
{{- end }}

{{- if eq $v.trustpub.rateLimits.storage "redis" }}
{{- if eq $mode "sentinel" }}
{{- $errors = append $errors "trustpub.rateLimits.storage redis shares counters through a redis:// URL, which redis.sentinel does not give: use memory, or redis.url / redis.existingSecret" }}
{{- else if eq $mode "inMemory" }}
{{- $errors = append $errors "trustpub.rateLimits.storage redis needs Redis: use memory with redis.inMemory" }}
{{- end }}
{{- end }}
{{- if and (eq $mode "inMemory") (gt (int $v.redis.minReplicas) 0) }}
{{- $errors = append $errors "redis.minReplicas needs Redis replicas: set it to 0 with redis.inMemory" }}
{{- end }}
{{- /* The evaluation Redis has no replica: WAIT would never be satisfied and every mint 503. */}}
{{- if and (eq $mode "evaluation") (gt (int $v.redis.minReplicas) 0) }}
{{- $errors = append $errors "redis.minReplicas needs Redis replicas: the evaluation Redis is a single node, so every replay claim would fail; set it to 0" }}
{{- end }}
{{- /*
The evaluation Redis has no password and protected mode off; only its NetworkPolicy keeps other
pods from rewriting registrations, revocations and replay records.
*/}}
{{- if and $v.redis.evaluation.enabled (not $v.networkPolicy.enabled) }}
{{- $errors = append $errors "redis.evaluation.enabled needs networkPolicy.enabled: the evaluation Redis has no password, so without its NetworkPolicy any pod of the cluster could register publishers or erase revocations in it" }}
{{- end }}

{{- /* In-memory stores hold state per process: one pod, one worker, no autoscaling. */}}
{{- if eq $mode "inMemory" }}
{{- if gt (int $v.replicaCount) 1 }}
{{- $errors = append $errors (printf "redis.inMemory keeps replay records in one process: replicaCount %d would let each pod accept the same OIDC token once; use replicaCount 1 or configure Redis" (int $v.replicaCount)) }}
{{- end }}
{{- if gt (int $v.gunicorn.workers) 1 }}
{{- $errors = append $errors (printf "redis.inMemory keeps replay records in one process: gunicorn.workers %d would let each worker accept the same OIDC token once; use gunicorn.workers 1 or configure Redis" (int $v.gunicorn.workers)) }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- $errors = append $errors "redis.inMemory keeps replay records in one process: autoscaling.enabled would start several pods; turn it off or configure Redis" }}
{{- end }}
{{- end }}

{{- /* Signing keys: trustpub refuses to start without them. */}}
{{- if and $v.signingKeys.existingSecret $v.signingKeys.files }}
{{- $errors = append $errors "signingKeys: set existingSecret or files, not both" }}
{{- else if not (or $v.signingKeys.existingSecret $v.signingKeys.files) }}
{{- $errors = append $errors "signingKeys: set signingKeys.existingSecret to a Secret of PEM files (create one with 'trustpub keys generate --dir keys' and 'kubectl create secret generic trustpub-signing-keys --from-file=keys/')" }}
{{- end }}

{{- if and $v.clients.existingSecret $v.clients.toml }}
{{- $errors = append $errors "clients: set existingSecret or toml, not both" }}
{{- end }}
{{- if and $v.policies $v.existingPoliciesConfigMap }}
{{- $errors = append $errors "policies: set policies or existingPoliciesConfigMap, not both" }}
{{- end }}

{{- if and $v.ingress.enabled (not $v.ingress.host) }}
{{- $errors = append $errors "ingress.host is required when ingress.enabled: set it to the index's host name; the publish action calls https://<that host>/_/oidc/" }}
{{- end }}

{{- /* A rule with an empty `from` admits every source: the opposite of what an empty list reads as. */}}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.ingressFrom) }}
{{- $errors = append $errors "networkPolicy.ingressFrom is empty: Kubernetes reads a rule without peers as 'from anywhere'; list the ingress controller and the index" }}
{{- end }}

{{- /* Utilization targets are percentages of the requests: without them the HPA never scales. */}}
{{- if $v.autoscaling.enabled }}
{{- $requests := (($v.resources | default dict).requests | default dict) }}
{{- if not $requests.cpu }}
{{- $errors = append $errors "autoscaling.enabled needs resources.requests.cpu: the CPU target is a percentage of it" }}
{{- end }}
{{- if and $v.autoscaling.targetMemoryUtilizationPercentage (not $requests.memory) }}
{{- $errors = append $errors "autoscaling.targetMemoryUtilizationPercentage needs resources.requests.memory: the target is a percentage of it" }}
{{- end }}
{{- end }}

{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- $errors = append $errors (printf "autoscaling.minReplicas %d is above autoscaling.maxReplicas %d" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}

{{- /* The pre-stop wait and gunicorn's 20 s graceful timeout both run inside the grace period. */}}
{{- if le (int $v.terminationGracePeriodSeconds) (add (int $v.preStopSeconds) 20) }}
{{- $errors = append $errors (printf "terminationGracePeriodSeconds %d leaves requests in progress no time to finish: it must be above preStopSeconds (%d) + gunicorn's graceful timeout (20)" (int $v.terminationGracePeriodSeconds) (int $v.preStopSeconds)) }}
{{- end }}

{{- if $errors }}
{{- fail (printf "\n\nThe trustpub chart cannot be installed with these values:\n  - %s\n" (join "\n  - " $errors)) }}
{{- end }}
{{- end }}
