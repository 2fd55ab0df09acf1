"""Sample users of the local control plane: a namespace of their own, a token to sign in to the
web UI, and a kubeconfig for kubectl and the CLI.

For the UI a user is a ServiceAccount in a namespace labelled as that user's, bound to a role
that lets it manage secrets, jobs and pods there, and nothing else; its token comes from the
TokenRequest API, as `kubectl create token` gets it. This is what the Kubernetes Dashboard and
Headlamp document for signing in, and needs no change to the apiserver: an OIDC token from an
authenticating proxy reaches the UI the same way, as a bearer token.

For kubectl the user is who a client certificate names, with the built-in `edit` role in that
namespace only, as platform teams give it (the chart adds our resources to it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.client.rest import ApiException

if TYPE_CHECKING:
    from usersecrets_dev.controlplane import ControlPlane

USER_LABEL = "usersecrets.io/user"
ROLE = "usersecrets-sample-user"
RBAC_GROUP = "rbac.authorization.k8s.io"
#: What a user may do in their own namespace: what the web UI and the CLI need.
RULES = [
    {"apiGroups": [""], "resources": ["secrets", "pods", "events"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["*"]},
    {"apiGroups": ["usersecrets.io"], "resources": ["usersecrets", "secretgrants"], "verbs": ["*"]},
]


def _ignore_conflict(call: Any) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 409:
            raise


def ensure_role(api: client.ApiClient, name: str = ROLE) -> str:
    body = {"metadata": {"name": name}, "rules": RULES}
    _ignore_conflict(lambda: client.RbacAuthorizationV1Api(api).create_cluster_role(body))
    return name


def _bind(
    api: client.ApiClient,
    namespace: str,
    subject: dict[str, str],
    role: str,
    user: str,
    groups: list[str],
) -> None:
    """A RoleBinding of `subject` to ClusterRole `role` in `namespace`; returns once RBAC lets
    `user` (the subject's name as the apiserver sees it) create UserSecrets there, since the
    authorizer learns of bindings, and of aggregated rules, from watches."""
    binding = {
        "metadata": {"name": f"{subject['name']}-{role}"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }
    rbac = client.RbacAuthorizationV1Api(api)
    _ignore_conflict(lambda: rbac.create_namespaced_role_binding(namespace, binding))
    review = {
        "spec": {
            "user": user,
            "groups": groups,
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "create",
                "group": "usersecrets.io",
                "resource": "usersecrets",
            },
        }
    }
    authorization = client.AuthorizationV1Api(api)
    deadline = time.monotonic() + 30
    while not authorization.create_subject_access_review(review).status.allowed:
        if time.monotonic() > deadline:
            raise TimeoutError(f"RBAC never let {user} act in {namespace}")
        time.sleep(0.1)


def service_account_token(
    api: client.ApiClient, namespace: str, name: str, role: str, seconds: int = 3600
) -> str:
    """A token of the ServiceAccount `name` in `namespace`, bound there to ClusterRole `role`."""
    core = client.CoreV1Api(api)
    _ignore_conflict(
        lambda: core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    )
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    _bind(api, namespace, subject, role, f"system:serviceaccount:{namespace}:{name}", groups)
    request = {"spec": {"expirationSeconds": seconds}}
    answer = core.create_namespaced_service_account_token(name, namespace, request)
    token: str = answer.status.token
    return token


def sample_user(api: client.ApiClient, user: str) -> tuple[str, str]:
    """(namespace, token) of `user`: a namespace named and labelled after them, and a token."""
    core = client.CoreV1Api(api)
    body = {"metadata": {"name": user, "labels": {USER_LABEL: user}}}
    _ignore_conflict(lambda: core.create_namespace(body))
    deadline = time.monotonic() + 30
    while True:  # the ServiceAccount controller must have started on the namespace
        try:
            core.read_namespaced_service_account("default", user)
            break
        except ApiException as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return user, service_account_token(api, user, user, ensure_role(api), seconds=24 * 3600)


def user_kubeconfig(api: client.ApiClient, plane: ControlPlane, user: str, namespace: str) -> Path:
    """A kubeconfig of `user`'s own client certificate, whose context is `namespace`, where a
    RoleBinding gives them the built-in `edit` role."""
    subject = {"kind": "User", "name": user, "apiGroup": RBAC_GROUP}
    _bind(api, namespace, subject, "edit", user, ["system:authenticated"])
    return plane.user_kubeconfig(user, namespace=namespace)
