"""The real `usersecrets` command, as alice and bob, against a real API server and operator."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from usersecrets import GROUP, VERSION, naming

pytestmark = pytest.mark.integration

OPERATOR_SRC = Path(__file__).resolve().parents[2] / "operator"
CANARY = "canary-5d1e0b-must-never-be-printed"
BINARY = b"value\xff\x00"
URI = re.compile(r"secret://[^/\s]+/alice/([a-z0-9.-]+)")

Run = Callable[..., "subprocess.CompletedProcess[bytes]"]


def cli_as(kubeconfig: Path, namespace: str) -> Run:
    """The console script in a subprocess, exactly as a user runs it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OPERATOR_SRC), env.get("PYTHONPATH")]))

    def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-m", "usersecrets.cli", "--kubeconfig", str(kubeconfig)]
        return subprocess.run(
            [*command, "-n", namespace, *args],
            input=input,
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )

    return run


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    assert b"Traceback" not in result.stderr
    return result.stdout.decode()


def fails(result: subprocess.CompletedProcess[bytes], code: int, message: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == code, (result.returncode, stderr)
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def eventually(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def cluster_admin(cluster: Any) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


def stored_value(api: client.ApiClient, namespace: str, key: str) -> bytes:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "usersecrets", key
    )
    return base64.b64decode(obj["spec"]["value"])


def copy_value(api: client.ApiClient, namespace: str, owner: str, key: str) -> bytes | None:
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(
            naming.copy_name(owner, key), namespace
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return base64.b64decode((secret.data or {})[naming.DATA_KEY])


def test_add_list_share_revoke_remove(
    cluster: Any,
    operator: Any,
    user_namespace: Callable[[str], str],
    cluster_admin: client.ApiClient,
    tmp_path: Path,
) -> None:
    alice_ns, bob_ns = user_namespace("alice"), user_namespace("bob")
    alice = cli_as(cluster.user_kubeconfig("alice"), alice_ns)
    bob = cli_as(cluster.user_kubeconfig("bob"), bob_ns)

    # Add from a literal, replace it, and add binary bytes from a file.
    for value in ("first", CANARY):
        result = alice("secret", "add", "db-password", value, "--wait")
        assert ok(result) == ""
        assert CANARY.encode() not in result.stdout + result.stderr
    assert stored_value(cluster_admin, alice_ns, "db-password") == CANARY.encode()
    (tmp_path / "value.bin").write_bytes(BINARY)
    ok(alice("secret", "add", "bin-key", f"@{tmp_path / 'value.bin'}", "--wait"))
    assert stored_value(cluster_admin, alice_ns, "bin-key") == BINARY
    eventually(
        lambda: copy_value(cluster_admin, alice_ns, "alice", "bin-key") == BINARY,
        "the owner's copy of bin-key with the exact bytes",
    )
    ok(alice("secret", "add", "from-stdin", "@-", input=BINARY))
    assert stored_value(cluster_admin, alice_ns, "from-stdin") == BINARY

    # List.
    keys = ["bin-key", "db-password", "from-stdin"]
    assert ok(alice("secret", "ls")) == "KEY\n" + "".join(f"{k}\n" for k in keys)
    assert ok(alice("secret", "ls", "-q")).splitlines() == keys
    uris = ok(alice("secret", "ls", "-q", "--full-uri")).splitlines()
    assert [match[1] if (match := URI.fullmatch(u)) else u for u in uris] == keys
    listed = ok(alice("secret", "ls", "-o", "json"))
    assert CANARY not in listed
    assert base64.b64encode(CANARY.encode()).decode() not in listed
    assert [row["key"] for row in json.loads(listed)] == keys
    assert all(row["ready"] for row in json.loads(listed))

    # Share with bob, who then sees it (and only by its reference, never its value).
    ok(alice("share", "secret:db-password", "bob", "--wait"))
    ok(alice("share", "db-password", "bob"))  # twice is still one grant
    eventually(
        lambda: "secret:/alice/db-password" in ok(bob("acl", "list")).splitlines(),
        "bob to see secret:/alice/db-password in acl list",
    )
    full = ok(bob("acl", "list", "--full-uri")).splitlines()
    assert full == [u for u in uris if u.endswith("/db-password")]
    assert ok(alice("acl", "list", "--shared")) == "secret:db-password bob\n"
    assert copy_value(cluster_admin, bob_ns, "alice", "db-password") == CANARY.encode()

    # Revoke: bob loses it.
    ok(alice("revoke", "secret:db-password", "bob"))
    eventually(
        lambda: "secret:/alice/db-password" not in ok(bob("acl", "list")).splitlines(),
        "secret:/alice/db-password to leave bob's acl list",
    )
    eventually(
        lambda: copy_value(cluster_admin, bob_ns, "alice", "db-password") is None,
        "the copy in bob's namespace to be deleted",
    )
    assert ok(alice("acl", "list", "--shared")) == ""
    fails(alice("acl", "revoke", "secret:db-password", "bob"), 3, "is not shared with 'bob'")

    # Remove.
    for key in keys:
        ok(alice("secret", "rm", key))
    assert ok(alice("secret", "ls", "-q")) == ""


def test_input_errors_and_unknown_keys(
    cluster: Any, operator: Any, user_namespace: Callable[[str], str]
) -> None:
    alice = cli_as(cluster.user_kubeconfig("alice"), user_namespace("alice"))
    fails(alice("secret", "rm", "nope"), 3, "Secret 'nope' not found")
    fails(alice("share", "secret:nope", "bob"), 3, "Secret 'nope' not found")
    fails(alice("revoke", "secret:nope", "bob"), 3, "is not shared with 'bob'")
    fails(
        alice("secret", "add", "AWS_SECRET", CANARY),
        2,
        "lowercase DNS-1123 subdomains of at most 63 characters",
    )
    ok(alice("secret", "add", "mine", "v", "--wait"))
    fails(alice("share", "secret:/bob/mine", "carol"), 2, "You can only share your own secrets")


def test_bob_cannot_list_read_or_remove_alices_secrets(
    cluster: Any,
    operator: Any,
    user_namespace: Callable[[str], str],
    cluster_admin: client.ApiClient,
) -> None:
    alice_ns = user_namespace("alice")
    user_namespace("bob")
    alice = cli_as(cluster.user_kubeconfig("alice"), alice_ns)
    bob_in_alices = cli_as(cluster.user_kubeconfig("bob"), alice_ns)
    ok(alice("secret", "add", "db-password", CANARY, "--wait"))

    for args, verb in [
        (("secret", "ls"), "list"),
        (("acl", "list"), "list"),
        (("secret", "rm", "db-password"), "delete"),
        (("secret", "add", "db-password", "overwritten"), "create"),
        (("share", "secret:db-password", "bob"), "get"),
    ]:
        result = bob_in_alices(*args)
        fails(result, 4, f"Forbidden: you may not {verb}")
        assert CANARY.encode() not in result.stdout + result.stderr
    assert stored_value(cluster_admin, alice_ns, "db-password") == CANARY.encode()
