"""A user's jobs that use secrets: build one from an image, a command and secrets to attach,
try its pod through admission before creating it, and read back what became of it.

Only the annotations are ours; the webhook decides what a pod may have, with its own words.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from usersecrets.kube import paths
from usersecrets.rules.injection import VOLUME_PREFIX
from usersecrets.rules.references import ENV_ANNOTATION, VOLUMES_ANNOTATION, requests_secrets
from usersecrets.user.errors import Failure
from usersecrets.user.views import Obj, at

if TYPE_CHECKING:
    from usersecrets.user.space import Space

JOBS = "jobs.batch"
PODS = "pods"
CONTAINER = "main"
CREATED_BY_LABEL = "app.kubernetes.io/created-by"
CREATED_BY = "usersecrets-ui"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
#: How much of a pod's log is shown: its end, at most this many bytes.
LOG_BYTES = 64 * 1024
LOG_LINES = 500
RECENT = 20


@dataclass(frozen=True)
class Attachment:
    """One secret for a job: as a file at `path`, as the variable `env`, or both."""

    ref: str
    path: str = ""
    env: str = ""


def pod_annotations(attachments: Iterable[Attachment]) -> dict[str, str]:
    """Our pod annotations, one entry a line, in the order given."""
    volumes = [f"{a.ref}:{a.path}" for a in attachments if a.path]
    env = [f"{a.env}={a.ref}" for a in attachments if a.env]
    found = {}
    if volumes:
        found[VOLUMES_ANNOTATION] = "\n".join(volumes)
    if env:
        found[ENV_ANNOTATION] = "\n".join(env)
    return found


def job_body(image: str, command: Sequence[str], attachments: Iterable[Attachment]) -> Obj:
    """A Job of one pod that runs once (no retries, like a Neu.ro job)."""
    container: Obj = {"name": CONTAINER, "image": image}
    if command:
        container["command"] = list(command)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": "job-", "labels": {CREATED_BY_LABEL: CREATED_BY}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": {CREATED_BY_LABEL: CREATED_BY},
                    "annotations": pod_annotations(attachments),
                },
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def pod_of(job: Mapping[str, Any]) -> Obj:
    """The pod the Job controller would create, as far as admission is concerned."""
    template = at(job, "spec", "template") or {}
    metadata = dict(template.get("metadata") or {})
    metadata["generateName"] = "job-dry-run-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template.get("spec")}


def try_pod(space: Space, job: Mapping[str, Any]) -> Obj:
    """The job's pod as admission leaves it, from a server-side dry run: every webhook runs
    and nothing is stored. A refusal is a `Failure` quoting the webhook word for word."""
    return space.request(
        "create",
        PODS,
        "POST",
        paths.pods_in(space.namespace),
        query={"dryRun": "All"},
        body=pod_of(job),
    )


def create(space: Space, job: Mapping[str, Any]) -> Obj:
    return space.request("create", JOBS, "POST", paths.jobs_in(space.namespace), body=job)


def template_of(job: Mapping[str, Any]) -> tuple[str, list[str], dict[str, str]]:
    """(image, command, our annotations) of an existing Job, to run it again."""
    template = at(job, "spec", "template") or {}
    containers = at(template, "spec", "containers") or [{}]
    container = next((c for c in containers if c.get("name") == CONTAINER), containers[0])
    found = at(template, "metadata", "annotations") or {}
    ours = {k: v for k, v in found.items() if k in (VOLUMES_ANNOTATION, ENV_ANNOTATION)}
    return str(container.get("image") or ""), list(container.get("command") or []), ours


def again(job: Mapping[str, Any]) -> Obj:
    """A new Job with the same image, command and secrets."""
    image, command, ours = template_of(job)
    body = job_body(image, command, [])
    body["spec"]["template"]["metadata"]["annotations"] = ours
    return body


def get(space: Space, name: str) -> Obj:
    return space.request("get", JOBS, "GET", f"{paths.jobs_in(space.namespace)}/{name}", name)


def recent(space: Space) -> list[Obj]:
    """The namespace's Jobs whose pods ask for secrets, newest first."""
    found = space.request("list", JOBS, "GET", paths.jobs_in(space.namespace))
    jobs = [
        j
        for j in found.get("items") or []
        if requests_secrets(at(j, "spec", "template", "metadata", "annotations") or {})
    ]
    jobs.sort(key=lambda j: str(at(j, "metadata", "creationTimestamp") or ""), reverse=True)
    return jobs[:RECENT]


@dataclass(frozen=True)
class PodState:
    name: str
    phase: str
    node: str
    waiting: str
    files: tuple[str, ...]
    env: tuple[str, ...]


