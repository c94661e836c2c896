"""Naming Kubernetes resources the way ``kubectl`` does (pure, no I/O).

A *reference* is what a person types after ``kubectl get``: ``deployment/vllm``,
``deploy``, ``pods``, ``deployments.apps``, ``nodepool.karpenter.sh/gpu``. The
built-in table below resolves the common names without asking the cluster;
custom resources are resolved through discovery by :class:`labkit.kube.Kube`.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.errors import Invalid


@dataclass(frozen=True)
class Kind:
    """A resource type: its API version, kind, plural and scope.

    Attributes:
        api_version: ``v1`` or ``group/version``.
        kind: the ``kind`` field of its objects, e.g. ``Deployment``.
        plural: the URL name, e.g. ``deployments``.
        namespaced: whether objects live in a namespace.
        short_names: ``kubectl`` abbreviations, e.g. ``("deploy",)``.
    """

    api_version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return group_of(self.api_version)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def names(self) -> tuple[str, ...]:
        """Every lower-case name ``kubectl`` accepts for this type (without the group)."""
        return (self.plural, self.singular, *self.short_names)


BUILTINS: tuple[Kind, ...] = (
    Kind("v1", "Namespace", "namespaces", False, ("ns",)),
    Kind("v1", "Node", "nodes", False, ("no",)),
    Kind("v1", "Pod", "pods", True, ("po",)),
    Kind("v1", "Service", "services", True, ("svc",)),
    Kind("v1", "Endpoints", "endpoints", True, ("ep",)),
    Kind("v1", "ConfigMap", "configmaps", True, ("cm",)),
    Kind("v1", "Secret", "secrets", True),
    Kind("v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",)),
    Kind("v1", "PersistentVolume", "persistentvolumes", False, ("pv",)),
    Kind("v1", "Event", "events", True, ("ev",)),
    Kind("v1", "LimitRange", "limitranges", True, ("limits",)),
    Kind("v1", "ResourceQuota", "resourcequotas", True, ("quota",)),
    Kind("v1", "ReplicationController", "replicationcontrollers", True, ("rc",)),
    Kind("apps/v1", "Deployment", "deployments", True, ("deploy",)),
    Kind("apps/v1", "ReplicaSet", "replicasets", True, ("rs",)),
    Kind("apps/v1", "StatefulSet", "statefulsets", True, ("sts",)),
    Kind("apps/v1", "DaemonSet", "daemonsets", True, ("ds",)),
    Kind("apps/v1", "ControllerRevision", "controllerrevisions", True),
    Kind("batch/v1", "Job", "jobs", True),
    Kind("batch/v1", "CronJob", "cronjobs", True, ("cj",)),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",)),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",)),
    Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    Kind("networking.k8s.io/v1", "Ingress", "ingresses", True, ("ing",)),
    Kind("networking.k8s.io/v1", "IngressClass", "ingressclasses", False),
    Kind("rbac.authorization.k8s.io/v1", "Role", "roles", True),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Kind("storage.k8s.io/v1", "StorageClass", "storageclasses", False, ("sc",)),
    Kind("storage.k8s.io/v1", "CSIDriver", "csidrivers", False),
    Kind("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False, ("crd", "crds")),
    Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True),
    Kind("coordination.k8s.io/v1", "Lease", "leases", True),
    Kind("node.k8s.io/v1", "RuntimeClass", "runtimeclasses", False),
    Kind("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False),
    Kind("apiregistration.k8s.io/v1", "APIService", "apiservices", False),
)

# Custom resources the labs install that are cluster-scoped (used to order a batch before discovery knows them).
CLUSTER_SCOPED_CUSTOM: frozenset[tuple[str, str]] = frozenset(
    {
        ("karpenter.sh", "NodePool"),
        ("karpenter.sh", "NodeClaim"),
        ("karpenter.k8s.aws", "EC2NodeClass"),
        ("eks.amazonaws.com", "NodeClass"),
        ("kyverno.io", "ClusterPolicy"),
        ("gateway.networking.k8s.io", "GatewayClass"),
        ("cilium.io", "CiliumClusterwideNetworkPolicy"),
        ("cert-manager.io", "ClusterIssuer"),
        ("nvidia.com", "ClusterPolicy"),
    }
)


def group_of(api_version: str) -> str:
    """The API group of ``api_version`` (``""`` for the core group)."""
    return api_version.rpartition("/")[0]


_BY_KIND = {(k.group, k.kind): k for k in BUILTINS}


def builtin(api_version: str, kind: str) -> Kind | None:
    """The built-in type of ``kind`` in ``api_version``'s group (any version), or ``None``."""
    return _BY_KIND.get((group_of(api_version), kind))


def find_builtin(name: str) -> Kind | None:
    """Resolve a ``kubectl`` resource name (``deploy``, ``Pods``, ``deployments.apps``) among built-ins."""
    lowered = name.strip().lower()
    base, _, group = lowered.partition(".")
    for k in BUILTINS:
        if base in k.names() and (not group or group == k.group):
            return k
    return None


def parse_ref(ref: str, name: str | None = None) -> tuple[str, str | None]:
    """Split ``"deployment/vllm"`` into ``("deployment", "vllm")``; ``name`` may give the name instead.

    Raises:
        Invalid: when the reference is empty or names the object twice differently.
    """
    resource, sep, ref_name = ref.strip().partition("/")
    if not resource or (sep and not ref_name):
        raise Invalid(
            f"'{ref}' is not a resource reference",
            "write it as kubectl does: 'deployment/vllm', 'pods', or 'nodepool.karpenter.sh/gpu'",
        )
    if ref_name and name and ref_name != name:
        raise Invalid(f"'{ref}' names {ref_name!r} but name={name!r} was also given", "give the name once")
    return resource, (ref_name or name or None)


def display_name(api_version: str, kind: str) -> str:
    """How ``kubectl`` names a type in its output: ``deployment``, ``nodepool.karpenter.sh``."""
    if builtin(api_version, kind) is not None:
        return kind.lower()
    group = group_of(api_version)
    return f"{kind.lower()}.{group}" if group else kind.lower()


def display_ref(api_version: str, kind: str, name: str) -> str:
    """``deployment/vllm`` or ``nodepool.karpenter.sh/gpu``."""
    return f"{display_name(api_version, kind)}/{name}"


def scope_hint(api_version: str, kind: str) -> bool | None:
    """Whether ``kind`` is namespaced as far as known without the cluster (``None``: unknown)."""
    known = builtin(api_version, kind)
    if known is not None:
        return known.namespaced
    if (group_of(api_version), kind) in CLUSTER_SCOPED_CUSTOM:
        return False
    return None
