"""The request plumbing every page shares: who is calling (session or proxy token), CSRF,
security headers, logging without values, and rendering.

Every state change is a POST that carries a CSRF token bound to the caller (the session's
own random token, or a keyed digest of the proxy's bearer token), and browsers' cross-site
POSTs are refused outright (Sec-Fetch-Site). Pages are never cached; scripts and styles come
from this server only (CSP), and templates escape every value.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import jinja2
from aiohttp import web

from usersecrets.api.kinds import MAX_VALUE_BYTES
from usersecrets.kube.client import KubeApi
from usersecrets.settings import Settings
from usersecrets.ui.config import UiSettings
from usersecrets.ui.sessions import Clients, Session, Sessions, Signer, fingerprint, same
from usersecrets.user.errors import Failure
from usersecrets.user.identity import Identity, is_namespace_name, who_am_i

log = logging.getLogger("usersecrets.ui")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
#: Remembered namespaces, most recent first: names only, never a credential.
NAMESPACES_COOKIE = "usersecrets-namespaces"
PRE_SESSION_COOKIE = "usersecrets-signin"
CSRF_FIELD = "csrf"
#: Proxy tokens: who they belong to is asked again after this long.
IDENTITY_SECONDS = 60.0
STATUS_OF_KIND = {
    "usage": 400,
    "not_found": 404,
    "forbidden": 403,
    "unreachable": 502,
    "generic": 500,
}


@dataclass(frozen=True)
class Caller:
    """Whoever this request acts as: a token, what the apiserver says it is, and its client."""

    token: str
    identity: Identity
    csrf: str
    api: KubeApi
    session: Session | None  # None: an authenticating proxy sent the token


class Ui:
    """The process-wide parts: settings, sessions, clients per token, templates."""

    def __init__(
        self,
        settings: UiSettings,
        platform: Settings,
        connect: Callable[[str], KubeApi],
        sessions: Sessions | None = None,
    ) -> None:
        self.settings, self.platform = settings, platform
        self.sessions = sessions or Sessions(
            settings.session_idle_seconds, settings.session_max_seconds, settings.max_sessions
        )
        self.clients = Clients(connect)
        self.signer = Signer()
        self._identities: dict[str, tuple[Identity, float]] = {}
        prefix = "__Host-" if settings.secure_cookies else ""
        self.session_cookie = f"{prefix}usersecrets-session"
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("usersecrets.ui", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["shell"] = shlex.join

    # -- who is calling ---------------------------------------------------------------

    async def proxy_identity(self, token: str) -> Identity:
        key = fingerprint(token)
        known = self._identities.get(key)
        if known and known[1] > time.monotonic():
            return known[0]
        identity = await blocking(who_am_i, self.clients.get(token))
        if len(self._identities) > 4096:
            self._identities.clear()
        self._identities[key] = (identity, time.monotonic() + IDENTITY_SECONDS)
        return identity

    async def caller(self, request: web.Request) -> Caller | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            token = token.strip()
            identity = await self.proxy_identity(token)
            csrf = self.signer.sign("csrf", fingerprint(token))
            return Caller(token, identity, csrf, self.clients.get(token), None)
        session = self.sessions.get(request.cookies.get(self.session_cookie))
        if session is None:
            return None
        return Caller(
            session.token, session.identity, session.csrf, self.clients.get(session.token), session
        )

    # -- cookies ----------------------------------------------------------------------

    def set_cookie(
        self, response: web.StreamResponse, name: str, value: str, max_age: int | None = None
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            secure=self.settings.secure_cookies,
            samesite="Strict",
        )

    def delete_cookie(self, response: web.StreamResponse, name: str) -> None:
        response.del_cookie(
            name, path="/", secure=self.settings.secure_cookies, httponly=True, samesite="Strict"
        )

    # -- pages ------------------------------------------------------------------------

    def render(
        self, request: web.Request, template: str, status: int = 200, **context: Any
    ) -> web.Response:
        caller: Caller | None = request.get("caller")
        values: dict[str, Any] = {
            "caller": caller,
            "csrf": request.get("csrf", ""),
            "proxy": caller is not None and caller.session is None,
            "sign_out_url": self.settings.proxy_sign_out_url,
            "cluster": self.platform.cluster_name,
            "ns": "",
            "flash": "",
            "active": "jobs" if "/jobs" in request.path else "secrets",
        }
        values.update(context)
        page = self.templates.get_template(template).render(**values)
        return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


UI_KEY = web.AppKey("ui", Ui)


def ui_of(request: web.Request) -> Ui:
    return request.app[UI_KEY]


async def blocking(call: Callable[..., T], *args: Any) -> T:
    """The user layer speaks blocking HTTP: each call in a worker thread."""
    return await asyncio.to_thread(call, *args)


def _whose(request: web.Request) -> str:
    """A tag of the caller's username: one browser, several people, each their own list."""
    caller: Caller | None = request.get("caller")
    return fingerprint(caller.identity.username)[:16] if caller else ""


