"""Any byte stream of pipelined requests, cut anywhere, is answered once per request, in order.

The connection is driven through an in-memory transport that honours pause_reading as a socket
would, so hypothesis can try thousands of splits in seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from usersecrets.webhook import server


@dataclass(frozen=True)
class Req:
    method: bytes
    path: bytes
    body: bytes
    chunked: bool
    close: bool

    def wire(self) -> bytes:
        head = [b"%s %s HTTP/1.1" % (self.method, self.path), b"Host: x"]
        if self.close:
            head.append(b"Connection: close")
        if self.chunked:
            head.append(b"Transfer-Encoding: chunked")
            pieces = [self.body[i : i + 7] for i in range(0, len(self.body), 7)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        else:
            head.append(b"Content-Length: %d" % len(self.body))
            body = self.body
        return b"\r\n".join(head) + b"\r\n\r\n" + body

    def expected(self) -> tuple[int, bytes]:
        """What the routes below answer, written out from HTTP's rules, not from the server."""
        if self.path != b"/echo":
            return 404, b"not found\n"
        if self.method != b"POST":
            return 405, b"method not allowed\n"
        return 200, hashlib.sha256(self.body).hexdigest().encode()


async def digest(body: bytearray) -> server.Answer:
    await asyncio.sleep(0)  # a handler that yields, as a review that looks something up does
    return server.Answer(200, hashlib.sha256(body).hexdigest().encode())


ROUTES: server.Routes = {b"/echo": (b"POST", digest)}

requests = st.builds(
    Req,
    method=st.sampled_from([b"POST", b"POST", b"GET"]),
    path=st.sampled_from([b"/echo", b"/echo", b"/other"]),
    body=st.binary(max_size=300),
    chunked=st.booleans(),
    close=st.booleans().map(lambda b: b and False),  # set on one request below
)


class Transport:
    """What the protocol writes, and whether it asked not to be read from."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.paused = self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed


def parse(written: bytes) -> list[tuple[int, bytes, bool]]:
    """(status, body, closes) of each answer in `written`."""
    answers = []
    while written:
        head, _, rest = written.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(b": ", 1) for line in lines[1:])
        length = int(headers[b"Content-Length"])
        answers.append((status, rest[:length], headers.get(b"Connection") == b"close"))
        written = rest[length:]
    return answers


async def drive(stream: bytes, cuts: list[int]) -> Transport:
    transport = Transport()
    connection = server._Connection(ROUTES, set(), max_body=3 * 1024 * 1024, timeout=30, idle=30)
    connection.connection_made(transport)  # type: ignore[arg-type]  # a fake: what it writes
    edges = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        for _ in range(1000):  # as a socket: nothing is read while paused
            if not transport.paused or transport.closed:
                break
            await asyncio.sleep(0)
        if transport.closed:
            break
        if end > start:
            connection.data_received(stream[start:end])
        await asyncio.sleep(0)
    for _ in range(1000):
        await asyncio.sleep(0)
        if transport.closed or not connection.requests:
            break
    connection.connection_lost(None)
    return transport


@settings(max_examples=300, deadline=None)
@given(
    reqs=st.lists(requests, min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    close_at=st.one_of(st.none(), st.integers(min_value=0, max_value=5)),
    garbage=st.booleans(),
)
def test_any_split_of_pipelined_requests_is_answered_in_order(
    reqs: list[Req], cuts: list[int], close_at: int | None, garbage: bool
) -> None:
    if close_at is not None and close_at < len(reqs):
        reqs[close_at] = Req(**{**reqs[close_at].__dict__, "close": True})
    stream = b"".join(r.wire() for r in reqs) + (b"NOT HTTP AT ALL\r\n\r\n" if garbage else b"")
    transport = asyncio.run(drive(stream, cuts))
    answers = parse(bytes(transport.written))

    expected: list[tuple[int, bytes, bool]] = []
    for r in reqs:
        expected.append((*r.expected(), r.close))
        if r.close:
            break
    else:
        if garbage:
            expected.append((400, b"malformed HTTP request\n", True))
    assert answers == expected
    assert transport.closed == (expected[-1][2])
