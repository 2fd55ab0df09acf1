"""The web UI's aiohttp application: routes, middlewares, static files."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from aiohttp import web

from usersecrets.api.kinds import MAX_VALUE_BYTES
from usersecrets.kube.client import KubeApi, for_token
from usersecrets.settings import Settings
from usersecrets.ui import pages
from usersecrets.ui.config import UiSettings
from usersecrets.ui.sessions import Sessions
from usersecrets.ui.web import UI_KEY, Ui, headers_and_log, identify

#: A request body holds at most one value and a few short fields.
MAX_BODY = MAX_VALUE_BYTES + 64 * 1024
NS = "/n/{ns}"


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(
    settings: UiSettings,
    platform: Settings,
    connect: Callable[[str], KubeApi] | None = None,
    sessions: Sessions | None = None,
) -> web.Application:
    """The application; `connect` makes the API client of a token (default: the apiserver of
    `settings`, with its CA)."""
    if connect is None:

        def connect(token: str) -> KubeApi:
            return for_token(settings.api_server, token, settings.api_ca_file)

    app = web.Application(middlewares=[headers_and_log, identify], client_max_size=MAX_BODY)
    app[UI_KEY] = Ui(settings, platform, connect, sessions)
    static = resources.files("usersecrets.ui") / "static"
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/", pages.home),
            web.get("/sign-in", pages.sign_in_page),
            web.post("/sign-in", pages.sign_in),
            web.post("/sign-out", pages.sign_out),
            web.get("/namespaces", pages.namespaces_page),
            web.post("/namespaces", pages.choose_namespace),
            web.get("/check/key", pages.check_key),
            web.get("/check/value", pages.check_value),
            web.get(f"{NS}/secrets", pages.secrets_page),
            web.post(f"{NS}/secrets", pages.add_secret),
            web.get(f"{NS}/secrets/{{key}}", pages.secret_page),
            web.get(f"{NS}/secrets/{{key}}/delete", pages.confirm_delete),
            web.post(f"{NS}/secrets/{{key}}/delete", pages.delete_secret),
            web.post(f"{NS}/secrets/{{key}}/shares", pages.share),
            web.post(f"{NS}/secrets/{{key}}/revoke", pages.revoke),
            web.get(f"{NS}/jobs", pages.jobs_page),
            web.post(f"{NS}/jobs", pages.run_job),
            web.get(f"{NS}/jobs/{{name}}", pages.job_page),
            web.get(f"{NS}/jobs/{{name}}/state", pages.job_page),
            web.post(f"{NS}/jobs/{{name}}/again", pages.run_again),
            web.static("/static", str(static)),
        ]
    )
    return app
