"""The CLI without a cluster: its pure parts, and its commands against an in-memory API."""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import urllib3.exceptions
import yaml
from click.testing import CliRunner

from fakes import copy_labels
from usersecrets import API_VERSION
from usersecrets.cli import main as cli
from usersecrets.kube.client import ApiError, CredentialsError
from usersecrets.user import actions, errors, space, views

BINARY = b"value\xff\x00"
CANARY = "canary-7f3a9c-never-print-me"


# --- Pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db-password", cli.SecretRef("db-password")),
        ("secret:db-password", cli.SecretRef("db-password")),
        ("secret:/alice/db-password", cli.SecretRef("db-password", "alice")),
        ("secret://prod/alice/db.password", cli.SecretRef("db.password", "alice", "prod")),
    ],
)
def test_parse_secret_ref_forms(text: str, expected: cli.SecretRef) -> None:
    assert cli.parse_secret_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("storage:key", "Invalid URI scheme: 'storage' != 'secret'"),
        ("secret:key#frag", "'#' and '?' are not allowed"),
        ("secret:key?x=1", "'#' and '?' are not allowed"),
        ("secret:/alice", "expected secret:KEY, secret:/USER/KEY"),
        ("secret:/alice/key/more", "expected secret:KEY"),
        ("secret://prod/alice", "expected secret:KEY"),
        ("secret:a/b", "expected secret:KEY"),
        ("secret:My_Key", "Secret key 'My_Key' is valid on Neu.ro"),
    ],
)
def test_parse_secret_ref_rejects(text: str, message: str) -> None:
    with pytest.raises(cli.CliError) as info:
        cli.parse_secret_ref(text)
    assert message in info.value.message
    assert info.value.exit_code == 2  # usage


@pytest.mark.parametrize("key", ["a", "db-password", "a.b-c", "x" * 63, "0abc"])
def test_valid_keys(key: str) -> None:
    assert cli.validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("DB_PASSWORD", "valid on Neu.ro but cannot be stored here: it contains uppercase"),
        ("db_password", "it contains '_'"),
        ("x" * 64, "longer than 63 characters"),
        ("-abc", "must start and end with a letter or digit"),
        ("a..b", "must start and end with a letter or digit"),
        ("", "the key is empty"),
    ],
)
def test_keys_we_cannot_store_say_why(key: str, why: str) -> None:
    with pytest.raises(cli.CliError) as info:
        cli.validate_key(key)
    assert why in info.value.message
    assert info.value.exit_code == 2  # usage


def test_read_value_literal() -> None:
    assert cli.read_value("s3cr3t", io.BytesIO()) == b"s3cr3t"


def test_read_value_literal_keeps_non_utf8_argv_bytes() -> None:
    assert cli.read_value(os.fsdecode(b"value\xff"), io.BytesIO()) == b"value\xff"


def test_read_value_file_is_binary_safe(tmp_path: Path) -> None:
    path = tmp_path / "value.bin"
    path.write_bytes(BINARY)
    assert cli.read_value(f"@{path}", io.BytesIO()) == BINARY


def test_read_value_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "token").write_bytes(BINARY)
    assert cli.read_value("@~/token", io.BytesIO()) == BINARY


def test_read_value_stdin() -> None:
    assert cli.read_value("@-", io.BytesIO(BINARY)) == BINARY


@pytest.mark.parametrize("arg", ["@", "@/nonexistent/file"])
def test_read_value_bad_file_is_usage_error(arg: str) -> None:
    with pytest.raises(cli.CliError) as info:
        cli.read_value(arg, io.BytesIO())
    assert info.value.exit_code == 2  # usage


def test_read_value_refuses_more_than_one_mib() -> None:
    assert len(cli.read_value("@-", io.BytesIO(b"x" * (1 << 20)))) == 1 << 20
    with pytest.raises(cli.CliError, match="at most 1 MiB") as info:
        cli.read_value("@-", io.BytesIO(b"x" * ((1 << 20) + 1)))
    assert info.value.exit_code == 2  # usage