@dataclass(frozen=True)
class JobState:
    """What became of a job, in words: `state` is one of Refused, Pending, Running,
    Succeeded, Failed; `message` says why, quoting the cluster."""

    name: str
    image: str
    command: tuple[str, ...]
    annotations: dict[str, str]
    created: str
    state: str
    message: str
    pods: tuple[PodState, ...] = ()
    log: str | None = None
    finished: bool = False
    refusals: tuple[str, ...] = field(default=())


def pod_state(pod: Mapping[str, Any]) -> PodState:
    """A pod's phase, and the secrets admission gave its main container."""
    containers = at(pod, "spec", "containers") or []
    main: Mapping[str, Any] = next((c for c in containers if c.get("name") == CONTAINER), {})
    files = tuple(
        str(m.get("mountPath"))
        for m in main.get("volumeMounts") or []
        if str(m.get("name", "")).startswith(VOLUME_PREFIX)
    )
    env = tuple(
        str(e.get("name")) for e in main.get("env") or [] if at(e, "valueFrom", "secretKeyRef")
    )
    waiting = ""
    for status in at(pod, "status", "containerStatuses") or []:
        reason = at(status, "state", "waiting", "reason")
        if reason:
            waiting = str(reason)
    return PodState(
        name=str(at(pod, "metadata", "name")),
        phase=str(at(pod, "status", "phase") or "Pending"),
        node=str(at(pod, "spec", "nodeName") or ""),
        waiting=waiting,
        files=files,
        env=env,
    )


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in at(job, "status", "conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            found: Mapping[str, Any] = condition
            return found
    return None


def summarize(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    log: str | None = None,
) -> JobState:
    """A job's state from the Job, its pods and its Events, newest pod first."""
    image, command, ours = template_of(job)
    refusals = tuple(
        str(e.get("message"))
        for e in sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime")))
        if e.get("reason") == "FailedCreate" and e.get("message")
    )
    states = [pod_state(p) for p in pods]
    states.sort(key=lambda p: p.name, reverse=True)
    complete, failed = _condition(job, "Complete"), _condition(job, "Failed")
    if complete:
        state, message = "Succeeded", "The job ran to completion."
    elif failed and not states and refusals:
        state, message = "Refused", refusals[-1]
    elif failed:
        state = "Failed"
        message = str(failed.get("message") or failed.get("reason") or "The job failed.")
    elif not states and refusals:
        state, message = "Refused", refusals[-1]
    elif not states:
        state, message = "Pending", "Waiting for the job's pod to be created."
    else:
        newest = states[0]
        state = newest.phase if newest.phase in ("Running", "Succeeded", "Failed") else "Pending"
        if state == "Pending" and not newest.node:
            message = "Admitted; waiting for a node to run it."
        elif state == "Pending":
            message = f"Starting on {newest.node}" + (
                f" ({newest.waiting})" if newest.waiting else ""
            )
        else:
            message = f"{state} on {newest.node}."
    return JobState(
        name=str(at(job, "metadata", "name")),
        image=image,
        command=tuple(command),
        annotations=ours,
        created=str(at(job, "metadata", "creationTimestamp") or ""),
        state=state,
        message=message,
        pods=tuple(states),
        log=log,
        finished=bool(complete or failed),
        refusals=refusals,
    )


def state(space: Space, name: str) -> JobState:
    """Everything the job page shows, read as the user: the Job, its pods, its Events, and
    the newest pod's log once a node runs it."""
    job = get(space, name)
    ns = space.namespace
    pods = (
        space.request(
            "list",
            PODS,
            "GET",
            paths.pods_in(ns),
            query={"labelSelector": f"{JOB_NAME_LABEL}={name}"},
        ).get("items")
        or []
    )
    events: list[Obj] = []
    with contextlib.suppress(Failure):  # a user who may not list Events still sees the rest
        events = (
            space.request(
                "list",
                "events",
                "GET",
                paths.events_in(ns),
                query={"fieldSelector": f"involvedObject.kind=Job,involvedObject.name={name}"},
            ).get("items")
            or []
        )
    summary = summarize(job, pods, events)
    newest = summary.pods[0] if summary.pods else None
    if newest and newest.node and newest.phase in ("Running", "Succeeded", "Failed"):
        log = ""
        with contextlib.suppress(Failure):
            log = space.text(
                "get",
                "pods/log",
                f"{paths.pods_in(ns)}/{newest.name}/log",
                newest.name,
                query={"limitBytes": LOG_BYTES, "tailLines": LOG_LINES},
                headers={"Accept": "*/*"},
            )
        summary = summarize(job, pods, events, log)
    return summary
