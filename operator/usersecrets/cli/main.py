"""The `usersecrets` command: Neu.ro's `secret`, `share` and `acl` commands for Kubernetes.

It talks to the API server with the user's own kubeconfig, so RBAC on the user's namespaces
stays the only authority: the CLI can never do more than `kubectl` could.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import importlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import yaml

from usersecrets import API_VERSION, GROUP, VERSION
from usersecrets.api.resources import MAX_VALUE_BYTES, SecretGrant, UserSecret
from usersecrets.rules import naming
from usersecrets.rules.references import key_error, split_ref
from usersecrets.settings import Settings

EXIT_GENERIC = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_FORBIDDEN = 4
EXIT_UNREACHABLE = 5

USERSECRETS = UserSecret.NAMES.plural
SECRETGRANTS = SecretGrant.NAMES.plural
DEFAULT_CLUSTER = "default"
CLUSTER_ENV = "USERSECRETS_CLUSTER_NAME"
DEBUG_ENV = "USERSECRETS_DEBUG"
#: (connect, read) seconds for each API call: an unreachable cluster must fail, not hang.
REQUEST_TIMEOUT = (10.0, 60.0)
POLL_SECONDS = 0.5
#: Ask for metadata only when listing Secrets: the CLI never needs, so never receives, values.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

Obj = dict[str, Any]


class CliError(click.ClickException):
    """A failure the user can act on: one line on stderr and a meaningful exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_GENERIC) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a class-wide default


class ApiError(CliError):
    """An API call failed; keeps the HTTP status so callers can turn a 404 into their words."""

    def __init__(self, message: str, exit_code: int, status: int | None) -> None:
        super().__init__(message, exit_code)
        self.status = status


# --- Pure parts -------------------------------------------------------------------------


def validate_key(key: str) -> str:
    """The same rule, and words, as the webhook's for keys in pod annotations."""
    problem = key_error(key)
    if problem:
        raise CliError(problem, EXIT_USAGE)
    return key


@dataclass(frozen=True)
class SecretRef:
    """What a user typed to name a secret; user and cluster are None when left implicit."""

    key: str
    user: str | None = None
    cluster: str | None = None


def parse_secret_ref(text: str) -> SecretRef:
    """Accept every form Neu.ro users type: KEY, secret:KEY, secret:/USER/KEY, secret://C/U/K."""
    if ":" not in text:
        return SecretRef(validate_key(text))
    written = split_ref(text)
    if isinstance(written, str):
        raise CliError(written, EXIT_USAGE)
    cluster, user, key = written
    return SecretRef(validate_key(key), user, cluster)


def read_value(arg: str, stdin: IO[bytes]) -> bytes:
    """The value's bytes: `@-` is stdin, `@FILE` a file (binary safe), anything else literal."""
    if arg == "@-":
        data = stdin.read()
    elif arg.startswith("@"):
        if arg == "@":
            raise CliError("Invalid value '@': expected @FILE or @- for stdin", EXIT_USAGE)
        path = Path(arg[1:]).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CliError(f"Cannot read '{path}': {exc.strerror or exc}", EXIT_USAGE) from None
    else:
        # surrogateescape gives back the exact bytes of a non-UTF-8 command-line argument.
        data = arg.encode("utf-8", "surrogateescape")
    if len(data) > MAX_VALUE_BYTES:
        raise CliError(
            f"The value is {len(data)} bytes; a secret holds at most 1 MiB ({MAX_VALUE_BYTES})",
            EXIT_USAGE,
        )
    return data


def _get(obj: Mapping[str, Any] | None, *path: str) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


@dataclass(frozen=True)
class Readiness:
    state: str  # "ready", "failed" or "pending"
    message: str = ""


