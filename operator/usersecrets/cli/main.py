"""The `usersecrets` command: Neu.ro's `secret`, `share` and `acl` commands for Kubernetes.

It talks to the API server with the user's own kubeconfig, so RBAC on the user's namespaces
stays the only authority: the CLI can never do more than `kubectl` could.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from usersecrets.rules import naming
from usersecrets.rules.references import key_error, split_ref
from usersecrets.user import actions, views
from usersecrets.user import completion as names
from usersecrets.user.actions import SECRETGRANTS, USERSECRETS
from usersecrets.user.errors import Failure, Kind, from_exception, redact

if TYPE_CHECKING:
    from usersecrets.user.space import Space

EXIT_GENERIC = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_FORBIDDEN = 4
EXIT_UNREACHABLE = 5

DEFAULT_CLUSTER = "default"
CLUSTER_ENV = "USERSECRETS_CLUSTER_NAME"
DEBUG_ENV = "USERSECRETS_DEBUG"
PROG = "usersecrets"
#: Completion's protocol with the scripts `usersecrets completion SHELL` prints.
COMPLETE_VAR = "_USERSECRETS_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
#: Cobra's shell completion directives, which kubectl reads from a plugin's completer.
COBRA_DEFAULT = 0
COBRA_NO_FILE = 4

Obj = dict[str, Any]


#: What kind of failure each exit code tells a script.
EXIT_CODES: dict[Kind, int] = {
    "generic": EXIT_GENERIC,
    "usage": EXIT_USAGE,
    "not_found": EXIT_NOT_FOUND,
    "forbidden": EXIT_FORBIDDEN,
    "unreachable": EXIT_UNREACHABLE,
}


class CliError(click.ClickException):
    """A failure the user can act on: one line on stderr and a meaningful exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_GENERIC) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a class-wide default


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
    problem = actions.value_error(len(data))
    if problem:
        raise CliError(problem, EXIT_USAGE)
    return data


def format_secret_rows(rows: Sequence[Mapping[str, Any]], *, quiet: bool, full_uri: bool) -> str:
    column = [str(r["uri"] if full_uri else r["key"]) for r in rows]
    return "".join(f"{line}\n" for line in ([] if quiet else ["KEY"]) + column)


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
        import yaml

        return yaml.safe_dump([dict(r) for r in rows], sort_keys=True, default_flow_style=False)
    return table()


# --- The commands ----------------------------------------------------------------------


@dataclass
class Session:
    """Global options; connects lazily so input errors surface before any network trouble."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    #: Values this command handles: scrubbed from anything it prints.
    sensitive: list[bytes] = field(default_factory=list)
    _space: Space | None = None

    def space(self) -> Space:
        if self._space is None:
            from usersecrets.user.space import connect  # the API client only when needed

            self._space = connect(self.kubeconfig, self.context, self.namespace)
        return self._space


@contextlib.contextmanager
def _not_found(message: str) -> Iterator[None]:
    """The API's 404 in the user's words."""
    try:
        yield
    except Failure as err:
        if err.status == 404:
            raise Failure(message, "not_found") from None
        raise


def _own_secret(session: Session, text: str, user: str) -> tuple[Space, SecretRef]:
    """Only your own secrets can be shared or revoked: grants live in the owner's namespace."""
    problem = actions.user_error(user)
    if problem:
        raise CliError(problem, EXIT_USAGE)
    ref = parse_secret_ref(text)  # input errors before any network trouble
    space = session.space()
    if ref.user is not None:
        me = space.user()
        if me is None:
            raise CliError(
                f"You can only share your own secrets, and it is not known yet whether namespace "
                f"'{space.namespace}' belongs to '{ref.user}': use secret:{ref.key}",
                EXIT_USAGE,
            )
        if ref.user != me:
            raise CliError(
                f"You can only share your own secrets: '{text}' belongs to '{ref.user}', "
                f"and namespace '{space.namespace}' belongs to '{me}'",
                EXIT_USAGE,
            )
    return space, ref


def _uri_of(space: Space, cluster: str, shown: bool) -> Callable[[str], str]:
    """URIs the operator has not reported yet; asks whose namespace it is only if they show."""
    if not shown:
        return lambda key: ""
    return lambda key: naming.secret_uri(cluster, space.user() or space.namespace, key)


# --- Commands ---------------------------------------------------------------------------


