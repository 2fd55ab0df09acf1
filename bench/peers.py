"""`make bench-peers`: usersecrets side by side with what a platform team would pick instead.

Each comparison runs in one run on one local control plane, next to the apiserver's own
baseline, so its ratios mean something on any machine (absolute numbers on a shared machine
move by up to ±40% between runs; the ordering does not):

- materialization: the same N secrets as UserSecrets (usersecrets), as ExternalSecrets of the
  External Secrets Operator (its `kubernetes` provider reading Secrets of another namespace
  through the apiserver; with its defaults and tuned), and as Secrets written directly by the
  same client. Each runs alone: the other controllers are stopped meanwhile.
- webhook: the same AdmissionReview load (hack/webhookload, a Go client like the apiserver) on
  our webhook, on HashiCorp vault-k8s's agent injector and on Kyverno with a mutate policy
  adding a secret volume, at concurrency 1 and 16.

The peers are built once from their releases on the Go module proxy (hack/peers/build.sh,
cached by version): nothing of theirs is kept in this repository. They run as local processes
on loopback; their ServiceAccounts, namespaces, private mount namespace, temporary files and
control planes are removed when the run ends.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

from bench.__main__ import RESULTS, VALUES, Bench, cpu_seconds, load, step
from usersecrets.webhook.certificates import issue_bundle
from usersecrets_dev.controlplane import (
    REPO,
    ControlPlane,
    ControlPlaneError,
    find_binaries,
    free_port,
)
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.pods import review
from usersecrets_dev.processes import Processes

BUILD = REPO / "hack" / "peers" / "build.sh"
ESO, VAULT, KYVERNO = "external-secrets", "vault-k8s", "kyverno"
ESO_GROUP, ESO_VERSION = "external-secrets.io", "v1"
#: The label ESO puts on every Secret it manages.
ESO_MANAGED = "reconcile.external-secrets.io/managed=true"
#: ESO's settings compared: its defaults (one worker, 50 requests/s), and tuned for a burst.
ESO_CONFIGS: dict[str, list[str]] = {
    "defaults": [],
    "tuned": ["--concurrent=32", "--client-qps=1000", "--client-burst=2000"],
}
#: What every ESO run gets besides: metrics on loopback (its default is :8080 on every
#: interface), and warnings only, as our operator logs in the bench (logLevel=WARNING).
ESO_COMMON = ["--loglevel=warn"]
#: What vault-k8s gets: our certificate, loopback, and a Vault it never calls (admission only
#: renders the agent's containers; the agent would talk to Vault from the pod).
VAULT_ADDRESS = "https://vault.invalid:8200"
#: Kyverno's settings: its chart's (no events for policies applied or skipped; its resource
#: filters), but logs at -v=1, not the chart's 2, which logs every mutation (ours logs
#: warnings only), and without admission reports: with them (its default) every review queues
#: a report write behind its client's rate limit (100/s); under this load the queue grew until
#: its Lease renewal starved behind it, it lost leadership and its webhook server stopped.
KYVERNO_FLAGS = ["--omitEvents=PolicyApplied,PolicySkipped", "--admissionReports=false", "-v=1"]
KYVERNO_CONFIG = {
    "resourceFilters": "[Event,*,*][*/*,kube-system,*][*/*,kube-public,*][*/*,kube-node-lease,*]"
    "[Node,*,*][Node/?*,*,*][APIService,*,*][APIService/?*,*,*][TokenReview,*,*]"
    "[SubjectAccessReview,*,*][SelfSubjectAccessReview,*,*][Binding,*,*][Pod/binding,*,*]"
    "[ReplicaSet,*,*][ReplicaSet/?*,*,*][EphemeralReport,*,*][ClusterEphemeralReport,*,*]",
    "generateSuccessEvents": "false",
}
#: What the webhooks compare with ours: a pod asking by annotation for one secret, mounted.
KYVERNO_ANNOTATION = "secrets.example.com/inject"
KYVERNO_POLICY: dict[str, Any] = {
    "apiVersion": "kyverno.io/v1",
    "kind": "ClusterPolicy",
    "metadata": {"name": "add-secret-volume"},
    "spec": {
        "rules": [
            {
                "name": "add-secret-volume",
                "match": {
                    "any": [
                        {"resources": {"kinds": ["Pod"], "annotations": {KYVERNO_ANNOTATION: "k0"}}}
                    ]
                },
                "mutate": {
                    "patchStrategicMerge": {
                        "spec": {
                            "volumes": [{"name": "k0", "secret": {"secretName": "k0"}}],
                            "containers": [
                                {
                                    "(name)": "*",
                                    "volumeMounts": [
                                        {"name": "k0", "mountPath": "/var/secrets/k0"}
                                    ],
                                }
                            ],
                        }
                    }
                },
            }
        ]
    },
}
#: Where client-go's in-cluster config reads the ServiceAccount's credentials.
SERVICE_ACCOUNT_DIR = "/run/secrets/kubernetes.io/serviceaccount"
CONCURRENCIES = (1, 16)
SCENARIOS = ("materialization", "webhook")


@dataclass(frozen=True)
class Sizes:
    secrets: int = 500
    reviews: int = 10000
    runs: int = 3
    #: Rounds of the materialization comparison (ESO with its defaults: once).
    rounds: int = 3
    #: Seconds of idle before each measurement, to subtract what the processes burn anyway.
    idle: float = 3.0
    only: frozenset[str] = field(default_factory=lambda: frozenset(SCENARIOS))


SMOKE = Sizes(secrets=10, reviews=100, runs=1, rounds=1, idle=0.5)


def build(name: str) -> tuple[Path, str]:
    """The peer's cached build (built now if it is not there yet) and its version."""
    step(f"{name}: cached build (hack/peers/build.sh {name})")
    found = subprocess.run(
        ["bash", str(BUILD), name], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    directory = Path(found.strip().splitlines()[-1])
    return directory, (directory / "VERSION").read_text().split()[1]


def our_version() -> str:
    found = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() or "unknown"


class Peer:
    """A peer's binary as a local process with its own environment, in a session of its own;
    its log goes to the control plane's logs. Stopped with SIGTERM (SIGKILL after 15 s)."""

    def __init__(self, plane: ControlPlane, name: str, argv: list[str], env: dict[str, str]):
        self.name, self.argv, self.env = name, argv, env
        self._processes = Processes(plane.logs)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check(self) -> None:
        if (exited := self._processes.exited()) is not None:
            raise ControlPlaneError(exited)

    def __enter__(self) -> Peer:
        self.process = self._processes.spawn(self.name, self.argv, self.env)
        return self

    def __exit__(self, *exc: object) -> None:
        self._processes.stop(timeout=15)


def cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each of `pids`, and by this client."""
    return {
        **{name: cpu_seconds(pid) for name, pid in pids.items()},
        "client": cpu_seconds(os.getpid()),
    }


def idle_rates(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU seconds per second each process burns with nothing to do (timers, leases)."""
    before = cpu(pids)
    time.sleep(seconds)
    after = cpu(pids)
    return {name: (after[name] - before[name]) / seconds for name in before}


def per_object(
    before: dict[str, float], after: dict[str, float], idle: dict[str, float], n: int, took: float
) -> dict[str, Any]:
    """CPU milliseconds per object by process, less what each burns idle in as long."""
    raw = {name: (after[name] - before[name]) * 1000 / n for name in before}
    net = {name: max(0.0, ms - idle[name] * took * 1000 / n) for name, ms in raw.items()}
    return {
        "net": {name: round(ms, 2) for name, ms in net.items()},
        "net_total": round(sum(net.values()), 2),
        "raw_total": round(sum(raw.values()), 2),
    }


@contextmanager
def ready_seen(
    custom: client.CustomObjectsApi, namespace: str, plural: str
) -> Iterator[dict[str, float]]:
    """Names of `plural` objects in `namespace` -> when a watch first saw them Ready."""
    seen: dict[str, float] = {}
    stream = watch.Watch()
    args = (ESO_GROUP, ESO_VERSION, namespace, plural)
    version = custom.list_namespaced_custom_object(*args, limit=1)["metadata"]["resourceVersion"]

    def follow() -> None:
        with suppress(ProtocolError):
            for event in stream.stream(
                custom.list_namespaced_custom_object, *args, resource_version=version
            ):
                item = event["object"]
                if ready(item):
                    seen.setdefault(item["metadata"]["name"], time.monotonic())

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stream.stop()


def ready(item: dict[str, Any]) -> bool:
    conditions = (item.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def post_review(url: str, ca: Path, review: dict[str, Any]) -> dict[str, Any]:
    """One AdmissionReview, posted from here: what the server answers."""
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(  # noqa: S310  (https to loopback)
        url, data=json.dumps(review).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:  # noqa: S310
        response: dict[str, Any] = json.loads(answer.read())["response"]
    return response


def admission_review(namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    """The tests' review of a pod create, from a user no peer knows."""
    return review(namespace, pod, userInfo={"username": "someone"})


def vault_pod(namespace: str) -> dict[str, Any]:
    """A pod as vault-k8s's documentation annotates it: the agent injected, one secret
    rendered into a file; with the ServiceAccount token mount the agent authenticates with."""
    mount = "/var/run/secrets/kubernetes.io/serviceaccount"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": namespace,
            "annotations": {
                "vault.hashicorp.com/agent-inject": "true",
                "vault.hashicorp.com/role": "app",
                "vault.hashicorp.com/agent-inject-secret-k0": "secret/data/k0",
            },
        },
        "spec": {
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "volumeMounts": [{"name": "token", "mountPath": mount, "readOnly": True}],
                }
            ],
            "volumes": [
                {
                    "name": "token",
                    "projected": {
                        "sources": [{"serviceAccountToken": {"path": "token"}}],
                    },
                }
            ],
        },
    }


