"""List+watch loops in threads, for UserSecrets, Secrets and the webhook's caches (kopf has
SecretGrants and Namespaces).

kopf cannot ask the apiserver for metadata only, so following Secrets with it would mean
receiving, processing and remembering every Secret of the cluster, data included. Here the
reconciler gets its own copies in full (a label selector) and every other Secret as metadata
only, and the webhook's caches get metadata only. Objects are plain dicts: one JSON parse, no
models, ~0.15 ms of CPU for a UserSecret's event where kopf spends 0.6-1.3 ms; so UserSecrets,
two events of each secret, come here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from usersecrets.kube.client import ApiError, KubeApi

logger = logging.getLogger(__name__)

METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
#: The apiserver ends each watch after this; a connection silent for WATCH_SECONDS + 30 s is
#: dead, not quiet, and is reopened.
WATCH_SECONDS = 60
LIST_TIMEOUT = 300
MAX_BACKOFF = 30.0
#: Objects per page of a list.
PAGE = 500
#: The annotation of the bookmark that ends a streamed list.
INITIAL_EVENTS_END = "k8s.io/initial-events-end"

#: Takes a fresh list, as an iterator that reads it a page at a time as it goes.
Listed = Callable[[Iterator[dict[str, Any]]], None]
Changed = Callable[[str, dict[str, Any]], None]


def pages(
    core: KubeApi, path: str, label_selector: str | None = None, metadata_only: bool = False
) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """A full list, one page of `PAGE` objects (plain dicts) at a time; the version of the
    list comes with its last page (the others have "").

    Streamed as a watch's initial events (`sendInitialEvents`, Kubernetes' "streaming
    lists"), from the apiserver's watch cache. A paginated list with a label selector made the
    cache go through every object after the page's start for each page of 500, and most
    pages of Secrets were read from etcd: at 30,000 UserSecrets, a shard's list cost the
    apiserver 0.5-8.6 s of CPU paginated, 0.6-1.7 s streamed (issue 17; README).

    Paginated instead where a stream is refused or breaks off before its first page: the
    WatchList feature is off (422 or 400: Kubernetes 1.33, before 1.32, or switched off), the
    watch cache is still loading (429, where lists are read from etcd), or etcd cannot tell
    the cache that it is current (an ERROR event).

    A page at a time: one answer of a hundred thousand would be parsed in one go, holding the
    GIL (and so the event loop that answers admissions) for a second or more."""
    first, streamed = None, _streamed(core, path, label_selector, metadata_only)
    if core.streams_lists:
        with contextlib.suppress(_NotStreamed):
            first = next(streamed)
    if first is None:
        yield from paginated(core, path, label_selector, metadata_only)
        return
    yield first
    yield from streamed


class _NotStreamed(Exception):
    """The apiserver would not stream this list."""


def _streamed(
    core: KubeApi, path: str, label_selector: str | None, metadata_only: bool
) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """`pages` as a stream; _NotStreamed if refused, or broken off before its first page."""
    try:
        response = core.stream(
            "GET",
            path,
            query={
                "labelSelector": label_selector,
                "watch": "true",
                "sendInitialEvents": "true",
                "resourceVersionMatch": "NotOlderThan",  # no version given: a consistent read
                "allowWatchBookmarks": "true",
                "timeoutSeconds": LIST_TIMEOUT,
            },
            headers={"Accept": METADATA} if metadata_only else {},
            timeout=(10, LIST_TIMEOUT),
        )
    except ApiError as error:
        if error.status in (400, 422):  # for good: the feature is off
            core.streams_lists = False
        if error.status in (400, 422, 429):
            raise _NotStreamed from None
        raise
    try:
        page: list[dict[str, Any]] = []
        yielded = False
        for line in _lines(response):
            if not line.strip():
                continue
            event = orjson.loads(line)
            obj = event["object"]
            if event["type"] == "ERROR":
                raise ApiError(status=obj.get("code")) if yielded else _NotStreamed
            if event["type"] == "BOOKMARK":
                if (obj["metadata"].get("annotations") or {}).get(INITIAL_EVENTS_END) == "true":
                    yield page, str(obj["metadata"]["resourceVersion"])
                    return
                continue
            obj["metadata"].pop("managedFields", None)  # a third of an object, and unread here
            page.append(obj)
            if len(page) == PAGE:
                yield page, ""
                page, yielded = [], True
        ended = ApiError(status=None, reason="the list ended before its last object")
        raise ended if yielded else _NotStreamed
    finally:
        response.close()
        response.release_conn()


def paginated(
    core: KubeApi, path: str, label_selector: str | None = None, metadata_only: bool = False
) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """A list a page at a time, each page with the list's version: `pages` where the
    apiserver will not stream it, and a list read by a caller that writes between pages
    (a streamed list would hold the watch open meanwhile)."""
    token: str | None = None
    while True:
        listing = core.json(
            "GET",
            path,
            query={"labelSelector": label_selector, "limit": PAGE, "continue": token},
            headers={"Accept": METADATA_LIST} if metadata_only else {},
            timeout=(10, LIST_TIMEOUT),
        )
        page = listing.get("items") or []  # an empty list is null (a nil slice in Go)
        for item in page:
            item["metadata"].pop("managedFields", None)
        yield page, str(listing["metadata"]["resourceVersion"])
        token = listing["metadata"].get("continue")
        if not token:
            return


def list_objects(
    core: KubeApi, path: str, label_selector: str | None = None, metadata_only: bool = False
) -> tuple[list[dict[str, Any]], str]:
    """A short list whole (namespaces, quotas; no selector), and the resourceVersion to watch
    from. Paginated: streaming a few objects costs a watch's setup, and a namespace's quotas,
    read before a decision, took 3.0 ms streamed against 1.3 ms listed (p50 of 30)."""
    items: list[dict[str, Any]] = []
    version = ""
    for page, page_version in paginated(core, path, label_selector, metadata_only):
        items.extend(page)
        version = page_version
    return items, version


def follow(
    core: KubeApi,
    path: str,
    stop: threading.Event,
    *,
    listed: Listed,
    changed: Changed,
    label_selector: str | None = None,
    metadata_only: bool = False,
    version: str | None = None,
) -> None:
    """Every event after `version` (after a fresh list handed to `listed` if None) until
    `stop`. A watch resumes from the last version it saw; a new list follows only when that
    version is gone (410) or unusable. Failures back off exponentially, up to 30 s."""
    failures = 0
    while not stop.is_set():
        try:
            if version is None:
                version = _list_into(listed, core, path, label_selector, metadata_only)
            response = core.stream(
                "GET",
                path,
                query={
                    "labelSelector": label_selector,
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",  # keeps our version current when quiet
                    "watch": "true",
                    "timeoutSeconds": WATCH_SECONDS,
                },
                headers={"Accept": METADATA} if metadata_only else {},
                timeout=(10, WATCH_SECONDS + 30),
            )
            try:
                for line in _lines(response):
                    if stop.is_set():
                        return
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    if event["type"] == "ERROR":  # e.g. 410 Gone: our version is too old
                        raise ApiError(status=event["object"].get("code"))
                    version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        changed(event["type"], event["object"])
                    failures = 0
            finally:
                response.close()
                response.release_conn()
        except ApiError as error:
            version = None if error.status in (None, 410) else version  # 410: ours is gone
            failures += 1
            logger.info("watch failed with HTTP %s; retrying", error.status)
        except (ValueError, KeyError, TypeError) as error:  # not an event: start afresh
            version, failures = None, failures + 1
            logger.warning("watch sent %s; listing again", type(error).__name__)
        except Exception as error:  # the connection: resume from where we were
            failures += 1
            logger.warning("watch failed (%s); retrying", type(error).__name__)
        else:
            continue
        jitter = random.uniform(0.5, 1.0)  # noqa: S311 - spreads retries, protects nothing
        stop.wait(min(MAX_BACKOFF, 0.5 * 2 ** min(failures, 8)) * jitter)


def _list_into(
    listed: Listed, core: KubeApi, path: str, label_selector: str | None, metadata_only: bool
) -> str:
    """Hands a fresh list to `listed`, read a page at a time as `listed` goes through it;
    returns its version. The webhook's caches thus never hold a whole list of every copy's
    metadata besides themselves: on every replica, that was ~150 MiB at 120,000 copies, kept
    by the allocator after a restart."""
    version = ""

    def items() -> Iterator[dict[str, Any]]:
        nonlocal version
        for page, version in pages(core, path, label_selector, metadata_only):  # noqa: B007
            yield from page

    stream = items()
    listed(stream)
    for _ in stream:  # what `listed` left unread: the version is the last page's
        pass
    return version


def _lines(response: Any) -> Iterator[bytes]:
    """The lines of a watch as they arrive (one JSON event each)."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def start(name: str, core: KubeApi, path: str, **kwargs: Any) -> threading.Event:
    """`follow` in a daemon thread; set the returned Event to stop it."""
    stop = threading.Event()
    threading.Thread(
        target=follow, args=(core, path, stop), kwargs=kwargs, name=name, daemon=True
    ).start()
    return stop


def hand_over(loop: asyncio.AbstractEventLoop, update: Callable[..., None], *args: Any) -> None:
    """Runs `update(*args)` on `loop`, the only thread that touches the reconciler's caches.

    A closure, not `call_soon_threadsafe(update, *args)`: asyncio would log the arguments (a
    body holding a value) of a callback that raises."""

    def apply() -> None:
        try:
            update(*args)
        except Exception as error:
            logger.error("a watch event could not be recorded: %s", type(error).__name__)

    loop.call_soon_threadsafe(apply)


def caught_up(loop: asyncio.AbstractEventLoop, timeout: float = 30.0) -> None:
    """Returns once `loop` has run what was handed over before (`timeout` at most; at once if
    it is not running): a list handed over a page at a time is then never queued whole."""
    if not loop.is_running():
        return
    done = threading.Event()
    loop.call_soon_threadsafe(done.set)
    done.wait(timeout)