class _Group(click.Group):
    """Turns every failure into one line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as exc:
            message, code = exc.message, exc.exit_code
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                raise
            failure = from_exception(exc)
            message, code = failure.message, EXIT_CODES[failure.kind]
        sensitive = ctx.obj.sensitive if isinstance(ctx.obj, Session) else []
        raise CliError(redact(message, sensitive), code) from None


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


def _set_global(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """kubectl's habit: -n, --context and --kubeconfig before or after any subcommand; the
    last one given wins. Stored as they are parsed, so completion sees them too."""
    session = ctx.ensure_object(Session)
    if value is not None and param.name:
        setattr(session, param.name, value)


Fetch = Callable[[Session, click.Context], Iterable[str]]


def _from_cluster(
    fetch: Fetch, *, refs: bool = False
) -> Callable[[click.Context, click.Parameter, str], list[str]]:
    """Completion read as the user; nothing at all when it cannot be had (not allowed, no
    cluster, no kubeconfig), since a shell must never print an error mid-line. `refs`: keys
    become `secret:KEY` once that is being typed (bash splits words at ':', so there the
    bare key is the one to complete)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        try:
            names = list(fetch(ctx.ensure_object(Session), ctx))
        except Exception:
            return []
        if refs and incomplete.startswith("secret:"):
            names = [f"secret:{name}" for name in names]
        return [name for name in names if name.startswith(incomplete)]

    return complete


def _namespaces(session: Session, ctx: click.Context) -> list[str]:
    return names.namespaces(session.space())


def _contexts(session: Session, ctx: click.Context) -> list[str]:
    return names.contexts(session.kubeconfig)


def _keys(session: Session, ctx: click.Context) -> list[str]:
    return names.keys(session.space())


def _users(session: Session, ctx: click.Context) -> list[str]:
    return names.users(session.space())


def _grantees(session: Session, ctx: click.Context) -> list[str]:
    """Whom the secret being revoked is shared with."""
    typed = ctx.params.get("uri")
    key = parse_secret_ref(typed).key if isinstance(typed, str) else None
    return names.grantees(session.space(), key)


def global_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command and group: they may be given anywhere on the line."""
    options = [
        click.option(
            "--kubeconfig",
            metavar="PATH",
            type=click.Path(dir_okay=False),
            callback=_set_global,
            expose_value=False,
            help="Kubeconfig to use (default: $KUBECONFIG or ~/.kube/config).",
        ),
        click.option(
            "--context",
            metavar="NAME",
            callback=_set_global,
            expose_value=False,
            shell_complete=_from_cluster(_contexts),
            help="Kubeconfig context (default: the current one).",
        ),
        click.option(
            "-n",
            "--namespace",
            metavar="NAMESPACE",
            callback=_set_global,
            expose_value=False,
            shell_complete=_from_cluster(_namespaces),
            help="Your namespace to act in (default: the context's namespace).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  usersecrets secret add wandb-token @~/.wandb/token
  usersecrets secret ls -n alice-dev
  usersecrets share secret:wandb-token bob --wait
  usersecrets acl list -o yaml
  source <(usersecrets completion bash)""",
)
@global_options
def cli() -> None:
    """Personal secrets on Kubernetes, the way `neuro secret` works.

    Everything runs with your own kubeconfig and permissions, in your namespace.
    -n, --context and --kubeconfig go before or after any command, as with kubectl.
    """


@cli.group(
    epilog="""\b
Examples:
  usersecrets secret add db-password s3cr3t
  usersecrets secret ls --full-uri
  usersecrets secret rm db-password""",
)
@global_options
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
@global_options
@pass_session
def secret_add(session: Session, key: str, value: str, wait: bool, timeout: float) -> None:
    """Add the secret KEY, or replace its value.

    VALUE is the value itself, @FILE to read a file's bytes, or @- to read standard input.
    The value is never printed.
    """
    if not value.startswith("@"):
        session.sensitive.append(value.encode("utf-8", "surrogateescape"))
    validate_key(key)
    data = read_value(value, sys.stdin.buffer)
    session.sensitive.append(data)
    space = session.space()
    actions.add_secret(space, key, data, timeout)
    if wait:
        actions.wait_ready(lambda: space.get(USERSECRETS, key), f"Secret '{key}'", timeout)


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
@global_options
@pass_session
def secret_ls(session: Session, quiet: bool, full_uri: bool, output: str, cluster: str) -> None:
    """List your secrets (never their values)."""
    space = session.space()
    uri_of = _uri_of(space, cluster, full_uri or output != "table")
    rows = views.secret_rows(space.list_objects(USERSECRETS), uri_of)
    text = render(rows, output, lambda: format_secret_rows(rows, quiet=quiet, full_uri=full_uri))
    click.echo(text, nl=False)


@secret.command(
    "rm",
    epilog="""\b
Examples:
  usersecrets secret rm db-password""",
)
@click.argument("key", shell_complete=_from_cluster(_keys))
@global_options
@pass_session
def secret_rm(session: Session, key: str) -> None:
    """Remove the secret KEY; its copies disappear wherever it was shared."""
    validate_key(key)
    with _not_found(f"Secret '{key}' not found"):
        session.space().delete(USERSECRETS, key)


