"""The pages: sign-in, namespace, secrets, one secret, jobs, one job.

Each handler reads its form, checks what can be checked without the cluster (with the rules
the CLI and the webhook use, in their words), then calls `usersecrets.user` as the caller.
A value typed or uploaded goes to the apiserver once and is never rendered back.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from usersecrets.rules import naming
from usersecrets.rules.references import ENV_ANNOTATION, VOLUMES_ANNOTATION, key_error
from usersecrets.ui.web import (
    PRE_SESSION_COOKIE,
    STATUS_OF_KIND,
    Caller,
    blocking,
    caller_of,
    remember,
    remembered,
    ui_of,
)
from usersecrets.user import actions, jobs, views
from usersecrets.user.actions import SECRETGRANTS, USERSECRETS
from usersecrets.user.errors import Failure, redact
from usersecrets.user.identity import is_namespace_name, may, my_namespaces, who_am_i
from usersecrets.user.space import Space

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
WAIT_SECONDS = 30.0

FLASHES = {
    "added": "Secret '{key}' saved. Its value will not be shown again.",
    "deleted": "Secret '{key}' deleted.",
    "shared": "Secret '{key}' shared with {user}.",
    "revoked": "Secret '{key}' is no longer shared with {user}.",
}


def text(form: Form, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def flash(request: web.Request) -> str:
    template = FLASHES.get(request.query.get("flash", ""))
    if not template:
        return ""
    return template.format(key=request.query.get("key", ""), user=request.query.get("user", ""))


def failure_page(request: web.Request, err: Failure, title: str = "Refused") -> web.Response:
    if err.status == 401:
        ui = ui_of(request)
        caller: Caller | None = request.get("caller")
        if caller is not None and caller.session is not None:
            ui.sessions.drop(caller.session.id)
        raise web.HTTPSeeOther("/sign-in?reason=rejected")
    return ui_of(request).render(
        request, "error.html", status=STATUS_OF_KIND[err.kind], title=title, message=err.message
    )


async def show(
    request: web.Request,
    template: str,
    read: Callable[[], dict[str, Any]],
    status: int = 200,
    **context: Any,
) -> web.Response:
    """A page whose data `read` gets from the cluster, as the caller; its refusal otherwise."""
    try:
        data = await blocking(read)
    except Failure as err:
        return failure_page(request, err)
    return ui_of(request).render(
        request, template, status=status, flash=flash(request), **context, **data
    )


def secret_not_found(err: Failure, key: str) -> Failure:
    """The API's 404 for a key in the CLI's words."""
    return Failure(f"Secret '{key}' not found", "not_found") if err.status == 404 else err


def space_of(request: web.Request) -> Space:
    """The namespace named in the URL, as the caller; a malformed name is not a page."""
    namespace = request.match_info["ns"]
    if not is_namespace_name(namespace):
        raise web.HTTPNotFound(text=f"Not a namespace name: {namespace!r}")
    return Space(caller_of(request).api, namespace)


def key_of(request: web.Request) -> str:
    key = request.match_info["key"]
    if key_error(key):
        raise web.HTTPNotFound(text="Not a secret key")
    return key


# -- sign-in, sign-out, namespace -----------------------------------------------------------

REASONS = {
    "expired": "Your session has expired: sign in again.",
    "signin": "Sign in to continue.",
    "rejected": "The cluster no longer accepts your token: sign in again.",
    "signedout": "You are signed out.",
}


async def sign_in_page(request: web.Request) -> web.Response:
    if request.get("caller") is not None:
        raise web.HTTPSeeOther("/")
    return sign_in_form(request, notice=REASONS.get(request.query.get("reason", ""), ""))


def sign_in_form(
    request: web.Request, notice: str = "", error: str = "", status: int = 200
) -> web.Response:
    """The form, with a fresh pre-session CSRF cookie (login CSRF is CSRF too)."""
    ui = ui_of(request)
    pre = secrets.token_urlsafe(24)
    request["csrf"] = ui.signer.sign("pre", pre)
    response = ui.render(request, "sign_in.html", status=status, notice=notice, error=error)
    ui.set_cookie(response, PRE_SESSION_COOKIE, pre)
    return response


async def sign_in(request: web.Request) -> web.Response:
    ui = ui_of(request)
    form = await request.post()
    token = text(form, "token").strip()
    if not token:
        return sign_in_form(request, error="Paste your token.", status=400)
    if any(c.isspace() for c in token):
        return sign_in_form(request, error="A token has no spaces or line breaks.", status=400)
    try:
        identity = await blocking(who_am_i, ui.clients.get(token))
    except Failure as err:
        message = (
            "The cluster did not accept this token."
            if err.status == 401
            else redact(err.message, [token.encode()])
        )
        return sign_in_form(request, error=message, status=401 if err.status == 401 else 502)
    old = request.cookies.get(ui.session_cookie)
    ui.sessions.drop(old)  # a new id at every sign-in: no session fixation
    session = ui.sessions.create(token, identity)
    response = web.HTTPSeeOther("/")
    ui.set_cookie(response, ui.session_cookie, session.id)
    ui.delete_cookie(response, PRE_SESSION_COOKIE)
    raise response


async def sign_out(request: web.Request) -> web.Response:
    ui = ui_of(request)
    caller: Caller | None = request.get("caller")
    if caller is not None and caller.session is not None:
        ui.sessions.drop(caller.session.id)
    response = web.HTTPSeeOther("/sign-in?reason=signedout")
    ui.delete_cookie(response, ui.session_cookie)
    raise response


async def home(request: web.Request) -> web.Response:
    caller = caller_of(request)
    known = remembered(request)
    if known:
        raise web.HTTPSeeOther(f"/n/{known[0]}/secrets")
    ui = ui_of(request)
    try:
        mine = await blocking(
            my_namespaces, caller.api, caller.identity, known, ui.platform.user_label
        )
    except Failure as err:
        return failure_page(request, err)
    if len(mine) == 1:
        response = web.HTTPSeeOther(f"/n/{mine[0]}/secrets")
        remember(request, response, mine[0])
        raise response
    raise web.HTTPSeeOther("/namespaces")


async def namespaces_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    caller = caller_of(request)
    ui = ui_of(request)
    try:
        mine = await blocking(
            my_namespaces, caller.api, caller.identity, remembered(request), ui.platform.user_label
        )
    except Failure as err:
        return failure_page(request, err)
    current = (remembered(request) or [""])[0]
    return ui.render(
        request, "namespaces.html", status=status, mine=mine, current=current, error=error
    )


async def choose_namespace(request: web.Request) -> web.Response:
    caller = caller_of(request)
    form = await request.post()
    namespace = text(form, "namespace").strip()
    if not is_namespace_name(namespace):
        return await namespaces_page(
            request,
            f"'{namespace}' is not a namespace name (lowercase letters, digits and '-')",
            400,
        )
    try:
        allowed = await blocking(may, caller.api, "list", "usersecrets", namespace)
    except Failure as err:
        return failure_page(request, err)
    if not allowed:
        return await namespaces_page(
            request, f"You may not manage secrets in namespace '{namespace}'", 403
        )
    response = web.HTTPSeeOther(f"/n/{namespace}/secrets")
    remember(request, response, namespace)
    raise response


async def check_key(request: web.Request) -> web.Response:
    """The key rule's words for a key being typed, before anything is sent to the cluster."""
    return web.json_response({"error": key_error(request.query.get("key", ""))})