def readiness(obj: Mapping[str, Any]) -> Readiness:
    """Judge an object the way `kubectl wait` would, but only on a status of its latest spec."""
    generation = _get(obj, "metadata", "generation") or 0
    conditions = _get(obj, "status", "conditions") or []
    ready = next(
        (c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Ready"), None
    )
    observed = _get(obj, "status", "observedGeneration")
    if observed is None and ready is not None:
        observed = ready.get("observedGeneration")
    if observed is None or observed < generation or ready is None:
        return Readiness("pending", "the operator has not processed it yet")
    message = str(ready.get("message") or ready.get("reason") or "")
    if ready.get("status") == "True":
        return Readiness("ready", message)
    if ready.get("status") == "False":
        return Readiness("failed", message or "not ready")
    return Readiness("pending", message)


def wait_ready(
    fetch: Callable[[], Obj],
    what: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Obj:
    deadline = clock() + timeout
    while True:
        obj = fetch()
        state = readiness(obj)
        if state.state == "ready":
            return obj
        if state.state == "failed":
            raise CliError(f"{what} is not ready: {state.message}", EXIT_GENERIC)
        if clock() >= deadline:
            raise CliError(
                f"Timed out after {timeout:g}s waiting for {what} to become ready "
                f"({state.message})",
                EXIT_GENERIC,
            )
        sleep(POLL_SECONDS)


def _status_row(obj: Mapping[str, Any], key: str, uri_of: Callable[[str], str]) -> Obj:
    """What a listing shows of a UserSecret's or SecretGrant's status."""
    namespaces = _get(obj, "status", "namespaces")
    return {
        "uri": _get(obj, "status", "uri") or uri_of(key),
        "ready": readiness(obj).state == "ready",
        "namespaces": sorted(str(n) for n in namespaces) if isinstance(namespaces, list) else [],
    }


def secret_rows(objs: Iterable[Mapping[str, Any]], uri_of: Callable[[str], str]) -> list[Obj]:
    """What `secret ls` may show of UserSecrets: never spec, so never a value."""
    rows = []
    for obj in objs:
        key = str(_get(obj, "metadata", "name"))
        rows.append({"key": key, **_status_row(obj, key, uri_of)})
    return sorted(rows, key=lambda r: str(r["key"]))


def format_secret_rows(rows: Sequence[Mapping[str, Any]], *, quiet: bool, full_uri: bool) -> str:
    column = [str(r["uri"] if full_uri else r["key"]) for r in rows]
    return "".join(f"{line}\n" for line in ([] if quiet else ["KEY"]) + column)


def _parse_uri(uri: Any) -> tuple[str, str, str] | None:
    """(cluster, user, key) of a URI the operator wrote, or None."""
    match = re.fullmatch(r"secret://([^/]+)/([^/]+)/([^/]+)", uri) if isinstance(uri, str) else None
    return (match[1], match[2], match[3]) if match else None


def shared_with_me(copies: Iterable[Mapping[str, Any]], cluster: str) -> list[Obj]:
    """Secrets granted to me, read from the copies in my namespace (the owner's is off limits)."""
    rows: dict[str, Obj] = {}
    for copy in copies:
        labels = _get(copy, "metadata", "labels") or {}
        if labels.get(naming.REASON_LABEL) != naming.REASON_GRANT:
            continue
        uri = (_get(copy, "metadata", "annotations") or {}).get(naming.URI_ANNOTATION)
        owner, key = labels.get(naming.OWNER_LABEL), labels.get(naming.KEY_LABEL)
        parsed = _parse_uri(uri)
        if parsed and not (owner and key):
            owner, key = parsed[1], parsed[2]
        if not (owner and key):
            continue
        uri = uri or naming.secret_uri(cluster, owner, key)
        rows[uri] = {"uri": uri, "ref": f"secret:/{owner}/{key}", "owner": owner, "key": key}
    return sorted(rows.values(), key=lambda r: (str(r["owner"]), str(r["key"])))


def grant_rows(grants: Iterable[Mapping[str, Any]], uri_of: Callable[[str], str]) -> list[Obj]:
    rows = []
    for grant in grants:
        key = str(_get(grant, "spec", "secretName") or "")
        user = str(_get(grant, "spec", "user") or "")
        name = _get(grant, "metadata", "name")
        rows.append({"key": key, "user": user, "name": name, **_status_row(grant, key, uri_of)})
    return sorted(rows, key=lambda r: (str(r["key"]), str(r["user"])))


def format_acl(rows: Sequence[Mapping[str, Any]], *, full_uri: bool) -> str:
    return "".join(f"{r['uri'] if full_uri else r['ref']}\n" for r in rows)


def format_shared(rows: Sequence[Mapping[str, Any]], *, full_uri: bool) -> str:
    return "".join(
        f"{r['uri'] if full_uri else 'secret:' + str(r['key'])} {r['user']}\n" for r in rows
    )


def render(rows: Sequence[Mapping[str, Any]], output: str, table: Callable[[], str]) -> str:
    if output == "json":
        return json.dumps(list(rows), indent=2, sort_keys=True) + "\n"
    if output == "yaml":
        return yaml.safe_dump([dict(r) for r in rows], sort_keys=True, default_flow_style=False)
    return table()


def matching_grants(grants: Iterable[Obj], key: str, user: str) -> list[Obj]:
    """Grants are found by what they say, not by name: YAML-made grants have any name."""
    return [
        g
        for g in grants
        if _get(g, "spec", "secretName") == key and _get(g, "spec", "user") == user
    ]


def user_from_evidence(
    usersecrets: Iterable[Mapping[str, Any]], own_copies: Iterable[Mapping[str, Any]]
) -> str | None:
    """Who owns this namespace, according to what the operator wrote into it."""
    for obj in usersecrets:
        parsed = _parse_uri(_get(obj, "status", "uri"))
        if parsed:
            return parsed[1]
    for copy in own_copies:
        labels = _get(copy, "metadata", "labels") or {}
        if labels.get(naming.REASON_LABEL) == naming.REASON_OWNER and labels.get(
            naming.OWNER_LABEL
        ):
            return str(labels[naming.OWNER_LABEL])
    return None


def redact(message: str, sensitive: Iterable[str]) -> str:
    """Belt and braces: a server message must never carry a value to the terminal."""
    message = re.sub(r'(spec\.value: Invalid value: )"(?:[^"\\]|\\.)*"', r'\1"<redacted>"', message)
    for value in sorted(sensitive, key=len, reverse=True):
        if len(value) >= 4:
            message = message.replace(value, "<redacted>")
    return message


@dataclass(frozen=True)
class Operation:
    """The API call being made, so a refusal can say which verb on what was refused."""

    verb: str
    resource: str
    namespace: str | None = None
    name: str | None = None

    def describe(self) -> str:
        what = f"{self.resource} '{self.name}'" if self.name else self.resource
        where = f" in namespace '{self.namespace}'" if self.namespace else ""
        return f"{self.verb} {what}{where}"


def _status_message(body: Any) -> tuple[str, Obj]:
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        status = None
    if isinstance(status, dict):
        return str(status.get("message") or ""), status
    return (body.strip() if isinstance(body, str) else ""), {}


def _api_error(exc: Any, op: Operation | None) -> CliError:
    status_code = getattr(exc, "status", None)
    message, status = _status_message(getattr(exc, "body", None))
    message = message or str(getattr(exc, "reason", "") or "")
    action = f" ({op.describe()})" if op else ""
    if status_code == 401:
        text = "Unauthorized: the cluster did not accept your credentials"
        return ApiError(f"{text}{action}", EXIT_FORBIDDEN, status_code)
    if status_code == 403:
        if "admission webhook" in message:
            return ApiError(f"Rejected: {message}", EXIT_USAGE, status_code)
        refused = f"you may not {op.describe()}" if op else "the API server refused the request"
        return ApiError(f"Forbidden: {refused}: {message}", EXIT_FORBIDDEN, status_code)
    if status_code == 404:
        if not status.get("details") and "could not find the requested resource" in message:
            resource = op.resource if op else "the usersecrets.io"
            return ApiError(
                f"The {resource} API is not served by this cluster: "
                "are the usersecrets CRDs installed?",
                EXIT_NOT_FOUND,
                status_code,
            )
        return ApiError(f"Not found: {message}", EXIT_NOT_FOUND, status_code)
    if status_code in (400, 422):
        return ApiError(f"Invalid: {message}", EXIT_USAGE, status_code)
    if status_code == 409:
        return ApiError(f"Conflict: {message}", EXIT_GENERIC, status_code)
    what = f" while trying to {op.describe()}" if op else ""
    return ApiError(
        f"API error {status_code}{what}: {message or 'no details'}", EXIT_GENERIC, status_code
    )


def _unreachable(exc: BaseException) -> str:
    import urllib3.exceptions

    where = ""
    reason: BaseException | None = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        pool = exc.pool
        if pool is not None and getattr(pool, "host", None):
            where = f" at {pool.host}:{pool.port}"
        reason = exc.reason or exc
    detail = str(reason)
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        # Drop the connection's repr: "HTTPSConnection(host=..., port=...): Failed to ..."
        detail = re.sub(r"^(<[^>]*>|\w+\([^)]*\)): ", "", detail)
    return f"Cannot reach the Kubernetes API server{where}: {detail}"


def error_from_exception(exc: BaseException, op: Operation | None = None) -> CliError:
    """Every failure as one line and an exit code a script can branch on."""
    import urllib3.exceptions
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ApiException):
        return _api_error(exc, op)
    if isinstance(exc, ConfigException):
        return CliError(f"Cannot use the kubeconfig: {exc}", EXIT_UNREACHABLE)
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return CliError(_unreachable(exc), EXIT_UNREACHABLE)
    if isinstance(exc, OSError):
        return CliError(f"{exc.strerror or exc}", EXIT_GENERIC)
    return CliError(f"Unexpected error: {type(exc).__name__}: {exc}", EXIT_GENERIC)


# --- The cluster ------------------------------------------------------------------------


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError:
        return Settings.model_construct()


class Kube:
    """The handful of API calls the CLI makes, on plain dicts, as the user themself."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self._user: tuple[str | None] | None = None

    def _call(self, op: Operation, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except Exception as exc:
            raise error_from_exception(exc, op) from None

    def _custom(
        self, verb: str, plural: str, name: str | None, fn: Callable[..., Any], *args: Any
    ) -> Any:
        """`fn(GROUP, VERSION, namespace, plural, *args)` of the CustomObjectsApi."""
        op = Operation(verb, f"{plural}.{GROUP}", self.namespace, name)
        return self._call(op, fn, GROUP, VERSION, self.namespace, plural, *args)

    def list_objects(self, plural: str) -> list[Obj]:
        result = self._custom("list", plural, None, self.custom.list_namespaced_custom_object)
        return list(result.get("items") or [])

    def get(self, plural: str, name: str) -> Obj:
        fn = self.custom.get_namespaced_custom_object
        return dict(self._custom("get", plural, name, fn, name))

    def create(self, plural: str, body: Obj) -> Obj:
        fn = self.custom.create_namespaced_custom_object
        return dict(self._custom("create", plural, body["metadata"]["name"], fn, body))

    def replace(self, plural: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        fn = self.custom.replace_namespaced_custom_object
        return dict(self._custom("update", plural, name, fn, name, body))

    def delete(self, plural: str, name: str) -> None:
        self._custom("delete", plural, name, self.custom.delete_namespaced_custom_object, name)

    def list_copies(self, reason: str) -> list[Obj]:
        result = self._call(
            Operation("list", "secrets", self.namespace),
            self.core.list_namespaced_secret,
            self.namespace,
            label_selector=f"{naming.REASON_LABEL}={reason}",
            _headers={"Accept": METADATA_ONLY},
            # Raw: the typed model refuses the `items: null` of an empty metadata-only list.
            _preload_content=False,
        )
        return list(json.loads(result.data).get("items") or [])

    def user(self) -> str | None:
        """The namespace's user as the operator sees it, or None when we cannot tell.

        Users often may not read their Namespace object, so what the operator wrote (a URI in
        a status, the owner label of its copies) is the next best witness.
        """
        if self._user is None:
            self._user = (self._find_user(),)
        return self._user[0]

    def _find_user(self) -> str | None:
        try:
            ns = self._call(
                Operation("get", "namespaces", name=self.namespace),
                self.core.read_namespace,
                self.namespace,
            )
            labels = ns.metadata.labels if ns.metadata else None
            return naming.user_of_namespace(self.namespace, labels, _settings())
        except ApiError:
            pass
        objs: list[Obj] = []
        copies: list[Obj] = []
        with contextlib.suppress(ApiError):
            objs = self.list_objects(USERSECRETS)
        with contextlib.suppress(ApiError):
            copies = [] if user_from_evidence(objs, []) else self.list_copies(naming.REASON_OWNER)
        return user_from_evidence(objs, copies)


def connect(session: Session) -> Kube:
    config: Any = importlib.import_module("kubernetes.config")  # untyped

    config_file = str(Path(session.kubeconfig).expanduser()) if session.kubeconfig else None
    if config_file and not Path(config_file).is_file():
        raise CliError(f"Cannot use the kubeconfig: no file '{config_file}'", EXIT_UNREACHABLE)
    try:
        # Reads the contexts first, so that a mistyped --context is a usage error.
        contexts, chosen = config.list_kube_config_contexts(config_file)
        if session.context:
            chosen = next((c for c in contexts or [] if c.get("name") == session.context), None)
            if chosen is None:
                raise CliError(
                    f"Context '{session.context}' not found in the kubeconfig", EXIT_USAGE
                )
        api_client = config.new_client_from_config(
            config_file=config_file, context=session.context, persist_config=False
        )
    except Exception as exc:
        raise error_from_exception(exc) from None
    namespace = session.namespace or str(_get(chosen, "context", "namespace") or "default")
    return Kube(api_client, namespace)


@dataclass
class Session:
    """Global options; connects lazily so input errors surface before any network trouble."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    sensitive: list[str] = field(default_factory=list)
    _kube: Kube | None = None

    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = connect(self)
        return self._kube


def put(kube: Kube, plural: str, body: Obj, what: str, timeout: float) -> Obj:
    """Create, or give the object of that name `body`'s spec: adding an existing key silently
    replaces its value, like Neu.ro, and sharing again mends a grant edited by hand."""
    deadline = time.monotonic() + max(timeout, 5.0)
    while True:
        try:
            return kube.create(plural, body)
        except ApiError as err:
            if err.status != 409:
                raise
        try:
            current = kube.get(plural, body["metadata"]["name"])
            if not _get(current, "metadata", "deletionTimestamp"):
                current["spec"] = body["spec"]
                current.pop("status", None)
                return kube.replace(plural, current)
        except ApiError as err:
            if err.status not in (404, 409):
                raise
        # Deleted, being deleted, or changed meanwhile: try again from the start.
        if time.monotonic() >= deadline:
            raise CliError(
                f"Could not store {what}: it keeps changing or is being deleted; try again",
                EXIT_GENERIC,
            )
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def _not_found(message: str) -> Iterator[None]:
    """The API's 404 in the user's words."""
    try:
        yield
    except ApiError as err:
        if err.status == 404:
            raise CliError(message, EXIT_NOT_FOUND) from None
        raise


def _own_secret(session: Session, text: str, user: str) -> tuple[Kube, SecretRef]:
    """Only your own secrets can be shared or revoked: grants live in the owner's namespace."""
    if not user or any(c.isspace() or c == "/" for c in user):
        raise CliError(f"Invalid user '{user}'", EXIT_USAGE)
    ref = parse_secret_ref(text)  # input errors before any network trouble
    kube = session.kube()
    if ref.user is not None:
        me = kube.user()
        if me is None:
            raise CliError(
                f"You can only share your own secrets, and it is not known yet whether namespace "
                f"'{kube.namespace}' belongs to '{ref.user}': use secret:{ref.key}",
                EXIT_USAGE,
            )
        if ref.user != me:
            raise CliError(
                f"You can only share your own secrets: '{text}' belongs to '{ref.user}', "
                f"and namespace '{kube.namespace}' belongs to '{me}'",
                EXIT_USAGE,
            )
    return kube, ref


def _uri_of(kube: Kube, cluster: str, shown: bool) -> Callable[[str], str]:
    """URIs the operator has not reported yet; asks whose namespace it is only if they show."""
    if not shown:
        return lambda key: ""
    return lambda key: naming.secret_uri(cluster, kube.user() or kube.namespace, key)


# --- Commands ---------------------------------------------------------------------------


class _Group(click.Group):
    """Turns every failure into one line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as exc:
            error = exc
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                raise
            error = error_from_exception(exc)
        message = redact(error.message, ctx.obj.sensitive if isinstance(ctx.obj, Session) else [])
        raise (error if message == error.message else CliError(message, error.exit_code)) from None


pass_session = click.make_pass_decorator(Session, ensure=True)

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="Output format.",
)
cluster_option = click.option(
    "--cluster",
    envvar=CLUSTER_ENV,
    default=DEFAULT_CLUSTER,
    show_default=True,
    help=f"Cluster name for URIs the operator has not reported yet (env {CLUSTER_ENV}).",
)


def wait_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=30.0,
        show_default=True,
        help="Seconds --wait waits.",
    )(command)
    return click.option("--wait", is_flag=True, help="Wait until the operator reports it Ready.")(
        command
    )


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  usersecrets secret add wandb-token @~/.wandb/token
  usersecrets -n alice-dev secret ls
  usersecrets share secret:wandb-token bob --wait
  usersecrets acl list""",
)
@click.option(
    "--kubeconfig",
    metavar="PATH",
    help="Kubeconfig to use (default: $KUBECONFIG or ~/.kube/config).",
)
@click.option("--context", metavar="NAME", help="Kubeconfig context (default: the current one).")
@click.option(
    "-n",
    "--namespace",
    metavar="NAMESPACE",
    help="Your namespace to act in (default: the context's namespace).",
)
@click.pass_context
def cli(
    ctx: click.Context, kubeconfig: str | None, context: str | None, namespace: str | None
) -> None:
    """Personal secrets on Kubernetes, the way `neuro secret` works.

    Everything runs with your own kubeconfig and permissions, in your namespace.
    """
    ctx.obj = Session(kubeconfig=kubeconfig, context=context, namespace=namespace)


