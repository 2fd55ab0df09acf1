"""The HTTP/1.1 server every replica listens with: admissions over TLS, probes and metrics.

Hand-written on llhttp (Node.js's parser, through httptools) rather than a framework, because
admission sits on the path of every pod create: aiohttp's request and response objects cost as
much CPU as the review itself (`make bench` measures both side by side). It serves exactly what
the apiserver and the kubelet ask of it: a few routes, keep-alive, pipelining answered in order,
Expect: 100-continue, bounded heads and bodies, deadlines, and a drain on stop.

Each connection is a small state machine (`Phase`), fed by the parser's callbacks, with one
task that answers its requests in order.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import httptools

log = logging.getLogger(__name__)

#: An AdmissionReview of a pod is far below this (etcd caps objects at 1.5 MiB).
MAX_BODY = 3 * 1024 * 1024
MAX_URL = 8 * 1024
MAX_HEADERS = 64 * 1024
#: Bytes of a request line and headers, counted while they arrive: httptools holds a header
#: until its line ends, and an endless one must not grow without bound.
MAX_HEAD = MAX_URL + MAX_HEADERS
#: The apiserver gives a webhook at most 30 s; a request must have arrived by then.
REQUEST_TIMEOUT = 30.0
#: Longer than the apiserver keeps an idle connection (90 s), so it is the one to close.
IDLE_TIMEOUT = 120.0
TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: bytes = TEXT


#: Answers a request's body (handed over as received: a copy of megabytes costs as much).
Handler = Callable[[bytearray], Awaitable[Answer]]
#: Path -> (method, handler).
Routes = Mapping[bytes, tuple[bytes, Handler]]
#: Decides, from the client's verified certificate (`SSLSocket.getpeercert()`), whether a
#: connection may send requests at all.
PeerCheck = Callable[[Any], bool]

_REASONS = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


class Phase(enum.Enum):
    """Where a connection is in reading its requests."""

    #: Between requests: the idle deadline runs.
    IDLE = enum.auto()
    #: A request line and headers are arriving: the request deadline runs.
    HEAD = enum.auto()
    #: Its body is arriving: the same deadline runs.
    BODY = enum.auto()
    #: An error answer is owed; nothing more is read, and the connection closes after it.
    REFUSED = enum.auto()


class _Refused(Exception):
    """Raised in a parser callback: answer with an error and close, before reading on."""

    def __init__(self, status: int, text: str) -> None:
        self.status, self.text = status, text


@dataclass(frozen=True)
class _Request:
    method: bytes
    path: bytes
    body: bytearray
    keep_alive: bool
    #: An error answer decided while parsing, owed after the answers before it.
    refusal: Answer | None = None


class _Connection(asyncio.Protocol):
    """One kept-alive connection: parses requests as they arrive and answers them in order.

    A request must arrive whole within `timeout` of its first byte, and a connection idle for
    `idle` is closed: a slow or silent client holds a socket, never a handler."""

    def __init__(
        self,
        routes: Routes,
        connections: set[_Connection],
        *,
        max_body: int,
        timeout: float,
        idle: float,
        peer_check: PeerCheck | None = None,
    ) -> None:
        self.routes, self.connections = routes, connections
        self.peer_check = peer_check
        self.max_body, self.timeout, self.idle = max_body, timeout, idle
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.phase = Phase.IDLE
        #: Set when the server stops: close once the answers owed are sent.
        self.closing = False
        # The request under way.
        self.url, self.header_bytes, self.body = b"", 0, bytearray()
        self.expects_continue = False
        self.received = 0  # bytes of it, head included
        #: Received and not yet answered; the first one is being answered.
        self.requests: deque[_Request] = deque()
        self.loop = asyncio.get_running_loop()
        self.worker: asyncio.Task[None] | None = None
        self.arrived: asyncio.Future[None] | None = None
        self.deadline, self.tick = 0.0, min(timeout, idle) / 4
        self.timer: asyncio.TimerHandle | None = None

    @property
    def arriving(self) -> bool:
        """A request is under way: its deadline, not the idle one, runs."""
        return self.phase is Phase.HEAD or self.phase is Phase.BODY

    # asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        # Over TLS this comes once the handshake is done: the certificate is verified.
        if self.peer_check is not None and not self.peer_check(
            transport.get_extra_info("peercert")
        ):
            log.warning("closed a connection whose client certificate names no allowed client")
            self.phase = Phase.REFUSED  # nothing it sent is read
            self.transport.close()
            return
        self.connections.add(self)
        self.deadline = self.loop.time() + self.idle
        self.timer = self.loop.call_later(self.tick, self._check_deadline)
        self.worker = self.loop.create_task(self._answer_all())

    def connection_lost(self, exc: Exception | None) -> None:
        # The parser and this protocol hold each other: until the cyclic collector runs, the
        # object lives on, so nothing big may stay attached to it.
        self.transport = None
        self.body = bytearray()
        self.requests.clear()
        self.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.REFUSED:
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            refused = error.__context__
            if not isinstance(refused, _Refused):
                raise
            self._refuse(refused.status, refused.text)
            return
        except httptools.HttpParserUpgrade:  # not switching: answer what came, then close
            self.phase = Phase.REFUSED
            self.finish()
            return
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request\n")
            return
        if self.phase is Phase.HEAD and self.received > MAX_HEAD:
            self._refuse(431, "request headers too large\n")
        elif self.received > MAX_HEAD + self.max_body:  # chunked trailers, say
            self._refuse(413, f"request is over {self.max_body} bytes\n")

    # httptools: IDLE -> HEAD -> BODY -> IDLE

    def on_message_begin(self) -> None:
        self.phase = Phase.HEAD
        self.url, self.header_bytes, self.body = b"", 0, bytearray()
        self.expects_continue = False
        self.deadline = self.loop.time() + self.timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL:
            raise _Refused(414, "request URI too long\n")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADERS:
            raise _Refused(431, "request headers too large\n")
        name = name.lower()
        if name == b"content-length" and (len(value) > 12 or int(value) > self.max_body):
            raise _Refused(413, f"request body is over {self.max_body} bytes\n")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expects_continue = True

    def on_headers_complete(self) -> None:
        self.phase = Phase.BODY
        # curl asks, for bodies over 1 KiB; not before the answers owed, and not in HTTP/1.0.
        http11 = self.parser.get_http_version() == "1.1"
        if self.expects_continue and http11 and not self.requests and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if len(self.body) + len(chunk) > self.max_body:
            raise _Refused(413, f"request body is over {self.max_body} bytes\n")
        self.body += chunk

    def on_message_complete(self) -> None:
        self.phase, self.received = Phase.IDLE, 0
        try:
            path = httptools.parse_url(self.url).path
        except httptools.HttpParserInvalidURLError:
            raise _Refused(400, "malformed request URI\n") from None
        keep_alive = self.parser.should_keep_alive()
        self._owe(_Request(self.parser.get_method(), path, self.body, keep_alive))
        self.body = bytearray()  # the request has it now
        if len(self.requests) > 1 and self.transport:  # pipelined: wait for the answers
            self.transport.pause_reading()

    # answers

    def _owe(self, request: _Request) -> None:
        self.requests.append(request)
        if self.arrived is not None and not self.arrived.done():
            self.arrived.set_result(None)

    async def _answer_all(self) -> None:
        """The connection's one task, for its whole life: a task per request would cost more
        than parsing it (asyncio registers every task in a WeakSet)."""
        try:
            while self.transport:
                if not self.requests:
                    self.arrived = self.loop.create_future()
                    await self.arrived
                    continue
                close = await self._answer_first()
                if close or not self.transport:
                    return
                if self.requests:
                    continue
                if self.closing and not self.arriving:
                    self.transport.close()
                    return
                self.transport.resume_reading()
                if not self.arriving:  # else the request under way keeps its own deadline
                    self.deadline = self.loop.time() + self.idle
        except Exception as error:  # a bug: this connection ends, the server goes on
            log.error("connection failed with %s", type(error).__name__)
            if self.transport:
                self.transport.abort()

    async def _answer_first(self) -> bool:
        """Answers the oldest request; True when the connection closes after it. Its own
        frame: the connection's task lives on in a cycle, and must not keep a body alive."""
        request = self.requests[0]
        answer = await self._answer(request)
        self.requests.popleft()
        close = self.closing or not request.keep_alive
        self._send(answer, close=close)
        return close

    async def _answer(self, request: _Request) -> Answer:
        if request.refusal is not None:
            return request.refusal
        route = self.routes.get(request.path)
        if route is None:
            return Answer(404, b"not found\n")
        method, handler = route
        if request.method != method:
            return Answer(405, b"method not allowed\n")
        try:
            return await handler(request.body)
        except Exception as error:
            # The message may quote the request (a pod's env values are plain text there):
            # log only the exception's type and where it happened.
            log.error(
                "%s %s failed with %s\n%s",
                request.method.decode(),
                request.path.decode(errors="replace"),
                type(error).__name__,
                "".join(traceback.format_tb(error.__traceback__)).rstrip(),
            )
            return Answer(500, b"internal error\n")

    def _send(self, answer: Answer, close: bool) -> None:
        if self.transport is None:
            return
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            answer.status,
            _REASONS.get(answer.status, b"Unknown"),
            answer.content_type,
            len(answer.body),
        )
        ending = b"Connection: close\r\n\r\n" if close else b"\r\n"
        self.transport.write(head + ending + answer.body)
        if close:
            self.transport.close()

    def finish(self) -> None:
        """Close now if idle, else right after the answer under way (with Connection: close).
        A request already arriving is still answered, within its time."""
        self.closing = True
        if not self.requests and not self.arriving and self.transport:
            self.transport.close()

    def _refuse(self, status: int, text: str) -> None:
        """Answer with an error after the answers owed before it, then close; nothing more
        is read."""
        self.phase = Phase.REFUSED
        if self.transport:
            self.transport.pause_reading()
        refusal = Answer(status, text.encode())
        self._owe(_Request(b"", b"", bytearray(), keep_alive=False, refusal=refusal))

    def _check_deadline(self) -> None:
        """Every `tick`: moving a deadline is then a mere assignment on each request."""
        if self.transport is None:
            return
        if self.requests or self.loop.time() < self.deadline:
            self.timer = self.loop.call_later(self.tick, self._check_deadline)
        elif self.arriving:
            self._refuse(408, "request not received in time\n")
        else:
            self.transport.close()


