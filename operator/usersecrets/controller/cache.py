"""The leader's view of the cluster as the watches tell it, and which secrets each change touches.

Every watch event is recorded here, on the event loop, and answered with the (owner, key) pairs
whose copies may now differ from the desired ones; the caller queues them. Nothing here calls
the apiserver: each mapping from an event to dirty pairs is unit-tested with plain dicts.

Values: a UserSecret's inline value lives in the World (the desired copies are made of it); a
copy is remembered by a keyed digest of its data, never its data.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Collection, Iterable, Iterator, KeysView, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from usersecrets.api.resources import SecretKeySelector, UserSecretSpec
from usersecrets.rules import naming
from usersecrets.rules.desired import (
    ActualSecret,
    GrantView,
    Limits,
    OwnerKey,
    SecretView,
    World,
)
from usersecrets.rules.quota import Room, room_of
from usersecrets.settings import Settings

Ref = tuple[str, str]  # (namespace, name)
Pairs = set[OwnerKey]

T = TypeVar("T")

#: Objects a relist records before the event loop may answer an admission again.
RELIST_CHUNK = 500


@dataclass
class Tracked:
    """What status writes need of one of our objects: its identity, generation and status.

    The status is kept as compact JSON: parsed, ten thousand of them are ~15 MB of small
    objects, and they are only read when a status is written."""

    uid: str
    generation: int | None
    status_json: str
    value_from: SecretKeySelector | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any], value_from: SecretKeySelector | None = None) -> Tracked:
        meta = body["metadata"]
        return cls(meta["uid"], meta.get("generation"), _compact(body.get("status")), value_from)

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = orjson.loads(self.status_json)
        return status

    @status.setter
    def status(self, value: Mapping[str, Any] | None) -> None:
        self.status_json = _compact(value)

    def same_spec(self, meta: Mapping[str, Any]) -> bool:
        """The same object at the same generation: only its status or metadata changed."""
        return (self.uid, self.generation) == (meta["uid"], meta.get("generation"))


def _compact(status: Mapping[str, Any] | None) -> str:
    # A str: the bytes orjson returns keep its whole buffer, ~4 KiB each (35 MiB more RSS at
    # 10,000 UserSecrets in `make bench`).
    return orjson.dumps(status or {}).decode()


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), RELIST_CHUNK):
        yield items[start : start + RELIST_CHUNK]


def _status_only(tracked: Tracked | None, body: Mapping[str, Any]) -> bool:
    """Whether `body` is what we track at the same spec, its status aside (our own status
    write, coming back): the status is noted, and nothing else changed."""
    if tracked is None or not tracked.same_spec(body["metadata"]):
        return False
    tracked.status = body.get("status")
    return True


def _changed_sides(owner: str, before: Mapping[Ref, object], after: Mapping[Ref, object]) -> Pairs:
    """The owner's pairs that went past a limit or came back under it."""
    return {OwnerKey(owner, key) for _, key in before.keys() ^ after.keys()}


def ref_of(obj: Mapping[str, Any]) -> Ref:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def pair_of_labels(labels: Mapping[str, str]) -> OwnerKey | None:
    owner, key = labels.get(naming.OWNER_LABEL), labels.get(naming.KEY_LABEL)
    return OwnerKey(owner, key) if owner and key else None


class Copies:
    """Our copies as the watch shows them: by name, with the version last seen, by pair."""

    def __init__(self) -> None:
        self._copies: dict[Ref, ActualSecret] = {}
        self._versions: dict[Ref, str] = {}
        self._by_pair: dict[OwnerKey, set[Ref]] = {}

    def remember(self, copy: ActualSecret, version: str) -> None:
        ref = (copy.namespace, copy.name)
        self.forget(ref)
        self._copies[ref] = copy
        self._versions[ref] = version
        if (pair := pair_of_labels(copy.labels)) is not None:
            self._by_pair.setdefault(pair, set()).add(ref)

    def forget(self, ref: Ref) -> None:
        copy = self._copies.pop(ref, None)
        self._versions.pop(ref, None)
        if copy is None or (pair := pair_of_labels(copy.labels)) is None:
            return
        refs = self._by_pair.get(pair, set())
        refs.discard(ref)
        if not refs:
            self._by_pair.pop(pair, None)

    def get(self, ref: Ref) -> ActualSecret | None:
        return self._copies.get(ref)

    def version(self, ref: Ref) -> str | None:
        return self._versions.get(ref)

    def of_pair(self, pair: OwnerKey) -> list[ActualSecret]:
        return [self._copies[ref] for ref in self._by_pair.get(pair, ())]

    def refs(self) -> KeysView[Ref]:
        return self._copies.keys()

    def pairs(self) -> KeysView[OwnerKey]:
        return self._by_pair.keys()

    def __len__(self) -> int:
        return len(self._copies)


