"""The real `usersecrets` command, as alice and bob, against a real API server and operator."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from commands import SCRIPTS, ok, usersecrets
from conftest import role_binding, wait_for
from kube import USERSECRETS, copy_value, get_object

pytestmark = pytest.mark.integration

CANARY = "canary-5d1e0b-must-never-be-printed"
BINARY = b"value\xff\x00"
URI = re.compile(r"secret://[^/\s]+/alice/([a-z0-9.-]+)")

Run = Callable[..., "subprocess.CompletedProcess[bytes]"]


def cli_as(kubeconfig: Path, namespace: str) -> Run:
    """The command as a user who names their kubeconfig and namespace first."""

    def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return usersecrets("--kubeconfig", str(kubeconfig), "-n", namespace, *args, input=input)

    return run


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


# --- kubectl habits ---------------------------------------------------------------------


def test_options_after_the_command_and_lists_as_json_and_yaml(
    cluster: Any,
    operator: Any,
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob = users("alice"), users("bob")
    alice_ns, bob_ns = user_namespace(alice), user_namespace(bob)
    as_alice = ["--kubeconfig", str(cluster.user_kubeconfig(alice))]
    as_bob = ["--kubeconfig", str(cluster.user_kubeconfig(bob))]

    ok(usersecrets("secret", "add", "db-password", CANARY, "--wait", "-n", alice_ns, *as_alice))
    ok(
        usersecrets(
            "share", "secret:db-password", bob, "--wait", *as_alice, "--namespace", alice_ns
        )
    )
    uri = f"secret://testcluster/{alice}/db-password"
    listing = ["secret", "-n", alice_ns, "ls", *as_alice, "-o", "json"]
    expected = [
        {"key": "db-password", "uri": uri, "ready": True, "copies": 2, "namespaces": [alice_ns]}
    ]
    wait_for(
        lambda: json.loads(ok(usersecrets(*listing))) == expected,
        timeout=10,
        what="the secret listed with its copies in alice's and bob's namespaces",
    )
    printed = ok(usersecrets("acl", "list", "--shared", "-o", "yaml", "-n", alice_ns, *as_alice))
    shared = yaml.safe_load(printed)
    assert re.fullmatch(rf"db-password-{bob}-[0-9a-f]{{6}}", shared[0].pop("name"))
    assert shared == [{"key": "db-password", "user": bob, "uri": uri, "ready": True, "copies": 1}]
    mine = f"secret:/{alice}/db-password"
    wait_for(
        lambda: mine in ok(usersecrets("acl", "list", *as_bob, "-n", bob_ns)),
        timeout=10,
        what=f"bob to see {mine}",
    )
    with_bob = [{"uri": uri, "ref": mine, "owner": alice, "key": "db-password"}]
    as_json = ok(usersecrets("acl", "-n", bob_ns, "list", "-o", "json", *as_bob))
    assert json.loads(as_json) == with_bob
    as_yaml = ok(usersecrets("acl", "list", "-o", "yaml", *as_bob, "-n", bob_ns))
    assert yaml.safe_load(as_yaml) == with_bob
    for text in (ok(usersecrets(*listing)), printed, as_json, as_yaml):
        assert CANARY not in text
        assert base64.b64encode(CANARY.encode()).decode() not in text
    # An option given twice: the last one wins, as with kubectl.
    fails(
        usersecrets("-n", alice_ns, "secret", "ls", *as_bob, "-n", alice_ns),
        4,
        f"Forbidden: you may not list usersecrets.usersecrets.io in namespace '{alice_ns}'",
    )
    assert ok(usersecrets("-n", bob_ns, "secret", "ls", "-q", *as_alice, "-n", alice_ns)) == (
        "db-password\n"
    )


def _completions(shell: str, words: str, current: str | int) -> list[str]:
    """What `usersecrets` tells the completion script of `shell` for the line `words`."""
    result = usersecrets(
        env={
            "_USERSECRETS_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(current),
        }
    )
    assert result.returncode == 0
    assert result.stderr == b""
    return [line for line in result.stdout.decode().splitlines() if line]


def test_completion_from_the_cluster_as_the_user(
    cluster: Any,
    operator: Any,
    admin: client.ApiClient,
    user_namespace: Callable[[str], str],
    users: Callable[[str], str],
) -> None:
    alice, bob = users("alice"), users("bob")
    alice_ns, bob_ns = user_namespace(alice), user_namespace(bob)
    kubeconfig = cluster.user_kubeconfig(alice)
    for key in ("wandb-token", "aws-key"):
        ok(usersecrets("secret", "add", key, "v", "-n", alice_ns, "--kubeconfig", str(kubeconfig)))
    ok(usersecrets("share", "aws-key", bob, "-n", alice_ns, "--kubeconfig", str(kubeconfig)))
    line = f"usersecrets --kubeconfig {kubeconfig} -n {alice_ns}"

    assert _completions("bash", f"{line} secret rm ", 7) == ["plain,aws-key", "plain,wandb-token"]
    assert _completions("bash", f"{line} share w", 6) == ["plain,wandb-token"]
    assert _completions("zsh", f"{line} secret rm a", 7) == ["plain", "aws-key", "_"]
    assert _completions("fish", f"{line} revoke secret:", "secret:") == [
        "plain,secret:aws-key",
        "plain,secret:wandb-token",
    ]
    assert _completions("fish", f"{line} revoke aws-key ", "") == [f"plain,{bob}"]
    # Alice may not list namespaces: no users, no namespaces, and not a word of complaint.
    assert _completions("bash", f"{line} share aws-key ", 7) == []
    assert _completions("bash", f"usersecrets --kubeconfig {kubeconfig} -n ", 4) == []

    # Where she may list them, the users are those the operator sees.
    rbac = client.RbacAuthorizationV1Api(admin)
    role: dict[str, Any] = {
        "metadata": {"name": f"list-namespaces-{alice}"},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}],
    }
    rbac.create_cluster_role(role)
    subject = {"kind": "User", "name": alice, "apiGroup": "rbac.authorization.k8s.io"}
    rbac.create_cluster_role_binding(
        role_binding(role["metadata"]["name"], role["metadata"]["name"], subject)
    )
    try:
        wait_for(
            lambda: f"plain,{bob}" in _completions("bash", f"{line} share aws-key ", 7),
            what="the users to complete once alice may list namespaces",
        )
        assert _completions("bash", f"{line} share aws-key {bob[:-3]}", 7) == [f"plain,{bob}"]
        assert _completions(
            "bash", f"usersecrets --kubeconfig {kubeconfig} -n {bob_ns[:-2]}", 4
        ) == [f"plain,{bob_ns}"]
    finally:
        rbac.delete_cluster_role_binding(role["metadata"]["name"])
        rbac.delete_cluster_role(role["metadata"]["name"])


def test_bash_completes_with_the_printed_script(
    cluster: Any, operator: Any, user_namespace: Callable[[str], str], users: Callable[[str], str]
) -> None:
    alice = users("alice")
    alice_ns = user_namespace(alice)
    kubeconfig = cluster.user_kubeconfig(alice)
    ok(
        usersecrets(
            "secret", "add", "wandb-token", "v", "-n", alice_ns, "--kubeconfig", str(kubeconfig)
        )
    )
    script = ok(usersecrets("completion", "bash"))
    shell = f"""
{script}
COMP_WORDS=(usersecrets secret rm -n {alice_ns} --kubeconfig {kubeconfig} "")
COMP_CWORD=7
_usersecrets_completion usersecrets
printf '%s\\n' "${{COMPREPLY[@]}}"
complete -p usersecrets
"""
    # The script runs `usersecrets` as installed.
    path = os.pathsep.join([str(SCRIPTS), os.environ["PATH"]])
    result = subprocess.run(
        ["bash", "--norc", "-c", shell],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "wandb-token",
        "complete -o nosort -F _usersecrets_completion usersecrets",
    ]


def test_the_kubectl_plugin_is_the_same_command(
    cluster: Any, operator: Any, user_namespace: Callable[[str], str], users: Callable[[str], str]
) -> None:
    alice = users("alice")
    where = ["-n", user_namespace(alice), "--kubeconfig", str(cluster.user_kubeconfig(alice))]
    # kubectl finds its plugins on PATH.
    path = os.pathsep.join([str(SCRIPTS), str(cluster.bin_dir), os.environ["PATH"]])

    def kubectl(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(cluster.bin_dir / "kubectl"), *args],
            capture_output=True,
            env={**os.environ, "PATH": path},
            timeout=120,
            check=False,
        )

    ok(kubectl("usersecrets", "secret", "add", "wandb-token", CANARY, "--wait", *where))
    for args in (["secret", "ls"], ["secret", "ls", "-o", "yaml"], ["acl", "list", "-o", "json"]):
        assert ok(kubectl("usersecrets", *args, *where)) == ok(usersecrets(*args, *where))
    plugin = kubectl("usersecrets", "secret", "rm", "nope", *where)
    direct = usersecrets("secret", "rm", "nope", *where)
    assert (plugin.returncode, plugin.stderr) == (3, b"Error: Secret 'nope' not found\n")
    assert (direct.returncode, direct.stderr) == (plugin.returncode, plugin.stderr)
    helped = ok(kubectl("usersecrets", "secret", "ls", "--help"))
    assert helped.startswith("Usage: kubectl usersecrets secret ls [OPTIONS]\n")

    # kubectl's own completion asks kubectl_complete-usersecrets, installed beside the plugin.
    completed = kubectl("__complete", "usersecrets", *where, "secret", "rm", "")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.decode().splitlines() == ["wandb-token", ":4"]
