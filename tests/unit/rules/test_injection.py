"""The pod patch: what is added, where, with which mode, and what conflicts."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from usersecrets.rules.injection import Injection, JsonPatch, inject, secret_name, volume_name
from usersecrets.rules.references import References, SecretRef, parse
from usersecrets_dev import pods

DB = SecretRef("bob", "db")
#: The copies' names (rules.naming) and their volumes' ("usersecrets-" and 10 hex digits of
#: the sha256 of the copy's name), as a pod's spec shows them.
DB_SECRET = "usec-bob-db-1956f4097c"
DB_VOLUME = "usersecrets-64469ef745"
ALICE_SECRET = "usec-alice-db-9d8a53f9a3"
VOLUMES = {DB_SECRET: DB_VOLUME, ALICE_SECRET: "usersecrets-ea4c3a2253"}


def make_pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"initContainers": list(init)} if init else {}
    return pods.pod(containers=list(containers), **spec)


def refs(volumes: str = "", env: str = "", containers: str | None = None) -> References:
    annotations = {"usersecrets.io/volumes": volumes, "usersecrets.io/env": env}
    if containers is not None:
        annotations["usersecrets.io/containers"] = containers
    result = parse(annotations, user="bob", cluster="c")
    assert result.errors == ()
    return result


@dataclass(frozen=True)
class Result:
    """An injection, with the pod its patch makes."""

    pod: dict[str, Any]
    patch: JsonPatch
    errors: tuple[str, ...]


def run(pod: dict[str, Any], references: References) -> Result:
    """Inject, and check the contract every result must keep."""
    before = copy.deepcopy(pod)
    result = inject(pod, references)
    assert pod == before, "the input must not be mutated"
    patched = jsonpatch.apply_patch(pod, result.patch)
    if not result.errors:
        assert inject(patched, references) == Injection([], ()), "a second pass adds nothing"
    return Result(patched, result.patch, result.errors)


def secret_volume(secret: str, mode: int = 0o444) -> dict[str, Any]:
    return {
        "name": VOLUMES[secret],
        "secret": {
            "secretName": secret,
            "defaultMode": mode,
            "items": [{"key": "value", "path": "value", "mode": mode}],
        },
    }


def mount(secret: str, path: str) -> dict[str, Any]:
    return {"name": VOLUMES[secret], "mountPath": path, "subPath": "value", "readOnly": True}


def env_var(name: str, secret: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": "value"}}}


def test_one_file() -> None:
    result = run(make_pod(), refs("secret:db:/var/secrets/db.txt"))
    assert result.errors == ()
    assert result.patch == [
        {"op": "add", "path": "/spec/volumes", "value": [secret_volume(DB_SECRET)]},
        {
            "op": "add",
            "path": "/spec/containers/0/volumeMounts",
            "value": [mount(DB_SECRET, "/var/secrets/db.txt")],
        },
    ]


def test_one_env() -> None:
    result = run(make_pod(), refs(env="PASS=secret:db"))
    assert result.patch == [
        {"op": "add", "path": "/spec/containers/0/env", "value": [env_var("PASS", DB_SECRET)]}
    ]


def test_env_and_file_of_the_same_secret() -> None:
    result = run(make_pod(), refs("secret:db:/db", "DB=secret:db"))
    container = result.pod["spec"]["containers"][0]
    assert result.pod["spec"]["volumes"] == [secret_volume(DB_SECRET)]
    assert container["volumeMounts"] == [mount(DB_SECRET, "/db")]
    assert container["env"] == [env_var("DB", DB_SECRET)]


def test_one_volume_per_distinct_secret() -> None:
    alice = ALICE_SECRET
    result = run(
        make_pod(),
        refs("secret:db:/a/db, secret:db:/b/db, secret:/alice/db:/c/db, secret:db:/a/b/c/x"),
    )
    assert result.pod["spec"]["volumes"] == [secret_volume(DB_SECRET), secret_volume(alice)]
    assert result.pod["spec"]["containers"][0]["volumeMounts"] == [
        mount(DB_SECRET, "/a/db"),
        mount(DB_SECRET, "/b/db"),
        mount(alice, "/c/db"),
        mount(DB_SECRET, "/a/b/c/x"),
    ]


def test_same_secret_in_two_env_vars() -> None:
    result = run(make_pod(), refs(env="A=secret:db, B=secret:db"))
    assert result.pod["spec"]["containers"][0]["env"] == [
        env_var("A", DB_SECRET),
        env_var("B", DB_SECRET),
    ]
    assert "volumes" not in result.pod["spec"]


def test_every_container_and_init_container_by_default() -> None:
    pod = make_pod({"name": "a"}, {"name": "b"}, init=({"name": "i"},))
    result = run(pod, refs("secret:db:/db", "A=secret:db"))
    spec = result.pod["spec"]
    for container in [*spec["containers"], *spec["initContainers"]]:
        assert container["volumeMounts"] == [mount(DB_SECRET, "/db")]
        assert container["env"] == [env_var("A", DB_SECRET)]
    assert [op["path"] for op in result.patch] == [
        "/spec/volumes",
        "/spec/initContainers/0/volumeMounts",
        "/spec/initContainers/0/env",
        "/spec/containers/0/volumeMounts",
        "/spec/containers/0/env",
        "/spec/containers/1/volumeMounts",
        "/spec/containers/1/env",
    ]


def test_narrowed_to_named_containers() -> None:
    pod = make_pod({"name": "a"}, {"name": "b"}, init=({"name": "i"},))
    result = run(pod, refs("secret:db:/db", containers="b,i"))
    spec = result.pod["spec"]
    assert "volumeMounts" not in spec["containers"][0]
    assert spec["containers"][1]["volumeMounts"] == [mount(DB_SECRET, "/db")]
    assert spec["initContainers"][0]["volumeMounts"] == [mount(DB_SECRET, "/db")]


def test_unknown_container() -> None:
    pod = make_pod({"name": "a"}, init=({"name": "i"},))
    result = run(pod, refs("secret:db:/db", containers="a, nope, gone"))
    assert result.errors == (
        "Unknown container 'nope' in usersecrets.io/containers (the pod has 'i', 'a')",
        "Unknown container 'gone' in usersecrets.io/containers (the pod has 'i', 'a')",
    )
    assert result.pod["spec"]["containers"][0]["volumeMounts"] == [mount(DB_SECRET, "/db")]


def test_unknown_container_in_a_pod_without_containers() -> None:
    pod: dict[str, Any] = {"spec": {}}
    result = run(pod, refs("secret:db:/db", containers="a"))
    assert result.errors == (
        "Unknown container 'a' in usersecrets.io/containers (the pod has none)",
    )
    assert result.patch == []


def test_appends_to_existing_lists_and_puts_env_first() -> None:
    pod = make_pod(
        {
            "name": "main",
            "env": [{"name": "URL", "value": "postgres://u:$(A)@h"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }
    )
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    result = run(pod, refs("secret:db:/data/db", "A=secret:db, B=secret:db"))
    assert result.patch == [
        {"op": "add", "path": "/spec/volumes/-", "value": secret_volume(DB_SECRET)},
        {
            "op": "add",
            "path": "/spec/containers/0/volumeMounts/-",
            "value": mount(DB_SECRET, "/data/db"),
        },
        {"op": "add", "path": "/spec/containers/0/env/0", "value": env_var("A", DB_SECRET)},
        {"op": "add", "path": "/spec/containers/0/env/1", "value": env_var("B", DB_SECRET)},
    ]
    assert [e["name"] for e in result.pod["spec"]["containers"][0]["env"]] == ["A", "B", "URL"]


@pytest.mark.parametrize(
    ("pod_context", "container_context", "mode"),
    [
        # Known to be root: owner-only, as on Neu.ro.
        ({"runAsUser": 0}, {}, 0o400),
        ({}, {"runAsUser": 0}, 0o400),
        ({"fsGroup": 1000, "runAsUser": 0}, {}, 0o400),
        ({"fsGroup": 1000, "runAsUser": 1000}, {"runAsUser": 0}, 0o400),
        # The image's USER decides, or a non-root user without fsGroup: readable by "other".
        ({}, {}, 0o444),
        ({"runAsUser": 1000}, {}, 0o444),
        ({"runAsNonRoot": True}, {}, 0o444),
        ({"runAsUser": 1000, "runAsGroup": 3000}, {}, 0o444),
        ({"runAsUser": 0}, {"runAsUser": 1000}, 0o444),
        ({"runAsUser": "0"}, {}, 0o444),
        ({"runAsUser": False}, {}, 0o444),
        # With an fsGroup, the file's group: readable by the group.
        ({"fsGroup": 1000}, {}, 0o440),
        ({"fsGroup": 1000, "runAsUser": 1000}, {}, 0o440),
        ({"fsGroup": 0, "runAsNonRoot": True}, {}, 0o440),
        ({"fsGroup": 1000}, {"runAsUser": 1000}, 0o440),
        ({"fsGroup": 1000}, {"runAsNonRoot": True}, 0o440),
        ({"fsGroup": 1000, "runAsNonRoot": True}, {"runAsNonRoot": False}, 0o440),
        ({"fsGroup": "1000", "runAsUser": 1000}, {}, 0o444),
    ],
)
def test_file_mode(
    pod_context: dict[str, Any], container_context: dict[str, Any], mode: int
) -> None:
    pod = make_pod({"name": "main", "securityContext": container_context})
    pod["spec"]["securityContext"] = pod_context
    result = run(pod, refs("secret:db:/db"))
    assert result.pod["spec"]["volumes"] == [secret_volume(DB_SECRET, mode)]


def test_mode_considers_only_targeted_containers() -> None:
    pod = make_pod(
        {"name": "root", "securityContext": {"runAsUser": 0}},
        {"name": "app", "securityContext": {"runAsUser": 7}},
    )
    pod["spec"]["securityContext"] = {"fsGroup": 7}
    assert run(pod, refs("secret:db:/db", containers="root")).pod["spec"]["volumes"] == [
        secret_volume(DB_SECRET, 0o400)
    ]
    assert run(pod, refs("secret:db:/db")).pod["spec"]["volumes"] == [
        secret_volume(DB_SECRET, 0o440)
    ]


def test_conflicts_with_what_the_pod_has() -> None:
    pod = make_pod(
        {
            "name": "main",
            "env": [{"name": "A", "value": "plain"}],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/db/"}],
        },
        {"name": "side", "env": [env_var("A", "usec-bob-other-d09733d7ff")]},
    )
    result = run(pod, refs("secret:db:/etc/db", "A=secret:db, B=secret:db"))
    assert result.errors == (
        "Container 'main' already mounts a volume at '/etc/db'",
        "Container 'main' already has environment variable 'A'",
        "Container 'side' already has environment variable 'A'",
    )


def test_conflict_with_a_volume_of_our_name() -> None:
    pod = make_pod()
    pod["spec"]["volumes"] = [{"name": DB_VOLUME, "emptyDir": {}}]
    result = run(pod, refs("secret:db:/db"))
    assert result.errors == (
        f"The pod already has a volume named '{DB_VOLUME}' that differs from the one "
        f"usersecrets adds for Secret '{DB_SECRET}'",
    )


def test_idempotent_after_api_server_defaulting() -> None:
    first = run(make_pod(), refs("secret:db:/db", "A=secret:db")).pod
    first["spec"]["volumes"][0]["secret"]["optional"] = False
    first["spec"]["containers"][0]["volumeMounts"][0]["mountPropagation"] = "None"
    first["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["optional"] = False
    again = inject(first, refs("secret:db:/db", "A=secret:db"))
    assert again.patch == []
    assert again.errors == ()


def test_partially_injected_pod_gets_the_rest() -> None:
    first = run(make_pod(), refs("secret:db:/db", "A=secret:db")).pod
    result = run(first, refs("secret:db:/db, secret:db:/db2", "A=secret:db, B=secret:db"))
    assert result.patch == [
        {
            "op": "add",
            "path": "/spec/containers/0/volumeMounts/-",
            "value": mount(DB_SECRET, "/db2"),
        },
        {"op": "add", "path": "/spec/containers/0/env/0", "value": env_var("B", DB_SECRET)},
    ]


def test_names() -> None:
    assert secret_name(DB) == DB_SECRET
    assert volume_name(DB_SECRET) == DB_VOLUME
    assert volume_name("usec-bob-db2-4d87529a62") == "usersecrets-791279ad1d"


def test_nothing_requested_changes_nothing() -> None:
    assert run(make_pod(), References()) == Result(make_pod(), [], ())


@pytest.mark.parametrize(
    "pod",
    [
        {},
        {"spec": None},
        {"spec": {"containers": "x"}},
        {"spec": {"containers": [None, 3, {"name": ["x"], "env": 5, "volumeMounts": {}}]}},
        {
            "spec": {
                "containers": [{"env": [None, {"name": 1}], "volumeMounts": [[], {"mountPath": 2}]}]
            }
        },
        {"spec": {"volumes": "x", "securityContext": [], "containers": [{"securityContext": 3}]}},
    ],
)
def test_garbage_pods_never_raise(pod: dict[str, Any]) -> None:
    run(pod, refs("secret:db:/db", "A=secret:db", containers="main"))
    run(pod, refs("secret:db:/db", "A=secret:db"))


ENTRY_FILES = st.lists(
    st.tuples(st.sampled_from(["db", "x", "/alice/db"]), st.sampled_from(["/a", "/b/c", "/d/e"])),
    max_size=4,
)
ENTRY_ENV = st.lists(st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(["db", "x"])))
CONTAINER = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", "c"])},
    optional={
        "env": st.lists(
            st.sampled_from([{"name": "A", "value": "1"}, env_var("B", DB_SECRET), {"name": "C"}])
        ),
        "volumeMounts": st.lists(
            st.sampled_from([{"name": "v", "mountPath": "/a"}, mount(DB_SECRET, "/b/c")])
        ),
        "securityContext": st.fixed_dictionaries({}, optional={"runAsUser": st.integers(0, 2)}),
    },
)


@given(
    files=ENTRY_FILES,
    env=ENTRY_ENV,
    containers=st.lists(CONTAINER, min_size=1, max_size=3, unique_by=lambda c: str(c["name"])),
    narrow=st.none() | st.sampled_from(["a", "b,c"]),
    fs_group=st.none() | st.just(5),
)
def test_random_pods_patch_consistently(
    files: list[tuple[str, str]],
    env: list[tuple[str, str]],
    containers: list[dict[str, Any]],
    narrow: str | None,
    fs_group: int | None,
) -> None:
    pod = make_pod(*containers)
    if fs_group is not None:
        pod["spec"]["securityContext"] = {"fsGroup": fs_group}
    annotations = {
        "usersecrets.io/volumes": "\n".join(f"secret:{k}:{p}" for k, p in files),
        "usersecrets.io/env": "\n".join(f"{n}=secret:{k}" for n, k in env),
    }
    if narrow is not None:
        annotations["usersecrets.io/containers"] = narrow
    references = parse(annotations, user="bob", cluster="c")
    run(pod, references)


def test_a_patch_past_the_bound_is_not_built() -> None:
    env = ",".join(f"V{i}=secret:k" for i in range(100))
    pod: dict[str, Any] = {
        "metadata": {"annotations": {"usersecrets.io/env": env}},
        "spec": {"containers": [{"name": f"c{i}"} for i in range(41)]},
    }
    result = inject(pod, parse(pod["metadata"]["annotations"], user="alice", cluster="c"))
    assert result.patch == []
    assert result.errors == (
        "The pod asks for 4100 secret files and variables (100 in each of 41 containers); "
        "at most 4096 are added",
    )
    pod["spec"]["containers"] = pod["spec"]["containers"][:40]
    result = inject(pod, parse(pod["metadata"]["annotations"], user="alice", cluster="c"))
    assert result.errors == ()
    assert len(result.patch) == 40


def test_an_unknown_container_message_lists_ten_names() -> None:
    pod = {
        "metadata": {"annotations": {}},
        "spec": {"containers": [{"name": f"c{i:02}"} for i in range(12)]},
    }
    annotations = {"usersecrets.io/env": "A=secret:k", "usersecrets.io/containers": "nope"}
    result = inject(pod, parse(annotations, user="alice", cluster="c"))
    assert result.errors == (
        "Unknown container 'nope' in usersecrets.io/containers (the pod has 'c00', 'c01', "
        "'c02', 'c03', 'c04', 'c05', 'c06', 'c07', 'c08', 'c09' and 2 more)",
    )


def test_the_bounds_themselves_are_within() -> None:
    """4096 additions are made; ten container names are listed without 'and 0 more'."""
    env = ",".join(f"V{i}=secret:k" for i in range(64))
    pod: dict[str, Any] = {
        "metadata": {"annotations": {"usersecrets.io/env": env}},
        "spec": {"containers": [{"name": f"c{i:02}"} for i in range(64)]},
    }
    result = inject(pod, parse(pod["metadata"]["annotations"], user="alice", cluster="c"))
    assert (result.errors, len(result.patch)) == ((), 64)
    pod["spec"]["containers"] = pod["spec"]["containers"][:10]
    narrowed = {"usersecrets.io/env": "A=secret:k", "usersecrets.io/containers": "nope"}
    assert inject(pod, parse(narrowed, user="alice", cluster="c")).errors == (
        "Unknown container 'nope' in usersecrets.io/containers (the pod has 'c00', 'c01', "
        "'c02', 'c03', 'c04', 'c05', 'c06', 'c07', 'c08', 'c09')",
    )


def test_a_volume_of_our_name_with_other_items_is_a_conflict() -> None:
    pod = make_pod()
    ours = secret_volume(DB_SECRET)
    ours["secret"]["items"] = [{"key": "value", "path": "elsewhere", "mode": 0o444}]
    pod["spec"]["volumes"] = [ours]
    assert run(pod, refs("secret:db:/db")).errors == (
        f"The pod already has a volume named '{DB_VOLUME}' that differs from the one "
        f"usersecrets adds for Secret '{DB_SECRET}'",
    )