#: The kinds a relist reads in pages, in the order it reads them.
RELISTED = ("secret", "grant", "usersecret")
#: A namespace's (labels, annotations).
Labelled = tuple[dict[str, str] | None, dict[str, str] | None]


class Cache:
    """The inputs of the desired state (`world`), our copies, and what the last reconcile of
    each pair found (names held by others, copies the apiserver refused)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.world = World(
            limits=Limits(
                secrets_per_user=settings.limit_secrets_per_user,
                bytes_per_user=settings.limit_mib_per_user * 1024 * 1024,
                grants_per_user=settings.limit_grants_per_user,
                shares_per_user=settings.limit_shares_per_user,
            )
        )
        #: One bytes object per distinct value, however many UserSecrets hold it: 300 of them
        #: naming one 1 MB Secret are 1 MB here. value -> (the object kept, how many hold it).
        self._values: dict[bytes, tuple[bytes, int]] = {}
        self.copies = Copies()
        self.usersecrets: dict[Ref, Tracked] = {}
        self.grants: dict[Ref, Tracked] = {}
        #: valueFrom Secret -> the UserSecrets reading it.
        self.sources: dict[Ref, set[Ref]] = {}
        #: Copy names taken by a Secret we do not manage -> the pair that wants the name, so
        #: that the copy is created as soon as that Secret goes (we get no other event then).
        self.collisions: dict[Ref, OwnerKey] = {}
        #: Per pair, the namespaces whose copy the apiserver refused (or that a quota's reserve
        #: held back), and why.
        self.refused: dict[OwnerKey, dict[str, str]] = {}
        #: namespace -> quota name -> the room it leaves for Secrets.
        self.rooms: dict[str, dict[str, Room]] = {}
        #: namespace -> the pairs whose copies there wait for room.
        self.held: dict[str, set[OwnerKey]] = {}
        #: While a relist runs: what events changed meanwhile, (kind, (namespace, name)).
        self._touched: set[tuple[str, Ref]] | None = None
        #: While a relist runs: what its lists held so far, by kind.
        self._listed: dict[str, set[Ref]] = {}

    # -- events ---------------------------------------------------------------------------

    def namespace(
        self,
        name: str,
        labels: Mapping[str, str] | None,
        deleted: bool,
        annotations: Mapping[str, str] | None = None,
    ) -> Pairs:
        self._touch("namespace", ("", name))
        world = self.world
        user = None if deleted else naming.user_of_namespace(name, labels, self.settings)
        accepts = naming.accepted_owners(annotations, self.settings)
        if (
            not deleted
            and world.knows_namespace(name)
            and (world.user_of(name), world.accepts_policy(name)) == (user, accepts)
        ):
            return set()
        affected = world.affected_by_namespace(name, user)
        owners = {u for u in (world.user_of(name), user) if u}
        past = {u: world.secrets_past(u) for u in owners}
        if deleted:
            world.remove_namespace(name)
            self.rooms.pop(name, None)
        else:
            world.set_namespace(name, user, accepts)
        # A user who gains or loses a namespace's secrets may go past a limit, or back under.
        for owner, before in past.items():
            affected |= _changed_sides(owner, before, world.secrets_past(owner))
        return affected | world.affected_by_namespace(name, user)

    def usersecret(self, body: Mapping[str, Any], deleted: bool) -> Pairs:
        """A valueFrom value is left unknown here: the reconciler reads the source."""
        meta = body["metadata"]
        ref = ref_of(body)
        self._touch("usersecret", ref)
        old = self.usersecrets.get(ref)
        if not deleted and _status_only(old, body):
            return set()
        if old and old.value_from:
            self.sources.get((ref[0], old.value_from.name), set()).discard(ref)
        if deleted:
            self.usersecrets.pop(ref, None)
            return self.put_secret(ref, None)
        spec = UserSecretSpec.model_validate(body.get("spec") or {})
        selector = spec.value_from.secret_key_ref if spec.value_from else None
        self.usersecrets[ref] = Tracked.of(body, selector)
        if selector is not None:
            self.sources.setdefault((ref[0], selector.name), set()).add(ref)
        created = meta.get("creationTimestamp") or ""
        return self.put_secret(ref, SecretView(ref[0], ref[1], created, spec.decoded_value()))

    def put_secret(self, ref: Ref, view: SecretView | None) -> Pairs:
        """Puts (None: removes) a UserSecret's view, its value kept once however many hold
        it; the pairs that changes: its own, and all of its owner's while past a limit (a
        newer one may now fit, or no longer)."""
        world = self.world
        owner = world.user_of(ref[0])
        before = world.secrets_past(owner) if owner is not None else {}
        if (old := world.secret(*ref)) is not None:
            self._release(old.value)
        if view is None:
            world.remove_secret(*ref)
        else:
            world.put_secret(dataclasses.replace(view, value=self._intern(view.value)))
        dirty = self._pairs([ref])
        if owner is not None:
            dirty |= _changed_sides(owner, before, world.secrets_past(owner))
        return dirty

    def _intern(self, value: bytes | None) -> bytes | None:
        if value is None:
            return None
        kept, holders = self._values.get(value, (value, 0))
        self._values[value] = (kept, holders + 1)
        return kept

    def _release(self, value: bytes | None) -> None:
        if value is None or value not in self._values:
            return
        kept, holders = self._values[value]
        if holders > 1:
            self._values[value] = (kept, holders - 1)
        else:
            del self._values[value]

    def secretgrant(self, body: Mapping[str, Any], deleted: bool) -> Pairs:
        meta, spec = body["metadata"], body.get("spec") or {}
        ref = ref_of(body)
        self._touch("grant", ref)
        if not deleted and _status_only(self.grants.get(ref), body):
            return set()
        world = self.world
        dirty: Pairs = set()
        if (before := world.grant(*ref)) is not None:
            dirty |= self._pairs([(before.namespace, before.secret_name)])
        owner = world.user_of(ref[0])
        grantees = {u for u in (before.user if before else None, spec.get("user")) if u}
        past = self._grants_past(owner, grantees)
        if deleted:
            world.remove_grant(*ref)
            self.grants.pop(ref, None)
        else:
            self.grants[ref] = Tracked.of(body)
            created = meta.get("creationTimestamp") or ""
            world.put_grant(GrantView(ref[0], ref[1], spec["secretName"], spec["user"], created))
            dirty |= self._pairs([(ref[0], spec["secretName"])])
        # The grants that went past a limit, or came back under it.
        now = self._grants_past(owner, grantees)
        for changed in now.keys() ^ past.keys():
            if (grant := world.grant(*changed)) is not None:
                dirty |= self._pairs([(grant.namespace, grant.secret_name)])
        return dirty

    def _grants_past(self, owner: str | None, grantees: Iterable[str]) -> dict[Ref, object]:
        """The grants of `owner` and to `grantees` that are past a limit."""
        past: dict[Ref, object] = dict(self.world.grants_past(owner)) if owner else {}
        for grantee in grantees:
            past.update(self.world.shares_past(grantee))
        return past

    def copy(self, body: Mapping[str, Any], deleted: bool) -> Pairs:
        """One of our copies, to notice drift. A copy that loses our label is DELETED for a
        label-selected watch, and forgotten: if the name is still wanted, creating it will
        find it held by someone else."""
        meta = body["metadata"]
        ref = ref_of(body)
        self._touch("secret", ref)
        if not deleted and self.copies.version(ref) == meta["resourceVersion"]:
            return set()  # our own write, coming back
        # The pair it was a copy of, the one its labels now name (someone may edit them), any
        # UserSecret that takes its value from it (a grantee passing a share on), and a pair
        # waiting for its name (a look-alike with our label is someone else's too).
        cached = self.copies.get(ref)
        dirty = self._interested(ref) | {
            pair
            for labels in (cached.labels if cached else {}, meta.get("labels") or {})
            if (pair := pair_of_labels(labels)) is not None
        }
        if deleted:
            self.copies.forget(ref)
        else:
            data = {k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()}
            copy = ActualSecret.of(
                *ref,
                meta.get("labels"),
                meta.get("annotations"),
                data,
                meta.get("finalizers") or (),
                deleting=bool(meta.get("deletionTimestamp")),
            )
            self.copies.remember(copy, meta["resourceVersion"])
        return dirty

    def quota(self, body: Mapping[str, Any], deleted: bool) -> Pairs:
        """A ResourceQuota: the room it leaves for Secrets; the pairs waiting for room there."""
        ref = ref_of(body)
        rooms = self.rooms.setdefault(ref[0], {})
        room = None if deleted else room_of(body)
        if room is None:
            rooms.pop(ref[1], None)
        else:
            rooms[ref[1]] = room
        if not rooms:
            del self.rooms[ref[0]]
        return set(self.held.get(ref[0], ()))

    def quotas_listed(self, items: list[dict[str, Any]]) -> Pairs:
        """The quotas watch listed again: the rooms are these, and every held pair looks again."""
        self.rooms = {}
        for item in items:
            self.quota(item, False)
        return set().union(*self.held.values())

    def quotas_read(self, namespace: str, items: list[dict[str, Any]]) -> None:
        """A namespace's quotas as just read: what its rooms are, whatever the watch said."""
        self.rooms.pop(namespace, None)
        for item in items:
            self.quota(item, False)

    def room(self, namespace: str) -> Room | None:
        """The tightest room the namespace's quotas leave for Secrets, if any counts them."""
        rooms = self.rooms.get(namespace, {}).values()
        return min(rooms, key=lambda r: r.hard - r.used, default=None)

    def secret(self, meta: Mapping[str, Any]) -> Pairs:
        """A Secret other than our copies changed (metadata only): a valueFrom source, or a
        Secret of someone else's holding a copy's name, whose deletion (or taking our label)
        lets the copy be written at last."""
        return self._interested((meta["namespace"], meta["name"]))

    def _interested(self, ref: Ref) -> Pairs:
        """The pairs that take a value from `ref`, and the one waiting for its name."""
        waiting = self.collisions.get(ref)
        return self._readers([ref]) | ({waiting} if waiting is not None else set())

    def listed_anew(self, kind: str, page: list[dict[str, Any]]) -> Pairs:
        """A page of the list a watch of copies ("secret") or of UserSecrets ("usersecret")
        read again, after 410 Gone or a failure: what it missed."""
        record, _ = self._kind(kind)
        return set().union(*(record(item, False) for item in page))

    def listed_anew_in_full(self, kind: str, listed: set[Ref]) -> Pairs:
        """That list's end: what it did not have went while the watch was away."""
        record, cached = self._kind(kind)
        return self._forget_unlisted(kind, cached, listed, record)

    def _kind(self, kind: str) -> tuple[Callable[[Mapping[str, Any], bool], Pairs], Iterable[Ref]]:
        """How an object of a listed kind (one of RELISTED) is recorded; what the cache holds."""
        if kind == "secret":
            return self.copy, self.copies.refs()
        if kind == "grant":
            return self.secretgrant, self.grants.keys()
        if kind == "usersecret":
            return self.usersecret, self.usersecrets.keys()
        raise ValueError(kind)

    def secrets_listed(self) -> Pairs:
        """The Secrets watch listed again: any source may have changed, any Secret holding a
        copy's name may have gone, while it was away."""
        return self._readers(list(self.sources)) | set(self.collisions.values())

    # -- relists ---------------------------------------------------------------------------

    def begin_relist(self) -> None:
        """From now until `end_relist`, events are noted: they are newer than the lists.

        A relist makes the cache equal to full lists, at start, before any work (so nothing
        is deleted because the view was partial), and periodically, because a watch that
        restarts from a new list never tells of what was deleted while it was away. The
        lists come a page at a time (`relisted_*`), so that no more than a page is held, and
        the event loop answers admissions in between; events that come then are newer than
        the lists, and win."""
        self._touched = set()
        self._listed = {kind: set() for kind in RELISTED}

    def relisted_namespaces(self, namespaces: Mapping[str, Labelled]) -> Iterator[Pairs]:
        """All the namespaces, name -> (labels, annotations): the pairs each chunk dirtied."""
        touched = self._touched or set()
        fresh = [
            (n, meta) for n, meta in namespaces.items() if ("namespace", ("", n)) not in touched
        ]
        for chunk in _chunks(fresh):
            yield set().union(
                *(self.namespace(n, labels, False, notes) for n, (labels, notes) in chunk)
            )

    def relisted(self, kind: str, page: list[dict[str, Any]]) -> Pairs:
        """A page of a list of `kind` (one of RELISTED)."""
        record, _ = self._kind(kind)
        touched = self._touched or set()
        self._listed[kind].update(ref_of(o) for o in page)
        return set().union(*(record(o, False) for o in page if (kind, ref_of(o)) not in touched))

    def end_relist(self, namespaces: Collection[str] | None) -> Iterator[Pairs]:
        """Forgets what the lists no longer have, unless an event brought it back while they
        were read; `namespaces` are all the listed ones, None if the lists were not had in
        full (then nothing is forgotten)."""
        touched = self._touched if self._touched is not None else set()
        try:
            if namespaces is None:
                return
            yield set().union(
                *(
                    self.namespace(name, None, deleted=True)
                    for name in self.world.namespaces() - set(namespaces)
                    if ("namespace", ("", name)) not in touched
                )
            )
            for kind in RELISTED:
                forget, cached = self._kind(kind)
                yield self._forget_unlisted(kind, cached, self._listed[kind], forget, touched)
        finally:
            self._touched = None
            self._listed = {}

    def everything(self) -> Pairs:
        """Every pair the cache knows of, including ones only a stale copy still names."""
        pair_of = self.world.pair_of
        pairs = {p for s in self.world.all_secrets() if (p := pair_of(s.namespace, s.key))}
        pairs |= {p for g in self.world.all_grants() if (p := pair_of(g.namespace, g.secret_name))}
        return pairs | set(self.copies.pairs())

    # -- what a reconcile found ---------------------------------------------------------------

    def collisions_of(self, pair: OwnerKey) -> list[Ref]:
        return [ref for ref, waiting in self.collisions.items() if waiting == pair]

    def found(
        self,
        pair: OwnerKey,
        collisions: Iterable[Ref],
        refused: Mapping[str, str],
        held: Iterable[str] = (),
    ) -> None:
        """What the last attempt at the pair's copies met: names held by others, refusals,
        namespaces where a quota's reserve held its copy back (woken by their quotas)."""
        for waiting in self.held.values():
            waiting.discard(pair)
        for namespace in held:
            self.held.setdefault(namespace, set()).add(pair)
        for ref in self.collisions_of(pair):
            del self.collisions[ref]
        for ref in collisions:
            self.collisions[ref] = pair
        self.refused.pop(pair, None)
        if refused:
            self.refused[pair] = dict(refused)

    # -- helpers ---------------------------------------------------------------------------

    def _touch(self, kind: str, ref: Ref) -> None:
        if self._touched is not None:
            self._touched.add((kind, ref))

    def _pairs(self, refs: Iterable[Ref]) -> Pairs:
        """The pairs of these (namespace, key)s, where their namespaces are known."""
        return {pair for ref in refs if (pair := self.world.pair_of(*ref)) is not None}

    def _readers(self, sources: Iterable[Ref]) -> Pairs:
        return self._pairs(reader for ref in sources for reader in self.sources.get(ref, ()))

    def _forget_unlisted(
        self,
        kind: str,
        cached: Iterable[Ref],
        present: set[Ref],
        forget: Callable[[Mapping[str, Any], bool], Pairs],
        touched: Iterable[tuple[str, Ref]] = (),
    ) -> Pairs:
        """Whatever the cache holds that a full list no longer has was deleted unseen."""
        dirty: Pairs = set()
        for namespace, name in set(cached) - present - {r for k, r in touched if k == kind}:
            dirty |= forget({"metadata": {"namespace": namespace, "name": name}}, True)
        return dirty
