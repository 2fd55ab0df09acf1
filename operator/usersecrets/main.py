"""`usersecrets-operator`: the webhook on every replica, the reconciler on the leader.

The webhook and its namespace watch start first and never depend on leadership, so a standby
replica answers admissions as well as the leader does. The controller waits for the Lease,
fills its cache from full lists, then follows kopf's watches until the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import uvloop
from aiohttp import web
from kubernetes import client, config

from usersecrets import metrics
from usersecrets.controller.run import lead
from usersecrets.kube.client import KubeApi
from usersecrets.settings import Settings
from usersecrets.webhook import lookups
from usersecrets.webhook import server as webhook

logger = logging.getLogger("usersecrets")


def api_client() -> client.ApiClient:
    """In a pod, its ServiceAccount; elsewhere the kubeconfig, as kubectl would pick it."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 32  # workers and admissions share the pool
    return client.ApiClient(configuration)


def _split_hosts(hosts: tuple[str, ...]) -> tuple[list[str], list[str]]:
    names, addresses = [], []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.append(host)
        else:
            addresses.append(host)
    return names, addresses


async def start_webhook(
    api: client.ApiClient, settings: Settings, cluster: lookups.Lookups
) -> tuple[webhook.Server, asyncio.Task[None]]:
    """Serves admissions over TLS, with cert-manager's files or a certificate of our own."""
    if settings.webhook_cert_dir:
        context = webhook.ssl_context_from_dir(settings.webhook_cert_dir)
        keeper = webhook.watch_cert_dir(context, settings.webhook_cert_dir)
    else:
        names, addresses = _split_hosts(settings.webhook_extra_hosts)
        names += webhook.service_dns_names(settings.webhook_service, settings.operator_namespace)
        refresh = functools.partial(
            webhook.refresh_self_managed,
            KubeApi(api),
            settings,
            names,
            addresses,
        )
        bundle = await asyncio.to_thread(refresh)
        context = webhook.ssl_context_from_bundle(bundle)
        keeper = webhook.keep_bundle_current(context, refresh, bundle)
    review = lookups.reviewer(cluster, settings)
    server = await webhook.serve(review, context, settings.webhook_host, settings.webhook_port)
    logger.info("webhook serving on %s:%d", settings.webhook_host, settings.webhook_port)
    return server, asyncio.create_task(keeper)


async def start_probes(settings: Settings, ready: Callable[[], bool]) -> web.AppRunner:
    app = metrics.build_app(ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.webhook_host, settings.metrics_port).start()
    return runner


async def run(settings: Settings) -> None:
    # Workers, admissions' rare lookups and kopf's source reads all block in API calls.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(settings.workers + settings.status_workers + 4, thread_name_prefix="api")
    )
    api = api_client()
    stop, serving = asyncio.Event(), asyncio.Event()

    def terminate() -> None:
        serving.clear()  # not ready from now on, while admissions are still answered
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, terminate)
    cluster = lookups.Lookups(KubeApi(api), settings)
    watches = cluster.start()
    probes = await start_probes(settings, lambda: cluster.synced and serving.is_set())
    server, keeper = await start_webhook(api, settings, cluster)
    serving.set()
    try:
        await lead(KubeApi(api), settings, stop)
    finally:
        # Admissions the apiserver sends before it learns that this replica is going are
        # answered, not refused.
        await asyncio.sleep(settings.shutdown_delay_seconds)
        await server.stop()
        keeper.cancel()
        for watch in watches:
            watch.set()
        with contextlib.suppress(Exception):
            await probes.cleanup()


def main() -> None:
    settings = Settings()
    level = logging.getLevelName(settings.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf reports every handled event at INFO: that is our DEBUG.
    if level > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(max(level, logging.WARNING))
    # uvloop: its event loop and TLS are native code; admissions answer in half the time.
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
