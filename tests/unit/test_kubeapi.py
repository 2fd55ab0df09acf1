"""Plain-JSON API calls: what reaches the client, and refusals as ApiException."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from kubernetes.client.rest import ApiException

from usersecrets import kubeapi
from usersecrets.kubeapi import KubeApi


class FakeClient:
    def __init__(self, status: int, data: bytes) -> None:
        self.status, self.data = status, data
        self.serialized: dict[str, Any] = {}

    def param_serialize(self, **kwargs: Any) -> tuple[Any, ...]:
        self.serialized = kwargs
        return ("request",)

    def call_api(self, *request: Any, _request_timeout: Any = None) -> Any:
        assert request == ("request",)
        raw = SimpleNamespace(data=self.data)
        return SimpleNamespace(
            status=self.status,
            reason="Reason",
            data=self.data,
            response=raw,
            read=lambda: self.data,
            headers={},
        )


def test_a_patch_is_sent_with_its_content_type_and_without_empty_query_values() -> None:
    fake = FakeClient(200, b'{"metadata": {"resourceVersion": "3"}}')
    answer = KubeApi(cast(Any, fake)).json(
        "PATCH",
        kubeapi.custom("usersecrets", "alice") + "/db/status",
        body={"status": {}},
        content_type=kubeapi.MERGE_PATCH,
        query={"dryRun": None, "fieldManager": "usersecrets"},
    )
    assert answer == {"metadata": {"resourceVersion": "3"}}
    sent = fake.serialized
    path = "/apis/usersecrets.io/v1alpha1/namespaces/alice/usersecrets/db/status"
    assert sent["resource_path"] == path
    assert sent["query_params"] == [("fieldManager", "usersecrets")]
    assert sent["header_params"]["Content-Type"] == kubeapi.MERGE_PATCH
    assert sent["auth_settings"] == ["BearerToken"]


def test_a_refusal_is_an_api_exception_with_its_status() -> None:
    fake = FakeClient(409, b'{"kind": "Status", "reason": "AlreadyExists"}')
    with pytest.raises(ApiException) as info:
        KubeApi(cast(Any, fake)).call("POST", kubeapi.secrets_in("alice"), body={})
    assert info.value.status == 409