@cli.group(
    epilog="""\b
Examples:
  usersecrets secret add db-password s3cr3t
  usersecrets secret ls --full-uri
  usersecrets secret rm db-password""",
)
def secret() -> None:
    """Add, list and remove your secrets."""


@secret.command(
    "add",
    epilog="""\b
Examples:
  usersecrets secret add db-password s3cr3t
  usersecrets secret add aws-key @~/.aws/credentials
  vault read -field=token secret/ci | usersecrets secret add ci-token @-
  usersecrets secret add db-password s3cr3t --wait""",
)
@click.argument("key")
@click.argument("value")
@wait_options
@pass_session
def secret_add(session: Session, key: str, value: str, wait: bool, timeout: float) -> None:
    """Add the secret KEY, or replace its value.

    VALUE is the value itself, @FILE to read a file's bytes, or @- to read standard input.
    The value is never printed.
    """
    if not value.startswith("@"):
        session.sensitive.append(value)
    validate_key(key)
    encoded = base64.b64encode(read_value(value, sys.stdin.buffer)).decode()
    session.sensitive.append(encoded)
    kube = session.kube()
    body: Obj = {
        "apiVersion": API_VERSION,
        "kind": UserSecret.NAMES.kind,
        "metadata": {"name": key},
        "spec": {"value": encoded},
    }
    put(kube, USERSECRETS, body, f"secret '{key}'", timeout)
    if wait:
        wait_ready(lambda: kube.get(USERSECRETS, key), f"Secret '{key}'", timeout)