def _obj(name: str, generation: int = 1, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "generation": generation}, "status": status}


def _ready(status: str, generation: int = 1, message: str = "") -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "conditions": [{"type": "Ready", "status": status, "reason": "R", "message": message}],
    }


def test_readiness() -> None:
    assert views.readiness(_obj("k")).state == "pending"
    assert views.readiness(_obj("k", 1, **_ready("True"))).state == "ready"
    failed = views.readiness(_obj("k", 1, **_ready("False", message="source missing")))
    assert failed == views.Readiness("failed", "source missing")
    # A verdict on an older spec says nothing about the current one.
    assert views.readiness(_obj("k", 2, **_ready("False"))).state == "pending"
    assert views.readiness(_obj("k", 2, **_ready("Unknown", 2))).state == "pending"


def test_wait_ready_times_out() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(errors.Failure, match=r"Timed out after 2s") as info:
        actions.wait_ready(lambda: _obj("k"), "Secret 'k'", 2, clock=lambda: now[0], sleep=sleep)
    assert info.value.kind == "generic"


def test_wait_ready_sees_the_change() -> None:
    states = iter([_obj("k", 2, **_ready("True", 1)), _obj("k", 2, **_ready("True", 2))])
    assert actions.wait_ready(lambda: next(states), "k", 5, sleep=lambda s: None)["metadata"]


SECRETS = [
    _obj(
        "zeta", 1, uri="secret://prod/alice/zeta", namespaces=["b", "a"], copies=3, **_ready("True")
    ),
    _obj("alpha"),
]


def test_secret_rows_never_carry_values() -> None:
    objs = [dict(o, spec={"value": base64.b64encode(b"x").decode()}) for o in SECRETS]
    rows = views.secret_rows(objs, lambda key: f"secret://default/alice/{key}")
    assert rows == [
        {
            "key": "alpha",
            "uri": "secret://default/alice/alpha",
            "ready": False,
            "copies": 0,
            "namespaces": [],
        },
        {
            "key": "zeta",
            "uri": "secret://prod/alice/zeta",
            "ready": True,
            "copies": 3,
            "namespaces": ["a", "b"],
        },
    ]


def test_format_secret_rows() -> None:
    rows = views.secret_rows(SECRETS, lambda key: f"secret://default/alice/{key}")
    assert cli.format_secret_rows(rows, quiet=False, full_uri=False) == "KEY\nalpha\nzeta\n"
    assert cli.format_secret_rows(rows, quiet=True, full_uri=False) == "alpha\nzeta\n"
    assert cli.format_secret_rows(rows, quiet=True, full_uri=True) == (
        "secret://default/alice/alpha\nsecret://prod/alice/zeta\n"
    )
    assert cli.format_secret_rows([], quiet=False, full_uri=False) == "KEY\n"


def test_render_json_and_yaml() -> None:
    rows = views.secret_rows(SECRETS, lambda key: "u")
    assert json.loads(cli.render(rows, "json", lambda: "")) == rows
    assert yaml.safe_load(cli.render(rows, "yaml", lambda: "")) == rows
    assert cli.render(rows, "table", lambda: "T") == "T"


def _copy(owner: str, key: str, reason: str = "grant", uri: bool = True) -> Any:
    """A copy as the operator writes it (its name does not matter here)."""
    annotations = {"usersecrets.io/uri": f"secret://prod/{owner}/{key}"} if uri else {}
    return {
        "metadata": {
            "name": f"usec-{owner}-{key}-0123456789",
            "labels": copy_labels(owner, key, reason),
            "annotations": annotations,
        }
    }


COPIES = [
    _copy("carol", "b"),
    _copy("alice", "z", uri=False),
    _copy("bob", "mine", reason="owner"),
    _copy("alice", "a"),
]


