"""Desired Secrets follow from (UserSecrets, SecretGrants, namespaces); diff applies them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import copy_labels
from usersecrets.rules.desired import (
    ActualSecret,
    Desired,
    DesiredCopy,
    GrantFacts,
    GrantState,
    GrantView,
    Limits,
    OwnerKey,
    SecretFacts,
    SecretState,
    SecretView,
    World,
    compute,
    data_digest,
    diff,
)

CLUSTER = "test"
CANARY = b"canary-0b5e-secret-value"
T1 = "2024-01-01T00:00:00Z"
T2 = "2024-01-02T00:00:00Z"
#: The copy of alice's "db" in every namespace (rules.naming's name for it).
ALICE_DB = "usec-alice-db-9d8a53f9a3"
#: The owner of the pairs of namespaces without a user.
NOBODY = ""

NAMESPACES: dict[str, str | None] = {
    "alice": "alice",
    "alice-dev": "alice",
    "bob": "bob",
    "bob-gpu": "bob",
    "carol": "carol",
    "kube-system": None,
}


def secret(namespace: str, key: str, value: bytes | None = CANARY, created: str = T1) -> SecretView:
    return SecretView(namespace=namespace, key=key, created=created, value=value)


def grant(namespace: str, secret_name: str, user: str, name: str | None = None) -> GrantView:
    return GrantView(namespace, name or f"{secret_name}-{user}", secret_name, user)


def desired_state(
    secrets: Iterable[SecretView],
    grants: Iterable[GrantView],
    namespaces: Mapping[str, str | None],
    cluster: str,
    for_keys: Collection[OwnerKey] | None = None,
) -> Desired:
    """`compute` on a World built for the occasion."""
    return compute(World(secrets, grants, namespaces), cluster, for_keys)


def run(
    secrets: Iterable[SecretView],
    grants: Iterable[GrantView] = (),
    namespaces: Mapping[str, str | None] = NAMESPACES,
) -> Desired:
    return desired_state(secrets, grants, namespaces, CLUSTER)


def where(desired: Desired, owner: str = "alice", key: str = "db") -> dict[str, str]:
    """namespace -> reason of the copies of (owner, key)."""
    return {
        ns: c.reason for (ns, _), c in desired.copies.items() if (c.owner, c.key) == (owner, key)
    }


def as_actual(desired: Desired) -> list[ActualSecret]:
    return [ActualSecret.of_copy(c) for c in desired.copies.values()]


# --- What is desired ---------------------------------------------------------------------------


def test_owner_gets_a_copy_in_every_namespace() -> None:
    desired = run([secret("alice", "db")])
    assert where(desired) == {"alice": "owner", "alice-dev": "owner"}
    copy = desired.copies["alice-dev", ALICE_DB]
    assert (copy.namespace, copy.name) == ("alice-dev", ALICE_DB)
    assert copy.labels == copy_labels("alice", "db", "owner")
    assert copy.annotations == {"usersecrets.io/uri": "secret://test/alice/db"}
    assert copy.data == {"value": CANARY}
    facts = desired.secrets["alice", "db"]
    assert facts.state is SecretState.MATERIALIZED
    assert facts.namespaces == ("alice", "alice-dev")
    assert facts.uri == "secret://test/alice/db"


def test_value_never_in_reprs() -> None:
    desired = run([secret("alice", "db")], [grant("alice", "db", "bob")])
    assert CANARY.decode() not in repr(desired)
    assert CANARY.decode() not in repr(diff(desired, []))


def test_grant_reaches_every_namespace_of_the_grantee() -> None:
    desired = run([secret("alice", "db")], [grant("alice", "db", "bob")])
    assert where(desired) == {
        "alice": "owner",
        "alice-dev": "owner",
        "bob": "grant",
        "bob-gpu": "grant",
    }
    copy = desired.copies["bob-gpu", ALICE_DB]
    assert copy.labels["usersecrets.io/reason"] == "grant"
    facts = desired.grants["alice", "db-bob"]
    assert facts.state is GrantState.GRANTED
    assert facts.namespaces == ("bob", "bob-gpu")
    assert facts.uri == "secret://test/alice/db"


def test_grant_from_any_namespace_of_the_owner_holding_the_secret() -> None:
    desired = run([secret("alice-dev", "db")], [grant("alice-dev", "db", "carol")])
    assert where(desired)["carol"] == "grant"


def test_grant_to_the_owner_is_harmless() -> None:
    alone = run([secret("alice", "db")])
    granted = run([secret("alice", "db")], [grant("alice", "db", "alice")])
    assert granted.copies == alone.copies
    assert granted.grants["alice", "db-alice"].state is GrantState.GRANTED
    assert granted.grants["alice", "db-alice"].namespaces == ("alice", "alice-dev")


def test_owner_reason_wins_over_grant() -> None:
    desired = run([secret("alice", "db")], [grant("alice", "db", "alice")])
    assert set(where(desired).values()) == {"owner"}


def test_two_grants_to_one_user_make_one_copy_per_namespace() -> None:
    desired = run(
        [secret("alice", "db")],
        [grant("alice", "db", "bob", "g1"), grant("alice", "db", "bob", "g2")],
    )
    assert where(desired)["bob"] == "grant"
    assert len([c for c in desired.copies.values() if c.namespace == "bob"]) == 1
    assert desired.grants["alice", "g1"].namespaces == desired.grants["alice", "g2"].namespaces


def test_grant_of_a_missing_secret_yields_nothing() -> None:
    desired = run([], [grant("alice", "nope", "bob")])
    assert desired.copies == {}
    assert desired.grants["alice", "nope-bob"].state is GrantState.SECRET_NOT_FOUND


def test_grant_must_name_a_secret_in_its_own_namespace() -> None:
    desired = run([secret("alice", "db")], [grant("alice-dev", "db", "bob")])
    assert "bob" not in where(desired)
    assert desired.grants["alice-dev", "db-bob"].state is GrantState.SECRET_NOT_FOUND


def test_missing_source_means_no_copies() -> None:
    desired = run([secret("alice", "db", value=None)], [grant("alice", "db", "bob")])
    assert desired.copies == {}
    assert desired.secrets["alice", "db"].state is SecretState.SOURCE_MISSING
    assert desired.grants["alice", "db-bob"].state is GrantState.SECRET_NOT_READY


def test_system_namespaces_belong_to_nobody() -> None:
    namespaces = {
        "alice": "alice",
        "kube-system": None,
        "kube-public": None,
        "usersecrets-system": None,
        "bob": "bob",
    }
    desired = run(
        [secret("kube-system", "db"), secret("alice", "db")],
        [grant("alice", "db", "kube-system"), grant("kube-system", "db", "bob")],
        namespaces,
    )
    assert where(desired) == {"alice": "owner"}
    assert desired.secrets["kube-system", "db"].state is SecretState.NO_OWNER
    assert desired.grants["kube-system", "db-bob"].state is GrantState.NO_OWNER
    assert desired.grants["alice", "db-kube-system"].namespaces == ()
    assert all(
        c.namespace not in {"kube-system", "usersecrets-system"} for c in desired.copies.values()
    )


def test_relabelled_namespace_moves_the_copies() -> None:
    before = run([secret("alice", "db")], [], {**NAMESPACES, "team-x": "alice"})
    assert "team-x" in where(before)
    after = run([secret("alice", "db")], [], {**NAMESPACES, "team-x": "bob"})
    assert "team-x" not in where(after)
    plan = diff(after, as_actual(before))
    assert [(s.namespace, s.name) for s in plan.deletes] == [("team-x", ALICE_DB)]
    assert not plan.creates
    assert not plan.updates


def test_relabelled_namespace_changes_the_owner_of_its_secrets() -> None:
    desired = run([secret("team-x", "db")], [], {**NAMESPACES, "team-x": "carol"})
    assert where(desired, "carol") == {"carol": "owner", "team-x": "owner"}
    assert desired.secrets["team-x", "db"].owner == "carol"


def test_conflict_oldest_wins() -> None:
    desired = run(
        [secret("alice-dev", "db", b"old", T1), secret("alice", "db", b"new", T2)],
    )
    assert {c.value for c in desired.copies.values()} == {b"old"}
    assert desired.secrets["alice-dev", "db"].state is SecretState.MATERIALIZED
    loser = desired.secrets["alice", "db"]
    assert loser.state is SecretState.CONFLICT
    assert loser.conflict_with == "alice-dev"
    assert loser.namespaces == ()


def test_conflict_tie_broken_by_namespace_name() -> None:
    desired = run([secret("alice-dev", "db", b"dev", T1), secret("alice", "db", b"main", T1)])
    assert {c.value for c in desired.copies.values()} == {b"main"}
    assert desired.secrets["alice-dev", "db"].conflict_with == "alice"


def test_conflict_compares_times_not_strings() -> None:
    desired = run(
        [
            secret("alice", "db", b"later", "2024-01-01T00:00:00.5+00:00"),
            secret("alice-dev", "db", b"earlier", "2024-01-01T00:00:00Z"),
        ]
    )
    assert {c.value for c in desired.copies.values()} == {b"earlier"}


def test_same_key_of_different_owners_are_different_secrets() -> None:
    desired = run([secret("alice", "db", b"a"), secret("bob", "db", b"b")])
    assert where(desired, "alice") == {"alice": "owner", "alice-dev": "owner"}
    assert where(desired, "bob") == {"bob": "owner", "bob-gpu": "owner"}
    assert {name for _, name in desired.copies} == {ALICE_DB, "usec-bob-db-1956f4097c"}


# --- diff ------------------------------------------------------------------------------------


def test_diff_creates_everything_from_nothing() -> None:
    desired = run([secret("alice", "db")], [grant("alice", "db", "bob")])
    plan = diff(desired, [])
    assert [(c.namespace, c.name) for c in plan.creates] == sorted(desired.copies)
    assert not plan.updates
    assert not plan.deletes
    assert not plan.collisions


def test_idempotence() -> None:
    desired = run(
        [secret("alice", "db"), secret("bob", "token", b"t")],
        [grant("alice", "db", "bob"), grant("bob", "token", "carol")],
    )
    plan = diff(desired, as_actual(desired))
    assert plan.empty
    assert plan.collisions == ()


def test_revoke_deletes_the_grantee_copies() -> None:
    granted = run([secret("alice", "db")], [grant("alice", "db", "bob")])
    revoked = run([secret("alice", "db")])
    plan = diff(revoked, as_actual(granted))
    assert {s.namespace for s in plan.deletes} == {"bob", "bob-gpu"}
    assert not plan.creates
    assert not plan.updates


def test_a_copy_on_its_way_out_is_deleted_again_and_made_anew_after() -> None:
    """A grantee's finalizer must not keep a revoked copy, nor an owner's copy half-deleted."""
    granted = run([secret("alice", "db")], [grant("alice", "db", "bob")])
    kept = [
        replace(c, finalizers=("bob.example/keep",), deleting=True)
        if c.namespace in ("bob", "alice")
        else c
        for c in as_actual(granted)
    ]
    plan = diff(run([secret("alice", "db")]), kept)
    assert [(s.namespace, s.finalizers) for s in plan.deletes] == [
        ("alice", ("bob.example/keep",)),
        ("bob", ("bob.example/keep",)),
        ("bob-gpu", ()),
    ]
    assert plan.creates == ()  # alice's own copy: created once the deleted one is gone
    assert plan.updates == ()


def test_deleted_secret_deletes_every_copy() -> None:
    before = run([secret("alice", "db")], [grant("alice", "db", "bob")])
    plan = diff(run([]), as_actual(before))
    assert len(plan.deletes) == 4


def test_value_change_updates_every_copy() -> None:
    before = run([secret("alice", "db", b"v1")], [grant("alice", "db", "bob")])
    after = run([secret("alice", "db", b"v2")], [grant("alice", "db", "bob")])
    plan = diff(after, as_actual(before))
    assert len(plan.updates) == 4
    assert {c.value for c in plan.updates} == {b"v2"}


def test_label_change_updates_but_foreign_labels_are_kept() -> None:
    desired = run([secret("alice", "db")])
    actual = as_actual(desired)
    tampered = ActualSecret(
        actual[0].namespace,
        actual[0].name,
        {**actual[0].labels, "usersecrets.io/reason": "grant"},
        actual[0].annotations,
        actual[0].digest,
    )
    extra = ActualSecret(
        actual[1].namespace,
        actual[1].name,
        {**actual[1].labels, "team": "ml"},
        {**actual[1].annotations, "note": "x"},
        actual[1].digest,
    )
    plan = diff(desired, [tampered, extra])
    assert [(c.namespace, c.name) for c in plan.updates] == [(tampered.namespace, tampered.name)]


def test_uri_annotation_change_updates() -> None:
    desired = run([secret("alice", "db")])
    renamed_cluster = desired_state([secret("alice", "db")], [], NAMESPACES, "other")
    plan = diff(desired, as_actual(renamed_cluster))
    assert len(plan.updates) == 2


def test_collisions_are_never_touched() -> None:
    desired = run([secret("alice", "db")])
    name = ALICE_DB
    foreign = ActualSecret.of("alice", name, {"app": "theirs"}, {}, {"x": b"theirs"})
    unrelated = ActualSecret.of("alice", "unrelated", {}, {}, {"x": b"y"})
    plan = diff(desired, [foreign, unrelated])
    assert [(c.namespace, c.name) for c in plan.collisions] == [("alice", name)]
    assert [(c.namespace, c.name) for c in plan.creates] == [("alice-dev", name)]
    assert not plan.updates
    assert not plan.deletes


def test_actual_from_kubernetes_data_matches_desired_digest() -> None:
    desired = run([secret("alice", "db")])
    copy = next(iter(desired.copies.values()))
    actual = ActualSecret.of(
        copy.namespace, copy.name, copy.labels, copy.annotations, {"value": CANARY}
    )
    assert diff(desired, [actual]).updates == ()
    assert data_digest({"a": b"bc"}) != data_digest({"ab": b"c"})
    assert CANARY.hex() not in actual.digest


# --- Scoped runs -----------------------------------------------------------------------------

WORLD_SECRETS = [
    secret("alice", "db"),
    secret("alice-dev", "db", b"newer", T2),
    secret("alice", "token", b"t"),
    secret("bob", "db", b"bobs"),
    secret("carol", "key", None),
]
WORLD_GRANTS = [
    grant("alice", "db", "bob"),
    grant("alice", "token", "carol"),
    grant("bob", "db", "carol"),
    grant("carol", "key", "alice"),
    grant("alice", "missing", "bob"),
]


def test_scoped_run_equals_the_restricted_full_run() -> None:
    world = World(WORLD_SECRETS, WORLD_GRANTS, NAMESPACES)
    full = compute(world, CLUSTER)
    for pair in [OwnerKey("alice", "db"), OwnerKey("bob", "db"), OwnerKey("alice", "missing")]:
        scoped = compute(world, CLUSTER, for_keys=[pair])
        assert scoped.copies == {
            ident: c for ident, c in full.copies.items() if (c.owner, c.key) == pair
        }
        assert scoped.secrets == {
            ident: f for ident, f in full.secrets.items() if (f.owner, f.key) == pair
        }
        assert scoped.grants == {
            ident: g for ident, g in full.grants.items() if (g.owner, g.secret_name) == pair
        }


def test_scoped_diff_never_deletes_out_of_scope() -> None:
    world = World(WORLD_SECRETS, WORLD_GRANTS, NAMESPACES)
    actual = as_actual(compute(world, CLUSTER))
    world.remove_grant("alice", "db-bob")
    scoped = compute(world, CLUSTER, for_keys={OwnerKey("alice", "db")})
    plan = diff(scoped, actual)
    assert {(s.namespace, s.labels["usersecrets.io/key"]) for s in plan.deletes} == {
        ("bob", "db"),
        ("bob-gpu", "db"),
    }
    assert all(s.labels["usersecrets.io/owner"] == "alice" for s in plan.deletes)
    assert not plan.creates
    assert not plan.updates
    nothing = compute(world, CLUSTER, for_keys=[])
    assert diff(nothing, actual).empty


def test_affected_by_namespace() -> None:
    world = World(WORLD_SECRETS, WORLD_GRANTS, NAMESPACES)
    affected = world.affected_by_namespace("bob-gpu", "carol")
    assert affected >= {OwnerKey("alice", "db"), OwnerKey("bob", "db"), OwnerKey("alice", "token")}
    before = compute(world, CLUSTER)
    world.set_namespace("bob-gpu", "carol")
    after = compute(world, CLUSTER)
    changed = {
        (c.owner, c.key)
        for ident, c in {**before.copies, **after.copies}.items()
        if before.copies.get(ident) != after.copies.get(ident)
    }
    assert changed <= affected


def test_namespaces_without_a_user_have_a_pair_of_their_own() -> None:
    """Their UserSecrets and grants get a status, never copies, through (no user, key),
    scoped or not; a namespace not known yet is in no pair until its own event comes."""
    world = World(
        [secret("kube-system", "db"), secret("unseen", "db"), secret("alice", "db")],
        [grant("kube-system", "db", "bob")],
        NAMESPACES,
    )
    assert world.pair_of("kube-system", "db") == OwnerKey(NOBODY, "db")
    assert world.pair_of("unseen", "db") is None
    scoped = compute(world, CLUSTER, for_keys=[OwnerKey(NOBODY, "db")])
    assert scoped.copies == {}
    assert {k: f.state for k, f in scoped.secrets.items()} == {
        ("kube-system", "db"): SecretState.NO_OWNER
    }
    assert {k: g.state for k, g in scoped.grants.items()} == {
        ("kube-system", "db-bob"): GrantState.NO_OWNER
    }
    full = compute(world, CLUSTER)
    assert full.secrets["kube-system", "db"] == scoped.secrets["kube-system", "db"]
    assert ("unseen", "db") not in full.secrets


def test_a_namespace_losing_or_getting_a_user_marks_its_no_owner_pairs() -> None:
    world = World(WORLD_SECRETS, WORLD_GRANTS, NAMESPACES)
    assert OwnerKey(NOBODY, "db") in world.affected_by_namespace("alice-dev", None)
    world.set_namespace("alice-dev", None)
    assert world.namespaces_of("alice") == ("alice",)
    assert world.pair_of("alice-dev", "db") == OwnerKey(NOBODY, "db")
    affected = world.affected_by_namespace("alice-dev", "alice")
    assert {OwnerKey("alice", "db"), OwnerKey(NOBODY, "db")} <= affected
    # Its own keys only: another namespace without a user is not affected.
    world.put_secret(secret("kube-system", "elsewhere"))
    assert OwnerKey(NOBODY, "elsewhere") not in world.affected_by_namespace("alice-dev", None)
    world.remove_namespace("alice-dev")
    assert world.pair_of("alice-dev", "db") is None


def test_a_grant_to_no_one_copies_nowhere() -> None:
    """The CRD refuses an empty user; were one to get through, it names no namespace."""
    desired = run([secret("alice", "db")], [grant("alice", "db", NOBODY)])
    assert where(desired) == {"alice": "owner", "alice-dev": "owner"}


def test_world_mutations_match_a_fresh_world() -> None:
    world = World(WORLD_SECRETS, WORLD_GRANTS, NAMESPACES)
    world.put_secret(secret("alice", "db", b"changed"))
    world.remove_secret("alice", "token")
    world.remove_grant("bob", "db-carol")
    world.put_grant(grant("bob", "db", "alice", "db-carol"))
    world.set_namespace("carol", "bob")
    world.remove_namespace("alice-dev")
    fresh = World(
        [secret("alice", "db", b"changed"), *WORLD_SECRETS[1:2], *WORLD_SECRETS[3:]],
        [*WORLD_GRANTS[:2], grant("bob", "db", "alice", "db-carol"), *WORLD_GRANTS[3:]],
        {**{k: v for k, v in NAMESPACES.items() if k != "alice-dev"}, "carol": "bob"},
    )
    assert compute(world, CLUSTER) == compute(fresh, CLUSTER)
    assert world.knows_namespace("carol")
    assert not world.knows_namespace("alice-dev")
    assert world.secret("alice", "token") is None
    assert world.secret("alice", "db") == secret("alice", "db", b"changed")
    assert world.grant("bob", "db-carol") == grant("bob", "db", "alice", "db-carol")


def test_ten_thousand_secrets_scoped_run_is_cheap() -> None:
    import time

    namespaces = {f"user{i}": f"user{i}" for i in range(1000)}
    secrets = [secret(f"user{i % 1000}", f"key{i}") for i in range(10_000)]
    grants = [grant(f"user{i % 1000}", f"key{i}", f"user{(i + 1) % 1000}") for i in range(10_000)]
    world = World(secrets, grants, namespaces)
    start = time.perf_counter()
    for i in range(100):
        compute(world, CLUSTER, for_keys=[OwnerKey(f"user{i % 1000}", f"key{i}")])
    assert time.perf_counter() - start < 1.0
    full = compute(world, CLUSTER)
    assert len(full.copies) == 20_000


# --- Order independence ----------------------------------------------------------------------

_users = st.sampled_from(["alice", "bob", "carol", "dave"])
_keys = st.sampled_from(["db", "token", "key"])
_namespaces = st.dictionaries(
    st.sampled_from(["ns1", "ns2", "ns3", "ns4", "ns5", "kube-system"]),
    st.one_of(st.none(), _users),
    min_size=1,
)
_times = st.sampled_from([T1, T2, "2024-01-01T00:00:00+01:00"])
_values = st.one_of(st.none(), st.sampled_from([b"a", b"b"]))


@st.composite
def _worlds(draw: st.DrawFn) -> tuple[list[SecretView], list[GrantView], dict[str, str | None]]:
    namespaces = draw(_namespaces)
    names = sorted(namespaces)
    pairs = draw(st.sets(st.tuples(st.sampled_from(names), _keys), max_size=8))
    secrets = [secret(ns, key, draw(_values), draw(_times)) for ns, key in sorted(pairs)]
    grants = draw(
        st.lists(
            st.builds(
                GrantView,
                namespace=st.sampled_from(names),
                name=st.sampled_from(["g1", "g2", "g3"]),
                secret_name=_keys,
                user=_users,
            ),
            max_size=6,
            unique_by=lambda g: (g.namespace, g.name),
        )
    )
    return secrets, grants, namespaces


@settings(max_examples=200, deadline=None)
@given(world=_worlds(), data=st.data())
def test_result_does_not_depend_on_input_order(
    world: tuple[list[SecretView], list[GrantView], dict[str, str | None]], data: st.DataObject
) -> None:
    secrets, grants, namespaces = world
    expected = desired_state(secrets, grants, namespaces, CLUSTER)
    shuffled_namespaces = dict(data.draw(st.permutations(list(namespaces.items()))))
    got = desired_state(
        data.draw(st.permutations(secrets)),
        data.draw(st.permutations(grants)),
        shuffled_namespaces,
        CLUSTER,
    )
    assert got == expected
    assert diff(got, as_actual(expected)).empty
    # Scoped runs agree with the full one, whatever the scope.
    world_obj = World(secrets, grants, namespaces)
    for pair in {(c.owner, c.key) for c in expected.copies.values()}:
        scoped = compute(world_obj, CLUSTER, for_keys=[OwnerKey(*pair)])
        assert scoped.copies == {
            i: c for i, c in expected.copies.items() if (c.owner, c.key) == pair
        }


# --- Facts, field by field -------------------------------------------------------------------


def test_the_facts_of_every_secret_state() -> None:
    uri = "secret://test/alice/db"
    materialized = run([secret("alice", "db")]).secrets["alice", "db"]
    assert materialized == SecretFacts(
        "alice",
        "db",
        "alice",
        uri,
        SecretState.MATERIALIZED,
        ("alice", "alice-dev"),
        ("alice", "alice-dev"),
    )
    shared = run([secret("alice", "db")], [grant("alice", "db", "bob")]).secrets["alice", "db"]
    assert (shared.namespaces, shared.owned) == (
        ("alice", "alice-dev", "bob", "bob-gpu"),
        ("alice", "alice-dev"),
    )
    conflict = run([secret("alice", "db"), secret("alice-dev", "db", created=T2)])
    assert conflict.secrets["alice-dev", "db"] == SecretFacts(
        "alice-dev", "db", "alice", uri, SecretState.CONFLICT, conflict_with="alice"
    )
    missing = run([secret("alice-dev", "db", value=None)]).secrets["alice-dev", "db"]
    assert missing == SecretFacts("alice-dev", "db", "alice", uri, SecretState.SOURCE_MISSING)
    refused = SecretView("alice-dev", "db", T1, None, refused_type="bootstrap.kubernetes.io/token")
    assert run([refused]).secrets["alice-dev", "db"] == SecretFacts(
        "alice-dev",
        "db",
        "alice",
        uri,
        SecretState.SOURCE_REFUSED,
        refused_type="bootstrap.kubernetes.io/token",
    )
    world = World([secret("alice", "k"), secret("alice-dev", "db", created=T2)], (), NAMESPACES)
    world.limits = Limits(secrets_per_user=1)
    assert compute(world, CLUSTER).secrets["alice-dev", "db"] == SecretFacts(
        "alice-dev", "db", "alice", uri, SecretState.LIMIT_EXCEEDED, limit=("secrets", 1)
    )
    system = run([secret("kube-system", "db")], [grant("kube-system", "db", "bob")])
    assert system.secrets["kube-system", "db"] == SecretFacts(
        "kube-system", "db", None, None, SecretState.NO_OWNER
    )
    assert system.grants["kube-system", "db-bob"] == GrantFacts(
        "kube-system", "db-bob", None, "bob", "db", None, GrantState.NO_OWNER
    )


def test_the_facts_of_a_grant() -> None:
    world = World([secret("alice", "db")], [grant("alice", "db", "bob")], NAMESPACES)
    world.set_namespace("bob-gpu", "bob", frozenset({"carol"}))
    assert compute(world, CLUSTER).grants["alice", "db-bob"] == GrantFacts(
        "alice",
        "db-bob",
        "alice",
        "bob",
        "db",
        "secret://test/alice/db",
        GrantState.GRANTED,
        ("bob",),
        declined=1,
    )


def test_a_grant_past_its_limit_that_names_no_secret_is_only_not_found() -> None:
    grants = [GrantView("alice", f"g{i}", "nope", "bob", f"2024-01-0{i + 1}") for i in range(2)]
    world = World([], grants, NAMESPACES, Limits(grants_per_user=1))
    assert compute(world, CLUSTER).grants["alice", "g1"] == GrantFacts(
        "alice",
        "g1",
        "alice",
        "bob",
        "nope",
        "secret://test/alice/nope",
        GrantState.SECRET_NOT_FOUND,
    )


def test_a_naive_creation_time_counts_as_utc() -> None:
    desired = run(
        [
            secret("alice", "db", b"later", "2024-01-01T00:00:01"),
            secret("alice-dev", "db", b"earlier", "2024-01-01T00:00:00Z"),
        ]
    )
    assert {c.value for c in desired.copies.values()} == {b"earlier"}
    assert desired.secrets["alice", "db"].conflict_with == "alice-dev"


# --- What exists -----------------------------------------------------------------------------


def test_an_actual_secret_keeps_its_labels_finalizers_and_deletion() -> None:
    labels = copy_labels("alice", "db", "owner") | {"team": "ml"}
    found = ActualSecret.of("alice", ALICE_DB, labels, {"a": "b"}, {"value": CANARY})
    assert (found.labels, found.annotations, found.finalizers, found.deleting) == (
        labels,
        {"a": "b"},
        (),
        False,
    )
    kept = ActualSecret.of("alice", ALICE_DB, labels, None, None, ["bob.example/keep"], True)
    assert (kept.annotations, kept.finalizers, kept.deleting) == ({}, ("bob.example/keep",), True)


def test_a_copy_made_without_a_digest_gets_the_one_of_its_data() -> None:
    made = DesiredCopy("alice", ALICE_DB, "alice", "db", "owner", {}, {}, CANARY)
    same = ActualSecret.of("alice", ALICE_DB, {}, {}, {"value": CANARY})
    other = ActualSecret.of("alice", ALICE_DB, {}, {}, {"value": b"other"})
    assert made.digest == same.digest != other.digest


def test_a_copy_on_its_way_out_holds_up_no_other() -> None:
    desired = run([secret("alice", "db")])
    first, second = as_actual(desired)
    leaving = replace(first, deleting=True)
    plan = diff(desired, [leaving])
    assert [(c.namespace, c.name) for c in plan.creates] == [(second.namespace, second.name)]
    assert plan.deletes == (leaving,)
    assert diff(desired, [first, second]).empty


# --- The World's queries, exactly ------------------------------------------------------------


def test_what_each_user_sees_and_is_shared() -> None:
    world = World(WORLD_SECRETS, WORLD_GRANTS, NAMESPACES)
    assert world.namespaces() == set(NAMESPACES)
    assert world.keys_visible_to("bob") == {
        OwnerKey("bob", "db"),
        OwnerKey("alice", "db"),
        OwnerKey("alice", "missing"),
    }
    assert world.keys_visible_to("carol") == {
        OwnerKey("carol", "key"),
        OwnerKey("alice", "token"),
        OwnerKey("bob", "db"),
    }
    for nobody in ("nobody", NOBODY):
        assert world.keys_visible_to(nobody) == set()
        assert world.secrets_past(nobody) == {}
        assert world.grants_past(nobody) == {}
        assert world.shares_past(nobody) == {}
        assert not world.over_secret_limits(nobody)
        assert not world.over_grant_limit(nobody)
        assert not world.over_share_limit(nobody)
    assert compute(world, CLUSTER, for_keys=[OwnerKey("nobody", "db")]) == Desired(
        {}, {}, {}, frozenset({OwnerKey("nobody", "db")})
    )
    world.set_namespace("bob", "bob", frozenset({"alice"}))
    assert world.accepts_policy("bob") == frozenset({"alice"})
    assert world.accepts_policy("bob-gpu") is None
    world.set_namespace("bob", "bob")
    assert world.accepts_policy("bob") is None


_NS = st.sampled_from(["ns1", "ns2"])
_GRANT_NAMES = st.sampled_from(["g1", "g2"])
SMALL = Limits(secrets_per_user=1, bytes_per_user=3, grants_per_user=1, shares_per_user=1)


def observed(world: World) -> dict[object, object]:
    """Every answer a World gives about its contents, and what it computes."""
    users = ["alice", "bob", "carol", "dave"]
    found: dict[object, object] = {"compute": compute(world, CLUSTER), "all": world.namespaces()}
    for user in [*users, NOBODY]:
        found[user] = (
            world.namespaces_of(user),
            world.keys_visible_to(user),
            world.grants_past(user),
            world.shares_past(user),
            world.over_secret_limits(user),
            world.over_grant_limit(user),
            world.over_share_limit(user),
        )
    # Only a user's UserSecrets are ranked: compute gives nobody's NoOwner facts first, and the
    # cache asks of the users of namespaces only.
    for user in users:
        found[user, "secrets past"] = world.secrets_past(user)
    for namespace in ["ns1", "ns2", "ns3"]:
        found[namespace] = (
            world.user_of(namespace),
            world.accepts_policy(namespace),
            world.affected_by_namespace(namespace, "alice"),
        )
    return found


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_world_kept_up_to_date_answers_as_one_built_afresh(data: st.DataObject) -> None:
    """Between each change, computed answers (and the rankings past a limit they keep) must
    be those of a World built from the end state. Removals pick what is there."""
    world = World(limits=SMALL)
    secrets: dict[tuple[str, str], SecretView] = {}
    grants: dict[tuple[str, str], GrantView] = {}
    namespaces: dict[str, tuple[str | None, frozenset[str] | None]] = {}
    for _ in range(data.draw(st.integers(1, 25))):
        operation = data.draw(st.sampled_from(["secret", "grant", "namespace", "remove"]))
        if operation == "secret":
            view = SecretView(
                data.draw(_NS),
                data.draw(_keys),
                data.draw(_times),
                data.draw(st.sampled_from([None, b"ab", b"abcd"])),
            )
            world.put_secret(view)
            secrets[view.namespace, view.key] = view
        elif operation == "grant":
            made = GrantView(
                data.draw(_NS), data.draw(_GRANT_NAMES), data.draw(_keys), data.draw(_users)
            )
            world.put_grant(made)
            grants[made.namespace, made.name] = made
        elif operation == "namespace":
            ns, user = data.draw(_NS), data.draw(st.none() | _users)
            accepts = data.draw(st.none() | st.frozensets(_users, max_size=2))
            world.set_namespace(ns, user, accepts)
            namespaces[ns] = (user, accepts)
        elif (
            present := [("secret", *k) for k in secrets]
            + [("grant", *k) for k in grants]
            + [("namespace", k) for k in namespaces]
        ):
            kind, *ident = data.draw(st.sampled_from(present))
            if kind == "secret":
                world.remove_secret(*ident)
                del secrets[ident[0], ident[1]]
            elif kind == "grant":
                world.remove_grant(*ident)
                del grants[ident[0], ident[1]]
            else:
                world.remove_namespace(ident[0])
                del namespaces[ident[0]]
        fresh = World(secrets.values(), grants.values(), limits=SMALL)
        for ns, (user, accepts) in namespaces.items():
            fresh.set_namespace(ns, user, accepts)
        assert observed(world) == observed(fresh)