async def check_value(request: web.Request) -> web.Response:
    """The size rule's words for a file about to be uploaded."""
    try:
        size = int(request.query.get("size", ""))
    except ValueError:
        raise web.HTTPBadRequest(text="size: a number of bytes") from None
    return web.json_response({"error": actions.value_error(size)})


# -- secrets -------------------------------------------------------------------------------


@dataclass
class NewSecret:
    """A secret being added from a form: what went wrong, by field, if anything."""

    key: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    #: The cluster's refusal, its message already redacted.
    failure: Failure | None = None


def read_new_secret(form: Form) -> tuple[NewSecret, bytes | None, list[bytes]]:
    """(the form's state, the value's bytes if valid, what must never reach a message)."""
    new = NewSecret(key=text(form, "key"))
    problem = key_error(new.key)
    if problem:
        new.errors["key"] = problem
    typed = text(form, "value")
    upload = form.get("file")
    data: bytes | None = None
    if isinstance(upload, web.FileField) and upload.filename:
        data = upload.file.read()
        if typed:
            new.errors["value"] = "Type a value or choose a file, not both."
            data = None
    elif typed:
        data = typed.encode()
    else:
        new.errors["value"] = "Type a value or choose a file."
    if data is not None:
        too_big = actions.value_error(len(data))
        if too_big:
            new.errors["value"] = too_big
            data = None
    sensitive = [typed.encode("utf-8", "surrogateescape")] if typed else []
    if data is not None:
        sensitive.append(data)  # scrubbed in every encoding, base64 included
    return new, (None if new.errors else data), sensitive


async def store_new_secret(space: Space, form: Form) -> NewSecret:
    new, data, sensitive = read_new_secret(form)
    if data is None:
        return new
    try:
        await blocking(actions.add_secret, space, new.key, data, WAIT_SECONDS)
    except Failure as err:
        message = redact(err.message, sensitive)
        new.errors["form"] = message
        new.failure = Failure(message, err.kind, err.status)
    return new


def _uri_of(space: Space, cluster: str, objs: list[views.Obj]) -> Any:
    user = views.user_from_evidence(objs, []) or space.user() or space.namespace
    return lambda key: naming.secret_uri(cluster, user, key)


