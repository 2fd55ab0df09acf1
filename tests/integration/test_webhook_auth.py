"""Who may call the webhook: only the apiserver, when the chart's webhook.clientAuth is set.

Anyone who reaches the webhook's port could otherwise POST an AdmissionReview naming another
user's namespace and learn from the answer which keys she has ("Missing secrets" or a patch).
The local control plane's apiserver presents a client certificate to every webhook (an
AdmissionConfiguration whose kubeconfig gives it one, signed by a CA of its own: see
`controlplane.admission_configuration`). A second operator is installed by the chart with that
CA and the certificate's name in webhook.clientAuth, and the chart's webhook pointed at it; the
session's operator, installed without them, shows what an unauthenticated caller learns.
"""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import CLUSTER_NAME, wait_for
from fakes import copy_name
from kube import create_usersecret, post_review, scrape, wait_copy, webhook_ca
from usersecrets.webhook.certificates import Bundle, issue_certificate
from usersecrets_dev import pods
from usersecrets_dev.chart import install_chart
from usersecrets_dev.controlplane import WEBHOOK_CLIENT, ControlPlane
from usersecrets_dev.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

#: The values the session's `operator` fixture installs the chart with.
CHART_VALUES = (f"clusterName={CLUSTER_NAME}", "logLevel=DEBUG")
DENIED = 'admission webhook "pods.usersecrets.io" denied the request: '


def review(namespace: str, env: str) -> bytes:
    """What an attacker POSTs: a pod of `namespace` asking for `env`."""
    return json.dumps(pods.review(namespace, pods.pod(env=env, name="probe"))).encode()


def post_as(
    port: int, ca: str, body: bytes, identity: Bundle | None, tmp: Path
) -> dict[str, Any] | str:
    """The webhook's answer to `body` from a client presenting `identity`, or "refused" when
    the connection ended without an HTTP answer."""
    context = ssl.create_default_context(cadata=ca)
    if identity is not None:
        cert, key = tmp / f"{uuid.uuid4().hex}.crt", tmp / f"{uuid.uuid4().hex}.key"
        cert.write_bytes(identity.cert_pem)
        key.write_bytes(identity.key_pem)
        context.load_cert_chain(cert, key)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("POST", "/mutate-pods", body=body)
        response = connection.getresponse()
        assert response.status == 200
        answer: dict[str, Any] = json.loads(response.read())["response"]
        return answer
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return "refused"
    finally:
        connection.close()


def pod(env: str) -> dict[str, Any]:
    return pods.pod(env=env, name=pods.unique_name(), restartPolicy="Never")


def refusal(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, body)
    text: str = json.loads(refused.value.body)["message"]
    return text


@pytest.fixture
def verifying(cluster: ControlPlane, operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """A second operator that answers only callers with a certificate of the apiserver's
    webhook client CA naming WEBHOOK_CLIENT; the chart's webhook points at it. Afterwards the
    chart is installed as the session's operator had it, pointing at that one again."""
    ca_pem = cluster.webhook_client_ca_file.read_text()
    replica = OperatorProcess(
        cluster,
        name="operator-client-auth",
        values=[
            *CHART_VALUES,
            f"webhook.clientAuth.caBundle={ca_pem}",
            f"webhook.clientAuth.allowedNames[0]={WEBHOOK_CLIENT}",
        ],
        # The chart mounts the CA at a path of the pod; here it is the control plane's file.
        USERSECRETS_WEBHOOK_CLIENT_CA_FILE=str(cluster.webhook_client_ca_file),
    )
    try:
        replica.start()  # ready: its probes answer over plain HTTP, without a certificate
        yield replica
    finally:
        # Pointed back first, so that no pod create finds the webhook gone in between.
        install_chart(cluster, operator.webhook_port, *CHART_VALUES)
        replica.stop()


def test_with_client_auth_only_the_apiserver_is_answered(
    cluster: ControlPlane,
    admin: client.ApiClient,
    user_client: Callable[[str], client.ApiClient],
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
    operator: OperatorProcess,
    verifying: OperatorProcess,
    tmp_path: Path,
) -> None:
    alice = users("alice")
    home = user_namespace(alice)
    as_alice = client.CoreV1Api(user_client(alice))
    create_usersecret(user_client(alice), home, "token", b"alice's token")
    wait_copy(admin, home, alice, "token", b"alice's token")
    assert verifying.env["USERSECRETS_WEBHOOK_CLIENT_NAMES"] == f'["{WEBHOOK_CLIENT}"]'
    ca = webhook_ca(admin)
    probing = review(home, "A=secret:token,B=secret:nope")

    # Without client authentication, anyone learns which of her keys alice has.
    status, body = post_review(operator.webhook_port, ca, probing)
    assert status == 200
    answer = json.loads(body)["response"]
    assert answer["allowed"] is False
    assert answer["status"]["message"] == "Missing secrets: 'nope'"

    # With it, no caller but the apiserver gets an answer: not one without a certificate, not
    # one with the cluster's admin certificate (another CA), not one of the webhook client CA
    # that names someone else.
    assert post_as(verifying.webhook_port, ca, probing, None, tmp_path) == "refused"
    admin_certificate = issue_certificate(
        cluster.ca, common_name="admin", organizations=["system:masters"], client=True
    )
    assert post_as(verifying.webhook_port, ca, probing, admin_certificate, tmp_path) == "refused"
    assert cluster.webhook_client_ca is not None
    kubelet = issue_certificate(
        cluster.webhook_client_ca, common_name="system:node:worker-1", client=True
    )
    assert post_as(verifying.webhook_port, ca, probing, kubelet, tmp_path) == "refused"

    # The apiserver's own calls are answered by it. Once the apiserver has seen the chart's
    # new webhook URL, a pod asking for a key alice lacks is refused by the verifying replica
    # (a webhook it could not call would fail the create with "failed calling webhook").
    def answered(result: str, reason: str) -> float:
        line = f'usersecrets_admissions_total{{reason="{reason}",result="{result}"}} '
        found = [m for m in scrape(verifying.metrics_port).splitlines() if m.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    def refused_by_verifying() -> bool:
        with pytest.raises(ApiException):
            as_alice.create_namespaced_pod(home, pod("B=secret:nope"), dry_run="All")
        return answered("denied", "missing") > 0

    wait_for(refused_by_verifying, what="the apiserver to call the verifying replica")
    denied = answered("denied", "missing")
    assert refusal(as_alice, home, pod("B=secret:nope")) == DENIED + "Missing secrets: 'nope'"
    assert answered("denied", "missing") == denied + 1
    created = admin.sanitize_for_serialization(
        as_alice.create_namespaced_pod(home, pod("A=secret:token"))
    )
    assert answered("admitted", "") == 1
    assert created["spec"]["containers"][0]["env"] == [
        {
            "name": "A",
            "valueFrom": {"secretKeyRef": {"name": copy_name(alice, "token"), "key": "value"}},
        }
    ]
    log = verifying.log.read_text(errors="replace")
    assert "webhook serving on 127.0.0.1:" in log
    assert "to clients with a certificate" in log
    assert "closed a connection whose client certificate names no allowed client" in log
