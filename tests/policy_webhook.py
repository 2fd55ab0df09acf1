"""An admission webhook of the test's own, over real HTTPS, that the apiserver calls: a stand-in
for the policy engines of a real cluster (what they answer is the test's to choose)."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kubernetes import client

from usersecrets.webhook.certificates import issue_certificate, new_ca

#: The AdmissionReview's request in, the AdmissionReview's response out (uid added).
Answer = Callable[[dict[str, Any]], dict[str, Any]]


def refuse(message: str) -> dict[str, Any]:
    return {"allowed": False, "status": {"code": 403, "message": message}}


@contextlib.contextmanager
def serving(answer: Answer) -> Iterator[tuple[int, bytes]]:
    """(port, CA) of an HTTPS webhook on loopback answering with `answer`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            response = {"uid": review["request"]["uid"], **answer(review["request"])}
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": response,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    ca = new_ca("test-webhook-ca")
    serving = issue_certificate(ca, common_name="webhook", ip_addresses=("127.0.0.1",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tls.crt").write_bytes(serving.cert_pem)
        (Path(tmp) / "tls.key").write_bytes(serving.key_pem)
        context.load_cert_chain(Path(tmp) / "tls.crt", Path(tmp) / "tls.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], ca.cert_pem
    finally:
        server.shutdown()


@contextlib.contextmanager
def registered(
    admin: client.ApiClient,
    name: str,
    port: int,
    ca_pem: bytes,
    *,
    resource: str,
    namespace: str,
    mutating: bool = False,
) -> Iterator[None]:
    """A webhook configuration calling it for CREATE/UPDATE of `resource` (core/v1) in one
    namespace, failing closed; deleted after."""
    webhook: dict[str, Any] = {
        "name": f"{name}.test.usersecrets.io",
        "clientConfig": {
            "url": f"https://127.0.0.1:{port}/",
            "caBundle": base64.b64encode(ca_pem).decode(),
        },
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": [resource],
            }
        ],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Fail",
        "timeoutSeconds": 5,
    }
    body = {"metadata": {"name": name}, "webhooks": [webhook]}
    registration = client.AdmissionregistrationV1Api(admin)
    if mutating:
        registration.create_mutating_webhook_configuration(body)
    else:
        registration.create_validating_webhook_configuration(body)
    try:
        yield
    finally:
        if mutating:
            registration.delete_mutating_webhook_configuration(name)
        else:
            registration.delete_validating_webhook_configuration(name)
