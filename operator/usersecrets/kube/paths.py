"""Where things are in the Kubernetes API: the paths every caller of `KubeApi` uses."""

from __future__ import annotations

from usersecrets import GROUP, VERSION

NAMESPACES = "/api/v1/namespaces"
SECRETS = "/api/v1/secrets"  # in every namespace
RESOURCE_QUOTAS = "/api/v1/resourcequotas"


def secrets_in(namespace: str) -> str:
    return f"{NAMESPACES}/{namespace}/secrets"


def resource_quotas_in(namespace: str) -> str:
    return f"{NAMESPACES}/{namespace}/resourcequotas"


def events_in(namespace: str) -> str:
    return f"{NAMESPACES}/{namespace}/events"


def custom(plural: str, namespace: str | None = None) -> str:
    """Our custom resources of a kind, in every namespace or in one."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{GROUP}/{VERSION}{where}/{plural}"


#: Our webhook configurations' kinds, as their paths name them.
WEBHOOK_CONFIGURATIONS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")


def webhook_configuration(name: str, kind: str = WEBHOOK_CONFIGURATIONS[0]) -> str:
    return f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}"


def leases_in(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def pods_in(namespace: str) -> str:
    return f"{NAMESPACES}/{namespace}/pods"


def jobs_in(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SELF_SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
