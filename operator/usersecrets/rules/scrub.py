"""Taking a secret's value out of a message, in every encoding it may have been quoted in.

Messages the operator passes on (what the apiserver or a policy said when it refused a copy,
an error of the CLI or the web UI) come from code we do not control, and a policy may echo the
object it refused: the value then appears as raw text, in base64 (a Secret's data), in JSON or
URL escapes, in hex. Every message is scrubbed before it is written anywhere.

Values shorter than `MIN_LENGTH` bytes are left alone: replacing every occurrence of two
letters would destroy the message and protect nothing.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterable

MIN_LENGTH = 4
REDACTED = "<redacted>"


def _base64_forms(value: bytes) -> set[str]:
    """The value's base64 as it appears inside any longer base64 text: at each of the three
    alignments, the characters that depend on the value alone."""
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + value + b"\0\0")
        # Characters fully determined by `value`: after the shifted prefix, before the padding.
        start = -(-shift * 4 // 3)  # ceil(shift * 4 / 3)
        end = (shift + len(value)) * 4 // 3
        inner = encoded[start:end].decode()
        if len(inner) >= MIN_LENGTH:
            forms.add(inner)
            forms.add(inner.replace("+", "-").replace("/", "_"))  # the URL-safe alphabet
    return forms


def forms(value: bytes) -> set[str]:
    """Every text form of `value` a message might quote."""
    if len(value) < MIN_LENGTH:
        return set()
    found = {base64.b64encode(value).decode(), value.hex(), value.hex().upper()}
    found |= _base64_forms(value)
    text = value.decode("utf-8", "surrogateescape")
    if text.isprintable():
        found |= {text, json.dumps(text)[1:-1], urllib.parse.quote(text, safe="")}
        found.add(urllib.parse.quote_plus(text, safe=""))
    else:
        found.add(json.dumps(value.decode("latin-1"))[1:-1])
    return {f for f in found if len(f) >= MIN_LENGTH}


def scrub(message: str, values: Iterable[bytes]) -> str:
    """`message` with every form of every value replaced, longest first (a form may contain
    another one)."""
    for form in sorted({f for v in values for f in forms(v)}, key=len, reverse=True):
        message = message.replace(form, REDACTED)
    return message
