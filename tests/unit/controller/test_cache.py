"""Watch events into the cache, and the secrets each one makes dirty."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from usersecrets.controller.cache import Cache, Labelled
from usersecrets.rules.desired import OwnerKey, SecretView
from usersecrets.settings import Settings

USER = "usersecrets.io/user"


def cache(*namespaces: tuple[str, str]) -> Cache:
    """A cache that knows these (namespace, user) pairs."""
    found = Cache(Settings())
    for name, user in namespaces:
        found.namespace(name, {USER: user}, deleted=False)
    return found


def usersecret(
    namespace: str, key: str, generation: int = 1, value: str | None = "dg==", **extra: Any
) -> dict[str, Any]:
    spec = {"value": value} if value is not None else extra.pop("spec")
    meta = {"namespace": namespace, "name": key, "uid": f"u-{key}", "generation": generation}
    return {"metadata": meta, "spec": spec, **extra}


def grant(namespace: str, name: str, secret: str, user: str, generation: int = 1) -> dict[str, Any]:
    meta = {"namespace": namespace, "name": name, "uid": f"g-{name}", "generation": generation}
    return {"metadata": meta, "spec": {"secretName": secret, "user": user}}


def copy_body(namespace: str, owner: str, key: str, version: str) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/managed-by": "usersecrets",
        "usersecrets.io/owner": owner,
        "usersecrets.io/key": key,
        "usersecrets.io/reason": "owner",
    }
    meta = {"namespace": namespace, "name": f"usec-{key}", "resourceVersion": version}
    return {"metadata": {**meta, "labels": labels}, "data": {"value": "dg=="}}


def test_a_usersecret_dirties_its_owners_pair_once_per_spec() -> None:
    found = cache(("alice-ns", "alice"))
    assert found.usersecret(usersecret("alice-ns", "db"), deleted=False) == {
        OwnerKey("alice", "db")
    }
    # Our own status write coming back: same uid and generation, nothing to do.
    again = usersecret("alice-ns", "db", status={"uri": "secret://c/alice/db"})
    assert found.usersecret(again, deleted=False) == set()
    assert found.usersecrets[("alice-ns", "db")].status == {"uri": "secret://c/alice/db"}
    assert found.usersecret(usersecret("alice-ns", "db", 2), deleted=False) == {
        OwnerKey("alice", "db")
    }
    assert found.usersecret(usersecret("alice-ns", "db", 2), deleted=True) == {
        OwnerKey("alice", "db")
    }
    assert found.world.secret("alice-ns", "db") is None


def test_a_usersecret_in_a_namespace_not_seen_yet_waits_for_it() -> None:
    found = cache()
    assert found.usersecret(usersecret("later", "db"), deleted=False) == set()
    assert found.namespace("later", {USER: "carol"}, deleted=False) == {OwnerKey("carol", "db")}


def test_a_valuefrom_source_is_followed_and_forgotten() -> None:
    found = cache(("alice-ns", "alice"))
    source = {"valueFrom": {"secretKeyRef": {"name": "tokens", "key": "wandb"}}}
    found.usersecret(usersecret("alice-ns", "wandb", value=None, spec=source), deleted=False)
    assert found.sources == {("alice-ns", "tokens"): {("alice-ns", "wandb")}}
    view = found.world.secret("alice-ns", "wandb")
    assert view is not None
    assert view.value is None
    meta = {"namespace": "alice-ns", "name": "tokens"}
    assert found.secret(meta) == {OwnerKey("alice", "wandb")}
    found.usersecret(usersecret("alice-ns", "wandb", 2), deleted=False)  # now inline
    assert found.secret(meta) == set()


def test_a_grant_dirties_the_pair_it_named_and_the_one_it_names() -> None:
    found = cache(("alice-ns", "alice"), ("bob-ns", "bob"))
    assert found.secretgrant(grant("alice-ns", "g", "db", "bob"), deleted=False) == {
        OwnerKey("alice", "db")
    }
    moved = grant("alice-ns", "g", "api", "bob", generation=2)
    assert found.secretgrant(moved, deleted=False) == {
        OwnerKey("alice", "db"),
        OwnerKey("alice", "api"),
    }
    assert found.secretgrant(moved, deleted=True) == {OwnerKey("alice", "api")}
    assert found.world.grant("alice-ns", "g") is None


def test_a_relabelled_namespace_dirties_what_both_users_see() -> None:
    found = cache(("alice-ns", "alice"), ("team", "bob"))
    found.usersecret(usersecret("alice-ns", "db"), deleted=False)
    found.usersecret(usersecret("team", "k"), deleted=False)
    found.secretgrant(grant("alice-ns", "g", "db", "bob"), deleted=False)
    assert found.namespace("team", {USER: "carol"}, deleted=False) == {
        OwnerKey("alice", "db"),  # bob's view loses the namespace
        OwnerKey("bob", "k"),  # the key there was bob's
        OwnerKey("carol", "k"),  # and is carol's now
    }
    assert found.namespace("team", {USER: "carol"}, deleted=False) == set()  # no change


def test_a_namespace_of_the_operator_or_the_system_has_no_user() -> None:
    found = cache()
    found.namespace("usersecrets-system", {}, deleted=False)
    found.namespace("kube-public", {}, deleted=False)
    found.namespace("dave", {}, deleted=False)
    assert found.world.user_of("usersecrets-system") is None
    assert found.world.user_of("kube-public") is None
    assert found.world.user_of("dave") == "dave"


def test_a_copy_event_dirties_the_pair_its_labels_name_before_and_after() -> None:
    found = cache()
    assert found.copy(copy_body("bob-ns", "alice", "db", "1"), deleted=False) == {
        OwnerKey("alice", "db")
    }
    assert found.copy(copy_body("bob-ns", "alice", "db", "1"), deleted=False) == set()
    edited = copy_body("bob-ns", "mallory", "db", "2")
    edited["metadata"]["name"] = "usec-db"
    assert found.copy(edited, deleted=False) == {
        OwnerKey("alice", "db"),
        OwnerKey("mallory", "db"),
    }
    assert [c.name for c in found.copies.of_pair(OwnerKey("mallory", "db"))] == ["usec-db"]
    assert found.copies.of_pair(OwnerKey("alice", "db")) == []


def test_a_relisted_copies_watch_forgets_what_was_deleted_meanwhile() -> None:
    found = cache()
    found.copy(copy_body("bob-ns", "alice", "db", "1"), deleted=False)
    assert found.listed_anew("secret", []) == set()
    assert found.listed_anew_in_full("secret", set()) == {OwnerKey("alice", "db")}
    assert len(found.copies) == 0


def test_a_relisted_usersecrets_watch_records_what_it_missed_and_forgets_what_went() -> None:
    found = cache(("alice-ns", "alice"))
    found.usersecret(usersecret("alice-ns", "old"), deleted=False)
    found.usersecret(usersecret("alice-ns", "kept"), deleted=False)
    new = [usersecret("alice-ns", "kept"), usersecret("alice-ns", "new")]
    assert found.listed_anew("usersecret", new[:1]) == set()  # unchanged
    assert found.listed_anew("usersecret", new[1:]) == {OwnerKey("alice", "new")}
    listed = {("alice-ns", "kept"), ("alice-ns", "new")}
    assert found.listed_anew_in_full("usersecret", listed) == {OwnerKey("alice", "old")}
    assert sorted(found.usersecrets) == [("alice-ns", "kept"), ("alice-ns", "new")]
    assert found.world.secret("alice-ns", "old") is None


def test_a_relisted_secrets_watch_rereads_sources_and_retries_collisions() -> None:
    found = cache(("alice-ns", "alice"))
    found.sources[("alice-ns", "src")] = {("alice-ns", "from-src")}
    found.found(OwnerKey("bob", "x"), [("bob-ns", "usec-x")], {})
    assert found.secrets_listed() == {OwnerKey("alice", "from-src"), OwnerKey("bob", "x")}
    assert found.secret({"namespace": "bob-ns", "name": "usec-x"}) == {OwnerKey("bob", "x")}


def test_what_a_reconcile_found_replaces_what_the_last_one_did() -> None:
    found = cache()
    pair = OwnerKey("alice", "db")
    found.found(pair, [("a", "n"), ("b", "n")], {"c": "HTTP 403 Forbidden"})
    assert found.collisions_of(pair) == [("a", "n"), ("b", "n")]
    assert found.refused == {pair: {"c": "HTTP 403 Forbidden"}}
    found.found(pair, [("b", "n")], {})
    assert found.collisions_of(pair) == [("b", "n")]
    assert found.refused == {}


def relisted(
    found: Cache, namespaces: dict[str, str] | None, grants: Sequence[dict[str, Any]] = ()
) -> set[OwnerKey]:
    """A relist whose lists hold these namespaces (name -> user) and grants, and nothing else;
    None when they could not be had."""
    if namespaces is None:
        return set().union(*found.end_relist(None))
    labelled: dict[str, Labelled] = {n: ({USER: u}, None) for n, u in namespaces.items()}
    dirty = set().union(*found.relisted_namespaces(labelled))
    dirty |= found.relisted("grant", list(grants))
    return dirty | set().union(*found.end_relist(namespaces))


def test_a_relist_forgets_what_was_deleted_unseen_but_not_what_came_back() -> None:
    """A watch that restarts from a new list never tells of deletions while it was away."""
    found = cache(("alice-ns", "alice"), ("bob-ns", "bob"))
    found.secretgrant(grant("alice-ns", "revoked", "db", "bob"), deleted=False)
    found.secretgrant(grant("alice-ns", "kept", "db", "carol"), deleted=False)
    found.begin_relist()
    # Listed after "revoked" was deleted; "late" arrives by an event meanwhile.
    found.secretgrant(grant("alice-ns", "late", "db", "dave"), deleted=False)
    dirty = relisted(found, {"alice-ns": "alice"}, [grant("alice-ns", "kept", "db", "carol")])
    assert set(found.grants) == {("alice-ns", "kept"), ("alice-ns", "late")}
    assert found.world.namespaces() == {"alice-ns"}  # bob's namespace went unseen too
    assert OwnerKey("alice", "db") in dirty


def test_a_relist_keeps_what_an_event_changed_while_it_listed() -> None:
    """The list may be older than an event that came during it: the event wins."""
    found = cache(("alice-ns", "alice"))
    found.begin_relist()
    found.secretgrant(grant("alice-ns", "g", "db", "carol", generation=2), deleted=False)
    relisted(found, {"alice-ns": "alice"}, [grant("alice-ns", "g", "db", "bob")])
    view = found.world.grant("alice-ns", "g")
    assert view is not None
    assert view.user == "carol"


def test_a_relist_that_failed_stops_noting_events() -> None:
    found = cache()
    found.begin_relist()
    assert relisted(found, None) == set()
    found.secretgrant(grant("alice-ns", "g", "db", "bob"), deleted=False)
    found.begin_relist()
    relisted(found, {}, [grant("alice-ns", "g", "db", "bob")])
    assert ("alice-ns", "g") in found.grants  # not mistaken for an event during this relist


def test_everything_includes_pairs_only_a_stale_copy_names() -> None:
    found = cache(("alice-ns", "alice"))
    found.usersecret(usersecret("alice-ns", "db"), deleted=False)
    found.copy(copy_body("bob-ns", "zoe", "gone", "1"), deleted=False)
    assert found.everything() == {OwnerKey("alice", "db"), OwnerKey("zoe", "gone")}


def test_a_copys_finalizers_and_deletion_are_remembered() -> None:
    found = cache()
    body = copy_body("bob-ns", "alice", "db", "1")
    body["metadata"]["finalizers"] = ["bob.example/keep"]
    body["metadata"]["deletionTimestamp"] = "2026-11-29T12:00:00Z"
    found.copy(body, deleted=False)
    [kept] = found.copies.of_pair(OwnerKey("alice", "db"))
    assert (kept.finalizers, kept.deleting) == (("bob.example/keep",), True)


def test_a_relist_comes_in_pages_and_an_event_in_between_wins() -> None:
    """The event loop answers admissions between pages; what it records meanwhile is newer."""
    found = cache(("alice-ns", "alice"))
    listed = [grant("alice-ns", f"g{i}", "db", "bob") for i in range(1000)]
    found.begin_relist()
    found.relisted("grant", listed[:500])
    assert len(found.grants) == 500
    found.secretgrant(grant("alice-ns", "g999", "db", "carol", generation=2), deleted=False)
    found.relisted("grant", listed[500:])
    for _ in found.end_relist({"alice-ns"}):
        pass
    assert len(found.grants) == 1000
    view = found.world.grant("alice-ns", "g999")
    assert view is not None
    assert view.user == "carol"


def test_a_relist_forgets_nothing_when_its_lists_were_not_had_in_full() -> None:
    found = cache(("alice-ns", "alice"))
    found.secretgrant(grant("alice-ns", "a", "db", "bob"), deleted=False)
    found.begin_relist()
    found.relisted("grant", [grant("alice-ns", "b", "db", "bob")])  # then a page failed
    assert relisted(found, None) == set()
    assert set(found.grants) == {("alice-ns", "a"), ("alice-ns", "b")}


def test_one_value_is_kept_once_however_many_usersecrets_hold_it() -> None:
    found = cache(("alice-ns", "alice"))
    for key in ("a", "b", "c"):
        found.put_secret(("alice-ns", key), SecretView("alice-ns", key, "", bytes(b"x" * 1000)))
    views = [found.world.secret("alice-ns", key) for key in ("a", "b", "c")]
    assert all(v is not None for v in views)
    a, b, c = (v.value for v in views if v is not None)
    assert a is b is c
    found.put_secret(("alice-ns", "a"), None)
    found.put_secret(("alice-ns", "b"), None)
    found.put_secret(("alice-ns", "c"), SecretView("alice-ns", "c", "", b"y"))
    assert found._values == {b"y": (b"y", 1)}


def test_crossing_a_limit_dirties_the_secrets_that_changed_sides_only() -> None:
    found = Cache(Settings(limit_secrets_per_user=2))
    found.namespace("alice-ns", {USER: "alice"}, deleted=False)
    for key in ("a", "b"):
        assert found.usersecret(usersecret("alice-ns", key), deleted=False) == {
            OwnerKey("alice", key)
        }
    # "c" is the third: past the limit; "a" and "b" stay as they were.
    assert found.usersecret(usersecret("alice-ns", "c"), deleted=False) == {OwnerKey("alice", "c")}
    assert found.usersecret(usersecret("alice-ns", "d"), deleted=False) == {OwnerKey("alice", "d")}
    # "a" goes: the oldest one past the limit comes in, and only it.
    assert found.usersecret(usersecret("alice-ns", "a"), deleted=True) == {
        OwnerKey("alice", "a"),
        OwnerKey("alice", "c"),
    }