def test_shared_with_me_and_its_formats() -> None:
    rows = views.shared_with_me(COPIES, "default")
    assert cli.format_acl(rows, full_uri=False) == (
        "secret:/alice/a\nsecret:/alice/z\nsecret:/carol/b\n"
    )
    assert cli.format_acl(rows, full_uri=True) == (
        "secret://prod/alice/a\nsecret://default/alice/z\nsecret://prod/carol/b\n"
    )
    assert json.loads(cli.render(rows, "json", lambda: ""))[0] == {
        "uri": "secret://prod/alice/a",
        "ref": "secret:/alice/a",
        "owner": "alice",
        "key": "a",
    }
    assert [r["ref"] for r in yaml.safe_load(cli.render(rows, "yaml", lambda: ""))] == [
        "secret:/alice/a",
        "secret:/alice/z",
        "secret:/carol/b",
    ]


def _grant(name: str, key: str, user: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "spec": {"secretName": key, "user": user},
        "status": status,
    }


def test_grant_rows_and_shared_format() -> None:
    grants = [_grant("x", "k2", "bob"), _grant("y", "k1", "carol", uri="secret://p/alice/k1")]
    rows = views.grant_rows(grants, lambda key: f"secret://default/alice/{key}")
    assert cli.format_shared(rows, full_uri=False) == "secret:k1 carol\nsecret:k2 bob\n"
    assert cli.format_shared(rows, full_uri=True) == (
        "secret://p/alice/k1 carol\nsecret://default/alice/k2 bob\n"
    )


def test_matching_grants_go_by_spec_not_name() -> None:
    grants = [_grant("from-yaml", "k", "bob"), _grant("other", "k", "carol")]
    assert [g["metadata"]["name"] for g in views.matching_grants(grants, "k", "bob")] == [
        "from-yaml"
    ]


def test_redact() -> None:
    message = 'UserSecret "k" is invalid: spec.value: Invalid value: "c2VjcmV0": bad'
    assert "c2VjcmV0" not in errors.redact(message, [])
    assert errors.redact(f"echo {CANARY}!", [CANARY.encode()]) == "echo <redacted>!"
    encoded = base64.b64encode(CANARY.encode()).decode()
    assert errors.redact(f"echo {encoded}!", [CANARY.encode()]) == "echo <redacted>!"


# --- Error mapping ----------------------------------------------------------------------


def _api_exc(status: int, message: str = "boom", details: Any = None) -> ApiError:
    body: dict[str, Any] = {"kind": "Status", "message": message, "code": status}
    if details is not None:
        body["details"] = details
    return ApiError(status, "R", json.dumps(body))


OP = errors.Operation("list", "usersecrets.usersecrets.io", "alice-ns")


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (
            _api_exc(403, 'User "bob" cannot list resource "usersecrets"'),
            4,
            "Forbidden: you may not list usersecrets.usersecrets.io in namespace 'alice-ns'",
        ),
        (_api_exc(401, "Unauthorized"), 4, "Unauthorized"),
        (_api_exc(404, 'usersecrets "k" not found', {"name": "k"}), 3, "not found"),
        (
            _api_exc(404, "the server could not find the requested resource"),
            3,
            "CRDs installed",
        ),
        (_api_exc(422, "spec.user: Required value"), 2, "Invalid: spec.user"),
        (_api_exc(400, "bad"), 2, "Invalid"),
        (
            _api_exc(403, 'admission webhook "usersecrets.io" denied the request: no'),
            2,
            "Rejected: admission webhook",
        ),
        (_api_exc(409, "already exists"), 1, "Conflict"),
        (_api_exc(500, "etcd down"), 1, "API error 500"),
        (ApiError(0, "Unsupported content type"), 1, "Unsupported"),
        (
            urllib3.exceptions.MaxRetryError(
                None,  # type: ignore[arg-type]  # no pool: the test's error only
                "/api",
                urllib3.exceptions.NewConnectionError(
                    None,  # type: ignore[arg-type]  # no connection: the test's error only
                    "Failed to establish a new connection: [Errno 111] Connection refused",
                ),
            ),
            5,
            "Cannot reach the Kubernetes API server",
        ),
        (ConnectionRefusedError(111, "Connection refused"), 5, "Cannot reach"),
        (CredentialsError("the kubeconfig names no current context"), 5, "kubeconfig"),
        (ValueError("oops"), 1, "Unexpected error: ValueError: oops"),
    ],
)
def test_error_from_exception(exc: BaseException, code: int, text: str) -> None:
    error = errors.from_exception(exc, OP)
    assert cli.EXIT_CODES[error.kind] == code
    assert text in error.message
    assert "\n" not in error.message


