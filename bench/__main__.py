"""`make bench`: how fast usersecrets is, side by side with what the apiserver itself allows.

Every number is measured in one run against one local control plane, next to its baseline
(the same client writing Secrets directly, unannotated pods), so ratios mean something on any
machine. `--smoke` runs the same code at tiny sizes; the test suite runs it so this cannot rot.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import urlopen

from kubernetes import client, config, watch
from urllib3.exceptions import ProtocolError

from usersecrets import GROUP, VERSION
from usersecrets.rules import naming
from usersecrets_dev import pods
from usersecrets_dev.controlplane import ControlPlane, find_binaries, free_port
from usersecrets_dev.operator_process import OperatorProcess

RESULTS = Path(__file__).parent / "results"
WEBHOOKLOAD = Path(__file__).parent.parent / "hack" / "webhookload" / "main.go"


@dataclass(frozen=True)
class Sizes:
    secrets: int = 1000
    fanout: int = 100
    pods: int = 100
    reviews: int = 10000
    memory: tuple[int, ...] = (1000, 10000)
    cli_runs: int = 30


SMOKE = Sizes(secrets=20, fanout=5, pods=10, reviews=50, memory=(20, 50), cli_runs=2)


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "p99_ms": round(quantile(samples, 0.99) * 1000, 2),
    }


def load(
    url: str, ca: Path, review: dict[str, Any], total: int, concurrency: int, runs: int
) -> dict[str, Any]:
    """`total` AdmissionReviews posted by a Go client as the apiserver is one
    (hack/webhookload), so that a Python client on the same cores is not what limits the
    numbers. A p99 moves with every stall of a shared machine: of `runs` runs, the one with the
    median p99 is reported, and every run's p99 beside it."""
    measured: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        body, binary = Path(work, "review.json"), Path(work, "load")
        body.write_text(json.dumps(review))
        subprocess.run(["go", "build", "-o", str(binary), str(WEBHOOKLOAD)], check=True)
        for _ in range(runs):
            run = subprocess.run(
                [
                    str(binary),
                    f"-url={url}",
                    f"-ca={ca}",
                    f"-body={body}",
                    f"-n={total}",
                    f"-c={concurrency}",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(run.stdout)
            latencies: list[float] = result["latencies"]
            rate = round(len(latencies) / result["elapsed"], 1)
            measured.append({"requests_per_s": rate, **summary(latencies)})
    measured.sort(key=lambda m: float(m["p99_ms"]))
    return {**measured[len(measured) // 2], "p99_ms_runs": [m["p99_ms"] for m in measured]}


class Bench:
    def __init__(self, plane: ControlPlane, operator: OperatorProcess) -> None:
        self.plane, self.operator = plane, operator
        self.api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        self.api.configuration.connection_pool_maxsize = 32
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.pool = ThreadPoolExecutor(8)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process taking part, this client included."""
        pids = self.plane.pids()
        if self.operator.process is not None:
            pids["operator"] = self.operator.process.pid
        usage = {name: cpu_seconds(pid) for name, pid in pids.items()}
        return {**usage, "client": cpu_seconds(os.getpid())}

    def cpu_per_object(self, before: dict[str, float], n: int) -> dict[str, float]:
        """Milliseconds of CPU per object, by process, since `before`."""
        after = self.cpu()
        return {name: round((after[name] - before[name]) * 1000 / n, 2) for name in before}

    def namespace(self, user: str) -> str:
        name = f"{user}-{uuid.uuid4().hex[:6]}"
        labels = {"usersecrets.io/user": user}
        self.core.create_namespace({"metadata": {"name": name, "labels": labels}})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # pods need the default ServiceAccount
            if self.core.list_namespaced_service_account(name).items:
                return name
            time.sleep(0.05)
        raise RuntimeError(f"no default ServiceAccount in {name}")

    def create_usersecret(self, namespace: str, key: str, value: bytes) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "UserSecret",
            "metadata": {"name": key},
            "spec": {"value": base64.b64encode(value).decode()},
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "usersecrets", body)

    @contextmanager
    def copies_seen(
        self, namespace: str | None, selector: str = naming.MANAGED_SELECTOR
    ) -> Iterator[dict[str, float]]:
        """Names of copies (Secrets with the `selector` labels) -> when a watch first saw them
        (ADDED or MODIFIED)."""
        seen: dict[str, float] = {}
        stream = watch.Watch()
        listing = (
            self.core.list_namespaced_secret
            if namespace
            else self.core.list_secret_for_all_namespaces
        )
        args = (namespace,) if namespace else ()
        version = listing(*args, label_selector=selector).metadata.resource_version

        def follow() -> None:
            with suppress(ProtocolError):  # how the stream ends when we stop it
                for event in stream.stream(
                    listing,
                    *args,
                    label_selector=selector,
                    resource_version=version,
                ):
                    meta = event["object"].metadata
                    seen.setdefault(f"{meta.namespace}/{meta.name}", time.monotonic())

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        try:
            yield seen
        finally:
            stream.stop()

    def wait(
        self, condition: Callable[[], bool], timeout: float, what: str, every: float = 0.01
    ) -> None:
        started = time.monotonic()
        report = started + 10
        while not condition():
            now = time.monotonic()
            if now > started + timeout:
                raise TimeoutError(what)
            if now > report:
                print(f"  still waiting for {what}", file=sys.stderr, flush=True)
                report = now + 10
            time.sleep(every)

    def metrics(self, *names: str) -> dict[str, float]:
        """Unlabelled metrics from one scrape."""
        url = f"http://127.0.0.1:{self.operator.metrics_port}/metrics"
        with urlopen(url, timeout=60) as response:  # a busy operator answers late, not never
            lines = response.read().decode().splitlines()
        found = {}
        for line in lines:
            name, _, value = line.partition(" ")
            if name in names:
                found[name] = float(value)
        return found

    def metric(self, name: str) -> float:
        return self.metrics(name)[name]

    # -- scenarios --------------------------------------------------------------------------

    def materialization(self, n: int) -> dict[str, Any]:
        """N UserSecrets until every copy exists, against the same N Secrets written directly."""
        direct_ns, user = self.namespace("direct"), f"m{uuid.uuid4().hex[:6]}"
        cpu = self.cpu()
        started = time.monotonic()
        list(
            self.pool.map(
                lambda i: self.core.create_namespaced_secret(
                    direct_ns, {"metadata": {"name": f"s{i}"}, "data": {"v": "eA=="}}
                ),
                range(n),
            )
        )
        direct = time.monotonic() - started
        self.converged(60)  # the operator saw those Secrets too: its share is counted here
        direct_cpu = self.cpu_per_object(cpu, n)

        namespace = self.namespace(user)
        created: dict[str, float] = {}

        def create(i: int) -> None:
            self.create_usersecret(namespace, f"k{i}", b"x")
            created[f"{namespace}/{naming.copy_name(user, f'k{i}')}"] = time.monotonic()

        with self.copies_seen(namespace) as seen:
            cpu = self.cpu()
            started = time.monotonic()
            list(self.pool.map(create, range(n)))
            self.wait(lambda: len(seen) >= n, 300, "every copy")
            operator = time.monotonic() - started
        self.converged(300)  # statuses included
        converged = time.monotonic() - started
        latencies = [seen[name] - at for name, at in created.items()]
        operator_cpu = self.cpu_per_object(cpu, n)
        catch_up = self.catch_up(n)
        return {
            "n": n,
            "direct_per_s": round(n / direct, 1),
            "operator_per_s": round(n / operator, 1),
            "ratio": round(direct / operator, 3),
            "converged_s": round(converged, 2),
            "create_to_secret": summary(latencies),
            "cpu_ms_per_secret": {"direct": direct_cpu, "operator": operator_cpu},
            "catch_up_per_s": catch_up,
            "catch_up_ratio": round(catch_up * direct / n, 3),
        }

    def catch_up(self, n: int) -> float:
        """Copies per second of an operator that finds N UserSecrets without copies (after a
        failover, or on install): its own writes, without the client's creates beside them.
        Counted from the first copy to the last, so its start-up is not in the rate."""
        namespace = self.namespace(f"u{uuid.uuid4().hex[:6]}")
        self.operator.stop()
        list(self.pool.map(lambda i: self.create_usersecret(namespace, f"k{i}", b"x"), range(n)))
        with self.copies_seen(namespace) as seen:
            self.operator.start()
            self.wait(lambda: len(seen) >= n, 300, "every copy after a restart")
        self.converged(300)
        first, last = min(seen.values()), max(seen.values())
        return round((n - 1) / max(last - first, 1e-6), 1)

    def events(self, n: int) -> dict[str, Any]:
        """The operator's CPU per watch event that changes nothing it reconciles: N
        SecretGrants annotated, each event through kopf, against N UserSecrets annotated, each
        through our own watch, in the same run: what kopf's processing of an event costs."""
        namespace = self.namespace(f"e{uuid.uuid4().hex[:6]}")
        counted = {
            kind: f'usersecrets_watch_events_total{{kind="{kind}"}}'
            for kind in ("usersecret", "secretgrant")
        }

        def events_seen(kind: str) -> float:
            return self.metrics(counted[kind]).get(counted[kind], 0.0)

        def each(kind: str, call: Callable[[int], object]) -> dict[str, float]:
            """`call` for 0..N-1; returns once the operator had the N events, its CPU per one."""
            seen, cpu = events_seen(kind), self.cpu()
            list(self.pool.map(call, range(n)))
            self.wait(lambda: events_seen(kind) >= seen + n, 120, f"{n} {kind} events", 0.5)
            return self.cpu_per_object(cpu, n)

        def quiet() -> bool:
            """No event for a second: the statuses' events are not counted as the patches'."""
            before = [events_seen(kind) for kind in counted]
            time.sleep(1)
            return before == [events_seen(kind) for kind in counted]

        each("usersecret", lambda i: self.create_usersecret(namespace, f"k{i}", b"x"))
        grant = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SecretGrant"}
        each(
            "secretgrant",
            lambda i: self.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "secretgrants",
                {
                    **grant,
                    "metadata": {"name": f"g{i}"},
                    "spec": {"secretName": f"k{i}", "user": "nobody"},
                },
            ),
        )
        self.converged(300)
        self.wait(quiet, 60, "the statuses' own events to end", every=0)
        note = {"metadata": {"annotations": {"bench.usersecrets.io/touched": "yes"}}}

        def touch(plural: str, name: str) -> Callable[[int], object]:
            return lambda i: self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, f"{name}{i}", note
            )

        kopf = each("secretgrant", touch("secretgrants", "g"))["operator"]
        ours = each("usersecret", touch("usersecrets", "k"))["operator"]
        return {
            "n": n,
            "kopf_ms": kopf,
            "own_watch_ms": ours,
            "ratio": round(kopf / ours, 1) if ours else None,
        }

    def writes(self, n: int) -> dict[str, Any]:
        """The CPU of each write a secret makes (the UserSecret, its copy, its status), N of
        each alone, with the operator stopped: the floor under what a secret costs, and, taken
        from that, what the operator and the watch events add."""
        user = f"r{uuid.uuid4().hex[:6]}"
        namespace = self.namespace(user)
        self.create_usersecret(namespace, "sample", b"x")

        def written() -> dict[str, Any] | None:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "usersecrets", "sample"
            )
            return found.get("status")

        self.wait(lambda: written() is not None, 60, "a status")
        status = {"status": written()}  # as the operator writes it
        labels = naming.copy_labels(user, "k", "owner")
        self.operator.stop()

        def alone(call: Callable[[int], object]) -> dict[str, float]:
            cpu = self.cpu()
            list(self.pool.map(call, range(n)))
            return self.cpu_per_object(cpu, n)

        try:
            return {
                "n": n,
                "usersecret": alone(lambda i: self.create_usersecret(namespace, f"k{i}", b"x")),
                "copy": alone(
                    lambda i: self.core.create_namespaced_secret(
                        namespace,
                        {"metadata": {"name": f"c{i}", "labels": labels}, "data": {"v": "eA=="}},
                    )
                ),
                "status": alone(
                    lambda i: self.custom.patch_namespaced_custom_object_status(
                        GROUP, VERSION, namespace, "usersecrets", f"k{i}", status
                    )
                ),
            }
        finally:
            self.operator.start()
            self.converged(300)

    def steady(self, rate: float, seconds: float) -> dict[str, Any]:
        """Create-to-Secret latency at a steady rate of creates."""
        user = f"r{uuid.uuid4().hex[:6]}"
        namespace = self.namespace(user)
        created: dict[str, float] = {}
        with self.copies_seen(namespace) as seen:
            start = time.monotonic()
            total = int(rate * seconds)
            for i in range(total):
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
                self.create_usersecret(namespace, f"k{i}", b"x")
                created[f"{namespace}/{naming.copy_name(user, f'k{i}')}"] = time.monotonic()
            self.wait(lambda: len(seen) >= total, 120, "every copy at a steady rate")
        latencies = [seen[name] - at for name, at in created.items()]
        return {"rate_per_s": rate, "n": len(latencies), "create_to_secret": summary(latencies)}

    def propagation(self, updates: int) -> dict[str, Any]:
        """A valueFrom source Secret changed: time until the copy holds the new value."""
        user = f"p{uuid.uuid4().hex[:6]}"
        namespace = self.namespace(user)
        self.core.create_namespaced_secret(
            namespace, {"metadata": {"name": "source"}, "data": {"v": "MA=="}}
        )
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "UserSecret",
            "metadata": {"name": "from-source"},
            "spec": {"valueFrom": {"secretKeyRef": {"name": "source", "key": "v"}}},
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "usersecrets", body)
        name = naming.copy_name(user, "from-source")

        def holds(value: str) -> bool:
            try:
                secret = self.core.read_namespaced_secret(name, namespace)
            except client.ApiException:
                return False
            return (secret.data or {}).get(naming.DATA_KEY) == value

        self.wait(lambda: holds("MA=="), 30, "the first copy")
        latencies = []
        for i in range(1, updates + 1):
            value = base64.b64encode(str(i).encode()).decode()
            started = time.monotonic()
            self.core.patch_namespaced_secret("source", namespace, {"data": {"v": value}})
            self.wait(lambda v=value: holds(v), 30, "the updated copy")  # type: ignore[misc]
            latencies.append(time.monotonic() - started)
        return {"updates": updates, "source_to_copy": summary(latencies)}

    def fanout(self, users: int) -> dict[str, Any]:
        """One secret granted to many users: all copies, then all copies updated."""
        owner = f"f{uuid.uuid4().hex[:6]}"
        owner_ns = self.namespace(owner)
        grantees = list(self.pool.map(lambda i: self.namespace(f"{owner}-g{i}"), range(users)))
        self.create_usersecret(owner_ns, "shared", b"one")
        name = naming.copy_name(owner, "shared")
        with self.copies_seen(None) as seen:
            started = time.monotonic()
            for i in range(users):
                grant = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "SecretGrant",
                    "metadata": {"name": f"g{i}"},
                    "spec": {"secretName": "shared", "user": f"{owner}-g{i}"},
                }
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, owner_ns, "secretgrants", grant
                )
            targets = [f"{ns}/{name}" for ns in grantees]
            self.wait(lambda: all(t in seen for t in targets), 120, "every granted copy")
            granted = time.monotonic() - started
        new = base64.b64encode(b"two").decode()

        def updated() -> bool:
            return all(
                (self.core.read_namespaced_secret(name, ns).data or {}).get(naming.DATA_KEY) == new
                for ns in grantees
            )

        with self.copies_seen(None) as seen:
            started = time.monotonic()
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, owner_ns, "usersecrets", "shared", {"spec": {"value": new}}
            )
            self.wait(lambda: all(t in seen for t in targets), 120, "every copy updated")
            update = time.monotonic() - started
        assert updated()
        return {"users": users, "grant_all_s": round(granted, 3), "update_all_s": round(update, 3)}

    def admission_review(self, namespace: str, user: str) -> dict[str, Any]:
        pod = pods.pod(volumes="secret:k0:/var/secrets/k0", env="K0=secret:k0")
        return pods.review(namespace, pod, userInfo={"username": user})

    def webhook_direct(
        self, total: int, concurrency: int, namespace: str, user: str, runs: int = 3
    ) -> dict[str, Any]:
        """AdmissionReviews posted straight to the operator's webhook over HTTPS."""
        secret = self.core.read_namespaced_secret("usersecrets-webhook-tls", "usersecrets-system")
        with tempfile.TemporaryDirectory() as work:
            ca = Path(work, "ca.crt")
            ca.write_bytes(base64.b64decode(secret.data["ca.crt"]))
            url = f"https://127.0.0.1:{self.operator.webhook_port}/mutate-pods"
            review = self.admission_review(namespace, user)
            return {"concurrency": concurrency, **load(url, ca, review, total, concurrency, runs)}

    def webhook_servers(
        self, total: int, namespace: str, user: str, runs: int = 3
    ) -> list[dict[str, Any]]:
        """The same review behind our HTTP server and behind aiohttp, each in a process of its
        own with the operator's identity and settings (usersecrets_dev.webhook_servers)."""
        measured = []
        review = self.admission_review(namespace, user)
        for server in ("ours", "aiohttp"):
            with tempfile.TemporaryDirectory() as work:
                ca, port = Path(work, "ca.crt"), free_port()
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "usersecrets_dev.webhook_servers",
                        server,
                        str(port),
                        str(ca),
                    ],
                    env=self.operator.env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                try:
                    assert process.stdout is not None
                    if process.stdout.readline().strip() != "ready":
                        raise RuntimeError(f"the {server} webhook server did not start")
                    url = f"https://127.0.0.1:{port}/mutate-pods"
                    for concurrency in (1, 16):
                        result = load(url, ca, review, total, concurrency, runs)
                        measured.append({"server": server, "concurrency": concurrency, **result})
                finally:
                    process.kill()
                    process.wait()
        return measured

    def cli(self, runs: int) -> dict[str, Any]:
        """The `usersecrets` command end to end, as a person waits for it: `--help`, and
        `secret ls` of a namespace holding 20 secrets, with a user's own certificate."""
        user = f"c{uuid.uuid4().hex[:6]}"
        namespace = self.namespace(user)
        for i in range(20):
            self.create_usersecret(namespace, f"k{i}", b"x")
        kubeconfig = self.plane.user_kubeconfig("bench-admin", groups=("system:masters",))
        command = [
            str(Path(sys.executable).parent / "usersecrets"),
            "--kubeconfig",
            str(kubeconfig),
        ]
        timings: dict[str, Any] = {}
        for name, args in (("help", ["--help"]), ("secret_ls", ["-n", namespace, "secret", "ls"])):
            samples = []
            for _ in range(runs):
                started = time.monotonic()
                subprocess.run([*command, *args], check=True, capture_output=True)
                samples.append(time.monotonic() - started)
            timings[name] = summary(samples)
        return timings

    def pod_admission(self, n: int, namespace: str) -> dict[str, Any]:
        """Pod creates through the apiserver: annotated (webhook called) versus unannotated."""

        def create(i: int, annotated: bool) -> float:
            annotations = (
                {"usersecrets.io/volumes": "secret:k0:/var/secrets/k0"} if annotated else {}
            )
            pod = {
                "metadata": {"name": f"{'a' if annotated else 'u'}{i}", "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }
            started = time.monotonic()
            self.core.create_namespaced_pod(namespace, pod)
            return time.monotonic() - started

        plain, annotated = [], []
        for i in range(n):  # interleaved, so both see the same conditions
            plain.append(create(i, False))
            annotated.append(create(i, True))
        return {
            "n": n,
            "unannotated": summary(plain),
            "annotated": summary(annotated),
            "added_p50_ms": round(
                (statistics.median(annotated) - statistics.median(plain)) * 1000, 2
            ),
            "added_p99_ms": round((quantile(annotated, 0.99) - quantile(plain, 0.99)) * 1000, 2),
        }

    def converged(self, timeout: float) -> None:
        """The operator leads and its queues are empty. One scrape every half second: a scrape
        costs the operator CPU, which the bench would count against each secret."""

        def done() -> bool:
            found = self.metrics("usersecrets_leader", "usersecrets_work_queue_depth")
            return found == {"usersecrets_leader": 1, "usersecrets_work_queue_depth": 0}

        self.wait(done, timeout, "the operator to converge", every=0.5)

    def memory_and_cold_start(self, sizes: tuple[int, ...]) -> dict[str, Any]:
        """RSS idle and with many UserSecrets; then a restart with all of them existing."""
        self.converged(60)
        out: dict[str, Any] = {"idle_rss_mib": self.operator.memory_mib()[0]}
        user = f"c{uuid.uuid4().hex[:6]}"
        namespace = self.namespace(user)
        have = 0
        for size in sizes:
            with self.copies_seen(namespace) as seen:
                list(
                    self.pool.map(
                        lambda i: self.create_usersecret(namespace, f"k{i}", b"x"),
                        range(have, size),
                    )
                )
                new = size - have
                self.wait(lambda: len(seen) >= new, 600, f"{size} copies")  # noqa: B023
            have = size
            self.converged(600)
            out[f"rss_mib_at_{size}"] = self.operator.memory_mib()[0]
        self.operator.stop()
        started = time.monotonic()
        self.operator.start()
        self.converged(600)
        out[f"cold_start_s_at_{have}"] = round(time.monotonic() - started, 2)
        return out


def step(name: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {name}...", file=sys.stderr, flush=True)


SCENARIOS = (
    "materialization",
    "events",
    "writes",
    "steady",
    "propagation",
    "fanout",
    "webhook_direct",
    "webhook_servers",
    "pod_admission",
    "cli",
    "memory",
)


#: The chart values of a bench's operator: warnings only, and per-user limits above the sizes
#: (one user holds each scenario's secrets).
VALUES = [
    "logLevel=WARNING",
    *(f"limits.{name}=1000000" for name in ("secretsPerUser", "grantsPerUser", "sharesPerUser")),
    "limits.valueMiBPerUser=100000",
]


@contextmanager
def new_cluster() -> Iterator[Bench]:
    """A control plane of its own, with the operator installed by the chart."""
    with ControlPlane(find_binaries()) as plane:
        operator = OperatorProcess(plane, values=VALUES).start()
        try:
            yield Bench(plane, operator)
        finally:
            operator.stop()


def run(sizes: Sizes, only: frozenset[str] = frozenset(SCENARIOS)) -> dict[str, Any]:
    """The scenarios in `only`, in their order. Memory has a cluster of its own: idle means
    idle, and its 10,000 UserSecrets slow down nothing else."""
    results: dict[str, Any] = {}
    if only - {"memory"}:
        with new_cluster() as bench:
            if "materialization" in only:
                step("materialization")
                results["materialization"] = bench.materialization(sizes.secrets)
            if "events" in only:
                step("operator CPU per watch event")
                results["events"] = bench.events(sizes.secrets)
            if "writes" in only:
                step("each write of a secret alone")
                results["writes"] = bench.writes(sizes.secrets)
            if "steady" in only:
                step("steady rate")
                results["steady_50_per_s"] = bench.steady(50, 10 if sizes is not SMOKE else 1)
            if "propagation" in only:
                step("valueFrom propagation")
                results["propagation"] = bench.propagation(sizes.pods)
            if "fanout" in only:
                step("fan-out")
                results["fanout"] = bench.fanout(sizes.fanout)
            if only & {"webhook_direct", "webhook_servers", "pod_admission"}:
                user = f"w{uuid.uuid4().hex[:6]}"
                namespace = bench.namespace(user)
                with bench.copies_seen(namespace) as seen:
                    bench.create_usersecret(namespace, "k0", b"x")
                    bench.wait(lambda: len(seen) >= 1, 30, "the webhook's secret")
                if "webhook_direct" in only:
                    step("webhook direct")
                    results["webhook_direct"] = [
                        bench.webhook_direct(sizes.reviews, c, namespace, user) for c in (1, 16)
                    ]
                if "webhook_servers" in only:
                    step("webhook HTTP servers side by side")
                    results["webhook_servers"] = bench.webhook_servers(
                        sizes.reviews, namespace, user
                    )
                if "pod_admission" in only:
                    step("pod admission")
                    results["pod_admission"] = bench.pod_admission(sizes.pods, namespace)
            if "cli" in only:
                step("the CLI, end to end")
                results["cli"] = bench.cli(sizes.cli_runs)
    if "memory" in only:
        step("memory and cold start, on a new cluster")
        with new_cluster() as bench:
            results["memory"] = bench.memory_and_cold_start(sizes.memory)
    return results


def table(results: dict[str, Any]) -> str:
    lines = ["| measurement | result |", "|---|---|"]
    if m := results.get("materialization"):
        lines += [
            f"| materialization, N={m['n']} | {m['operator_per_s']}/s vs direct writes "
            f"{m['direct_per_s']}/s: ratio {m['ratio']} |",
            f"| create-to-Secret (burst) | p50 {m['create_to_secret']['p50_ms']} ms, "
            f"p99 {m['create_to_secret']['p99_ms']} ms |",
            f"| statuses written too, N={m['n']} | {m['converged_s']} s |",
            f"| catch-up: N existing UserSecrets, operator restarted | {m['catch_up_per_s']}/s: "
            f"ratio {m['catch_up_ratio']} to direct writes |",
        ]
        for way, usage in m["cpu_ms_per_secret"].items():
            shares = ", ".join(f"{name} {ms}" for name, ms in usage.items())
            lines.append(
                f"| CPU ms per secret, {way} | {shares}; total {round(sum(usage.values()), 2)} |"
            )
    if e := results.get("events"):
        times = f" ({e['ratio']}x)" if e["ratio"] else ""
        lines.append(
            f"| operator CPU per event that changes nothing, N={e['n']} | through kopf (a "
            f"SecretGrant) {e['kopf_ms']} ms, through our own watch (a UserSecret) "
            f"{e['own_watch_ms']} ms{times} |"
        )
    if w := results.get("writes"):
        floor = {name: w[name] for name in ("usersecret", "copy", "status")}

        def server(usage: dict[str, float]) -> float:
            return usage["kube-apiserver"] + usage["etcd"]

        three = round(sum(server(u) for u in floor.values()), 2)
        lines.append(
            f"| CPU ms of each write a secret makes, alone, N={w['n']} | "
            + "; ".join(
                f"{name}: apiserver {u['kube-apiserver']}, etcd {u['etcd']}"
                for name, u in floor.items()
            )
            + f"; apiserver and etcd for the three: {three}"
            + (
                f" (a UserSecret through the operator: {round(server(through), 2)})"
                if (m := results.get("materialization"))
                and (through := m["cpu_ms_per_secret"]["operator"])
                else ""
            )
            + " |"
        )
    if s := results.get("steady_50_per_s"):
        lines.append(
            f"| create-to-Secret at {s['rate_per_s']}/s | "
            f"p50 {s['create_to_secret']['p50_ms']} ms, p99 {s['create_to_secret']['p99_ms']} ms |"
        )
    if v := results.get("propagation"):
        lines.append(
            f"| valueFrom source change to copy ({v['updates']} updates) | "
            f"p50 {v['source_to_copy']['p50_ms']} ms, p99 {v['source_to_copy']['p99_ms']} ms |"
        )
    if f := results.get("fanout"):
        lines.append(
            f"| fan-out to {f['users']} users | all copies {f['grant_all_s']} s, "
            f"update everywhere {f['update_all_s']} s |"
        )
    for w in results.get("webhook_direct", []):
        lines.append(
            f"| webhook direct, concurrency {w['concurrency']} | {w['requests_per_s']}/s, "
            f"p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms (runs: {w['p99_ms_runs']}) |"
        )
    for w in results.get("webhook_servers", []):
        lines.append(
            f"| webhook HTTP server: {w['server']}, concurrency {w['concurrency']} | "
            f"{w['requests_per_s']}/s, p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms "
            f"(runs: {w['p99_ms_runs']}) |"
        )
    if p := results.get("pod_admission"):
        lines.append(
            f"| pod create, annotated vs not (N={p['n']}) | p50 {p['annotated']['p50_ms']} vs "
            f"{p['unannotated']['p50_ms']} ms, p99 {p['annotated']['p99_ms']} vs "
            f"{p['unannotated']['p99_ms']} ms (added p99 {p['added_p99_ms']} ms) |"
        )
    for name, timing in results.get("cli", {}).items():
        lines.append(
            f"| `usersecrets {name.replace('_', ' ')}` end to end | "
            f"p50 {timing['p50_ms']} ms, p99 {timing['p99_ms']} ms |"
        )
    for name, value in results.get("memory", {}).items():
        lines.append(f"| {name.replace('_', ' ')} | {value} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks, not numbers")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--only", nargs="+", choices=SCENARIOS, default=SCENARIOS, help="run just these"
    )
    args = parser.parse_args()
    results = run(SMOKE if args.smoke else Sizes(), frozenset(args.only))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {args.out} (cpus: {os.cpu_count()})")


if __name__ == "__main__":
    main()