def remembered(request: web.Request) -> list[str]:
    """The caller's namespaces used last in this browser, most recent first."""
    tag, _, names = request.cookies.get(NAMESPACES_COOKIE, "").partition(".")
    if not tag or tag != _whose(request):
        return []
    return [ns for ns in names.split(".") if is_namespace_name(ns)][:5]


def remember(request: web.Request, response: web.StreamResponse, namespace: str) -> None:
    names = [namespace, *(n for n in remembered(request) if n != namespace)][:5]
    value = ".".join([_whose(request), *names])
    ui_of(request).set_cookie(response, NAMESPACES_COOKIE, value, 365 * 24 * 3600)


# -- middlewares ---------------------------------------------------------------------------


def _finish(request: web.Request, response: web.StreamResponse, started: float) -> None:
    response.headers.update(SECURITY_HEADERS)
    if ui_of(request).settings.secure_cookies:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    log.info(
        "%s %s %s %.1fms",
        request.method,
        request.path,
        response.status,
        (time.monotonic() - started) * 1000,
    )


@web.middleware
async def headers_and_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer; one log line per request: method, path (names of
    namespaces, keys and jobs at most), status and time. Never a query, a form or a header."""
    started = time.monotonic()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _finish(request, exc, started)
        raise
    except Exception as exc:
        # The message may quote what was sent: only the type is logged and shown.
        log.error("%s %s failed: %s", request.method, request.path, type(exc).__name__)
        response = ui_of(request).render(
            request,
            "error.html",
            status=500,
            title="Something went wrong",
            message=f"Unexpected error ({type(exc).__name__}).",
        )
    _finish(request, response, started)
    return response


@web.middleware
async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Finds the caller, and refuses every POST without the caller's CSRF token."""
    ui = ui_of(request)
    if request.path.startswith("/static/") or request.path == "/healthz":
        return await handler(request)
    try:
        caller = await ui.caller(request)
    except Failure as err:
        return ui.render(
            request,
            "error.html",
            status=STATUS_OF_KIND[err.kind] if err.status != 401 else 401,
            title="Not signed in",
            message=err.message,
        )
    request["caller"] = caller
    if caller is not None:
        request["csrf"] = caller.csrf
    else:
        pre = request.cookies.get(PRE_SESSION_COOKIE) or ""
        request["csrf"] = ui.signer.sign("pre", pre) if pre else ""
    if request.method == "POST":
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            return forbidden(request, "Cross-site request refused.")
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            return ui.render(
                request,
                "error.html",
                status=413,
                title="Too large",
                message="The upload is larger than any secret can be: a secret holds at most "
                f"1 MiB ({MAX_VALUE_BYTES})",
            )
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not same(sent, request["csrf"]):
            if caller is None and request.path != "/sign-in":
                expired(request)
            return forbidden(
                request,
                "This form has expired or did not come from this site (CSRF check failed): "
                "reload the page and try again.",
            )
    return await handler(request)


def forbidden(request: web.Request, message: str) -> web.Response:
    return ui_of(request).render(
        request, "error.html", status=403, title="Refused", message=message
    )


def expired(request: web.Request) -> NoReturn:
    """Where a request without a live session goes: the sign-in page, saying why."""
    had = bool(request.cookies.get(ui_of(request).session_cookie))
    reason = "expired" if had else "signin"
    raise web.HTTPSeeOther(f"/sign-in?reason={reason}")


def caller_of(request: web.Request) -> Caller:
    caller: Caller | None = request.get("caller")
    if caller is None:
        expired(request)
    return caller
