"""The desired materialized Secrets as a pure function of (UserSecrets, SecretGrants, namespaces).

Level-based reconciliation rests on this module: whatever events were missed or repeated, the
operator computes what should exist, compares it with what does (`diff`) and applies the plan.
Nothing here performs I/O, so every rule is unit-tested without a cluster.

`World` indexes the inputs so that a computation restricted to a few (owner, key) pairs touches
only their secrets, grants and namespaces; the reconciler can keep one World up to date from
watch events and run a scoped computation per event, and a full one periodically.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random
import sys
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

from usersecrets.rules import naming, sharding


class OwnerKey(NamedTuple):
    """A secret's identity: the same in every namespace of its owner, and in its URI."""

    owner: str
    key: str


#: The owner of the pair that gathers the UserSecrets and grants of a key in namespaces with
#: no user (system ones, unlabelled ones without the fallback): they get a status saying so,
#: never copies. No user is named "" (a grant's user has at least one character).
NO_OWNER = ""


@dataclass(frozen=True)
class Limits:
    """What one user may have materialized: bounds on what a user can make the operator hold in
    memory and write into etcd (300 UserSecrets naming one 1 MB Secret are 300 MB of copies).
    Past a limit, the newest (by creation time) are left out, and their statuses say so."""

    #: UserSecrets in a user's namespaces.
    secrets_per_user: int = 500
    #: Bytes of their values, together.
    bytes_per_user: int = 64 * 1024 * 1024
    #: SecretGrants a user makes.
    grants_per_user: int = 500
    #: SecretGrants made to a user: what others may push into each of their namespaces.
    shares_per_user: int = 500


#: Which limit a secret or a grant is past, and its size.
Limit = tuple[str, int]


@dataclass(frozen=True, slots=True)
class SecretView:
    """What the computation needs of one UserSecret.

    `value` is None when it cannot be known: its valueFrom Secret (or that Secret's key) is
    missing. The owner is not stored: it is the namespace's user, looked up when computing, so a
    relabelled namespace changes it without rebuilding views.
    """

    namespace: str
    key: str
    created: str
    value: bytes | None = field(repr=False)
    #: The type of its valueFrom Secret, when that type is one that is never copied.
    refused_type: str | None = None


@dataclass(frozen=True, slots=True)
class GrantView:
    namespace: str
    name: str
    secret_name: str
    user: str
    created: str = ""


class SecretState(StrEnum):
    """Why a UserSecret is (not) materialized; the values are CamelCase condition reasons."""

    MATERIALIZED = "Materialized"
    SOURCE_MISSING = "SourceMissing"
    SOURCE_REFUSED = "SourceRefused"
    CONFLICT = "Conflict"
    LIMIT_EXCEEDED = "LimitExceeded"
    NO_OWNER = "NoOwner"


class GrantState(StrEnum):
    """Why a grant is (not) effective; the values are CamelCase condition reasons."""

    GRANTED = "Granted"
    SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105  (a reason, not a password)
    SECRET_NOT_READY = "SecretNotReady"  # noqa: S105
    LIMIT_EXCEEDED = "LimitExceeded"
    NO_OWNER = "NoOwner"


@dataclass(frozen=True, slots=True)
class DesiredCopy:
    """One Secret the operator should maintain; `value` is the bytes under naming.DATA_KEY."""

    namespace: str
    name: str
    owner: str
    key: str
    reason: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: bytes = field(repr=False)
    #: data_digest(self.data), computed once per (owner, key) rather than once per copy.
    digest: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.digest:
            object.__setattr__(self, "digest", data_digest(self.data))

    @property
    def data(self) -> dict[str, bytes]:
        return {naming.DATA_KEY: self.value}


@dataclass(frozen=True, slots=True)
class SecretFacts:
    """What the status of one UserSecret should say."""

    namespace: str
    key: str
    owner: str | None
    uri: str | None
    state: SecretState
    #: Sorted namespaces holding a copy of this UserSecret's value (empty unless materialized).
    namespaces: tuple[str, ...] = ()
    #: Those of them that are the owner's own: the only ones a status may name.
    owned: tuple[str, ...] = ()
    #: The namespace of the older UserSecret with the same (owner, key), when in conflict.
    conflict_with: str | None = None
    #: The type of its valueFrom Secret, when that type is never copied.
    refused_type: str | None = None
    #: The limit it is past, when LIMIT_EXCEEDED.
    limit: Limit | None = None


