"""`make ui-timing`: how long the web UI's pages and actions take, measured in the browser.

A local control plane with the chart, the operator and the UI; a sample user signed in in
headless chromium (Debian's, driven by Playwright). Each number is the browser's own
Navigation Timing of the page that ends the step (`loadEventEnd`, from the moment the
navigation or the form's submission started: the POST, the redirect, the next page and its
CSS and script), over `--count` repetitions. Not a test: nothing here can fail on a slow day.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import config

from usersecrets_dev.controlplane import REPO, ControlPlane, find_binaries
from usersecrets_dev.operator_process import OperatorProcess
from usersecrets_dev.sample_users import sample_user
from usersecrets_dev.ui_process import CHROMIUM, CHROMIUM_ARGS, UiProcess

LOADED = "() => performance.getEntriesByType('navigation')[0].loadEventEnd"


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(count: int, step: Callable[[int], float]) -> dict[str, Any]:
    times = [step(i) for i in range(count)]
    return {
        "count": count,
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(percentile(times, 99), 1),
        "max_ms": round(max(times), 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "ui-timing.json")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    with ControlPlane(find_binaries()) as plane:
        operator = OperatorProcess(plane, values=["ui.enabled=true"]).start()
        ui = UiProcess(plane, operator.objects).start()
        try:
            admin = config.new_client_from_config(config_file=str(plane.kubeconfig))
            namespace, token = sample_user(admin, "alice")
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS
                )
                page = browser.new_page()
                page.goto(f"{ui.url}/sign-in")
                page.fill("#token", token)
                page.click("button[type=submit]")
                secrets = f"{ui.url}/n/{namespace}/secrets"

                def load(_: int) -> float:
                    page.goto(secrets)
                    return float(page.evaluate(LOADED))

                def add(i: int) -> float:
                    page.fill("#key", f"timing-{i}")
                    page.fill("#value", f"value-{i}")
                    with page.expect_navigation():
                        page.click("#add-secret button[type=submit]")
                    page.wait_for_load_state("load")
                    return float(page.evaluate(LOADED))

                def run_job(i: int) -> float:
                    page.goto(f"{ui.url}/n/{namespace}/jobs")
                    page.fill("#image", "busybox")
                    row = page.locator("tr[data-ref='secret:timing-0']")
                    row.locator("input[name^=env]").fill("TOKEN")
                    with page.expect_navigation():
                        page.click("#run")
                    page.wait_for_load_state("load")
                    return float(page.evaluate(LOADED))

                results = {"secrets_page_load": measure(args.count, load)}
                results["add_secret"] = measure(args.count, add)
                results["secrets_page_load_with_100_secrets"] = measure(args.count, load)
                results["run_job"] = measure(args.count, run_job)
                browser.close()
        finally:
            ui.stop()
            operator.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for name, r in results.items():
        p50, p99, n = r["p50_ms"], r["p99_ms"], r["count"]
        print(f"{name:{width}}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  (n={n})")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
