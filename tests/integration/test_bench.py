"""`make bench` at tiny sizes, so the benchmark cannot rot between the times someone runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from usersecrets_dev.controlplane import REPO, cached_binaries

pytestmark = pytest.mark.integration


def bench(module: str, *args: str, timeout: float = 600) -> str:
    """Runs `python -m <module> <args>` from the checkout; its standard output."""
    run = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "dev")},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_bench_smoke(tmp_path: Path) -> None:
    if cached_binaries() is None:
        pytest.fail("the control plane binaries are missing; run `make test`")
    out = tmp_path / "bench.json"
    printed = bench("bench", "--smoke", "--out", str(out))
    results = json.loads(out.read_text())
    assert set(results) == {
        "materialization",
        "events",
        "writes",
        "steady_50_per_s",
        "propagation",
        "fanout",
        "webhook_direct",
        "webhook_servers",
        "pod_admission",
        "cli",
        "memory",
    }
    assert results["materialization"]["ratio"] > 0
    assert results["events"]["n"] == 20  # CPU at this size is a tick or two: not checked
    assert set(results["writes"]) == {"n", "usersecret", "copy", "status"}
    assert [w["concurrency"] for w in results["webhook_direct"]] == [1, 16]
    servers = [(w["server"], w["concurrency"]) for w in results["webhook_servers"]]
    assert servers == [("ours", 1), ("ours", 16), ("aiohttp", 1), ("aiohttp", 16)]
    assert all(w["requests_per_s"] > 0 for w in results["webhook_servers"])
    assert "| materialization" in printed
    assert "| operator CPU per event that changes nothing, N=20 | through kopf" in printed
    assert "| CPU ms of each write a secret makes, alone, N=20 | usersecret: apiserver" in printed


def test_bench_scale_smoke(tmp_path: Path) -> None:
    """At two shards: the default of one is the same code with one leader."""
    out = tmp_path / "scale.json"
    bench("bench.scale", "--smoke", "--shards", "2", "--out", str(out))
    results = json.loads(out.read_text())
    assert results["copies"] == 50  # 40 owners' copies and 10 shared ones
    assert results["copies_written_by_the_restart"] == 0
    assert results["restart_converged_s"] > 0
    assert results["converged"]["rss_mib"] > 0
    assert len(results["after_restart"]["each_rss_and_peak_mib"]) == 2
    assert results["copies_written_by_the_failover"] == 0
    assert results["failover_converged_s"] > 0
    assert results["value_change_to_every_copy"]["changes"] == 5
    assert results["value_change_just_after_restart"]["changes"] == 5
    assert results["webhook_at_full_size"]["concurrency"] == 16
    assert len(results["webhook_at_full_size"]["p99_ms_runs"]) == 7
    assert results["webhook_at_baseline"]["in_webhook_mean_ms"] > 0
    # Where the time went, by process: the control plane's and each operator's.
    for cpu in (
        results["webhook_at_full_size"]["cpu_s_meanwhile"],
        results["failover_cpu_s"],
        results["restart_cpu_s"],
    ):
        assert {"kube-apiserver", "etcd", "operator-1"} <= set(cpu)
    assert results["restart_cpu_s"]["operator-0"] > 0  # started since: all of its CPU


def test_bench_peers_table() -> None:
    """`make bench-peers` builds its peers (minutes) and is left out of the suite; the table it
    prints is checked here from results of the shape it writes (a `--smoke` run's), in a second."""
    results = REPO / "tests" / "integration" / "data" / "bench_peers.json"
    table = bench("bench.peers", "--table-from", str(results), timeout=120)
    assert "| External Secrets Operator v0.16.2, defaults | 9.5 (0.078) |" in table
    assert "| vault-k8s v1.6.2 agent injector | 16 | 1592.8 (0.44) |" in table
    assert "| Kyverno v1.19.1, a mutate policy adding a secret volume | 1 | 683.6 (0.29) |" in table
