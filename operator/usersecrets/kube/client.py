"""The API calls the operator makes, as plain JSON through the client's ApiClient.

kubernetes' generated CoreV1Api alone costs 22 MiB to import (about a thousand methods, each
wrapped in pydantic's validate_call, and the models they name), and a validation per call.
The operator makes a handful of kinds of call and reads every answer as JSON anyway.
Authentication, TLS, the connection pool and ApiException stay the client's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.rest import ApiException

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class KubeApi:
    """Requests with the client's configuration; answers as the apiserver sends them."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def stream(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        timeout: Any = None,
    ) -> Any:
        """The answer with its body unread, for a watch to stream; the caller releases it.
        ApiException unless 2xx."""
        header_params = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            header_params["Content-Type"] = content_type or "application/json"
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=[(k, v) for k, v in (query or {}).items() if v is not None],
            header_params=header_params,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def call(self, method: str, path: str, **kwargs: Any) -> bytes:
        """The whole answer. Reading it is what returns the connection to the pool: an answer
        left unread costs the next call a new connection and TLS handshake."""
        data: bytes = self.stream(method, path, **kwargs).data
        return data

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.call(method, path, **kwargs))
        return found


def connect(pool: int = 32) -> KubeApi:
    """In a pod, its ServiceAccount; elsewhere the kubeconfig, as kubectl would pick it.
    `pool`: connections kept open, shared by workers, watches and admissions' rare reads."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = Configuration.get_default_copy()
    configuration.connection_pool_maxsize = pool
    return KubeApi(ApiClient(configuration))


class UnknownContext(LookupError):
    """The kubeconfig has no context of that name."""


def from_kubeconfig(path: str | None, context: str | None) -> tuple[KubeApi, str]:
    """A user's own credentials, as kubectl finds them (`path` None: $KUBECONFIG or
    ~/.kube/config), and the namespace their context names ("default" if none)."""
    contexts, chosen = config.list_kube_config_contexts(path)
    if context:
        chosen = next((c for c in contexts or [] if c.get("name") == context), None)
        if chosen is None:
            raise UnknownContext(context)
    api = config.new_client_from_config(config_file=path, context=context, persist_config=False)
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return KubeApi(api), str(namespace)


def for_token(server: str, token: str, ca_file: str | None, pool: int = 4) -> KubeApi:
    """A client acting as whoever `token` belongs to, and as nobody else: no kubeconfig, no
    in-cluster ServiceAccount, no environment is read. `ca_file` None: the system's CAs.

    The web UI makes one per signed-in user, so the apiserver's RBAC decides each call.
    """
    configuration = Configuration(
        host=server.rstrip("/"),
        api_key={"BearerToken": token},
        api_key_prefix={"BearerToken": "Bearer"},
        ssl_ca_cert=ca_file,
    )
    configuration.connection_pool_maxsize = pool
    # Never a proxy from the environment: the token goes to the apiserver only.
    configuration.proxy = None
    return KubeApi(ApiClient(configuration))