@secret.command(
    "ls",
    epilog="""\b
Examples:
  usersecrets secret ls
  usersecrets secret ls -q
  usersecrets secret ls --full-uri
  usersecrets secret ls -o yaml""",
)
@click.option("-q", "--quiet", is_flag=True, help="Print bare keys, no header.")
@click.option("--full-uri", is_flag=True, help="Print secret://CLUSTER/USER/KEY URIs.")
@output_option
@cluster_option
@pass_session
def secret_ls(session: Session, quiet: bool, full_uri: bool, output: str, cluster: str) -> None:
    """List your secrets (never their values)."""
    kube = session.kube()
    uri_of = _uri_of(kube, cluster, full_uri or output != "table")
    rows = secret_rows(kube.list_objects(USERSECRETS), uri_of)
    text = render(rows, output, lambda: format_secret_rows(rows, quiet=quiet, full_uri=full_uri))
    click.echo(text, nl=False)


@secret.command(
    "rm",
    epilog="""\b
Examples:
  usersecrets secret rm db-password""",
)
@click.argument("key")
@pass_session
def secret_rm(session: Session, key: str) -> None:
    """Remove the secret KEY; its copies disappear wherever it was shared."""
    validate_key(key)
    with _not_found(f"Secret '{key}' not found"):
        session.kube().delete(USERSECRETS, key)