def median_round(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each time and rate over rounds; the CPU of the round with the median
    total (one round's, so that its shares add up); every round beside them."""
    out: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs), 2)
        for key in ("per_s", "secrets_s", "statuses_s")
        if key in runs[0]
    }
    by_cpu = sorted(runs, key=lambda run: float(run["cpu_ms_per_object"]["net_total"]))
    return {**out, "cpu_ms_per_object": by_cpu[len(by_cpu) // 2]["cpu_ms_per_object"], "runs": runs}


def kyverno_pod(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": namespace,
            "annotations": {KYVERNO_ANNOTATION: "k0"},
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


class Run:
    """What the comparisons share: one control plane with our operator installed by its chart,
    and the objects and files each peer needs, removed when the run ends."""

    def __init__(self, bench: Bench, workdir: Path) -> None:
        self.bench, self.workdir = bench, workdir
        self.plane, self.operator = bench.plane, bench.operator
        self.core, self.custom = bench.core, bench.custom
        self.rbac = client.RbacAuthorizationV1Api(bench.api)

    # -- objects -------------------------------------------------------------------------

    def plain_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def delete_namespaces(self, *names: str, timeout: float = 300) -> None:
        """Deleted, and gone (their contents too), so the next measurement starts clean."""
        for name in names:
            self.core.delete_namespace(name)

        def gone(name: str) -> bool:
            try:
                self.core.read_namespace(name)
            except client.ApiException as error:
                return bool(error.status == 404)
            return False

        self.bench.wait(lambda: all(gone(n) for n in names), timeout, "namespaces deleted", 0.2)

    def service_account_token(self, namespace: str, name: str) -> str:
        self.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        request = {"spec": {"expirationSeconds": 24 * 3600}}
        answer = self.core.create_namespaced_service_account_token(name, namespace, request)
        token: str = answer.status.token
        return token

    def cluster_role_binding(self, namespace: str, account: str, role: str) -> None:
        """`role` for the ServiceAccount `account` of `namespace` (named after the namespace)."""
        self.rbac.create_cluster_role_binding(
            {
                "metadata": {"name": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            }
        )

    def create_secrets(self, namespace: str, n: int, labels: dict[str, str] | None = None) -> None:
        list(
            self.bench.pool.map(
                lambda i: self.core.create_namespaced_secret(
                    namespace,
                    {"metadata": {"name": f"s{i}", "labels": labels or {}}, "data": {"v": "eA=="}},
                ),
                range(n),
            )
        )

    # -- materialization -----------------------------------------------------------------

    def direct(self, n: int, idle: float) -> dict[str, Any]:
        """N Secrets written directly by the same client: what the apiserver itself allows."""
        namespace = self.plain_namespace("direct")
        pids = self.plane.pids()
        rates = idle_rates(pids, idle)
        before, started = cpu(pids), time.monotonic()
        self.create_secrets(namespace, n)
        took = time.monotonic() - started
        usage = per_object(before, cpu(pids), rates, n, took)
        self.delete_namespaces(namespace)
        return {
            "per_s": round(n / took, 1),
            "secrets_s": round(took, 2),
            "cpu_ms_per_object": usage,
        }

    def usersecrets(self, n: int, idle: float) -> dict[str, Any]:
        """N UserSecrets until every copy exists, then until every status is written."""
        user = f"m{uuid.uuid4().hex[:6]}"
        namespace = self.bench.namespace(user)
        self.operator.start()
        try:
            self.bench.converged(120)
            assert self.operator.process is not None
            pids = {**self.plane.pids(), "operator": self.operator.process.pid}
            rates = idle_rates(pids, idle)
            with self.bench.copies_seen(namespace) as seen:
                before, started = cpu(pids), time.monotonic()
                list(
                    self.bench.pool.map(
                        lambda i: self.bench.create_usersecret(namespace, f"k{i}", b"x"), range(n)
                    )
                )
                self.bench.wait(lambda: len(seen) >= n, 600, "every copy")
                secrets = time.monotonic() - started
            self.bench.converged(600)
            took = time.monotonic() - started
            usage = per_object(before, cpu(pids), rates, n, took)
        finally:
            self.operator.stop()
        self.delete_namespaces(namespace)
        return {
            "per_s": round(n / secrets, 1),
            "secrets_s": round(secrets, 2),
            "statuses_s": round(took, 2),
            "cpu_ms_per_object": usage,
        }

    def apply_crds(self, crds: list[Path]) -> None:
        files = [f"--filename={p}" for p in crds]
        kubectl = [str(self.plane.bin_dir / "kubectl"), f"--kubeconfig={self.plane.kubeconfig}"]
        subprocess.run(
            [*kubectl, "apply", "--server-side", *files], check=True, capture_output=True
        )
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "--timeout=120s", *files],
            check=True,
            capture_output=True,
        )

    def install_eso(self, eso: Path) -> Path:
        """ESO's CRDs, and a kubeconfig of a ServiceAccount of its own bound to cluster-admin
        (its chart's ClusterRole is close to that); it runs out of the cluster with it."""
        self.apply_crds(
            sorted(p for p in (eso / "crds").glob("*.yaml") if p.name != "kustomization.yaml")
        )
        namespace = self.plain_namespace("external-secrets")
        token = self.service_account_token(namespace, "external-secrets")
        self.cluster_role_binding(namespace, "external-secrets", "cluster-admin")
        return self.plane.token_kubeconfig(namespace, token)

    def secret_store(self, source: str, target: str) -> None:
        """A SecretStore in `target` reading the Secrets of `source` through the apiserver, with
        the token of a ServiceAccount allowed to read them there and nothing else."""
        token = self.service_account_token(source, "reader")
        self.rbac.create_namespaced_role(
            source,
            {
                "metadata": {"name": "reader"},
                "rules": [
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
                ],
            },
        )
        self.rbac.create_namespaced_role_binding(
            source,
            {
                "metadata": {"name": "reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": source}],
            },
        )
        self.core.create_namespaced_secret(
            target, {"metadata": {"name": "reader-token"}, "stringData": {"token": token}}
        )
        store = {
            "apiVersion": f"{ESO_GROUP}/{ESO_VERSION}",
            "kind": "SecretStore",
            "metadata": {"name": "source"},
            "spec": {
                "provider": {
                    "kubernetes": {
                        "remoteNamespace": source,
                        "server": {
                            "url": self.plane.server,
                            "caBundle": base64.b64encode(self.plane.ca.cert_pem).decode(),
                        },
                        "auth": {
                            "token": {"bearerToken": {"name": "reader-token", "key": "token"}}
                        },
                    }
                }
            },
        }
        self.custom.create_namespaced_custom_object(
            ESO_GROUP, ESO_VERSION, target, "secretstores", store
        )

    def external_secret(self, namespace: str, i: int) -> None:
        body = {
            "apiVersion": f"{ESO_GROUP}/{ESO_VERSION}",
            "kind": "ExternalSecret",
            "metadata": {"name": f"e{i}"},
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": {"kind": "SecretStore", "name": "source"},
                "target": {"name": f"e{i}"},
                "data": [{"secretKey": "v", "remoteRef": {"key": f"s{i}", "property": "v"}}],
            },
        }
        self.custom.create_namespaced_custom_object(
            ESO_GROUP, ESO_VERSION, namespace, "externalsecrets", body
        )

    def external_secrets(
        self, binary: Path, kubeconfig: Path, flags: list[str], n: int, idle: float
    ) -> dict[str, Any]:
        """N ExternalSecrets, each of its own source Secret (written beforehand), until every
        Secret exists, then until every ExternalSecret is Ready."""
        source, target = self.plain_namespace("eso-source"), self.plain_namespace("eso-target")
        self.create_secrets(source, n)
        self.secret_store(source, target)
        argv = [
            str(binary),
            f"--metrics-addr=127.0.0.1:{free_port()}",
            *ESO_COMMON,
            *flags,
        ]
        env = {"PATH": os.environ.get("PATH", ""), "KUBECONFIG": str(kubeconfig)}
        with Peer(self.plane, "external-secrets", argv, env) as peer:

            def store_ready() -> bool:
                peer.check()
                store = self.custom.get_namespaced_custom_object(
                    ESO_GROUP, ESO_VERSION, target, "secretstores", "source"
                )
                return ready(store)

            self.bench.wait(store_ready, 120, "ESO's SecretStore to be Ready", 0.2)
            pids = {**self.plane.pids(), "external-secrets": peer.pid}
            rates = idle_rates(pids, idle)
            with (
                self.bench.copies_seen(target, ESO_MANAGED) as seen,
                ready_seen(self.custom, target, "externalsecrets") as done,
            ):
                before, started = cpu(pids), time.monotonic()
                list(self.bench.pool.map(lambda i: self.external_secret(target, i), range(n)))

                def secrets_there() -> bool:
                    peer.check()
                    return len(seen) >= n

                self.bench.wait(secrets_there, 1200, "every ExternalSecret's Secret")
                secrets = time.monotonic() - started
                self.bench.wait(lambda: len(done) >= n, 600, "every ExternalSecret Ready")
                took = time.monotonic() - started
                usage = per_object(before, cpu(pids), rates, n, took)
        self.delete_namespaces(source, target)
        return {
            "flags": argv[2:],
            "per_s": round(n / secrets, 1),
            "secrets_s": round(secrets, 2),
            "statuses_s": round(took, 2),
            "cpu_ms_per_object": usage,
        }

    def materialization(self, eso: Path, sizes: Sizes) -> dict[str, Any]:
        """Rounds of direct writes, usersecrets and tuned ESO (in turn first and last), each
        contender alone with fresh namespaces, removed afterwards; ESO with its defaults once,
        as it takes a minute and is limited by its own settings, not by the machine. Medians
        of the rounds, so that a stall of the shared host does not decide the order."""
        n = sizes.secrets
        self.operator.stop()
        kubeconfig = self.install_eso(eso)
        rounds: dict[str, list[dict[str, Any]]] = {"direct": [], "usersecrets": [], "eso_tuned": []}

        def eso_run(config: str) -> dict[str, Any]:
            return self.external_secrets(eso / ESO, kubeconfig, ESO_CONFIGS[config], n, sizes.idle)

        contenders: dict[str, Callable[[], dict[str, Any]]] = {
            "usersecrets": lambda: self.usersecrets(n, sizes.idle),
            "eso_tuned": lambda: eso_run("tuned"),
        }
        out: dict[str, Any] = {"n": n, "rounds": sizes.rounds}
        for i in range(sizes.rounds):
            step(f"round {i + 1} of {sizes.rounds}: direct Secret writes, N={n}")
            rounds["direct"].append(self.direct(n, sizes.idle))
            order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
            for name in order:
                step(f"round {i + 1} of {sizes.rounds}: {name}, N={n}")
                rounds[name].append(contenders[name]())
            if i == 0:
                step(f"External Secrets Operator with its defaults, N={n}")
                out["eso_defaults"] = eso_run("defaults")
        for name, runs in rounds.items():
            out[name] = median_round(runs)
        for name in ("usersecrets", "eso_defaults", "eso_tuned"):
            out[name]["ratio_to_direct"] = round(out[name]["per_s"] / out["direct"]["per_s"], 3)
        out["eso_defaults"]["flags"] = [*ESO_COMMON, *ESO_CONFIGS["defaults"]]
        out["eso_tuned"]["flags"] = [*ESO_COMMON, *ESO_CONFIGS["tuned"]]
        return out

    # -- webhooks ------------------------------------------------------------------------

    def vault_injector(
        self, build: Path, app_namespace: str, peers: ExitStack
    ) -> tuple[str, Path, dict[str, Any], int]:
        """vault-k8s's injector, which takes in-cluster configuration only: a ServiceAccount's
        token, the CA and the namespace in a private mount namespace (a tmpfs on /run, seen by
        this process alone), KUBERNETES_SERVICE_HOST/PORT pointing at the local apiserver."""
        binary, ca = build / VAULT, self.workdir / "vault-k8s-ca.crt"
        namespace = self.plain_namespace("vault")
        token = self.service_account_token(namespace, "vault-agent-injector")
        # What its chart's ClusterRole allows: it watches the webhook configurations.
        self.rbac.create_cluster_role(
            {
                "metadata": {"name": namespace},
                "rules": [
                    {
                        "apiGroups": ["admissionregistration.k8s.io"],
                        "resources": ["mutatingwebhookconfigurations"],
                        "verbs": ["get", "list", "watch", "patch"],
                    },
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                ],
            }
        )
        self.cluster_role_binding(namespace, "vault-agent-injector", namespace)
        account = self.workdir / "vault-serviceaccount"
        account.mkdir(mode=0o700)
        (account / "token").write_text(token)
        (account / "ca.crt").write_bytes(self.plane.ca.cert_pem)
        (account / "namespace").write_text(namespace)
        bundle = issue_bundle(["localhost"], ["127.0.0.1"])
        ca.write_bytes(bundle.ca_pem)
        (account / "tls.crt").write_bytes(bundle.cert_pem)
        (account / "tls.key").write_bytes(bundle.key_pem)
        port = free_port()
        script = (
            'set -e; mount -t tmpfs -o size=1m,mode=0755 vault-k8s /run; mkdir -p "$2"; '
            'cp "$1/token" "$1/ca.crt" "$1/namespace" "$2/"; shift 2; exec "$@"'
        )
        argv = [
            "unshare",
            "--mount",
            "--propagation=private",
            *(["--map-root-user"] if os.geteuid() != 0 else []),
            "sh",
            "-c",
            script,
            "vault-k8s",
            str(account),
            SERVICE_ACCOUNT_DIR,
            str(binary),
            "agent-inject",
            f"-listen=127.0.0.1:{port}",
            f"-tls-cert-file={account / 'tls.crt'}",
            f"-tls-key-file={account / 'tls.key'}",
            f"-vault-address={VAULT_ADDRESS}",
            "-log-level=warn",
        ]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.plane.port),
            "NAMESPACE": namespace,
        }
        injector = peers.enter_context(Peer(self.plane, VAULT, argv, env))
        url = f"https://127.0.0.1:{port}/mutate"
        self.bench.wait(lambda: self.answers(injector, url, ca), 60, "vault-k8s to answer")
        return url, ca, admission_review(app_namespace, vault_pod(app_namespace)), injector.pid

    def kyverno(
        self, build: Path, app_namespace: str, peers: ExitStack
    ) -> tuple[str, Path, dict[str, Any], int]:
        """Kyverno's admission controller run out of the cluster as its DEVELOPMENT.md tells,
        with one ClusterPolicy that mutates pods: a secret volume, mounted in every container.
        It registers its own webhook configurations (URLs on loopback) and serves on loopback."""
        self.apply_crds(sorted((build / "crds").rglob("*.yaml")))
        namespace = "kyverno"  # the names of its TLS Secrets below are derived from it
        self.core.create_namespace({"metadata": {"name": namespace}})
        account = "kyverno-admission-controller"
        token = self.service_account_token(namespace, account)
        self.cluster_role_binding(namespace, account, "cluster-admin")
        kubeconfig = self.plane.token_kubeconfig(namespace, token)
        for name, data in (("kyverno", KYVERNO_CONFIG), ("kyverno-metrics", {})):
            self.core.create_namespaced_config_map(
                namespace, {"metadata": {"name": name}, "data": data}
            )
        port = free_port()
        argv = [
            str(build / KYVERNO),
            f"--kubeconfig={kubeconfig}",
            f"--serverIP=127.0.0.1:{port}",
            "--webhookServerHost=127.0.0.1",
            f"--webhookServerPort={port}",
            "--metricsHost=127.0.0.1",
            f"--metricsPort={free_port()}",
            f"--controllerRuntimeMetricsAddress=127.0.0.1:{free_port()}",
            f"--caSecretName=kyverno-svc.{namespace}.svc.kyverno-tls-ca",
            f"--tlsSecretName=kyverno-svc.{namespace}.svc.kyverno-tls-pair",
            f"--backgroundServiceAccountName=system:serviceaccount:{namespace}:kyverno-background-controller",
            f"--reportsServiceAccountName=system:serviceaccount:{namespace}:kyverno-reports-controller",
            *KYVERNO_FLAGS,
        ]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "KYVERNO_NAMESPACE": namespace,
            "KYVERNO_SERVICEACCOUNT_NAME": account,
            "KYVERNO_DEPLOYMENT": "kyverno-admission-controller",
            "KYVERNO_POD_NAME": "local",
            "INIT_CONFIG": "kyverno",
            "METRICS_CONFIG": "kyverno-metrics",
        }
        controller = peers.enter_context(Peer(self.plane, KYVERNO, argv, env))

        def created() -> bool:  # once its own webhook validates policies
            controller.check()
            try:
                self.custom.create_cluster_custom_object(
                    "kyverno.io", "v1", "clusterpolicies", KYVERNO_POLICY
                )
            except client.ApiException as error:
                return bool(error.status == 409)
            return True

        self.bench.wait(created, 180, "Kyverno to take its policy", 0.5)
        webhooks = client.AdmissionregistrationV1Api(self.bench.api)

        def registered() -> tuple[str, bytes] | None:
            controller.check()
            policy = self.custom.get_cluster_custom_object(
                "kyverno.io", "v1", "clusterpolicies", KYVERNO_POLICY["metadata"]["name"]
            )
            if not ready(policy):
                return None
            try:
                found = webhooks.read_mutating_webhook_configuration(
                    "kyverno-resource-mutating-webhook-cfg"
                )
            except client.ApiException:
                return None
            for hook in found.webhooks or []:
                pods = any("pods" in (rule.resources or []) for rule in hook.rules or [])
                if pods and hook.client_config.url:
                    return hook.client_config.url, base64.b64decode(hook.client_config.ca_bundle)
            return None

        self.bench.wait(lambda: registered() is not None, 180, "Kyverno's webhook for pods", 0.5)
        found = registered()
        assert found is not None
        url, bundle = found
        ca = self.workdir / "kyverno-ca.crt"
        ca.write_bytes(bundle)
        # It serves with a certificate it issues itself once it leads: answered, it is ready.
        self.bench.wait(lambda: self.answers(controller, url, ca), 120, "Kyverno to answer", 0.5)
        return url, ca, admission_review(app_namespace, kyverno_pod(app_namespace)), controller.pid

    def webhooks(self, builds: dict[str, Path], sizes: Sizes) -> dict[str, Any]:
        """The same load on each webhook, by concurrency, ours and theirs one after the other."""
        self.bench.converged(120)
        user = f"w{uuid.uuid4().hex[:6]}"
        namespace = self.bench.namespace(user)
        with self.bench.copies_seen(namespace) as seen:
            self.bench.create_usersecret(namespace, "k0", b"x")
            self.bench.wait(lambda: len(seen) >= 1, 30, "the webhook's secret")
        tls = self.core.read_namespaced_secret("usersecrets-webhook-tls", "usersecrets-system")
        ours_ca = self.workdir / "usersecrets-ca.crt"
        ours_ca.write_bytes(base64.b64decode(tls.data["ca.crt"]))
        assert self.operator.process is not None
        servers: dict[str, tuple[str, Path, dict[str, Any], int]] = {
            "usersecrets": (
                f"https://127.0.0.1:{self.operator.webhook_port}/mutate-pods",
                ours_ca,
                self.bench.admission_review(namespace, user),
                self.operator.process.pid,
            )
        }
        out: dict[str, Any] = {"reviews": sizes.reviews, "runs": sizes.runs}
        with ExitStack() as peers:
            if VAULT in builds:
                servers[VAULT] = self.vault_injector(builds[VAULT], namespace, peers)
            if KYVERNO in builds:
                servers[KYVERNO] = self.kyverno(builds[KYVERNO], namespace, peers)
            patches = {}
            for name, (url, ca, review, _) in servers.items():
                patch = post_review(url, ca, review).get("patch")
                if not patch:
                    raise RuntimeError(f"{name} answered without a patch: nothing measured")
                patches[name] = [
                    f"{op['op']} {op['path']}" for op in json.loads(base64.b64decode(patch))
                ]
                out[name] = []
            out["patches"] = patches
            for concurrency in CONCURRENCIES:
                # Runs in turn, server after server, so that a stall of the host hits them alike.
                measured: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
                used = dict.fromkeys(servers, 0.0)
                for i in range(sizes.runs):
                    for name, (url, ca, review, pid) in servers.items():
                        step(f"webhook {name}, concurrency {concurrency}, run {i + 1}")
                        before = cpu_seconds(pid)
                        measured[name].append(
                            load(url, ca, review, sizes.reviews, concurrency, runs=1)
                        )
                        used[name] += cpu_seconds(pid) - before
                posted = sizes.runs * (concurrency + sizes.reviews // concurrency * concurrency)
                for name, runs in measured.items():
                    runs.sort(key=lambda run: float(run["p99_ms"]))
                    out[name].append(
                        {
                            "concurrency": concurrency,
                            **runs[len(runs) // 2],
                            "p99_ms_runs": [run["p99_ms"] for run in runs],
                            "cpu_us_per_review": round(used[name] * 1e6 / posted, 1),
                        }
                    )
        for name in servers:
            if name == "usersecrets":
                continue
            for theirs, ours in zip(out[name], out["usersecrets"], strict=True):
                theirs["vs_usersecrets"] = {
                    "requests_per_s": round(theirs["requests_per_s"] / ours["requests_per_s"], 2),
                    "p50": round(theirs["p50_ms"] / ours["p50_ms"], 2),
                    "p99": round(theirs["p99_ms"] / ours["p99_ms"], 2),
                    "cpu": round(
                        theirs["cpu_us_per_review"] / max(ours["cpu_us_per_review"], 1), 2
                    ),
                }
        return out

    @staticmethod
    def answers(peer: Peer, url: str, ca: Path) -> bool:
        peer.check()
        try:
            post_review(url, ca, admission_review("nobody", {"metadata": {}, "spec": {}}))
        except OSError:
            return False
        return True


@contextmanager
def new_run(name: str) -> Iterator[Run]:
    """A control plane of its own with our operator installed by the chart. Its directory
    (etcd's data, certificates, logs) is removed afterwards, or kept and named on a failure."""
    workdir = Path(tempfile.mkdtemp(prefix=f"usersecrets-peers-{name}-"))
    ok = False
    try:
        with ControlPlane(find_binaries(), workdir / "plane") as plane:
            operator = OperatorProcess(plane, values=VALUES).start()
            try:
                yield Run(Bench(plane, operator), workdir)
            finally:
                operator.stop()
        ok = True
    finally:
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}/plane/logs", file=sys.stderr)


def run(sizes: Sizes) -> dict[str, Any]:
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "versions": {"usersecrets": our_version()},
    }
    builds: dict[str, Path] = {}
    for scenario, peer in (("materialization", ESO), ("webhook", VAULT), ("webhook", KYVERNO)):
        if scenario in sizes.only:
            builds[peer], results["versions"][peer] = build(peer)
    results["flags"] = {
        ESO: {k: [*ESO_COMMON, *v] for k, v in ESO_CONFIGS.items()},
        VAULT: [f"-vault-address={VAULT_ADDRESS}", "-log-level=warn"],
        KYVERNO: KYVERNO_FLAGS,
        "usersecrets": VALUES,
    }
    if "materialization" in sizes.only:
        step("materialization, on a new control plane")
        with new_run("materialization") as each:
            results["materialization"] = each.materialization(builds[ESO], sizes)
    if "webhook" in sizes.only:
        step("webhooks, on a new control plane")
        with new_run("webhook") as each:
            results["webhook"] = each.webhooks(builds, sizes)
    return results