# --- Commands against an in-memory API --------------------------------------------------


class FakeKube:
    """Just enough API server: generations, 404/409, and a hook to fail any call."""

    def __init__(self, namespace: str = "alice-ns", user: str = "alice") -> None:
        self.namespace = namespace
        self._user: str | None = user
        self.store: dict[str, dict[str, dict[str, Any]]] = {"usersecrets": {}, "secretgrants": {}}
        self.copies: list[Any] = []
        self.fail: dict[str, BaseException] = {}
        self.on_get: Any = None

    def _check(self, verb: str, plural: str, name: str | None = None) -> None:
        if verb in self.fail:
            op = errors.Operation(verb, f"{plural}.usersecrets.io", self.namespace, name)
            raise errors.from_exception(self.fail[verb], op)

    def _missing(self, plural: str, name: str) -> errors.Failure:
        return errors.from_exception(_api_exc(404, f'{plural} "{name}" not found', {"name": name}))

    def list_objects(self, plural: str) -> list[dict[str, Any]]:
        self._check("list", plural)
        return copy.deepcopy(list(self.store[plural].values()))

    def get(self, plural: str, name: str) -> dict[str, Any]:
        self._check("get", plural, name)
        if name not in self.store[plural]:
            raise self._missing(plural, name)
        if self.on_get:
            self.on_get(self.store[plural][name])
        return copy.deepcopy(self.store[plural][name])

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self._check("create", plural, name)
        if name in self.store[plural]:
            raise errors.from_exception(_api_exc(409, "already exists"))
        obj = copy.deepcopy(body)
        obj["metadata"].update(generation=1, resourceVersion="1")
        self.store[plural][name] = obj
        return copy.deepcopy(obj)

    def replace(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self._check("update", plural, name)
        old = self.store[plural][name]
        obj = copy.deepcopy(body)
        obj["status"] = old.get("status", {})
        if obj["spec"] != old["spec"]:
            obj["metadata"]["generation"] = old["metadata"]["generation"] + 1
        self.store[plural][name] = obj
        return copy.deepcopy(obj)

    def delete(self, plural: str, name: str) -> None:
        self._check("delete", plural, name)
        if name not in self.store[plural]:
            raise self._missing(plural, name)
        del self.store[plural][name]

    def list_copies(self, reason: str) -> list[Any]:
        self._check("list", "secrets")
        return [
            c for c in self.copies if c["metadata"]["labels"]["usersecrets.io/reason"] == reason
        ]

    def user(self) -> str | None:
        return self._user


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    fake = FakeKube()
    monkeypatch.setattr(space, "connect", lambda kubeconfig, context, namespace: fake)
    monkeypatch.delenv("USERSECRETS_CLUSTER_NAME", raising=False)
    return fake


def run(*args: str, input: bytes | None = None) -> Any:
    return CliRunner().invoke(cli.cli, ["-n", "alice-ns", *args], input=input)


def _stored(kube: FakeKube, key: str) -> bytes:
    return base64.b64decode(kube.store["usersecrets"][key]["spec"]["value"])


def test_add_literal_file_and_stdin(kube: FakeKube, tmp_path: Path) -> None:
    assert run("secret", "add", "k1", CANARY).exit_code == 0
    assert _stored(kube, "k1") == CANARY.encode()
    path = tmp_path / "v.bin"
    path.write_bytes(BINARY)
    result = run("secret", "add", "k2", f"@{path}")
    assert result.exit_code == 0, result.output
    assert _stored(kube, "k2") == BINARY
    assert run("secret", "add", "k3", "@-", input=BINARY).exit_code == 0
    assert _stored(kube, "k3") == BINARY
    assert result.output == ""


def test_add_existing_key_replaces_the_value(kube: FakeKube) -> None:
    run("secret", "add", "k", "one")
    kube.store["usersecrets"]["k"]["metadata"]["labels"] = {"team": "x"}
    kube.store["usersecrets"]["k"]["spec"] = {"valueFrom": {"secretKeyRef": {"name": "s"}}}
    result = run("secret", "add", "k", "two")
    assert result.exit_code == 0, result.output
    obj = kube.store["usersecrets"]["k"]
    assert obj["spec"] == {"value": base64.b64encode(b"two").decode()}
    assert obj["metadata"]["labels"] == {"team": "x"}
    assert obj["metadata"]["generation"] == 2


def test_add_refuses_neuro_only_keys(kube: FakeKube) -> None:
    result = run("secret", "add", "AWS_KEY", CANARY)
    assert result.exit_code == 2
    assert "valid on Neu.ro but cannot be stored here" in result.stderr
    assert CANARY not in result.output
    assert kube.store["usersecrets"] == {}


def test_add_never_prints_the_value_even_when_the_server_echoes_it(kube: FakeKube) -> None:
    encoded = base64.b64encode(CANARY.encode()).decode()
    kube.fail["create"] = _api_exc(422, f'spec.value: Invalid value: "{encoded}": nope {CANARY}')
    result = run("secret", "add", "k", CANARY)
    assert result.exit_code == 2
    assert encoded not in result.output
    assert CANARY not in result.output
    assert "Invalid" in result.stderr


def test_add_wait(kube: FakeKube) -> None:
    kube.on_get = lambda obj: obj.update(status=_ready("True", obj["metadata"]["generation"]))
    assert run("secret", "add", "k", "v", "--wait").exit_code == 0
    kube.on_get = lambda obj: obj.update(
        status=_ready("False", obj["metadata"]["generation"], "valueFrom Secret missing")
    )
    result = run("secret", "add", "k", "w", "--wait")
    assert result.exit_code == 1
    assert "valueFrom Secret missing" in result.stderr
    kube.on_get = None
    result = run("secret", "add", "k", "x", "--wait", "--timeout", "0")
    assert result.exit_code == 1
    assert "Timed out" in result.stderr


def test_ls_formats(kube: FakeKube) -> None:
    for key in ("zeta", "alpha"):
        run("secret", "add", key, CANARY)
    kube.store["usersecrets"]["zeta"]["status"] = {"uri": "secret://prod/alice/zeta"}
    assert run("secret", "ls").stdout == "KEY\nalpha\nzeta\n"
    assert run("secret", "ls", "-q").stdout == "alpha\nzeta\n"
    result = CliRunner().invoke(
        cli.cli, ["secret", "ls", "-q", "--full-uri"], env={"USERSECRETS_CLUSTER_NAME": "envc"}
    )
    assert result.stdout == "secret://envc/alice/alpha\nsecret://prod/alice/zeta\n"
    result = run("secret", "ls", "--full-uri", "--cluster", "c1")
    assert result.stdout == "KEY\nsecret://c1/alice/alpha\nsecret://prod/alice/zeta\n"
    for output in ("json", "yaml"):
        result = run("secret", "ls", "-o", output)
        assert result.exit_code == 0
        assert CANARY not in result.stdout
        assert base64.b64encode(CANARY.encode()).decode() not in result.stdout
        rows = yaml.safe_load(result.stdout)
        assert [sorted(r) for r in rows] == [["copies", "key", "namespaces", "ready", "uri"]] * 2
        assert rows[0]["uri"] == "secret://default/alice/alpha"


def test_rm(kube: FakeKube) -> None:
    run("secret", "add", "k", "v")
    assert run("secret", "rm", "k").exit_code == 0
    assert kube.store["usersecrets"] == {}
    result = run("secret", "rm", "k")
    assert result.exit_code == 3
    assert result.stderr.strip() == "Error: Secret 'k' not found"


def test_share_and_revoke(kube: FakeKube) -> None:
    run("secret", "add", "k", "v")
    for ref in ("secret:k", "k", "secret:/alice/k"):
        result = run("share", ref, "bob")
        assert result.exit_code == 0, result.output
    assert list(kube.store["secretgrants"]) == ["k-bob-32641d"]
    assert kube.store["secretgrants"]["k-bob-32641d"]["spec"] == {
        "secretName": "k",
        "user": "bob",
    }
    kube.store["secretgrants"]["from-yaml"] = _grant("from-yaml", "k", "carol")
    assert run("acl", "list", "--shared").stdout == "secret:k bob\nsecret:k carol\n"
    assert run("revoke", "secret:k", "bob").exit_code == 0
    assert run("acl", "revoke", "secret:k", "carol").exit_code == 0
    assert kube.store["secretgrants"] == {}
    result = run("revoke", "secret:k", "bob")
    assert result.exit_code == 3
    assert "not shared with 'bob'" in result.stderr


def test_share_refusals(kube: FakeKube) -> None:
    result = run("share", "secret:/bob/k", "carol")
    assert result.exit_code == 2
    assert "You can only share your own secrets" in result.stderr
    result = run("share", "secret:nope", "bob")
    assert result.exit_code == 3
    assert "Secret 'nope' not found" in result.stderr
    assert run("share", "secret:k", "bob", "write").exit_code == 2
    run("secret", "add", "k", "v")
    kube.store["usersecrets"]["k"]["status"] = {"uri": "secret://prod/alice/k"}
    result = run("share", "secret://other/alice/k", "bob")
    assert result.exit_code == 2
    assert "Invalid URI cluster: 'other' != 'prod'" in result.stderr
    assert run("share", "secret://prod/alice/k", "bob", "read").exit_code == 0


def test_share_wait(kube: FakeKube) -> None:
    run("secret", "add", "k", "v")
    kube.on_get = lambda obj: obj.update(status=_ready("False", 1, "no namespace of user bob"))
    result = run("share", "k", "bob", "--wait")
    assert result.exit_code == 1
    assert "no namespace of user bob" in result.stderr
    kube.on_get = lambda obj: obj.update(status=_ready("True", 1))
    assert run("share", "k", "bob", "--wait").exit_code == 0


def test_acl_list(kube: FakeKube) -> None:
    kube.copies = COPIES
    assert run("acl", "list").stdout == "secret:/alice/a\nsecret:/alice/z\nsecret:/carol/b\n"
    result = run("acl", "list", "--full-uri", "--cluster", "c")
    assert result.stdout.splitlines()[1] == "secret://c/alice/z"
    assert len(json.loads(run("acl", "list", "-o", "json").stdout)) == 3
    assert run("acl", "list", "--shared", "-o", "yaml").stdout == "[]\n"


def test_forbidden_names_the_refused_verb_and_resource(kube: FakeKube) -> None:
    kube.fail["list"] = _api_exc(403, 'User "bob" cannot list resource "usersecrets"')
    result = run("secret", "ls")
    assert result.exit_code == 4
    assert "you may not list usersecrets.usersecrets.io in namespace 'alice-ns'" in result.stderr
    assert "Traceback" not in result.output


def test_unexpected_errors_are_one_line(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(plural: str) -> Any:
        raise urllib3.exceptions.ProtocolError("Connection aborted.")

    monkeypatch.setattr(kube, "list_objects", boom)
    result = run("secret", "ls")
    assert result.exit_code == 5
    assert len(result.stderr.strip().splitlines()) == 1


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(cli.cli))
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli.cli, [*path, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout


def test_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "usersecrets.cli", "secret", "add", "Bad_Key", "v"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert API_VERSION  # the module is importable without a cluster


def test_user_from_evidence() -> None:
    assert views.user_from_evidence([], []) is None
    assert views.user_from_evidence([_obj("k", uri="secret://c/alice/k")], []) == "alice"
    copies = [_copy("carol", "x"), _copy("alice", "k", reason="owner")]
    assert views.user_from_evidence([_obj("k")], copies) == "alice"


def test_share_by_full_reference_needs_a_known_owner(kube: FakeKube) -> None:
    kube._user = None
    run("secret", "add", "k", "v")
    result = run("share", "secret:/alice/k", "bob")
    assert result.exit_code == 2
    assert "use secret:k" in result.stderr
    assert run("share", "secret:k", "bob").exit_code == 0


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_unreachable_cluster_and_bad_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = str(_kubeconfig(tmp_path, "https://127.0.0.1:1"))
    result = CliRunner().invoke(cli.cli, ["--kubeconfig", kubeconfig, "secret", "ls"])
    assert result.exit_code == 5  # unreachable
    assert "Cannot reach the Kubernetes API server at 127.0.0.1:1" in result.stderr
    result = CliRunner().invoke(cli.cli, ["--kubeconfig", str(tmp_path / "none"), "secret", "ls"])
    assert result.exit_code == 5  # unreachable
    assert "kubeconfig" in result.stderr
    args = ["--kubeconfig", kubeconfig, "--context", "nope", "secret", "ls"]
    result = CliRunner().invoke(cli.cli, args)
    assert result.exit_code == 2  # usage
    assert "Context 'nope' not found" in result.stderr


# --- kubectl habits: options anywhere, completion, the plugin ---------------------------


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, ...]]:
    """What each command connected with: (kubeconfig, context, namespace)."""
    calls: list[tuple[str | None, ...]] = []

    def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Any:
        calls.append((kubeconfig, context, namespace))
        return FakeKube()

    monkeypatch.setattr(space, "connect", connect)
    return calls


