"""A user's namespace, as that user: the handful of API calls the CLI and the web UI make.

Every call goes through `KubeApi` with the user's own credentials, and every refusal comes back
as a `Failure` that names the verb and resource refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from usersecrets import GROUP
from usersecrets.kube import paths
from usersecrets.kube.client import KubeApi, UnknownContext, from_kubeconfig
from usersecrets.rules import naming
from usersecrets.user.errors import Failure, Operation, from_exception
from usersecrets.user.views import Obj, user_from_evidence

if TYPE_CHECKING:
    from usersecrets.settings import Settings

#: (connect, read) seconds for each API call: an unreachable cluster must fail, not hang.
REQUEST_TIMEOUT = (10.0, 60.0)
#: Ask for metadata only when listing Secrets: a user's tools never need, so never receive,
#: values.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

T = TypeVar("T")


class Space:
    """Our objects in one namespace, read and written as the user whose credentials `api`
    carries."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self._user: tuple[str | None] | None = None

    def _call(self, op: Operation, call: Callable[[], T]) -> T:
        try:
            return call()
        except Exception as exc:
            raise from_exception(exc, op) from None

    def _json(self, op: Operation, method: str, path: str, **kwargs: Any) -> Obj:
        return self._call(
            op, lambda: self.api.json(method, path, timeout=REQUEST_TIMEOUT, **kwargs)
        )

    def request(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        name: str | None = None,
        **kwargs: Any,
    ) -> Obj:
        """Any API call in this namespace, refused as a `Failure` that names `verb` and
        `resource` (the web UI's Jobs, Pods and Events)."""
        return self._json(Operation(verb, resource, self.namespace, name), method, path, **kwargs)

    def text(
        self, verb: str, resource: str, path: str, name: str | None = None, **kwargs: Any
    ) -> str:
        """A GET whose answer is text, such as a pod's log."""
        op = Operation(verb, resource, self.namespace, name)
        data = self._call(op, lambda: self.api.call("GET", path, timeout=REQUEST_TIMEOUT, **kwargs))
        return data.decode("utf-8", "replace")

    def _op(self, verb: str, plural: str, name: str | None = None) -> Operation:
        return Operation(verb, f"{plural}.{GROUP}", self.namespace, name)

    def list_objects(self, plural: str) -> list[Obj]:
        found = self._json(self._op("list", plural), "GET", paths.custom(plural, self.namespace))
        return list(found.get("items") or [])

    def get(self, plural: str, name: str) -> Obj:
        path = f"{paths.custom(plural, self.namespace)}/{name}"
        return self._json(self._op("get", plural, name), "GET", path)

    def create(self, plural: str, body: Obj) -> Obj:
        op = self._op("create", plural, body["metadata"]["name"])
        return self._json(op, "POST", paths.custom(plural, self.namespace), body=body)

    def replace(self, plural: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        path = f"{paths.custom(plural, self.namespace)}/{name}"
        return self._json(self._op("update", plural, name), "PUT", path, body=body)

    def delete(self, plural: str, name: str) -> None:
        path = f"{paths.custom(plural, self.namespace)}/{name}"
        self._json(self._op("delete", plural, name), "DELETE", path)

    def list_copies(self, reason: str) -> list[Obj]:
        """The copies in this namespace that exist for `reason`, as metadata only."""
        found = self._json(
            Operation("list", "secrets", self.namespace),
            "GET",
            paths.secrets_in(self.namespace),
            query={"labelSelector": f"{naming.REASON_LABEL}={reason}"},
            headers={"Accept": METADATA_ONLY},
        )
        return list(found.get("items") or [])  # null when empty, as Go writes a nil slice

    def user(self) -> str | None:
        """The namespace's user as the operator sees it, or None when we cannot tell.

        Users often may not read their Namespace object, so what the operator wrote (a URI in
        a status, the owner label of its copies) is the next best witness.
        """
        if self._user is None:
            self._user = (self._find_user(),)
        return self._user[0]

    def _find_user(self) -> str | None:
        try:
            ns = self._json(
                Operation("get", "namespaces", name=self.namespace),
                "GET",
                f"{paths.NAMESPACES}/{self.namespace}",
            )
            labels = (ns.get("metadata") or {}).get("labels")
            return naming.user_of_namespace(self.namespace, labels, platform_settings())
        except Failure:
            pass
        objs: list[Obj] = []
        copies: list[Obj] = []
        with contextlib.suppress(Failure):
            objs = self.list_objects("usersecrets")
        with contextlib.suppress(Failure):
            copies = [] if user_from_evidence(objs, []) else self.list_copies(naming.REASON_OWNER)
        return user_from_evidence(objs, copies)


def platform_settings() -> Settings:
    """The platform's settings where the user has them in their environment, else defaults."""
    from usersecrets.settings import Settings

    try:
        return Settings()
    except ValueError:
        return Settings.model_construct()


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Space:
    """The user's namespace (`namespace`, else their context's) with their kubeconfig."""
    path = str(Path(kubeconfig).expanduser()) if kubeconfig else None
    if path and not Path(path).is_file():
        raise Failure(f"Cannot use the kubeconfig: no file '{path}'", "unreachable")
    try:
        api, default = from_kubeconfig(path, context)
    except UnknownContext:
        raise Failure(f"Context '{context}' not found in the kubeconfig", "usage") from None
    except Exception as exc:
        raise from_exception(exc) from None
    return Space(api, namespace or default)
