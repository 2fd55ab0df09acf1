"""`usersecrets-operator`: the webhook on every replica, the controller on the leader.

The webhook and its caches start first and never depend on leadership, so a standby replica
answers admissions as well as the leader does. The controller waits for the Lease, fills its
cache from full lists, then follows the watches until the process ends.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import uvloop
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from usersecrets.controller.run import lead
from usersecrets.controller.uninstall import delete_copies
from usersecrets.kube.client import connect
from usersecrets.settings import Settings
from usersecrets.webhook import run as webhook
from usersecrets.webhook.lookups import Lookups
from usersecrets.webhook.server import Answer, Routes, Server, ok, serve

logger = logging.getLogger("usersecrets")


def probe_routes(ready: Callable[[], bool]) -> Routes:
    """`/readyz` is true once this replica can answer admissions, leader or not."""

    async def metrics(_: bytearray) -> Answer:
        return Answer(200, generate_latest(), CONTENT_TYPE_LATEST.encode())

    async def readyz(_: bytearray) -> Answer:
        return Answer(200, b"ok") if ready() else Answer(503, b"not ready")

    return {b"/metrics": (b"GET", metrics), b"/healthz": (b"GET", ok), b"/readyz": (b"GET", readyz)}


async def run(settings: Settings) -> None:
    # Admissions' rare lookups, quota reads and the relist's pages block in API calls.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(settings.workers + settings.status_workers + 4, thread_name_prefix="api")
    )
    api = connect()
    stop, serving = asyncio.Event(), asyncio.Event()

    def terminate() -> None:
        serving.clear()  # not ready from now on, while admissions are still answered
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, terminate)
    lookups = Lookups(api, settings)
    watches = lookups.start()
    probes: Server = await serve(
        probe_routes(lambda: lookups.synced and serving.is_set()),
        None,
        settings.webhook_host,
        settings.metrics_port,
    )
    server, keeper = await webhook.start(api, settings, lookups)
    serving.set()
    try:
        await lead(api, settings, stop)
    finally:
        # Admissions the apiserver sends before it learns that this replica is going are
        # answered, not refused.
        await asyncio.sleep(settings.shutdown_delay_seconds)
        await server.stop()
        keeper.cancel()
        for watch in watches:
            watch.set()
        await probes.stop(grace=1)


def main(argv: Sequence[str] | None = None) -> None:
    """No arguments: the operator. `delete-copies`: what the chart's uninstall hook runs."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args not in ([], ["delete-copies"]):
        sys.exit("usage: usersecrets-operator [delete-copies]")
    settings = Settings()
    level = logging.getLevelName(settings.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args:
        delete_copies(connect(pool=1), settings)
        return
    # kopf reports every handled event at INFO: that is our DEBUG.
    if level > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(max(level, logging.WARNING))
    # uvloop: its event loop and TLS are native code; admissions answer in half the time.
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
