"""The controller's single requests (its writes, and the reads a reconcile makes), sent from its
event loop: the requests of `client.KubeApi`, through aiohttp.

A write through urllib3 in a worker thread cost the operator ~530 µs of CPU, ~300 µs here:
aiohttp parses answers in C, and no thread is handed each request (issue 17). Lists and
watches stay with `KubeApi`, in threads: their large bodies are parsed off the loop. aiohttp is
imported by the operator only, never by the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import yarl

from usersecrets.kube.client import CONNECT_SECONDS, READ_SECONDS, ApiError, request
from usersecrets.kube.credentials import Credentials

logger = logging.getLogger(__name__)

#: How long the loop uses the credentials' headers before it reads them again. Reading them may
#: read a token file or run a kubeconfig's exec plugin: in a thread, never on the loop.
HEADERS_SECONDS = 10.0


class AsyncKubeApi:
    """Requests with one set of credentials, from one event loop; `close` when done."""

    def __init__(self, credentials: Credentials, pool: int = 32) -> None:
        self.credentials, self.pool = credentials, pool
        self.server = credentials.server.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._auth: Mapping[str, str] = {}
        self._auth_read = -HEADERS_SECONDS

    def _open(self) -> aiohttp.ClientSession:
        """The session, made on first use: it belongs to the loop that runs it."""
        if self._closed:
            raise RuntimeError("this client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.credentials.ssl_context, limit=self.pool),
                timeout=aiohttp.ClientTimeout(sock_connect=CONNECT_SECONDS, sock_read=READ_SECONDS),
                cookie_jar=aiohttp.DummyCookieJar(),  # the apiserver sets none; keep none
            )
        return self._session

    async def _headers(self) -> Mapping[str, str]:
        if time.monotonic() - self._auth_read >= HEADERS_SECONDS:
            self._auth = await asyncio.to_thread(self.credentials.headers)
            self._auth_read = time.monotonic()
        return self._auth

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> bytes:
        """The whole answer; ApiError unless 2xx."""
        auth = await self._headers()
        url, sent, data = request(auth, path, query, body, headers, content_type)
        async with self._open().request(
            method,
            yarl.URL(self.server + url, encoded=True),  # its query encoded by `request`
            data=data,
            headers=sent,
            allow_redirects=False,  # as KubeApi: an answer is the apiserver's own
        ) as response:
            answer = await response.read()
        # As urllib3 logs the threads' requests: the path names objects, never their values.
        logger.debug("%s %s: %s", method, path, response.status)
        if not 200 <= response.status <= 299:
            raise ApiError(response.status, response.reason or "", answer)
        return answer

    async def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        found: dict[str, Any] = orjson.loads(await self.call(method, path, **kwargs))
        return found

    async def close(self) -> None:
        """For good: a request after it raises."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
