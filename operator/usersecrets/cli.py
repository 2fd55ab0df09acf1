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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import yaml

from usersecrets import API_VERSION, GROUP, VERSION, naming
from usersecrets.settings import Settings

EXIT_GENERIC = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_FORBIDDEN = 4
EXIT_UNREACHABLE = 5

USERSECRETS = "usersecrets"
SECRETGRANTS = "secretgrants"
MAX_KEY_LENGTH = 63
MAX_VALUE_BYTES = 1 << 20
DEFAULT_CLUSTER = "default"
CLUSTER_ENV = "USERSECRETS_CLUSTER_NAME"
DEBUG_ENV = "USERSECRETS_DEBUG"
#: (connect, read) seconds for each API call: an unreachable cluster must fail, not hang.
REQUEST_TIMEOUT = (10.0, 60.0)
POLL_SECONDS = 0.5
#: Ask for metadata only when listing Secrets: the CLI never needs, so never receives, values.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

OUTPUT_FORMATS = ("table", "json", "yaml")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_KEY_RULE = (
    "keys must be lowercase DNS-1123 subdomains of at most 63 characters "
    "(a-z, 0-9, '-' and '.', starting and ending with a letter or digit)"
)

T = TypeVar("T")
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


def key_problem(key: str) -> str | None:
    """Why `key` can't be stored, or None; keys become object names, hence DNS-1123 and 63."""
    reasons = []
    if not key:
        reasons.append("it is empty")
    if len(key) > MAX_KEY_LENGTH:
        reasons.append(f"it is {len(key)} characters long")
    if any(c.isupper() for c in key):
        reasons.append("it contains uppercase letters")
    if "_" in key:
        reasons.append("it contains '_'")
    if not reasons and not _DNS_SUBDOMAIN.fullmatch(key):
        reasons.append("it is not a DNS-1123 subdomain")
    if not reasons:
        return None
    return (
        f"Invalid secret key '{key}': {'; '.join(reasons)}. {_KEY_RULE[0].upper()}{_KEY_RULE[1:]}"
    )


def validate_key(key: str) -> str:
    problem = key_problem(key)
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
    if "#" in text or "?" in text:
        raise CliError(f"Invalid secret reference '{text}': '#' and '?' are not allowed", 2)
    scheme, sep, rest = text.partition(":")
    if not sep:
        return SecretRef(validate_key(text))
    if scheme != "secret":
        raise CliError(f"Invalid URI scheme: '{scheme}' != 'secret'", EXIT_USAGE)
    forms = "expected secret:KEY, secret:/USER/KEY or secret://CLUSTER/USER/KEY"
    if rest.startswith("//"):
        parts = rest[2:].split("/")
        if len(parts) != 3 or not all(parts):
            raise CliError(f"Invalid secret reference '{text}': {forms}", EXIT_USAGE)
        return SecretRef(validate_key(parts[2]), parts[1], parts[0])
    if rest.startswith("/"):
        parts = rest[1:].split("/")
        if len(parts) != 2 or not all(parts):
            raise CliError(f"Invalid secret reference '{text}': {forms}", EXIT_USAGE)
        return SecretRef(validate_key(parts[1]), parts[0])
    if "/" in rest:
        raise CliError(f"Invalid secret reference '{text}': {forms}", EXIT_USAGE)
    return SecretRef(validate_key(rest))


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


def is_ready(obj: Mapping[str, Any]) -> bool:
    return readiness(obj).state == "ready"


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


def _namespaces(status_value: Any) -> list[str]:
    if isinstance(status_value, list):
        return sorted(str(n) for n in status_value)
    return []


def secret_rows(objs: Iterable[Mapping[str, Any]], uri_of: Callable[[str], str]) -> list[Obj]:
    """What `secret ls` may show of UserSecrets: never spec, so never a value."""
    rows = []
    for obj in objs:
        key = str(_get(obj, "metadata", "name"))
        rows.append(
            {
                "key": key,
                "uri": _get(obj, "status", "uri") or uri_of(key),
                "ready": is_ready(obj),
                "namespaces": _namespaces(_get(obj, "status", "namespaces")),
            }
        )
    return sorted(rows, key=lambda r: str(r["key"]))


def format_secret_rows(rows: Sequence[Mapping[str, Any]], *, quiet: bool, full_uri: bool) -> str:
    column = [str(r["uri"] if full_uri else r["key"]) for r in rows]
    return "".join(f"{line}\n" for line in ([] if quiet else ["KEY"]) + column)


def short_ref(user: str, key: str) -> str:
    return f"secret:/{user}/{key}"


def _parse_uri(uri: str) -> tuple[str, str, str] | None:
    match = re.fullmatch(r"secret://([^/]+)/([^/]+)/([^/]+)", uri)
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
        parsed = _parse_uri(uri) if uri else None
        if parsed and not (owner and key):
            owner, key = parsed[1], parsed[2]
        if not (owner and key):
            continue
        uri = uri or naming.secret_uri(cluster, owner, key)
        rows[uri] = {"uri": uri, "ref": short_ref(owner, key), "owner": owner, "key": key}
    return sorted(rows.values(), key=lambda r: (str(r["owner"]), str(r["key"])))