@cli.command(
    "share",
    epilog="""\b
Examples:
  usersecrets share secret:wandb-token bob
  usersecrets share wandb-token bob --wait""",
)
@click.argument("uri", metavar="secret:KEY")
@click.argument("user")
@click.argument("permission", required=False, type=click.Choice(["read"]))
@wait_options
@pass_session
def share(
    session: Session,
    uri: str,
    user: str,
    permission: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Let USER use your secret in their namespaces (read-only: never change it).

    PERMISSION is accepted for Neu.ro compatibility; only `read` exists.
    """
    kube, ref = _own_secret(session, uri, user)
    with _not_found(f"Secret '{ref.key}' not found"):
        obj = kube.get(USERSECRETS, ref.key)
    parsed = _parse_uri(_get(obj, "status", "uri"))
    if ref.cluster is not None and parsed is not None and parsed[0] != ref.cluster:
        raise CliError(f"Invalid URI cluster: '{ref.cluster}' != '{parsed[0]}'", EXIT_USAGE)
    existing = matching_grants(kube.list_objects(SECRETGRANTS), ref.key, user)
    if existing:
        grant = existing[0]
    else:
        body: Obj = {
            "apiVersion": API_VERSION,
            "kind": SecretGrant.NAMES.kind,
            "metadata": {"name": naming.grant_name(ref.key, user)},
            "spec": {"secretName": ref.key, "user": user},
        }
        grant = put(kube, SECRETGRANTS, body, f"the share of '{ref.key}' with {user}", timeout)
    if wait:
        name = str(grant["metadata"]["name"])
        wait_ready(
            lambda: kube.get(SECRETGRANTS, name),
            f"Sharing of secret '{ref.key}' with {user}",
            timeout,
        )


@click.command(
    "revoke",
    epilog="""\b
Examples:
  usersecrets revoke secret:wandb-token bob
  usersecrets acl revoke secret:wandb-token bob""",
)
@click.argument("uri", metavar="secret:KEY")
@click.argument("user")
@pass_session
def revoke(session: Session, uri: str, user: str) -> None:
    """Take back a share: USER can no longer use your secret."""
    kube, ref = _own_secret(session, uri, user)
    grants = matching_grants(kube.list_objects(SECRETGRANTS), ref.key, user)
    if not grants:
        raise CliError(f"Secret '{ref.key}' is not shared with '{user}'", EXIT_NOT_FOUND)
    for grant in grants:
        try:
            kube.delete(SECRETGRANTS, str(grant["metadata"]["name"]))
        except ApiError as err:
            if err.status != 404:
                raise


cli.add_command(revoke)


@cli.group(
    epilog="""\b
Examples:
  usersecrets acl list
  usersecrets acl list --shared
  usersecrets acl revoke secret:wandb-token bob""",
)
def acl() -> None:
    """What is shared with you, and what you shared."""


@acl.command(
    "list",
    epilog="""\b
Examples:
  usersecrets acl list
  usersecrets acl list --full-uri
  usersecrets acl list --shared -o json""",
)
@click.option("--shared", is_flag=True, help="List what you shared, as `secret:KEY USER` lines.")
@click.option("--full-uri", is_flag=True, help="Print secret://CLUSTER/USER/KEY URIs.")
@output_option
@cluster_option
@pass_session
def acl_list(session: Session, shared: bool, full_uri: bool, output: str, cluster: str) -> None:
    """List the secrets shared with you (as secret:/USER/KEY), or with --shared, by you."""
    kube = session.kube()
    if shared:
        uri_of = _uri_of(kube, cluster, full_uri or output != "table")
        rows = grant_rows(kube.list_objects(SECRETGRANTS), uri_of)
        text = render(rows, output, lambda: format_shared(rows, full_uri=full_uri))
    else:
        rows = shared_with_me(kube.list_copies(naming.REASON_GRANT), cluster)
        text = render(rows, output, lambda: format_acl(rows, full_uri=full_uri))
    click.echo(text, nl=False)


acl.add_command(revoke)


def main() -> None:
    cli(prog_name="usersecrets")


if __name__ == "__main__":
    main()
