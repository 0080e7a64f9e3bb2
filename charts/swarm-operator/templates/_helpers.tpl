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

{{/* What the operator does in a namespace it watches: its kinds, their status, the Secrets and
ConfigMaps they name, and events. A ClusterRole's rules, or each watched namespace's Role's. Each verb
is one the operator uses (tests/tests/rbac.rs reads them from the API server's audit log). */}}
{{- define "swarm-operator.namespacedRules" -}}
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmservices", "swarmnetworks", "swarmsecrets", "swarmconfigs", "swarmstacks"]
  verbs: ["list", "watch"]
# Finalizers (JSON patches), and a SwarmStack's children: created, server-side applied, pruned.
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmservices", "swarmnetworks", "swarmsecrets", "swarmconfigs"]
  verbs: ["patch", "create", "delete"]
# What a SwarmService refers to, when a pass comes before the watches have listed it (after,
# passes read the watches'); and any kind's fresh copy when a pass's cached one is older than
# the operator's own status write.
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmservices", "swarmnetworks", "swarmsecrets", "swarmconfigs", "swarmstacks"]
  verbs: ["get"]
# Children carry blockOwnerDeletion: true, which clusters with OwnerReferencesPermissionEnforcement
# allow only to whoever may update the owner's finalizers.
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmstacks/finalizers"]
  verbs: ["update"]
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmservices/status", "swarmnetworks/status", "swarmsecrets/status", "swarmconfigs/status", "swarmstacks/status"]
  verbs: ["patch"]
# imagePullSecrets and SwarmSecret sources: read at reconcile time and watched (metadata only);
# their values go to the Swarm manager only. ConfigMaps feed SwarmConfigs and stacks' variables.
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch"]
# The history of each SwarmService's specs (kubectl swarm history / rollback), server-side applied
# (a new revision is authorized as a create).
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["create", "patch"]
# A repeated event is a series: created once, then patched.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* SwarmClusters, SwarmNodes, and the labels of namespaces their namespaceSelector admits:
cluster-scoped, so always a ClusterRole's. */}}
{{- define "swarm-operator.clusterRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmclusters"]
  verbs: ["list", "watch"]
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmclusters/status"]
  verbs: ["patch"]
# SwarmNodes: one made for each node found, its status kept from node events.
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmnodes"]
  verbs: ["list", "watch", "create"]
- apiGroups: ["swarmoperator.io"]
  resources: ["swarmnodes/status"]
  verbs: ["patch"]
{{- end }}
