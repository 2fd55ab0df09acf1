"""A value is taken out of a message however it was quoted."""

from __future__ import annotations

import base64
import json
import urllib.parse

from hypothesis import given
from hypothesis import strategies as st

from usersecrets.rules.scrub import forms, scrub

VALUE = b"hunter2-db-password"


def test_raw_url_hex_and_base64_quotes_are_scrubbed() -> None:
    for quoted in (
        "hunter2-db-password",
        urllib.parse.quote("hunter2-db-password", safe=""),
        "68756e746572322d64622d70617373776f7264",
        "68756E746572322D64622D70617373776F7264",
        "aHVudGVyMi1kYi1wYXNzd29yZA==",
    ):
        assert scrub(f"denied: {quoted}!", [VALUE]) == "denied: <redacted>!", quoted
    echoed = json.dumps({"password": "hunter2-db-password"})
    assert scrub(echoed, [VALUE]) == '{"password": "<redacted>"}'


def test_a_secret_object_echoed_by_a_policy_loses_its_data() -> None:
    copy = {"kind": "Secret", "data": {"value": base64.b64encode(VALUE).decode()}}
    message = f"exceeded quota: {json.dumps(copy)}"
    assert scrub(message, [VALUE]) == (
        'exceeded quota: {"kind": "Secret", "data": {"value": "<redacted>"}}'
    )


def test_binary_values_quoted_in_json_are_scrubbed() -> None:
    binary = b'value\xff\x00\n"x'
    quoted = json.dumps(binary.decode("latin-1"))
    assert "<redacted>" in scrub(f"got {quoted}", [binary])
    assert base64.b64encode(binary).decode() not in scrub(
        f"got {base64.b64encode(binary).decode()}", [binary]
    )


def test_short_values_are_left_alone() -> None:
    assert forms(b"abc") == set()
    assert scrub("abc abc", [b"abc"]) == "abc abc"


@given(
    value=st.binary(min_size=4, max_size=64),
    prefix=st.binary(max_size=7),
    suffix=st.binary(max_size=7),
)
def test_base64_of_a_larger_object_loses_the_values_part_at_any_offset(
    value: bytes, prefix: bytes, suffix: bytes
) -> None:
    blob = base64.b64encode(prefix + value + suffix).decode()
    scrubbed = scrub(blob, [value])
    assert "<redacted>" in scrubbed
    # What is left of the value's bits: at most the two characters on each side that it
    # shares with its neighbours.
    assert len(blob) - len(scrubbed.replace("<redacted>", "")) >= len(value) * 4 // 3 - 3