@dataclass
class Server:
    """A listening server and its open connections, so that stopping can drain them."""

    server: asyncio.Server
    connections: set[_Connection]

    @property
    def port(self) -> int:
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening and close every connection once its answer is sent, as Go's
        http.Server.Shutdown does: the apiserver sends its next admission to another replica
        instead of having it cut. What is still open after `grace` is cut."""
        self.server.close()
        for connection in list(self.connections):
            connection.finish()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()


async def serve(
    routes: Routes,
    ssl_context: ssl.SSLContext | None,
    host: str,
    port: int,
    *,
    max_body: int = MAX_BODY,
    timeout: float = REQUEST_TIMEOUT,
    idle: float = IDLE_TIMEOUT,
    peer_check: PeerCheck | None = None,
) -> Server:
    """Start answering `routes` (over TLS with `ssl_context`); `Server.stop` to stop.
    `peer_check` closes, before reading anything, a connection whose client it refuses."""
    connections: set[_Connection] = set()
    server = await asyncio.get_running_loop().create_server(
        lambda: _Connection(
            routes,
            connections,
            max_body=max_body,
            timeout=timeout,
            idle=idle,
            peer_check=peer_check,
        ),
        host,
        port,
        ssl=ssl_context,
    )
    return Server(server, connections)


async def ok(_: bytearray) -> Answer:
    return Answer(200, b"ok")
