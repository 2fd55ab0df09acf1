"""Starting the webhook on a replica: its certificate, its caches and its server."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging

from usersecrets.kube.client import KubeApi
from usersecrets.settings import Settings
from usersecrets.webhook import selfmanaged, tls
from usersecrets.webhook.lookups import Lookups
from usersecrets.webhook.review import reviewer, routes
from usersecrets.webhook.server import Server, serve
from usersecrets.webhook.validation import validator

logger = logging.getLogger(__name__)


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


async def start(
    api: KubeApi, settings: Settings, lookups: Lookups
) -> tuple[Server, asyncio.Task[None]]:
    """Serves admissions over TLS, with cert-manager's files or a certificate of our own, and
    the task that keeps that certificate current."""
    if settings.webhook_cert_dir:
        context = tls.ssl_context_from_dir(settings.webhook_cert_dir)
        keeper = tls.watch_cert_dir(context, settings.webhook_cert_dir)
    else:
        names, addresses = _split_hosts(settings.webhook_extra_hosts)
        names += selfmanaged.service_dns_names(
            settings.webhook_service, settings.operator_namespace
        )
        refresh = functools.partial(
            selfmanaged.refresh_self_managed, api, settings, names, addresses
        )
        bundle = await asyncio.to_thread(refresh)
        context = tls.ssl_context_from_bundle(bundle)
        keeper = selfmanaged.keep_bundle_current(context, refresh, bundle)
    review, validate = reviewer(lookups, settings), validator(api)
    server = await serve(
        routes(review, validate), context, settings.webhook_host, settings.webhook_port
    )
    logger.info("webhook serving on %s:%d", settings.webhook_host, settings.webhook_port)
    return server, asyncio.create_task(keeper)
