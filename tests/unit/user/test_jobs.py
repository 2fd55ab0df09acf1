"""Jobs with secrets: the annotations and Job built from a form, and a job's state in words."""

from __future__ import annotations

from typing import Any

from usersecrets.user import jobs
from usersecrets.user.jobs import Attachment

REFUSAL = (
    'Error creating: admission webhook "pods.usersecrets.io" denied the request: '
    "Secret 'secret://c/alice/db' is not shared with user 'bob'"
)


def test_annotations_list_files_and_variables_in_order() -> None:
    attached = [
        Attachment("secret:db", path="/var/secrets/db"),
        Attachment("secret:/alice/key", env="KEY"),
        Attachment("secret:both", path="/b", env="B"),
        Attachment("secret:unused"),
    ]
    assert jobs.pod_annotations(attached) == {
        "usersecrets.io/volumes": "secret:db:/var/secrets/db\nsecret:both:/b",
        "usersecrets.io/env": "KEY=secret:/alice/key\nB=secret:both",
    }
    assert jobs.pod_annotations([Attachment("secret:unused")]) == {}


def test_a_job_runs_one_pod_once_with_the_annotations_on_its_template() -> None:
    body = jobs.job_body("busybox", ["sh", "-c", "cat /s"], [Attachment("secret:s", path="/s")])
    assert body["spec"]["backoffLimit"] == 0
    template = body["spec"]["template"]
    assert template["metadata"]["annotations"] == {"usersecrets.io/volumes": "secret:s:/s"}
    assert template["spec"] == {
        "restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "cat /s"]}],
    }
    pod = jobs.pod_of(body)
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["annotations"] == template["metadata"]["annotations"]
    assert pod["spec"] == template["spec"]
    assert (
        "command"
        not in jobs.job_body("busybox", [], [])["spec"]["template"]["spec"]["containers"][0]
    )


def test_run_again_keeps_image_command_and_our_annotations_only() -> None:
    old = jobs.job_body("busybox", ["true"], [Attachment("secret:s", env="S")])
    old["metadata"] = {"name": "job-1", "uid": "u"}
    old["spec"]["template"]["metadata"]["annotations"]["other.io/x"] = "y"
    again = jobs.again(old)
    assert again["metadata"]["generateName"] == "job-"
    assert again["spec"]["template"]["metadata"]["annotations"] == {
        "usersecrets.io/env": "S=secret:s"
    }
    assert jobs.template_of(again)[:2] == ("busybox", ["true"])


def job(**status: Any) -> dict[str, Any]:
    body = jobs.job_body("busybox", [], [Attachment("secret:db", path="/db")])
    body["metadata"] = {"name": "job-1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    body["status"] = status
    return body


def pod(phase: str = "Pending", node: str = "", waiting: str = "") -> dict[str, Any]:
    statuses = [{"state": {"waiting": {"reason": waiting}}}] if waiting else []
    return {
        "metadata": {"name": "job-1-abcde"},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "main",
                    "volumeMounts": [
                        {"name": "usersecrets-0123456789", "mountPath": "/db"},
                        {"name": "kube-api-access", "mountPath": "/var/run/secrets"},
                    ],
                    "env": [
                        {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "usec-a-db"}}},
                        {"name": "PLAIN", "value": "x"},
                    ],
                }
            ],
        },
        "status": {"phase": phase, "containerStatuses": statuses},
    }


def failed_create(message: str, at: str) -> dict[str, Any]:
    return {"reason": "FailedCreate", "message": message, "lastTimestamp": at}


def test_refused_pods_are_told_in_the_webhooks_words() -> None:
    events = [
        failed_create("older", "2026-01-01T00:00:01Z"),
        failed_create(REFUSAL, "2026-01-01T00:00:02Z"),
    ]
    state = jobs.summarize(job(), [], events)
    assert (state.state, state.message) == ("Refused", REFUSAL)
    assert state.refusals == ("older", REFUSAL)
    failed = job(conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimit"}])
    assert jobs.summarize(failed, [], events).state == "Refused"
    assert jobs.summarize(failed, [], events).finished


def test_a_pod_waiting_for_a_node_is_pending_with_its_secrets() -> None:
    state = jobs.summarize(job(), [pod()], [])
    assert (state.state, state.message) == ("Pending", "Admitted; waiting for a node to run it.")
    assert state.pods[0].files == ("/db",)
    assert state.pods[0].env == ("DB",)
    assert not state.finished
    state = jobs.summarize(job(), [pod(node="n1", waiting="ContainerCreating")], [])
    assert (state.state, state.message) == ("Pending", "Starting on n1 (ContainerCreating)")


def test_running_succeeded_and_failed_jobs() -> None:
    assert jobs.summarize(job(), [pod("Running", "n1")], []).message == "Running on n1."
    assert jobs.summarize(job(), [], []).message == "Waiting for the job's pod to be created."
    done = job(conditions=[{"type": "Complete", "status": "True"}])
    state = jobs.summarize(done, [pod("Succeeded", "n1")], [], log="hello\n")
    assert (state.state, state.finished, state.log) == ("Succeeded", True, "hello\n")
    failed = job(
        conditions=[{"type": "Failed", "status": "True", "message": "Job has reached the limit"}]
    )
    state = jobs.summarize(failed, [pod("Failed", "n1")], [])
    assert (state.state, state.message) == ("Failed", "Job has reached the limit")