SHORT = {
    "kube-apiserver": "apiserver",
    "kube-controller-manager": "controller-manager",
    "kube-scheduler": "scheduler",
}


def cpu_text(usage: dict[str, Any]) -> str:
    shares = ", ".join(
        f"{SHORT.get(name, name)} {ms}" for name, ms in usage["net"].items() if ms >= 0.05
    )
    return f"{shares}; total {usage['net_total']}"


def table(results: dict[str, Any]) -> str:
    """The README's tables: materialization, then webhooks, with versions and flags."""
    versions, flags = results["versions"], results["flags"]
    lines: list[str] = []
    if m := results.get("materialization"):
        eso = f"External Secrets Operator {versions[ESO]}"
        rows = [
            ("Secrets written directly by the same client", m["direct"]),
            (f"usersecrets ({versions['usersecrets']})", m["usersecrets"]),
            (f"{eso}, defaults", m["eso_defaults"]),
            (f"{eso}, `{' '.join(ESO_CONFIGS['tuned'])}`", m["eso_tuned"]),
        ]
        lines += [
            f"| {m['n']} secrets at once, one control plane, median of {m.get('rounds', 1)} rounds "
            "(ESO's defaults: 1) "
            "| Secrets/s (ratio to direct writes) "
            "| all Secrets | all statuses | CPU ms per secret by process, net of idle |",
            "|---|---|---|---|---|",
        ]
        for label, r in rows:
            ratio = r.get("ratio_to_direct", 1)
            statuses = f"{r['statuses_s']} s" if "statuses_s" in r else "-"
            rates = sorted(run["per_s"] for run in r.get("runs", []))
            spread = f"; rounds {rates[0]}-{rates[-1]}" if len(rates) > 1 else ""
            lines.append(
                f"| {label} | {r['per_s']} ({ratio}{spread}) | {r['secrets_s']} s | {statuses} | "
                f"{cpu_text(r['cpu_ms_per_object'])} |"
            )
        lines.append("")
    if w := results.get("webhook"):
        names = [name for name in ("usersecrets", VAULT, KYVERNO) if name in w]
        labels = {
            "usersecrets": f"usersecrets ({versions['usersecrets']})",
            VAULT: f"vault-k8s {versions.get(VAULT)} agent injector",
            KYVERNO: f"Kyverno {versions.get(KYVERNO)}, a mutate policy adding a secret volume",
        }
        lines += [
            f"| AdmissionReviews, {w['reviews']:,} a run, median p99 of {w['runs']} runs "
            "(ratio to usersecrets) | concurrency | reviews/s | p50 ms | p99 ms | "
            "CPU µs per review |",
            "|---|---|---|---|---|---|",
        ]
        for concurrency in CONCURRENCIES:
            for name in names:
                r = next(x for x in w[name] if x["concurrency"] == concurrency)
                label = labels[name]
                vs = r.get("vs_usersecrets", {})

                def cell(value: float, ratio: str, vs: dict[str, float] = vs) -> str:
                    return f"{value} ({vs[ratio]})" if ratio in vs else str(value)

                lines.append(
                    f"| {label} | {concurrency} | {cell(r['requests_per_s'], 'requests_per_s')} "
                    f"| {cell(r['p50_ms'], 'p50')} | {cell(r['p99_ms'], 'p99')} "
                    f"| {cell(r['cpu_us_per_review'], 'cpu')} |"
                )
        lines.append("")
    eso_flags = "; ".join(f"{k}: `{' '.join(v)}`" for k, v in flags[ESO].items())
    used = [
        f"External Secrets Operator {eso_flags} (and `--metrics-addr` on loopback)",
        f"vault-k8s `{' '.join(flags[VAULT])}` (and its listen address and certificate)",
    ]
    if KYVERNO in flags:
        used.append(
            f"Kyverno `{' '.join(flags[KYVERNO])}` (and the out-of-cluster flags of its "
            "DEVELOPMENT.md, on loopback)"
        )
    used.append(f"usersecrets {', '.join(flags['usersecrets'])}")
    lines.append("Flags: " + "; ".join(used) + ".")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks, not numbers")
    parser.add_argument("--out", type=Path, default=RESULTS / "peers.json")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=SCENARIOS)
    parser.add_argument("--secrets", type=int, help=f"N (default {Sizes.secrets})")
    parser.add_argument("--reviews", type=int, help=f"reviews a run (default {Sizes.reviews})")
    parser.add_argument("--rounds", type=int, help=f"of materialization ({Sizes.rounds})")
    parser.add_argument(
        "--table-from", type=Path, metavar="JSON", help="only print the table of earlier results"
    )
    args = parser.parse_args()
    if args.table_from:
        print(table(json.loads(args.table_from.read_text())))
        return
    sizes = SMOKE if args.smoke else Sizes()
    sizes = Sizes(
        secrets=args.secrets or sizes.secrets,
        reviews=args.reviews or sizes.reviews,
        runs=sizes.runs,
        rounds=args.rounds or sizes.rounds,
        idle=sizes.idle,
        only=frozenset(args.only),
    )
    started = time.monotonic()
    results = run(sizes)
    results["took_s"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {args.out} (cpus: {os.cpu_count()}, took {results['took_s']} s)")


if __name__ == "__main__":
    main()