@cli.command(
    "share",
    epilog="""\b
Examples:
  usersecrets share secret:wandb-token bob
  usersecrets share wandb-token bob --wait""",
)
@click.argument("uri", metavar="secret:KEY", shell_complete=_from_cluster(_keys, refs=True))
@click.argument("user", shell_complete=_from_cluster(_users))
@click.argument("permission", required=False, type=click.Choice(["read"]))
@wait_options
@global_options
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
    space, ref = _own_secret(session, uri, user)
    with _not_found(f"Secret '{ref.key}' not found"):
        obj = space.get(USERSECRETS, ref.key)
    parsed = views.parse_uri(views.at(obj, "status", "uri"))
    if ref.cluster is not None and parsed is not None and parsed[0] != ref.cluster:
        raise CliError(f"Invalid URI cluster: '{ref.cluster}' != '{parsed[0]}'", EXIT_USAGE)
    grant = actions.share(space, ref.key, user, timeout)
    if wait:
        name = str(grant["metadata"]["name"])
        actions.wait_ready(
            lambda: space.get(SECRETGRANTS, name),
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
@click.argument("uri", metavar="secret:KEY", shell_complete=_from_cluster(_keys, refs=True))
@click.argument("user", shell_complete=_from_cluster(_grantees))
@global_options
@pass_session
def revoke(session: Session, uri: str, user: str) -> None:
    """Take back a share: USER can no longer use your secret."""
    space, ref = _own_secret(session, uri, user)
    actions.revoke(space, ref.key, user)


cli.add_command(revoke)


@cli.group(
    epilog="""\b
Examples:
  usersecrets acl list
  usersecrets acl list --shared
  usersecrets acl revoke secret:wandb-token bob""",
)
@global_options
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
@global_options
@pass_session
def acl_list(session: Session, shared: bool, full_uri: bool, output: str, cluster: str) -> None:
    """List the secrets shared with you (as secret:/USER/KEY), or with --shared, by you."""
    space = session.space()
    if shared:
        uri_of = _uri_of(space, cluster, full_uri or output != "table")
        rows = views.grant_rows(space.list_objects(SECRETGRANTS), uri_of)
        text = render(rows, output, lambda: format_shared(rows, full_uri=full_uri))
    else:
        rows = views.shared_with_me(space.list_copies(naming.REASON_GRANT), cluster)
        text = render(rows, output, lambda: format_acl(rows, full_uri=full_uri))
    click.echo(text, nl=False)


acl.add_command(revoke)


@cli.command(
    "completion",
    epilog="""\b
Examples:
  source <(usersecrets completion bash)       # in ~/.bashrc
  source <(usersecrets completion zsh)        # in ~/.zshrc, after compinit
  usersecrets completion fish > ~/.config/fish/completions/usersecrets.fish""",
)
@click.argument("shell", type=click.Choice(SHELLS))
@global_options
def completion(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    As `kubectl completion SHELL` does. Keys, users and namespaces are completed from the
    cluster, as you, where you may list them. `kubectl usersecrets` completes through
    kubectl_complete-usersecrets instead, installed beside kubectl-usersecrets.
    """
    from click.shell_completion import get_completion_class

    script = get_completion_class(shell)
    assert script is not None  # one of click's own shells
    click.echo(script(cli, {}, PROG, COMPLETE_VAR).source(), nl=False)


def main() -> None:
    """`usersecrets`, or as `kubectl usersecrets` when kubectl runs it as its plugin."""
    plugin = Path(sys.argv[0]).name.startswith("kubectl-")
    cli(prog_name=f"kubectl {PROG}" if plugin else PROG, complete_var=COMPLETE_VAR)


def kubectl_complete() -> None:
    """`kubectl_complete-usersecrets`: what kubectl runs to complete `kubectl usersecrets ...`.

    It gets the words after the plugin's name, the last one being completed, and reads one
    completion per line, then cobra's directive: 4 (no file names) unless a file is expected.
    """
    from click.shell_completion import ShellComplete

    *words, incomplete = sys.argv[1:] or [""]
    items = ShellComplete(cli, {}, PROG, COMPLETE_VAR).get_completions(words, incomplete)
    for item in items:
        if item.type == "plain":
            click.echo(f"{item.value}\t{item.help}" if item.help else item.value)
    files = any(item.type != "plain" for item in items)
    click.echo(f":{COBRA_DEFAULT if files else COBRA_NO_FILE}")


if __name__ == "__main__":
    main()