async def secrets_page(
    request: web.Request, new: NewSecret | None = None, status: int = 200
) -> web.Response:
    ui = ui_of(request)
    space = space_of(request)
    cluster = ui.platform.cluster_name

    def read() -> dict[str, Any]:
        objs = space.list_objects(USERSECRETS)
        grants: list[views.Obj] = []
        with contextlib.suppress(Failure):
            grants = space.list_objects(SECRETGRANTS)
        shared: list[views.Obj] = []
        shared_error = ""
        try:
            shared = views.shared_with_me(space.list_copies(naming.REASON_GRANT), cluster)
        except Failure as err:
            shared_error = err.message
        uri_of = _uri_of(space, cluster, objs)
        return {
            "rows": views.secret_table(objs, grants, uri_of),
            "shared": shared,
            "shared_error": shared_error,
        }

    return await show(
        request, "secrets.html", read, status, ns=space.namespace, new=new or NewSecret()
    )


async def add_secret(request: web.Request) -> web.Response:
    space = space_of(request)
    new = await store_new_secret(space, await request.post())
    if new.failure is not None and new.failure.kind in ("forbidden", "unreachable"):
        return failure_page(request, new.failure)  # the form itself may not be shown either
    if new.errors:
        status = STATUS_OF_KIND[new.failure.kind] if new.failure else 400
        return await secrets_page(request, new, status)
    raise web.HTTPSeeOther(f"/n/{space.namespace}/secrets?flash=added&key={new.key}")


