"""List+watch loops: events in order, bookmarks skipped, a new list after 410 Gone."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest

from fakes import Stream, refusal, streamed_list
from usersecrets.kube import watching
from usersecrets.kube.client import ApiError


def obj(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version}}


class FakeApi:
    """KubeApi's `stream`: a Stream for each list (streamed) and each watch. Each is recorded
    as its query plus its headers."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.lists: list[dict[str, Any]] = []
        self.watches: list[dict[str, Any]] = []
        self.streams: list[Stream] = []
        self.script: list[Stream] = []  # answers to the next watches, before the default ones
        #: The objects `listed` was handed last, as the code parsed them.
        self.listed: list[dict[str, Any]] = []
        self.held_while_watching: list[int] = []
        self.streams_lists = True

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        assert (method, path, kwargs["query"]["watch"]) == ("GET", "/things", "true")
        if kwargs["query"].get("sendInitialEvents"):  # a list
            self.lists.append({**kwargs["query"], "headers": kwargs["headers"]})
            version = str(10 * len(self.lists))
            listing = {"metadata": {"resourceVersion": version}, "items": [obj("a", version)]}
            self.streams.append(streamed_list(listing))
            return self.streams[-1]
        # What still holds the objects of the last list, now that its watch begins.
        gc.collect()
        held = [r for o in self.listed for r in gc.get_referrers(o) if r is not self.listed]
        self.held_while_watching.append(len(held))
        self.watches.append({**kwargs["query"], "headers": kwargs["headers"]})
        if self.script:
            self.streams.append(self.script.pop(0))
            return self.streams[-1]
        if len(self.watches) == 1:
            events = [
                {"type": "ADDED", "object": obj("b", "11")},
                {"type": "BOOKMARK", "object": obj("", "12")},
                {"type": "MODIFIED", "object": obj("b", "13")},
                {"type": "ERROR", "object": {"kind": "Status", "code": 410}},
            ]
        else:
            self.stop.set()  # after this answer
            events = [{"type": "DELETED", "object": obj("b", "21")}]
        self.streams.append(Stream(events))
        return self.streams[-1]


def test_events_in_order_then_a_new_list_after_gone() -> None:
    stop = threading.Event()
    api = FakeApi(stop)
    listed: list[list[str]] = []
    changed: list[tuple[str, str]] = []

    def take(items: Iterator[dict[str, Any]]) -> None:
        api.listed = list(items)
        listed.append([i["metadata"]["name"] for i in api.listed])

    watching.follow(
        cast(Any, api),
        "/things",
        stop,
        listed=take,
        changed=lambda kind, o: changed.append((kind, o["metadata"]["resourceVersion"])),
        label_selector="x=y",
        metadata_only=True,
    )
    assert listed == [["a"], ["a"]]
    assert api.held_while_watching == [0, 0]
    assert changed == [("ADDED", "11"), ("MODIFIED", "13")]  # DELETED came after stop
    assert [w["resourceVersion"] for w in api.watches] == ["10", "20"]
    assert all(w["labelSelector"] == "x=y" for w in api.lists + api.watches)
    assert api.lists[0]["headers"] == {
        "Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
    }
    assert api.watches[0]["headers"] == {
        "Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
    }
    assert all(s.released for s in api.streams)


def test_a_dropped_connection_resumes_from_the_last_version_without_a_list() -> None:
    stop = threading.Event()
    api = FakeApi(stop)
    api.script = [Stream([{"type": "ADDED", "object": obj("c", "6")}], broken=True)]
    api.watches.append({})  # after the script, the last default answer
    changed: list[str] = []
    watching.follow(
        cast(Any, api),
        "/things",
        stop,
        listed=lambda _: None,
        changed=lambda kind, o: changed.append(o["metadata"]["resourceVersion"]),
        version="5",
    )
    assert api.lists == []
    assert [w["resourceVersion"] for w in api.watches[1:]] == ["5", "6"]
    assert changed == ["6"]
    assert all(w["allowWatchBookmarks"] == "true" for w in api.watches[1:])