@dataclass(frozen=True, slots=True)
class GrantFacts:
    """What the status of one SecretGrant should say."""

    namespace: str
    name: str
    owner: str | None
    user: str
    secret_name: str
    uri: str | None
    state: GrantState
    #: Sorted namespaces of the grantee where the secret can be used now.
    namespaces: tuple[str, ...] = ()
    #: The limit it is past, when LIMIT_EXCEEDED.
    limit: Limit | None = None
    #: The grantee's namespaces that do not take shares from this owner.
    declined: int = 0


@dataclass(frozen=True, slots=True)
class Desired:
    """The computation's result; `scope` None means it covers the whole world."""

    copies: Mapping[tuple[str, str], DesiredCopy]
    secrets: Mapping[tuple[str, str], SecretFacts]
    grants: Mapping[tuple[str, str], GrantFacts]
    scope: frozenset[OwnerKey] | None = None

    def in_scope(self, owner: str | None, key: str | None) -> bool:
        if self.scope is None:
            return True
        return owner is not None and key is not None and OwnerKey(owner, key) in self.scope


# --- Inputs, indexed ---------------------------------------------------------------------------


class World:
    """The inputs, indexed for scoped computations; mutate it from events, read it to compute."""

    def __init__(
        self,
        secrets: Iterable[SecretView] = (),
        grants: Iterable[GrantView] = (),
        namespaces: Mapping[str, str | None] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.limits = limits or Limits()
        #: Counts kept as objects come and go, so that a user within every limit costs nothing.
        self._bytes_in: dict[str, int] = defaultdict(int)
        self._grants_in: dict[str, int] = defaultdict(int)
        #: Per ("secrets"|"grants"|"shares", user): bumped by each change of what it ranks; a
        #: ranking of a user past a limit is kept until its generation moves.
        self._generations: dict[tuple[str, str], int] = defaultdict(int)
        self._ranked: dict[tuple[str, str], tuple[int, dict[tuple[str, str], Limit]]] = {}
        self._secrets: dict[tuple[str, str], SecretView] = {}
        self._keys_by_namespace: dict[str, set[str]] = defaultdict(set)
        self._grants: dict[tuple[str, str], GrantView] = {}
        self._grants_by_target: dict[tuple[str, str], dict[str, GrantView]] = defaultdict(dict)
        self._grants_by_user: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._users: dict[str, str | None] = {}
        #: Namespaces that take shares from some users only (absent: from anyone).
        self._accepts: dict[str, frozenset[str]] = {}
        self._namespaces_of: dict[str, set[str]] = defaultdict(set)
        for name, user in (namespaces or {}).items():
            self.set_namespace(name, user)
        for secret in secrets:
            self.put_secret(secret)
        for grant in grants:
            self.put_grant(grant)

    # Mutations.

    def put_secret(self, secret: SecretView) -> None:
        self.remove_secret(secret.namespace, secret.key)
        self._touch_namespace(secret.namespace, "secrets")
        self._bytes_in[secret.namespace] += len(secret.value or b"")
        self._secrets[secret.namespace, secret.key] = secret
        self._keys_by_namespace[secret.namespace].add(secret.key)

    def remove_secret(self, namespace: str, key: str) -> None:
        if (gone := self._secrets.pop((namespace, key), None)) is not None:
            self._touch_namespace(namespace, "secrets")
            self._bytes_in[namespace] -= len(gone.value or b"")
            keys = self._keys_by_namespace[namespace]
            keys.discard(key)
            if not keys:
                del self._keys_by_namespace[namespace]

    def put_grant(self, grant: GrantView) -> None:
        self.remove_grant(grant.namespace, grant.name)
        self._touch_namespace(grant.namespace, "grants")
        self._generations["shares", grant.user] += 1
        self._grants_in[grant.namespace] += 1
        self._grants[grant.namespace, grant.name] = grant
        self._grants_by_target[grant.namespace, grant.secret_name][grant.name] = grant
        self._grants_by_user[grant.user].add((grant.namespace, grant.name))

    def remove_grant(self, namespace: str, name: str) -> None:
        grant = self._grants.pop((namespace, name), None)
        if grant is None:
            return
        self._touch_namespace(namespace, "grants")
        self._generations["shares", grant.user] += 1
        self._grants_in[namespace] -= 1
        target = self._grants_by_target[grant.namespace, grant.secret_name]
        del target[name]
        if not target:
            del self._grants_by_target[grant.namespace, grant.secret_name]
        ids = self._grants_by_user[grant.user]
        ids.discard((namespace, name))
        if not ids:
            del self._grants_by_user[grant.user]

    def set_namespace(
        self, name: str, user: str | None, accepts: frozenset[str] | None = None
    ) -> None:
        """Record a namespace's user (None: system or unowned), as naming.user_of_namespace says,
        and whose shares it takes (None: anyone's), as naming.accepted_owners says."""
        self.remove_namespace(name)
        self._users[name] = user
        self._touch_namespace(name, "secrets", "grants")
        if accepts is not None:
            self._accepts[name] = accepts
        self._namespaces_of[user or NO_OWNER].add(name)

    def remove_namespace(self, name: str) -> None:
        if name not in self._users:
            return
        self._touch_namespace(name, "secrets", "grants")
        self._accepts.pop(name, None)
        owner = self._users.pop(name) or NO_OWNER
        members = self._namespaces_of[owner]
        members.discard(name)
        if not members:
            del self._namespaces_of[owner]

    # Queries.

    def namespaces(self) -> set[str]:
        return set(self._users)

    def user_of(self, namespace: str) -> str | None:
        return self._users.get(namespace)

    def accepts(self, namespace: str, owner: str) -> bool:
        """Whether `namespace` takes copies shared by `owner`."""
        allowed = self._accepts.get(namespace)
        return allowed is None or owner in allowed

    def accepts_policy(self, namespace: str) -> frozenset[str] | None:
        return self._accepts.get(namespace)

    def knows_namespace(self, name: str) -> bool:
        return name in self._users

    def secret(self, namespace: str, key: str) -> SecretView | None:
        return self._secrets.get((namespace, key))

    def grant(self, namespace: str, name: str) -> GrantView | None:
        return self._grants.get((namespace, name))

    def namespaces_of(self, user: str) -> tuple[str, ...]:
        """Where `user`'s copies go; never the namespaces without a user, whatever asks."""
        if user == NO_OWNER:
            return ()
        return tuple(sorted(self._namespaces_of.get(user, ())))

    def all_secrets(self) -> Iterable[SecretView]:
        return self._secrets.values()

    def all_grants(self) -> Iterable[GrantView]:
        return self._grants.values()

    def pair_of(self, namespace: str, key: str) -> OwnerKey | None:
        """The pair `key` belongs to in `namespace`: its user's, NO_OWNER's if it has none, or
        None while the namespace is unknown (its event will mark the pair)."""
        if namespace not in self._users:
            return None
        return OwnerKey(self._users[namespace] or NO_OWNER, key)

    def keys_visible_to(self, user: str) -> set[OwnerKey]:
        """(owner, key) pairs whose copies the user's namespaces hold or may hold."""
        out: set[OwnerKey] = set()
        for namespace in self._namespaces_of.get(user, ()):
            out.update(OwnerKey(user, key) for key in self._keys_in(namespace))
        for grant_id in self._grants_by_user.get(user, ()):
            grant = self._grants[grant_id]
            owner = self.user_of(grant.namespace)
            if owner is not None:
                out.add(OwnerKey(owner, grant.secret_name))
        return out

    def affected_by_namespace(self, name: str, new_user: str | None) -> set[OwnerKey]:
        """Pairs to recompute when namespace `name` (re)appears as `new_user`'s, or vanishes.

        Call it before set_namespace/remove_namespace, and compute after: the old and the new
        user's view both change (and their own secrets change owner).
        """
        out: set[OwnerKey] = set()
        users = {new_user or NO_OWNER}
        if self.knows_namespace(name):
            users.add(self.user_of(name) or NO_OWNER)
        for user in users:
            # A namespace without a user holds no copies: only its own objects' statuses change.
            if user != NO_OWNER:
                out |= self.keys_visible_to(user)
            out.update(OwnerKey(user, key) for key in self._keys_in(name))
        return out

    # Limits.

    def over_secret_limits(self, owner: str) -> bool:
        """Whether the owner has more UserSecrets, or bytes of values, than a user may."""
        namespaces = self._namespaces_of.get(owner, ())
        count = sum(len(self._keys_in(ns)) for ns in namespaces)
        held = sum(self._bytes_in.get(ns, 0) for ns in namespaces)
        return count > self.limits.secrets_per_user or held > self.limits.bytes_per_user

    def over_grant_limit(self, owner: str) -> bool:
        namespaces = self._namespaces_of.get(owner, ())
        return sum(self._grants_in.get(ns, 0) for ns in namespaces) > self.limits.grants_per_user

    def over_share_limit(self, user: str) -> bool:
        return len(self._grants_by_user.get(user, ())) > self.limits.shares_per_user

    def secrets_past(self, owner: str) -> dict[tuple[str, str], Limit]:
        """The owner's UserSecrets past a limit, (namespace, key) -> which; oldest first, those
        that fit are counted in order. Empty (and free) while within every limit."""
        if not self.over_secret_limits(owner):
            return {}
        return self._rank(("secrets", owner), self._rank_secrets)

    def grants_past(self, owner: str) -> dict[tuple[str, str], Limit]:
        """The grants made by `owner` past the grant limit, (namespace, name) -> which."""
        if not self.over_grant_limit(owner):
            return {}
        return self._rank(("grants", owner), self._rank_grants)

    def shares_past(self, user: str) -> dict[tuple[str, str], Limit]:
        """The grants made to `user` past the share limit, (namespace, name) -> which."""
        if not self.over_share_limit(user):
            return {}
        return self._rank(("shares", user), self._rank_shares)

    def secret_past_limit(self, secret: SecretView, owner: str) -> Limit | None:
        return self.secrets_past(owner).get((secret.namespace, secret.key))

    def grant_past_limit(self, grant: GrantView, owner: str) -> Limit | None:
        """The limit `grant` is past: the owner's grants, or the grantee's shares."""
        ref = (grant.namespace, grant.name)
        return self.grants_past(owner).get(ref) or self.shares_past(grant.user).get(ref)

    def _rank(
        self, which: tuple[str, str], rank: Callable[[str], dict[tuple[str, str], Limit]]
    ) -> dict[tuple[str, str], Limit]:
        generation = self._generations[which]
        cached = self._ranked.get(which)
        if cached is None or cached[0] != generation:
            cached = self._ranked[which] = (generation, rank(which[1]))
        return cached[1]

    def _touch_namespace(self, namespace: str, *kinds: str) -> None:
        """What is ranked of the namespace's user changed."""
        if (user := self._users.get(namespace)) is not None:
            for kind in kinds:
                self._generations[kind, user] += 1

    def _rank_secrets(self, owner: str) -> dict[tuple[str, str], Limit]:
        limits = self.limits
        views = [
            view
            for ns in self._namespaces_of.get(owner, ())
            for key in self._keys_in(ns)
            if (view := self._secrets.get((ns, key))) is not None
        ]
        past: dict[tuple[str, str], Limit] = {}
        count = held = 0
        for view in sorted(views, key=lambda v: (*_age(v), v.key)):
            size = len(view.value or b"")
            if count + 1 > limits.secrets_per_user:
                past[view.namespace, view.key] = ("secrets", limits.secrets_per_user)
            elif held + size > limits.bytes_per_user:
                past[view.namespace, view.key] = ("bytes", limits.bytes_per_user)
            else:
                count, held = count + 1, held + size
        return past

    def _rank_grants(self, owner: str) -> dict[tuple[str, str], Limit]:
        grants = [g for (ns, _), g in self._grants.items() if self.user_of(ns) == owner]
        return self._past(grants, ("grants", self.limits.grants_per_user))

    def _rank_shares(self, user: str) -> dict[tuple[str, str], Limit]:
        grants = [self._grants[ref] for ref in self._grants_by_user.get(user, ())]
        return self._past(grants, ("shares", self.limits.shares_per_user))

    @staticmethod
    def _past(grants: list[GrantView], limit: Limit) -> dict[tuple[str, str], Limit]:
        ordered = sorted(grants, key=lambda g: (g.created, g.namespace, g.name))
        return {(g.namespace, g.name): limit for g in ordered[limit[1] :]}

    def _keys_in(self, namespace: str) -> Collection[str]:
        return self._keys_by_namespace.get(namespace, set())

    def secrets_of(self, owner_key: OwnerKey) -> list[SecretView]:
        """The UserSecrets named `key` in the owner's namespaces (a handful: not every user's
        secret of that name, which is every user's for a common one like `wandb-token`)."""
        found = (
            self._secrets.get((ns, owner_key.key))
            for ns in self._namespaces_of.get(owner_key.owner, ())
        )
        return [secret for secret in found if secret is not None]

    def _grants_of(self, owner_key: OwnerKey) -> list[GrantView]:
        """The grants, in the owner's namespaces, that name `key`."""
        out: list[GrantView] = []
        for namespace in self._namespaces_of.get(owner_key.owner, ()):
            out.extend(self._grants_by_target.get((namespace, owner_key.key), {}).values())
        return out


# --- The computation ---------------------------------------------------------------------------


_NEWEST = datetime.max.replace(tzinfo=UTC)


def _age(secret: SecretView) -> tuple[datetime, str]:
    """Oldest first, namespace name breaking ties; an unreadable timestamp counts as newest."""
    try:
        created = datetime.fromisoformat(secret.created)
    except ValueError:
        return _NEWEST, secret.namespace
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created, secret.namespace


def compute(world: World, cluster: str, for_keys: Collection[OwnerKey] | None = None) -> Desired:
    """The desired copies and status facts, for everything or only for the `for_keys` pairs.

    A scoped result reports the secrets and grants of those pairs only; `diff` then only
    considers managed Secrets labelled with one of them, so a scoped run never deletes others.
    """
    copies: dict[tuple[str, str], DesiredCopy] = {}
    secret_facts: dict[tuple[str, str], SecretFacts] = {}
    grant_facts: dict[tuple[str, str], GrantFacts] = {}

    if for_keys is None:
        groups: dict[OwnerKey, list[SecretView]] = defaultdict(list)
        for secret in world.all_secrets():
            if (pair := world.pair_of(secret.namespace, secret.key)) is not None:
                groups[pair].append(secret)
        grouped_grants: dict[OwnerKey, list[GrantView]] = defaultdict(list)
        for grant in world.all_grants():
            if (pair := world.pair_of(grant.namespace, grant.secret_name)) is not None:
                grouped_grants[pair].append(grant)
        pairs: Iterable[OwnerKey] = groups.keys() | grouped_grants.keys()
        scope = None
    else:
        scope = frozenset(OwnerKey(*pair) for pair in for_keys)
        groups = {pair: world.secrets_of(pair) for pair in scope}
        grouped_grants = {pair: world._grants_of(pair) for pair in scope}
        pairs = scope

    for pair in pairs:
        secrets, grants = groups.get(pair, []), grouped_grants.get(pair, [])
        if pair.owner == NO_OWNER:
            for secret in secrets:
                secret_facts[secret.namespace, secret.key] = SecretFacts(
                    secret.namespace, secret.key, None, None, SecretState.NO_OWNER
                )
            for grant in grants:
                grant_facts[grant.namespace, grant.name] = GrantFacts(
                    grant.namespace,
                    grant.name,
                    None,
                    grant.user,
                    grant.secret_name,
                    None,
                    GrantState.NO_OWNER,
                )
        else:
            _compute_pair(world, cluster, pair, secrets, grants, copies, secret_facts, grant_facts)
    return Desired(copies=copies, secrets=secret_facts, grants=grant_facts, scope=scope)


def _compute_pair(
    world: World,
    cluster: str,
    pair: OwnerKey,
    candidates: list[SecretView],
    grants: list[GrantView],
    copies: dict[tuple[str, str], DesiredCopy],
    secret_facts: dict[tuple[str, str], SecretFacts],
    grant_facts: dict[tuple[str, str], GrantFacts],
) -> None:
    owner, key = pair
    uri = naming.secret_uri(cluster, owner, key)
    candidates = sorted(candidates, key=_age)
    winner = candidates[0] if candidates else None
    limit = world.secret_past_limit(winner, owner) if winner is not None else None
    value = winner.value if winner is not None and limit is None else None
    granting = {(g.namespace, g.name): world.grant_past_limit(g, owner) for g in grants}

    # Where copies go, and why: the owner's reason wins over a grant's.
    # A grant counts when its own namespace holds a UserSecret of that key (winner or not: the
    # pair's identity, and so its URI and copies, is (owner, key)).
    present = {secret.namespace for secret in candidates}
    targets: dict[str, str] = {}
    if value is not None:
        for namespace in world.namespaces_of(owner):
            targets[namespace] = naming.REASON_OWNER
        for grant in grants:
            if grant.namespace in present and granting[grant.namespace, grant.name] is None:
                for namespace in world.namespaces_of(grant.user):
                    if world.accepts(namespace, owner):
                        targets.setdefault(namespace, naming.REASON_GRANT)

    if value is not None:
        name = naming.copy_name(owner, key)
        annotations = {naming.URI_ANNOTATION: uri}
        digest = data_digest({naming.DATA_KEY: value})
        for namespace, reason in targets.items():
            copies[namespace, name] = DesiredCopy(
                namespace=namespace,
                name=name,
                owner=owner,
                key=key,
                reason=reason,
                labels=naming.copy_labels(owner, key, reason),
                annotations=annotations,
                value=value,
                digest=digest,
            )
    materialized = tuple(sorted(targets))
    owned = tuple(ns for ns in materialized if targets[ns] == naming.REASON_OWNER)

    for secret in candidates:
        if secret is not winner:
            assert winner is not None
            facts = SecretFacts(
                secret.namespace,
                key,
                owner,
                uri,
                SecretState.CONFLICT,
                conflict_with=winner.namespace,
            )
        elif limit is not None:
            facts = SecretFacts(
                secret.namespace, key, owner, uri, SecretState.LIMIT_EXCEEDED, limit=limit
            )
        elif secret.refused_type is not None:
            facts = SecretFacts(
                secret.namespace,
                key,
                owner,
                uri,
                SecretState.SOURCE_REFUSED,
                refused_type=secret.refused_type,
            )
        elif value is None:
            facts = SecretFacts(secret.namespace, key, owner, uri, SecretState.SOURCE_MISSING)
        else:
            facts = SecretFacts(
                secret.namespace, key, owner, uri, SecretState.MATERIALIZED, materialized, owned
            )
        secret_facts[secret.namespace, key] = facts

    for grant in grants:
        where: tuple[str, ...] = ()
        declined = 0
        past = granting[grant.namespace, grant.name]
        if grant.namespace not in present:
            state = GrantState.SECRET_NOT_FOUND
        elif past is not None:
            state = GrantState.LIMIT_EXCEEDED
        elif value is None:
            state = GrantState.SECRET_NOT_READY
        else:
            state = GrantState.GRANTED
            theirs = world.namespaces_of(grant.user)
            where = tuple(ns for ns in theirs if ns in targets)
            declined = sum(1 for ns in theirs if not world.accepts(ns, owner))
        grant_facts[grant.namespace, grant.name] = GrantFacts(
            grant.namespace,
            grant.name,
            owner,
            grant.user,
            grant.secret_name,
            uri,
            state,
            where,
            limit=past if state is GrantState.LIMIT_EXCEEDED else None,
            declined=declined,
        )


# --- What exists, and what to change -----------------------------------------------------------

# Digests are only ever compared within this process; keying them with a per-process secret
# means a digest that leaks (a log, a dump) does not allow guessing a low-entropy value offline.
_DIGEST_KEY = _random.token_bytes(32)


def data_digest(data: Mapping[str, bytes]) -> str:
    """A keyed digest of a Secret's data, so the cache of existing Secrets holds no values."""
    mac = hmac.new(_DIGEST_KEY, digestmod=hashlib.sha256)
    for name in sorted(data):
        encoded = name.encode()
        mac.update(len(encoded).to_bytes(8, "big") + encoded)
        mac.update(len(data[name]).to_bytes(8, "big") + data[name])
    return mac.hexdigest()


_INTERNED_VALUES = frozenset(
    {naming.MANAGED_BY_LABEL, naming.OWNER_LABEL, naming.REASON_LABEL, sharding.SLOT_LABEL}
)


def _interned(strings: Mapping[str, str] | None) -> dict[str, str]:
    """Our label names, users and reasons repeat across thousands of copies: one string object
    each, rather than one per copy from every parsed watch event. Only names and our own few
    values are interned: others' values (anyone may edit a copy) are not made to live on."""
    return {
        sys.intern(k): sys.intern(v) if k in _INTERNED_VALUES else v
        for k, v in (strings or {}).items()
    }


@dataclass(frozen=True, slots=True)
class ActualSecret:
    """An existing Secret, as the reconciler's cache keeps it (a digest, not the data)."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    digest: str
    #: Finalizers someone put on it: they would keep it, value and all, after a delete.
    finalizers: tuple[str, ...] = ()
    #: It has a deletionTimestamp: on its way out, and no longer anyone's copy.
    deleting: bool = False

    @property
    def managed(self) -> bool:
        return self.labels.get(naming.MANAGED_BY_LABEL) == naming.MANAGED_BY

    @classmethod
    def of(
        cls,
        namespace: str,
        name: str,
        labels: Mapping[str, str] | None,
        annotations: Mapping[str, str] | None,
        data: Mapping[str, bytes] | None,
        finalizers: Iterable[str] = (),
        deleting: bool = False,
    ) -> ActualSecret:
        digest = data_digest(data or {})
        return cls(
            namespace,
            name,
            _interned(labels),
            _interned(annotations),
            digest,
            tuple(finalizers),
            deleting,
        )

    @classmethod
    def of_copy(cls, copy: DesiredCopy) -> ActualSecret:
        """The Secret that applying `copy` leaves behind."""
        return cls(
            copy.namespace, copy.name, dict(copy.labels), dict(copy.annotations), copy.digest
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """Changes that make the cluster match `Desired`, each list sorted by (namespace, name)."""

    creates: tuple[DesiredCopy, ...] = ()
    updates: tuple[DesiredCopy, ...] = ()
    deletes: tuple[ActualSecret, ...] = ()
    #: Desired copies whose name is taken by a Secret we do not manage: left alone, reported.
    collisions: tuple[DesiredCopy, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.creates or self.updates or self.deletes)


def _differs(copy: DesiredCopy, actual: ActualSecret) -> bool:
    """Our labels, our annotation or the data differ; labels others added are not ours to undo."""
    return (
        actual.digest != copy.digest
        or any(actual.labels.get(k) != v for k, v in copy.labels.items())
        or any(actual.annotations.get(k) != v for k, v in copy.annotations.items())
    )


def diff(desired: Desired, actual: Iterable[ActualSecret]) -> Plan:
    """Creates, updates and deletes; Secrets without our managed-by label are never touched.

    `actual` may hold every Secret the reconciler knows of (managed or not, in scope or not):
    a scoped `desired` only deletes managed Secrets labelled with one of its (owner, key) pairs.
    A copy of ours that is being deleted is deleted again (its finalizers taken off, see the
    writer) whether or not it is wanted: a wanted one is created anew once it is gone.
    """
    by_name: dict[tuple[str, str], ActualSecret] = {}
    deletes: list[ActualSecret] = []
    for secret in actual:
        ident = (secret.namespace, secret.name)
        by_name[ident] = secret
        if (
            secret.managed
            and (secret.deleting or ident not in desired.copies)
            and desired.in_scope(
                secret.labels.get(naming.OWNER_LABEL), secret.labels.get(naming.KEY_LABEL)
            )
        ):
            deletes.append(secret)
    creates: list[DesiredCopy] = []
    updates: list[DesiredCopy] = []
    collisions: list[DesiredCopy] = []
    for ident in sorted(desired.copies):
        copy = desired.copies[ident]
        existing = by_name.get(ident)
        if existing is None:
            creates.append(copy)
        elif not existing.managed:
            collisions.append(copy)
        elif existing.deleting:
            continue  # deleted first, created after its DELETED event
        elif _differs(copy, existing):
            updates.append(copy)
    deletes.sort(key=lambda s: (s.namespace, s.name))
    return Plan(tuple(creates), tuple(updates), tuple(deletes), tuple(collisions))