@pytest.mark.parametrize(
    "args",
    [
        ["--kubeconfig", "k", "--context", "c", "-n", "ns", "secret", "ls"],
        ["secret", "ls", "--kubeconfig", "k", "--context", "c", "-n", "ns"],
        ["secret", "--kubeconfig", "k", "ls", "--context=c", "--namespace", "ns"],
        [
            "-n",
            "other",
            "--context",
            "x",
            "secret",
            "-n",
            "ns",
            "ls",
            "--kubeconfig=k",
            "--context",
            "c",
        ],
    ],
    ids=["before", "after", "between", "last-wins"],
)
def test_global_options_anywhere_on_the_line(
    connected: list[tuple[str | None, ...]], args: list[str]
) -> None:
    result = CliRunner().invoke(cli.cli, args)
    assert result.exit_code == 0, result.output
    assert connected == [("k", "c", "ns")]


@pytest.mark.parametrize("path", _commands(cli.cli))
def test_every_command_takes_the_global_options_after_it(path: tuple[str, ...]) -> None:
    args = [*path, "--kubeconfig", "k", "--context", "c", "-n", "ns", "--help"]
    result = CliRunner().invoke(cli.cli, args)
    assert result.exit_code == 0, result.output
    assert "-n, --namespace NAMESPACE" in result.stdout