def test_a_given_version_skips_the_first_list() -> None:
    stop = threading.Event()
    api = FakeApi(stop)
    api.watches.append({})  # go straight to the last answer
    watching.follow(
        cast(Any, api), "/things", stop, listed=lambda _: None, changed=lambda *_: None, version="5"
    )
    assert api.lists == []
    assert api.watches[1]["resourceVersion"] == "5"
    assert api.watches[1]["headers"] == {}


def test_a_failing_update_logs_its_type_only(caplog: pytest.LogCaptureFixture) -> None:
    def update(body: dict[str, str]) -> None:
        raise ValueError(body["value"])

    async def scenario() -> None:
        watching.hand_over(asyncio.get_running_loop(), update, {"value": "canary-0451"})
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    assert "ValueError" in caplog.text
    assert "canary-0451" not in caplog.text


def test_a_thread_waits_until_the_loop_has_run_what_it_handed_over() -> None:
    ran: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def thread() -> None:
            watching.hand_over(loop, ran.append, "page 1")
            watching.caught_up(loop)
            ran.append("page 2 read")

        reader = threading.Thread(target=thread)
        reader.start()
        while reader.is_alive():
            await asyncio.sleep(0.001)

    asyncio.run(scenario())
    assert ran == ["page 1", "page 2 read"]
    # A loop that is not running runs nothing: no wait for it.
    idle = asyncio.new_event_loop()
    watching.hand_over(idle, ran.append, "page 3")
    watching.caught_up(idle, timeout=60)
    idle.close()
    assert ran[-1] == "page 2 read"


def test_a_list_comes_in_pages() -> None:
    class Pages:
        def __init__(self) -> None:
            self.queries: list[dict[str, Any]] = []

        def json(self, method: str, path: str, **kwargs: Any) -> Any:
            self.queries.append(kwargs["query"])
            if kwargs["query"]["continue"] is None:
                return {
                    "metadata": {"continue": "next", "resourceVersion": "5"},
                    "items": [obj("a", "1")],
                }
            return {"metadata": {"resourceVersion": "5"}, "items": None}

    pages = Pages()
    items, version = watching.list_objects(cast(Any, pages), "/things", "x=y")
    assert [i["metadata"]["name"] for i in items] == ["a"]
    assert version == "5"
    assert pages.queries == [
        {"labelSelector": "x=y", "limit": 500, "continue": None},
        {"labelSelector": "x=y", "limit": 500, "continue": "next"},
    ]


