"""Starting the webhook on a replica: its certificate, its caches and its server."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
from collections.abc import Callable

from usersecrets.kube.client import KubeApi
from usersecrets.settings import Settings
from usersecrets.webhook import selfmanaged, tls
from usersecrets.webhook.lookups import Lookups
from usersecrets.webhook.review import labeller, reviewer, routes
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


def _client_authentication(
    context: ssl.SSLContext, settings: Settings
) -> Callable[[tls.PeerCertificate], bool] | None:
    """Who may call the webhook: with a client CA, only clients with a certificate it signed
    (and, if names are set, that names one of them); else anyone who reaches the port."""
    if settings.webhook_client_names and not settings.webhook_client_ca_file:
        raise ValueError("webhook_client_names needs webhook_client_ca_file")
    if settings.webhook_client_ca_file:
        tls.require_client_certificates(context, settings.webhook_client_ca_file)
    if settings.webhook_client_names:
        return tls.named_client(settings.webhook_client_names)
    return None


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
    peer_check = _client_authentication(context, settings)
    review, validate = reviewer(lookups, settings), validator(api)
    server = await serve(
        routes(review, validate, labeller(lookups)),
        context,
        settings.webhook_host,
        settings.webhook_port,
        peer_check=peer_check,
    )
    logger.info(
        "webhook serving on %s:%d%s",
        settings.webhook_host,
        settings.webhook_port,
        " to clients with a certificate" if settings.webhook_client_ca_file else "",
    )
    return server, asyncio.create_task(keeper)
