"""`make bench-scale`: a platform's worth of users on one control plane, served by one leader
or (`--shards N`) by N leaders sharing the owners, each a process of its own.

USERS users, each with SECRETS/USERS UserSecrets in a namespace of their own, and GRANTS
SecretGrants, each sharing one of its owner's secrets with another user (every user grants and
receives the same number). Measured, with the chart's default limits:

- how fast it all materializes (creates and copies together, as on a first install);
- the operator's memory once converged (RSS) and at its peak (VmHWM), the largest leader's and
  each one's;
- with shards (and a replica more, standing by): a leader stopped, until the standby leads its
  shard with every copy accounted for and an empty queue (a failover, or a rollout's step);
- a restart of every leader at once: from the processes' start until each shard has a leader
  with every copy accounted for and an empty queue; and how many writes each of these made
  (none are due);
- a value change reaching every copy (the owner's and its grantees'), p50/p99 over CHANGES:
  as soon as the restart converged, and again once the cluster is idle;
- the webhook's p99 at concurrency 16 at this size, against the same review at 1,000 secrets
  on the same cluster before the rest was created (the README's comparison point); each once
  the cluster's processes are idle, with the CPU each used during the load.

`--smoke` runs the same code at tiny sizes: the test suite runs it so this cannot rot.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.__main__ import RESULTS, Bench, cpu_seconds, step, summary
from usersecrets import GROUP, VERSION
from usersecrets.kube import paths, watching
from usersecrets.kube.client import ApiError, KubeApi, from_kubeconfig
from usersecrets.rules import naming
from usersecrets_dev.controlplane import ControlPlane, find_binaries
from usersecrets_dev.operator_process import OperatorProcess


@dataclass(frozen=True)
class Scale:
    users: int = 5000
    secrets: int = 100_000
    grants: int = 20_000
    changes: int = 200
    reviews: int = 10_000
    #: Secrets at the webhook's comparison point.
    baseline_secrets: int = 1000
    #: Leaders sharing the owners (the chart's `shards`), each a process of its own.
    shards: int = 1


SMOKE = Scale(users=10, secrets=40, grants=10, changes=5, reviews=50, baseline_secrets=20)


def user(i: int) -> str:
    return f"u{i}"


def value(i: int, j: int, version: int = 0) -> str:
    """32 bytes unique to each secret and version, as real tokens are (the operator keeps one
    copy of equal values: equal values here would flatter its memory)."""
    return base64.b64encode(f"{i:06d}-{j:04d}-{version:04d}".ljust(32, ".").encode()).decode()


class Cluster:
    """The populated cluster: who owns what, who was granted what."""

    def __init__(self, api: KubeApi, scale: Scale, pool: ThreadPoolExecutor) -> None:
        self.api, self.scale, self.pool = api, scale, pool
        self.per_user = scale.secrets // scale.users
        self.grants_per_user = scale.grants // scale.users

    def grantee(self, i: int, g: int) -> int:
        """Distinct users, none of them the owner, spread over the whole cluster."""
        return (i + 1 + g * max(1, self.scale.users // (self.grants_per_user + 1))) % (
            self.scale.users
        )

    def create(self, path: str, body: dict[str, Any]) -> None:
        for attempt in range(20):
            try:
                self.api.call("POST", path, body=body)
                return
            except ApiError as error:
                if error.status == 409:
                    return  # a retry of one that landed
                if error.status not in (429, 500, 503, 504) or attempt == 19:
                    raise
            except OSError:
                if attempt == 19:
                    raise
            time.sleep(0.2 * (attempt + 1))

    def namespaces(self, users: range) -> None:
        def one(i: int) -> None:
            labels = {"usersecrets.io/user": user(i)}
            self.create(paths.NAMESPACES, {"metadata": {"name": user(i), "labels": labels}})

        list(self.pool.map(one, users))

    def usersecrets(self, users: range) -> None:
        def one(item: tuple[int, int]) -> None:
            i, j = item
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "UserSecret",
                "metadata": {"name": f"k{j}"},
                "spec": {"value": value(i, j)},
            }
            self.create(paths.custom("usersecrets", user(i)), body)

        list(self.pool.map(one, [(i, j) for j in range(self.per_user) for i in users]))

    def grants(self) -> None:
        def one(item: tuple[int, int]) -> None:
            i, g = item
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "SecretGrant",
                "metadata": {"name": f"g{g}"},
                "spec": {"secretName": f"k{g}", "user": user(self.grantee(i, g))},
            }
            self.create(paths.custom("secretgrants", user(i)), body)

        items = [(i, g) for g in range(self.grants_per_user) for i in range(self.scale.users)]
        list(self.pool.map(one, items))

    @property
    def copies(self) -> int:
        return self.per_user * self.scale.users + self.grants_per_user * self.scale.users


@contextmanager
def copies_changed(api: KubeApi, version: str) -> Iterator[dict[str, list[tuple[str, float]]]]:
    """namespace/name of each copy -> (its value, when a watch saw it), from `version` on."""
    seen: dict[str, list[tuple[str, float]]] = {}

    def changed(_: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        data = (body.get("data") or {}).get(naming.DATA_KEY, "")
        seen.setdefault(f"{meta['namespace']}/{meta['name']}", []).append((data, time.monotonic()))

    stop = watching.start(
        "bench-copies",
        api,
        paths.SECRETS,
        listed=lambda _: None,
        changed=changed,
        label_selector=naming.MANAGED_SELECTOR,
        version=version,
    )
    try:
        yield seen
    finally:
        stop.set()


def now(api: KubeApi) -> str:
    """A resourceVersion to watch from: what happens after this call."""
    listing = api.json("GET", paths.SECRETS, query={"limit": 1})
    return str(listing["metadata"]["resourceVersion"])


def rss(operators: list[OperatorProcess]) -> dict[str, Any]:
    """The largest leader's RSS and peak (VmHWM), and each leader's."""
    each = [list(operator.memory_mib()) for operator in operators]
    return {
        "rss_mib": max(rss for rss, _ in each),
        "peak_rss_mib": max(peak for _, peak in each),
        "each_rss_and_peak_mib": each,
    }


def converged(benches: list[Bench], copies: int, timeout: float) -> None:
    """Every shard led, every copy made (by one of them), nothing queued."""

    def done() -> bool:
        found = [
            bench.metrics(
                "usersecrets_leader",
                "usersecrets_work_queue_depth",
                "usersecrets_materialized_secrets",
            )
            for bench in benches
        ]
        return (
            all(
                (f.get("usersecrets_leader"), f.get("usersecrets_work_queue_depth")) == (1, 0)
                for f in found
            )
            and sum(f.get("usersecrets_materialized_secrets", 0) for f in found) == copies
        )

    benches[0].wait(done, timeout, f"{copies} copies and empty queues", every=1.0)


def failover(
    api: KubeApi, leader: OperatorProcess, benches: list[Bench], copies: int, used: Usage
) -> dict[str, Any]:
    """Stops `leader` (it hands its Lease back): until the standby leads its shard with every
    copy accounted for, `benches` being the leaders then."""
    with copies_changed(api, now(api)) as written:
        started, before = time.monotonic(), used()
        leader.stop()
        converged(benches, copies, 3600)
        took = round(time.monotonic() - started, 1)
    return {
        "failover_converged_s": took,
        "copies_written_by_the_failover": len(written),
        "failover_cpu_s": spent(used, before),
    }


def restart(
    api: KubeApi,
    benches: list[Bench],
    operators: list[OperatorProcess],
    copies: int,
    used: Usage,
) -> dict[str, Any]:
    """Starts `operators` (stopped) again, all at once: until every shard leads, converged."""
    with copies_changed(api, now(api)) as written:
        started, before = time.monotonic(), used()
        for operator in operators:
            operator.launch()
        for operator in operators:
            operator.ready(600)
        converged(benches, copies, 3600)
        took = round(time.monotonic() - started, 1)
    return {
        "restart_converged_s": took,
        "copies_written_by_the_restart": len(written),
        "restart_cpu_s": spent(used, before),
    }


Usage = Callable[[], dict[str, float]]


def usage(plane: ControlPlane, operators: list[OperatorProcess]) -> dict[str, float]:
    """CPU seconds so far of each process of the cluster: the control plane's and every
    operator's (the standby's too)."""
    pids = plane.pids()
    pids.update({op.log.stem: op.process.pid for op in operators if op.process is not None})
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def spent(used: Usage, before: dict[str, float]) -> dict[str, float]:
    """CPU seconds of each process since `before` (all of it for a process started since)."""
    return {name: round(now - before.get(name, 0.0), 2) for name, now in used().items()}


def settled(used: Usage, idle: float = 0.1, timeout: float = 300) -> float | None:
    """Seconds until the cluster's processes together used less than `idle` of a core over
    2 s (None: not within `timeout`). After 100,000 writes the control plane may go on
    working for a while, and a p99 measured meanwhile would measure it."""
    started = time.monotonic()
    before = used()
    while time.monotonic() - started < timeout:
        time.sleep(2)
        after = used()
        if sum(after.values()) - sum(before.values()) < idle * 2:
            return round(time.monotonic() - started, 1)
        before = after
    return None


ANSWERED = (
    "usersecrets_admission_duration_seconds_sum",
    "usersecrets_admission_duration_seconds_count",
)


def webhook_load(bench: Bench, used: Usage, reviews: int) -> dict[str, Any]:
    """The webhook's p99 at concurrency 16 on a settled cluster: the median of 7 runs, as it
    moves by a third from one run to the next; its own mean time per review, which the host's
    stalls do not reach; and each process's CPU meanwhile (the measured leader's is the load)."""
    waited = settled(used)
    before, answered = used(), bench.metrics(*ANSWERED)
    measured = bench.webhook_direct(reviews, 16, "u0", "u0", runs=7)
    seconds, count = (bench.metrics(*ANSWERED)[m] - answered[m] for m in ANSWERED)
    return {
        **measured,
        "in_webhook_mean_ms": round(seconds / max(count, 1) * 1000, 3),
        "settled_after_s": waited,
        "cpu_s_meanwhile": spent(used, before),
    }


def timed(what: Callable[[], None]) -> float:
    started = time.monotonic()
    what()
    return round(time.monotonic() - started, 1)


def run(scale: Scale) -> dict[str, Any]:
    out: dict[str, Any] = {"scale": asdict(scale)}
    with ControlPlane(find_binaries()) as plane:
        # With shards, as the chart advises: a replica more, standing by.
        replicas = scale.shards + 1 if scale.shards > 1 else 1
        values = ["logLevel=WARNING", f"shards={scale.shards}", f"replicaCount={replicas}"]
        # Each installs the chart, pointing its webhooks at itself: the last one, a leader,
        # answers them; the standby, installed first, starts once every shard has a leader.
        standby = (
            [OperatorProcess(plane, name="standby", values=values)] if scale.shards > 1 else []
        )
        leaders = [
            OperatorProcess(plane, name=f"operator-{i}", values=values) for i in range(scale.shards)
        ]
        operators = leaders + standby
        try:
            for operator in leaders:
                operator.start()
            benches = [Bench(plane, operator) for operator in operators]
            bench = benches[scale.shards - 1]
            api, _ = from_kubeconfig(str(plane.kubeconfig), None)
            api = KubeApi(api.credentials, pool=32)
            with ThreadPoolExecutor(16) as pool:
                cluster = Cluster(api, scale, pool)
                first = range(max(1, scale.baseline_secrets // cluster.per_user))
                step(f"{len(first) * cluster.per_user} secrets, the webhook's comparison point")
                cluster.namespaces(first)
                cluster.usersecrets(first)
                converged(benches[: scale.shards], len(first) * cluster.per_user, 600)
                for operator in standby:  # once every shard has its leader
                    operator.start()
                used = functools.partial(usage, plane, operators)
                out["webhook_at_baseline"] = webhook_load(bench, used, scale.reviews)
                rest = range(len(first), scale.users)
                step(f"{scale.users} users, {scale.secrets} secrets, {scale.grants} grants")
                started = time.monotonic()
                out["create_namespaces_s"] = timed(lambda: cluster.namespaces(rest))
                out["create_usersecrets_s"] = timed(lambda: cluster.usersecrets(rest))
                out["create_grants_s"] = timed(cluster.grants)
                converged(benches[: scale.shards], cluster.copies, 7200)
                out["populated_and_converged_s"] = round(time.monotonic() - started, 1)
                out["copies"] = cluster.copies
                out["converged"] = rss(leaders)
                step("the webhook at full size")
                out["webhook_at_full_size"] = webhook_load(bench, used, scale.reviews)
                if standby:
                    step("a leader stops, and the standby takes its shard over")
                    out.update(failover(api, leaders[0], benches[1:], cluster.copies, used))
                step("a restart of every leader at once")
                for operator in operators:
                    operator.stop()
                out.update(restart(api, benches[: scale.shards], leaders, cluster.copies, used))
                out["after_restart"] = rss(leaders)
                step("value changes reaching every copy, as soon as converged and once settled")
                out["value_change_just_after_restart"] = value_changes(api, cluster, 1)
                out["value_change_settled_after_s"] = settled(used)
                out["value_change_to_every_copy"] = value_changes(api, cluster, 2)
        finally:
            for operator in operators:
                operator.stop()
    return out


def value_changes(api: KubeApi, cluster: Cluster, version: int) -> dict[str, Any]:
    """One owner's secret changed at a time (to its `version`), spread over users: until its
    own copy and each grantee's holds the new value."""
    scale = cluster.scale
    latencies = []
    with copies_changed(api, now(api)) as seen:
        for n in range(scale.changes):
            i = (n * 7919) % scale.users
            j = n % cluster.grants_per_user if cluster.grants_per_user else 0
            new = value(i, j, version)
            targets = [f"{user(i)}/{naming.copy_name(user(i), f'k{j}')}"] + [
                f"{user(cluster.grantee(i, g))}/{naming.copy_name(user(i), f'k{j}')}"
                for g in range(cluster.grants_per_user)
                if g == j
            ]
            started = time.monotonic()
            api.call(
                "PATCH",
                f"{paths.custom('usersecrets', user(i))}/k{j}",
                body={"spec": {"value": new}},
                content_type="application/merge-patch+json",
            )
            deadline = started + 60
            while True:
                times = [
                    next((at for data, at in seen.get(t, []) if data == new), None) for t in targets
                ]
                if all(at is not None for at in times):
                    latencies.append(max(at for at in times if at is not None) - started)
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"copies of {user(i)}/k{j} after a change")
                time.sleep(0.002)
    return {"changes": len(latencies), **summary(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks, not numbers")
    parser.add_argument("--users", type=int)
    parser.add_argument("--secrets", type=int)
    parser.add_argument("--grants", type=int)
    parser.add_argument("--shards", type=int, help="leaders sharing the work (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else Scale()
    sizes = {
        k: v for k, v in vars(args).items() if k in ("users", "secrets", "grants", "shards") and v
    }
    scale = Scale(**{**asdict(scale), **sizes})
    results = run(scale)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
