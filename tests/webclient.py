"""A plain HTTP client for the web UI's tests: cookies kept, redirects not followed, forms
sent as the browser sends them (urlencoded, or multipart with files)."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from html import unescape


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class Answer:
    status: int
    headers: Message
    text: str

    @property
    def location(self) -> str:
        return str(self.headers.get("Location") or "")

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]*)"', self.text)
        assert found, f"no CSRF token on the page:\n{self.text[:2000]}"
        return unescape(found[1])

    def raw(self, element_id: str) -> str:
        """The HTML inside the element with that id (no nested element of the same tag)."""
        found = re.search(
            rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</\1>', self.text, re.S
        )
        assert found, f"no element #{element_id} on the page:\n{self.text[:3000]}"
        return found[2]

    def by_id(self, element_id: str) -> str:
        """The text a person reads in the element with that id."""
        return unescape(self.raw(element_id))


Fields = Sequence[tuple[str, str]] | Mapping[str, str]


def multipart(fields: Fields, files: Mapping[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    for name, value in items:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Visitor:
    """One browser's worth of cookies against the UI at `base`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        request = urllib.request.Request(  # noqa: S310  (the UI on loopback)
            self.base + path, data=body, method=method, headers=dict(headers or {})
        )
        try:
            with self.opener.open(request, timeout=60) as response:
                return Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read().decode())

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        return self.request("GET", path, headers=headers)

    def post(
        self,
        path: str,
        fields: Fields,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        body, content_type = multipart(fields, files or {})
        return self.request("POST", path, body, {"Content-Type": content_type, **(headers or {})})

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def sign_in(self, token: str) -> Answer:
        page = self.get("/sign-in")
        answer = self.post("/sign-in", {"csrf": page.csrf(), "token": token})
        assert answer.status == 303, answer.text
        return answer