async def secret_page(
    request: web.Request, errors: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    ui = ui_of(request)
    space = space_of(request)
    key = key_of(request)
    cluster = ui.platform.cluster_name

    def read() -> dict[str, Any]:
        try:
            obj = space.get(USERSECRETS, key)
        except Failure as err:
            raise secret_not_found(err, key) from None
        grants: list[views.Obj] = []
        with contextlib.suppress(Failure):
            grants = space.list_objects(SECRETGRANTS)
        uri_of = _uri_of(space, cluster, [obj])
        return {"row": views.secret_table([obj], grants, uri_of)[0]}

    return await show(request, "secret.html", read, status, ns=space.namespace, errors=errors or {})


async def confirm_delete(request: web.Request) -> web.Response:
    space = space_of(request)
    key = key_of(request)
    return ui_of(request).render(request, "delete.html", ns=space.namespace, key=key)


async def delete_secret(request: web.Request) -> web.Response:
    space = space_of(request)
    key = key_of(request)
    try:
        await blocking(space.delete, USERSECRETS, key)
    except Failure as err:
        return failure_page(request, secret_not_found(err, key))
    raise web.HTTPSeeOther(f"/n/{space.namespace}/secrets?flash=deleted&key={key}")


async def share(request: web.Request) -> web.Response:
    space = space_of(request)
    key = key_of(request)
    user = text(await request.post(), "user").strip()
    problem = actions.user_error(user)
    if problem:
        return await secret_page(request, {"user": problem}, 400)
    try:
        await blocking(space.get, USERSECRETS, key)
        await blocking(actions.share, space, key, user, WAIT_SECONDS)
    except Failure as err:
        err = secret_not_found(err, key)
        return await secret_page(request, {"user": err.message}, STATUS_OF_KIND[err.kind])
    raise web.HTTPSeeOther(
        f"/n/{space.namespace}/secrets/{key}?flash=shared&key={key}&user={_q(user)}"
    )


def _q(value: str) -> str:
    return quote(value, safe="")


async def revoke(request: web.Request) -> web.Response:
    space = space_of(request)
    key = key_of(request)
    user = text(await request.post(), "user")
    try:
        await blocking(actions.revoke, space, key, user)
    except Failure as err:
        return await secret_page(request, {"revoke": err.message}, STATUS_OF_KIND[err.kind])
    raise web.HTTPSeeOther(
        f"/n/{space.namespace}/secrets/{key}?flash=revoked&key={key}&user={_q(user)}"
    )


# -- jobs ----------------------------------------------------------------------------------


@dataclass
class JobForm:
    image: str = ""
    command: str = ""
    #: ref -> (path, env) as typed
    attach: dict[str, tuple[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    new: NewSecret = field(default_factory=NewSecret)
    notice: str = ""


def read_job_form(form: Form) -> JobForm:
    job = JobForm(image=text(form, "image").strip(), command=text(form, "command"))
    for name in form:
        if name.startswith("ref-"):
            index = name[len("ref-") :]
            ref = text(form, name)
            path = text(form, f"path-{index}").strip()
            env = text(form, f"env-{index}").strip()
            if ref and (path or env):
                job.attach[ref] = (path, env)
    return job


async def available_secrets(space: Space, cluster: str) -> list[dict[str, str]]:
    """What a job can use: one's own secrets, then those shared with one."""

    def read() -> list[dict[str, str]]:
        mine = [
            {"ref": f"secret:{row['key']}", "label": str(row["key"]), "owner": ""}
            for row in views.secret_rows(space.list_objects(USERSECRETS), lambda k: "")
        ]
        shared: list[views.Obj] = []
        with contextlib.suppress(Failure):
            shared = views.shared_with_me(space.list_copies(naming.REASON_GRANT), cluster)
        return mine + [
            {"ref": str(r["ref"]), "label": str(r["ref"]), "owner": str(r["owner"])} for r in shared
        ]

    return await blocking(read)


async def jobs_page(
    request: web.Request, job: JobForm | None = None, status: int = 200
) -> web.Response:
    ui = ui_of(request)
    space = space_of(request)
    try:
        available = await available_secrets(space, ui.platform.cluster_name)
        recent = await blocking(jobs.recent, space)
    except Failure as err:
        return failure_page(request, err)
    job = job or JobForm()
    listed = {a["ref"] for a in available}
    # A reference typed or kept from an earlier job stays on the form even if not listed.
    extra = [{"ref": r, "label": r, "owner": ""} for r in job.attach if r not in listed]
    rows = []
    for a in available + extra:
        path, env = job.attach.get(a["ref"], ("", ""))
        rows.append({**a, "path": path, "env": env})
    return ui.render(
        request,
        "jobs.html",
        status=status,
        ns=space.namespace,
        job=job,
        rows=rows,
        recent=[jobs.summarize(j, [], []) for j in recent],
    )


async def run_job(request: web.Request) -> web.Response:
    space = space_of(request)
    form = await request.post()
    job = read_job_form(form)
    if text(form, "action") == "add-secret":
        job.new = await store_new_secret(space, form)
        if not job.new.errors:
            job.notice = f"Secret '{job.new.key}' saved; attach it below."
            job.new = NewSecret()
        return await jobs_page(request, job, 400 if job.new.errors else 200)
    if not job.image:
        job.errors["image"] = "Enter the image to run, e.g. ubuntu:24.04."
    try:
        command = shlex.split(job.command)
    except ValueError as exc:
        job.errors["command"] = f"Cannot split the command into words: {exc}."
        command = []
    if job.errors:
        return await jobs_page(request, job, 400)
    attachments = [jobs.Attachment(ref, path, env) for ref, (path, env) in job.attach.items()]
    body = jobs.job_body(job.image, command, attachments)
    try:
        await blocking(jobs.try_pod, space, body)
        created = await blocking(jobs.create, space, body)
    except Failure as err:
        job.errors["form"] = err.message
        return await jobs_page(request, job, STATUS_OF_KIND[err.kind])
    raise web.HTTPSeeOther(f"/n/{space.namespace}/jobs/{created['metadata']['name']}")


def job_name_of(request: web.Request) -> str:
    name = request.match_info["name"]
    if not is_namespace_name(name):  # Job names are DNS labels too
        raise web.HTTPNotFound(text="Not a job name")
    return name


async def job_page(request: web.Request) -> web.Response:
    space = space_of(request)
    name = job_name_of(request)
    try:
        state = await blocking(jobs.state, space, name)
    except Failure as err:
        if err.status == 404:
            err = Failure(f"Job '{name}' not found", "not_found")
        return failure_page(request, err)
    template = "job_state.html" if request.path.endswith("/state") else "job.html"
    return ui_of(request).render(request, template, ns=space.namespace, state=state)


async def run_again(request: web.Request) -> web.Response:
    space = space_of(request)
    name = job_name_of(request)
    try:
        old = await blocking(jobs.get, space, name)
        body = jobs.again(old)
    except Failure as err:
        return failure_page(request, err)
    try:
        await blocking(jobs.try_pod, space, body)
        created = await blocking(jobs.create, space, body)
    except Failure as err:
        image, command, _ = jobs.template_of(old)
        job = JobForm(image=image, command=shlex.join(command), errors={"form": err.message})
        job.attach = _attached(old)
        return await jobs_page(request, job, STATUS_OF_KIND[err.kind])
    raise web.HTTPSeeOther(f"/n/{space.namespace}/jobs/{created['metadata']['name']}")


def _attached(job: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The form's rows for an existing job's annotations (our own format: one entry a line)."""
    _, _, ours = jobs.template_of(job)
    found: dict[str, tuple[str, str]] = {}
    for line in ours.get(VOLUMES_ANNOTATION, "").splitlines():
        ref, _, path = line.rpartition(":")
        found[ref] = (path, found.get(ref, ("", ""))[1])
    for line in ours.get(ENV_ANNOTATION, "").splitlines():
        name, _, ref = line.partition("=")
        found[ref] = (found.get(ref, ("", ""))[0], name)
    return found