class Lines:
    """A streamed list whose events are read one line at a time, counting the lines read."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events, self.read, self.released = events, 0, False

    def stream(self, **_: Any) -> Any:
        for event in self.events:
            self.read += 1
            yield (json.dumps(event) + "\n").encode()

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        self.released = True


def bookmark(version: str, end: bool = True) -> dict[str, Any]:
    notes = {"k8s.io/initial-events-end": "true"} if end else {}
    return {
        "type": "BOOKMARK",
        "object": {"metadata": {"resourceVersion": version, "annotations": notes}},
    }


class Streamed:
    """`stream` answers with `answer` (raises it, if an exception), recording each query."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.queries: list[dict[str, Any]] = []
        self.streams_lists = True

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        self.queries.append({**kwargs["query"], **kwargs["headers"]})
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_list_is_streamed_in_pages_with_its_version_on_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watching, "PAGE", 2)
    added = [{"type": "ADDED", "object": obj(n, "3")} for n in "abc"]
    lines = Lines([*added, bookmark("6", end=False), bookmark("7")])
    api = Streamed(lines)
    got = [
        ([o["metadata"]["name"] for o in p], v)
        for p, v in watching.pages(cast(Any, api), "/things", "x=y", True)
    ]
    assert got == [(["a", "b"], ""), (["c"], "7")]
    assert api.queries == [
        {
            "labelSelector": "x=y",
            "watch": "true",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": 300,
            "Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        }
    ]
    assert lines.released


def test_a_list_handed_over_is_read_a_page_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook's caches take every copy's metadata: a page is read when the one before
    it has been taken in, never the whole list at once. What `listed` leaves unread is read
    anyway, for the version the watch starts from."""
    monkeypatch.setattr(watching, "PAGE", 1)
    lines = Lines([{"type": "ADDED", "object": obj(n, "5")} for n in "ab"] + [bookmark("7")])
    seen: list[tuple[str, int]] = []

    def listed(items: Any) -> None:
        seen.extend((i["metadata"]["name"], lines.read) for i in items)

    assert watching._list_into(listed, cast(Any, Streamed(lines)), "/things", None, True) == "7"
    assert seen == [("a", 1), ("b", 2)]
    lines = Lines([{"type": "ADDED", "object": obj(n, "5")} for n in "ab"] + [bookmark("7")])
    assert (
        watching._list_into(lambda _: None, cast(Any, Streamed(lines)), "/things", None, True)
        == "7"
    )
    assert lines.read == 3


PAGES = {
    None: {"metadata": {"resourceVersion": "7", "continue": "p2"}, "items": [obj("a", "5")]},
    "p2": {"metadata": {"resourceVersion": "7"}, "items": [obj("b", "6")]},
}


class Paged(Streamed):
    """`json` answers a paginated list of a, then b."""

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        self.queries.append(kwargs["query"])
        return PAGES[kwargs["query"]["continue"]]


@pytest.mark.parametrize(
    "answer",
    [
        # The WatchList feature off: Kubernetes 1.33, and before 1.32.
        refusal(422, "sendInitialEvents is forbidden"),
        refusal(400),
        refusal(429, "storage is (re)initializing"),  # the watch cache still loading
        # etcd that cannot tell the cache it is current; a stream cut short.
        Lines([{"type": "ERROR", "object": {"kind": "Status", "code": 500}}]),
        Lines([{"type": "ADDED", "object": obj("x", "5")}]),
    ],
)
def test_a_stream_refused_or_broken_off_before_its_first_page_is_paginated(answer: Any) -> None:
    api = Paged(answer)
    got = [
        ([o["metadata"]["name"] for o in p], v)
        for p, v in watching.pages(cast(Any, api), "/things")
    ]
    assert got == [(["a"], "7"), (["b"], "7")]
    assert [q.get("continue", "-") for q in api.queries] == ["-", None, "p2"]


@pytest.mark.parametrize(("status", "again"), [(422, False), (400, False), (429, True)])
def test_once_streams_are_refused_for_good_lists_are_paginated_without_asking(
    status: int, again: bool
) -> None:
    """The WatchList feature off (422, 400) stays off; a watch cache still loading (429)
    does not."""
    api = Paged(refusal(status))
    list(watching.pages(cast(Any, api), "/things"))
    api.queries.clear()
    list(watching.pages(cast(Any, api), "/things"))
    asked = [q.get("sendInitialEvents") == "true" for q in api.queries]
    assert asked == ([True, False, False] if again else [False, False])


def test_another_refusal_of_a_list_is_raised() -> None:
    with pytest.raises(ApiError) as raised:
        list(watching.pages(cast(Any, Paged(refusal(403))), "/things"))
    assert raised.value.status == 403


@pytest.mark.parametrize(
    ("last", "status"),
    [
        ([], None),  # ended before its bookmark
        ([{"type": "ERROR", "object": {"kind": "Status", "code": 500}}], 500),
    ],
)
def test_a_stream_broken_off_after_a_page_is_an_error(
    monkeypatch: pytest.MonkeyPatch, last: list[dict[str, Any]], status: int | None
) -> None:
    """What was handed over cannot be taken back: the caller lists again."""
    monkeypatch.setattr(watching, "PAGE", 1)
    lines = Lines([{"type": "ADDED", "object": obj(n, "5")} for n in "ab"] + last)
    read: list[str] = []

    def read_all() -> None:
        for page, _ in watching.pages(cast(Any, Paged(lines)), "/things"):
            read.extend(o["metadata"]["name"] for o in page)

    with pytest.raises(ApiError) as raised:
        read_all()
    assert raised.value.status == status
    assert read == ["a", "b"]
    assert lines.released
