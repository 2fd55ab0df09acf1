"""The real `usersecrets` command, as alice and bob, against a real API server and operator."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from conftest import wait_for
from kube import USERSECRETS, copy_value, get_object

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


def stored_value(api: client.ApiClient, namespace: str, key: str) -> bytes:
    return base64.b64decode(get_object(api, USERSECRETS, namespace, key)["spec"]["value"])


def test_add_list_share_revoke_remove(
    cluster: Any,
    operator: Any,
    user_namespace: Callable[[str], str],
    admin: client.ApiClient,
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
    assert stored_value(admin, alice_ns, "db-password") == CANARY.encode()
    (tmp_path / "value.bin").write_bytes(BINARY)
    ok(alice("secret", "add", "bin-key", f"@{tmp_path / 'value.bin'}", "--wait"))
    assert stored_value(admin, alice_ns, "bin-key") == BINARY
    wait_for(
        lambda: copy_value(admin, alice_ns, "alice", "bin-key") == BINARY,
        timeout=10,
        what="the owner's copy of bin-key with the exact bytes",
    )
    ok(alice("secret", "add", "from-stdin", "@-", input=BINARY))
    assert stored_value(admin, alice_ns, "from-stdin") == BINARY

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
    wait_for(
        lambda: "secret:/alice/db-password" in ok(bob("acl", "list")).splitlines(),
        timeout=10,
        what="bob to see secret:/alice/db-password in acl list",
    )
    full = ok(bob("acl", "list", "--full-uri")).splitlines()
    assert full == [u for u in uris if u.endswith("/db-password")]
    assert ok(alice("acl", "list", "--shared")) == "secret:db-password bob\n"
    assert copy_value(admin, bob_ns, "alice", "db-password") == CANARY.encode()

    # Revoke: bob loses it.
    ok(alice("revoke", "secret:db-password", "bob"))
    wait_for(
        lambda: "secret:/alice/db-password" not in ok(bob("acl", "list")).splitlines(),
        timeout=10,
        what="secret:/alice/db-password to leave bob's acl list",
    )
    wait_for(
        lambda: copy_value(admin, bob_ns, "alice", "db-password") is None,
        timeout=10,
        what="the copy in bob's namespace to be deleted",
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
        "valid on Neu.ro but cannot be stored here",
    )
    ok(alice("secret", "add", "mine", "v", "--wait"))
    fails(alice("share", "secret:/bob/mine", "carol"), 2, "You can only share your own secrets")


def test_bob_cannot_list_read_or_remove_alices_secrets(
    cluster: Any,
    operator: Any,
    user_namespace: Callable[[str], str],
    admin: client.ApiClient,
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
    assert stored_value(admin, alice_ns, "db-password") == CANARY.encode()