def complete(args: list[str], incomplete: str) -> list[str]:
    from click.shell_completion import ShellComplete

    found = ShellComplete(cli.cli, {}, "usersecrets", cli.COMPLETE_VAR)
    return [item.value for item in found.get_completions(args, incomplete)]


def test_completion_of_keys_refs_and_grantees(kube: FakeKube) -> None:
    for key in ("zeta", "alpha", "beta"):
        run("secret", "add", key, "v")
    kube.store["secretgrants"]["g1"] = _grant("g1", "alpha", "carol")
    kube.store["secretgrants"]["g2"] = _grant("g2", "zeta", "dave")
    assert complete(["secret", "rm"], "") == ["alpha", "beta", "zeta"]
    assert complete(["-n", "alice-ns", "secret", "rm"], "a") == ["alpha"]
    assert complete(["share"], "z") == ["zeta"]
    assert complete(["share"], "secret:") == ["secret:alpha", "secret:beta", "secret:zeta"]
    assert complete(["revoke"], "secret:a") == ["secret:alpha"]
    assert complete(["revoke", "secret:alpha"], "") == ["carol"]
    assert complete(["acl", "revoke", "zeta"], "") == ["dave"]
    assert complete(["revoke", "nope"], "") == []


def test_completion_of_users_where_namespaces_may_be_listed(kube: FakeKube) -> None:
    def request(verb: str, resource: str, method: str, path: str) -> dict[str, Any]:
        labels = {"usersecrets.io/user": "carol"}
        return {
            "items": [{"metadata": {"name": "bob"}}, {"metadata": {"name": "x", "labels": labels}}]
        }

    kube.request = request  # type: ignore[attr-defined]  # FakeKube has none by default
    assert complete(["share", "k"], "") == ["bob", "carol"]
    assert complete(["-n"], "") == ["bob", "x"]


