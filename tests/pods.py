"""Jobs and pods that really run on the test node, and what they print."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from typing import Any

from kubernetes import client

from conftest import NODE_TOLERATION, wait_for
from usersecrets_dev.controlplane import ControlPlane
from usersecrets_dev.images import BUSYBOX

#: What a container prints about a secret file and variable: digests only, never the value.
REPORT = """
echo "uid=$(id -u) gid=$(id -g)"
echo "file=$(stat -c '%a %u:%g' "$FILE") $(sha256sum < "$FILE")"
echo "env=$(printf %s "$VALUE" | sha256sum)"
(echo tampered > "$FILE") 2>&1 | sed 's/^/write=/'
"""


def digest(value: bytes) -> str:
    """What `sha256sum < file` prints for `value`."""
    return f"{hashlib.sha256(value).hexdigest()}  -"


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def job_body(
    job_name: str,
    script: str,
    annotations: dict[str, str],
    image: str = BUSYBOX,
    pod_context: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "tolerations": [NODE_TOLERATION],
                    "securityContext": pod_context or {},
                    "terminationGracePeriodSeconds": 1,
                    "containers": [container],
                },
            },
        },
    }


def run_job(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> list[str]:
    """Creates the Job, waits for it to succeed and returns its pod's log lines."""
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    job_name = body["metadata"]["name"]
    batch.create_namespaced_job(namespace, body)

    def finished() -> client.V1Job | None:
        job = batch.read_namespaced_job(job_name, namespace)
        return job if (job.status.succeeded or job.status.failed) else None

    job = wait_for(finished, timeout=120, interval=0.5, what=f"Job {namespace}/{job_name}")
    assert isinstance(job, client.V1Job)
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    log: str = core.read_namespaced_pod_log(pods[0].metadata.name, namespace)
    assert job.status.succeeded == 1, log
    return log.splitlines()


def refusal(api: client.ApiClient, namespace: str, job_name: str) -> str:
    """The message of the Job's FailedCreate event: why its pod was refused."""

    def message() -> str | None:
        events = client.CoreV1Api(api).list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={job_name},reason=FailedCreate"
        )
        return events.items[0].message if events.items else None

    found = wait_for(message, timeout=60, what=f"the refusal of Job {job_name}'s pod")
    assert isinstance(found, str)
    return found


def wait_running(api: client.ApiClient, namespace: str, pod: str) -> None:
    core = client.CoreV1Api(api)
    wait_for(
        lambda: core.read_namespaced_pod(pod, namespace).status.phase == "Running",
        timeout=120,
        interval=0.5,
        what=f"pod {namespace}/{pod} to run",
    )


def kubectl_exec(plane: ControlPlane, namespace: str, pod: str, script: str) -> list[str]:
    """`kubectl exec`: through the apiserver to kubelet to containerd, like a user's."""
    result = subprocess.run(
        [
            str(plane.bin_dir / "kubectl"),
            f"--kubeconfig={plane.kubeconfig}",
            f"--namespace={namespace}",
            "exec",
            pod,
            "--",
            "sh",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()