def grant_rows(grants: Iterable[Mapping[str, Any]], uri_of: Callable[[str], str]) -> list[Obj]:
    rows = []
    for grant in grants:
        key = str(_get(grant, "spec", "secretName") or "")
        user = str(_get(grant, "spec", "user") or "")
        rows.append(
            {
                "key": key,
                "user": user,
                "name": _get(grant, "metadata", "name"),
                "uri": _get(grant, "status", "uri") or uri_of(key),
                "ready": is_ready(grant),
                "namespaces": _namespaces(_get(grant, "status", "namespaces")),
            }
        )
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
        uri = _get(obj, "status", "uri")
        parsed = _parse_uri(uri) if isinstance(uri, str) else None
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

    def _op(self, verb: str, plural: str, name: str | None = None) -> Operation:
        return Operation(verb, f"{plural}.{GROUP}", self.namespace, name)

    def list_objects(self, plural: str) -> list[Obj]:
        result = self._call(
            self._op("list", plural),
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
        )
        return list(result.get("items") or [])

    def get(self, plural: str, name: str) -> Obj:
        return dict(
            self._call(
                self._op("get", plural, name),
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                plural,
                name,
            )
        )

    def create(self, plural: str, body: Obj) -> Obj:
        return dict(
            self._call(
                self._op("create", plural, body["metadata"]["name"]),
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                plural,
                body,
            )
        )

    def replace(self, plural: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        return dict(
            self._call(
                self._op("update", plural, name),
                self.custom.replace_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                plural,
                name,
                body,
            )
        )

    def delete(self, plural: str, name: str) -> None:
        self._call(
            self._op("delete", plural, name),
            self.custom.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            name,
        )

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
        items = json.loads(result.data).get("items") or []
        return list(items)

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


def _kube_namespace(config_file: str | None, context: str | None) -> str:
    config: Any = importlib.import_module("kubernetes.config")  # untyped

    contexts, active = config.list_kube_config_contexts(config_file)
    chosen = active
    if context:
        chosen = next((c for c in contexts or [] if c.get("name") == context), None)
        if chosen is None:
            raise CliError(f"Context '{context}' not found in the kubeconfig", EXIT_USAGE)
    return str(_get(chosen, "context", "namespace") or "default")


def connect(session: Session) -> Kube:
    config: Any = importlib.import_module("kubernetes.config")  # untyped

    config_file = str(Path(session.kubeconfig).expanduser()) if session.kubeconfig else None
    if config_file and not Path(config_file).is_file():
        raise CliError(f"Cannot use the kubeconfig: no file '{config_file}'", EXIT_UNREACHABLE)
    try:
        # Reads the contexts first, so that a mistyped --context is a usage error.
        namespace = _kube_namespace(config_file, session.context)
        api_client = config.new_client_from_config(
            config_file=config_file, context=session.context, persist_config=False
        )
    except CliError:
        raise
    except Exception as exc:
        raise error_from_exception(exc) from None
    return Kube(api_client, session.namespace or namespace)


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


# --- Commands ---------------------------------------------------------------------------


class _Group(click.Group):
    """Turns every failure into one line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as exc:
            message = redact(exc.message, _sensitive(ctx))
            if message != exc.message:
                raise CliError(message, exc.exit_code) from None
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise
            raise self._convert(ctx, exc) from None
        except Exception as exc:
            raise self._convert(ctx, exc) from None

    @staticmethod
    def _convert(ctx: click.Context, exc: Exception) -> CliError:
        if os.environ.get(DEBUG_ENV):
            raise exc
        error = error_from_exception(exc)
        message = redact(error.message, _sensitive(ctx))
        return error if message == error.message else CliError(message, error.exit_code)


def _sensitive(ctx: click.Context) -> list[str]:
    return ctx.obj.sensitive if isinstance(ctx.obj, Session) else []


pass_session = click.make_pass_decorator(Session, ensure=True)

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_FORMATS),
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
wait_options = [
    click.option("--wait", is_flag=True, help="Wait until the operator reports it Ready."),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=30.0,
        show_default=True,
        help="Seconds --wait waits.",
    ),
]


def _with(options: Sequence[Callable[[T], T]]) -> Callable[[T], T]:
    def apply(fn: T) -> T:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


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
    cls=_Group,
    epilog="""\b
Examples:
  usersecrets secret add db-password s3cr3t
  usersecrets secret ls --full-uri
  usersecrets secret rm db-password""",
)
def secret() -> None:
    """Add, list and remove your secrets."""


def put_user_secret(
    kube: Kube,
    key: str,
    encoded: str,
    *,
    timeout: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Obj:
    """Create or replace: adding an existing key silently replaces its value, like Neu.ro."""
    body: Obj = {
        "apiVersion": API_VERSION,
        "kind": "UserSecret",
        "metadata": {"name": key},
        "spec": {"value": encoded},
    }
    deadline = clock() + max(timeout, 5.0)
    while True:
        try:
            return kube.create(USERSECRETS, body)
        except ApiError as err:
            if err.status != 409:
                raise
        try:
            current = kube.get(USERSECRETS, key)
            if not _get(current, "metadata", "deletionTimestamp"):
                current["spec"] = {"value": encoded}
                current.pop("status", None)
                return kube.replace(USERSECRETS, current)
        except ApiError as err:
            if err.status not in (404, 409):
                raise
        # Deleted, being deleted, or changed meanwhile: try again from the start.
        if clock() >= deadline:
            raise CliError(
                f"Could not store secret '{key}': it keeps changing or is being deleted; try again",
                EXIT_GENERIC,
            )
        sleep(POLL_SECONDS)


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
@_with(wait_options)
@pass_session
def secret_add(session: Session, key: str, value: str, wait: bool, timeout: float) -> None:
    """Add the secret KEY, or replace its value.

    VALUE is the value itself, @FILE to read a file's bytes, or @- to read standard input.
    The value is never printed.
    """
    if not value.startswith("@"):
        session.sensitive.append(value)
    validate_key(key)
    data = read_value(value, sys.stdin.buffer)
    encoded = base64.b64encode(data).decode()
    session.sensitive.append(encoded)
    kube = session.kube()
    put_user_secret(kube, key, encoded, timeout=timeout)
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
    objs = kube.list_objects(USERSECRETS)
    user_cache: list[str] = []

    def uri_of(key: str) -> str:
        if not user_cache:
            user_cache.append(kube.user() or kube.namespace)
        return naming.secret_uri(cluster, user_cache[0], key)

    needs_uri = full_uri or output != "table"
    rows = secret_rows(objs, uri_of if needs_uri else lambda key: "")
    click.echo(
        render(rows, output, lambda: format_secret_rows(rows, quiet=quiet, full_uri=full_uri)),
        nl=False,
    )


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
    try:
        session.kube().delete(USERSECRETS, key)
    except ApiError as err:
        if err.status == 404:
            raise CliError(f"Secret '{key}' not found", EXIT_NOT_FOUND) from None
        raise


def _own_ref(kube: Kube, text: str) -> SecretRef:
    """Only your own secrets can be shared or revoked: grants live in the owner's namespace."""
    ref = parse_secret_ref(text)
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
    return ref


def _check_cluster(ref: SecretRef, obj: Mapping[str, Any]) -> None:
    uri = _get(obj, "status", "uri")
    parsed = _parse_uri(uri) if isinstance(uri, str) else None
    if ref.cluster is not None and parsed is not None and parsed[0] != ref.cluster:
        raise CliError(f"Invalid URI cluster: '{ref.cluster}' != '{parsed[0]}'", EXIT_USAGE)


def _validate_user(user: str) -> str:
    if not user or any(c.isspace() or c == "/" for c in user):
        raise CliError(f"Invalid user '{user}'", EXIT_USAGE)
    return user


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
@_with(wait_options)
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
    _validate_user(user)
    parse_secret_ref(uri)  # input errors before any network trouble
    kube = session.kube()
    ref = _own_ref(kube, uri)
    try:
        _check_cluster(ref, kube.get(USERSECRETS, ref.key))
    except ApiError as err:
        if err.status == 404:
            raise CliError(f"Secret '{ref.key}' not found", EXIT_NOT_FOUND) from None
        raise
    existing = matching_grants(kube.list_objects(SECRETGRANTS), ref.key, user)
    if existing:
        grant = existing[0]
    else:
        body: Obj = {
            "apiVersion": API_VERSION,
            "kind": "SecretGrant",
            "metadata": {"name": naming.grant_name(ref.key, user)},
            "spec": {"secretName": ref.key, "user": user},
        }
        try:
            grant = kube.create(SECRETGRANTS, body)
        except ApiError as err:
            if err.status != 409:
                raise
            # Same name, different spec (edited by hand): make it say what was asked.
            grant = kube.get(SECRETGRANTS, body["metadata"]["name"])
            grant["spec"] = body["spec"]
            grant = kube.replace(SECRETGRANTS, grant)
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
    _validate_user(user)
    parse_secret_ref(uri)
    kube = session.kube()
    ref = _own_ref(kube, uri)
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
    cls=_Group,
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
        user_cache: list[str] = []

        def uri_of(key: str) -> str:
            if not user_cache:
                user_cache.append(kube.user() or kube.namespace)
            return naming.secret_uri(cluster, user_cache[0], key)

        needs_uri = full_uri or output != "table"
        rows = grant_rows(kube.list_objects(SECRETGRANTS), uri_of if needs_uri else lambda key: "")
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