def test_completion_says_nothing_when_the_cluster_refuses(kube: FakeKube) -> None:
    def refused(verb: str, resource: str, method: str, path: str) -> dict[str, Any]:
        raise errors.from_exception(_api_exc(403, "namespaces is forbidden"))

    kube.request = refused  # type: ignore[attr-defined]  # FakeKube has none by default
    kube.fail["list"] = _api_exc(403, "usersecrets is forbidden")
    assert complete(["share", "k"], "") == []
    assert complete(["secret", "rm"], "") == []
    assert complete(["--namespace"], "") == []


def test_completion_of_contexts_and_commands(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path, "https://127.0.0.1:1")
    assert complete(["--kubeconfig", str(kubeconfig), "--context"], "") == ["x"]
    assert complete([], "s") == ["secret", "share"]
    assert complete(["secret"], "") == ["add", "ls", "rm"]
    assert "--namespace" in complete(["acl", "list"], "--")


@pytest.mark.parametrize(
    ("shell", "hook"),
    [
        ("bash", "complete -o nosort -F _usersecrets_completion usersecrets"),
        ("zsh", "compdef _usersecrets_completion usersecrets"),
        (
            "fish",
            'complete --no-files --command usersecrets --arguments "(_usersecrets_completion)"',
        ),
    ],
)
def test_completion_scripts(shell: str, hook: str) -> None:
    result = CliRunner().invoke(cli.cli, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert hook in result.stdout
    assert "_USERSECRETS_COMPLETE" in result.stdout


def test_kubectl_completer_speaks_cobra(
    kube: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("zeta", "alpha"):
        run("secret", "add", key, "v")
    for argv, printed in [
        (["secret", "rm", ""], "alpha\nzeta\n:4\n"),
        (["sh"], "share\tLet USER use your secret in their...\n:4\n"),
        (["secret", "ls", "--kubeconfig", ""], ":0\n"),
        ([], "acl\tWhat is shared with you, and what you shared.\n"),
    ]:
        monkeypatch.setattr(sys, "argv", ["kubectl_complete-usersecrets", *argv])
        cli.kubectl_complete()
        assert capsys.readouterr().out.startswith(printed)


def test_help_loads_neither_the_settings_nor_a_kubernetes_client() -> None:
    """What `usersecrets --help` imports is its start-up time: pydantic-settings alone was
    0.12 s of it (issue 17 asks for 0.3 s end to end)."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, usersecrets.cli.main; print(' '.join(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "pydantic_settings" not in loaded
    assert "usersecrets.settings" not in loaded
    assert "kubernetes" not in loaded
