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
    # What goes: every character that the value's bits alone decide, from ceil(shift * 4 / 3)
    # to floor((shift + len) * 4 / 3) at its offset `shift` (mod 3); only the one or two it
    # shares with a neighbour on each side may stay.
    shift = len(prefix) % 3
    decided = (shift + len(value)) * 4 // 3 - -(-shift * 4 // 3)
    assert len(blob) - len(scrubbed.replace("<redacted>", "")) >= decided


def test_json_and_url_escapes_of_a_value_are_scrubbed_whole() -> None:
    value = 'pass"w\\ord/x y'
    for quoted in (
        json.dumps(value)[1:-1],  # pass\"w\\ord/x y
        urllib.parse.quote(value, safe=""),  # .../ as %2F
        urllib.parse.quote_plus(value, safe=""),  # ' ' as +
    ):
        assert scrub(f"[{quoted}]", [value.encode()]) == "[<redacted>]", quoted


def test_a_binary_value_quoted_in_json_is_scrubbed_whole() -> None:
    binary = b'value\xff\x00\n"x'
    quoted = json.dumps(binary.decode("latin-1"))
    assert scrub(f"got {quoted}", [binary]) == 'got "<redacted>"'


def test_url_safe_base64_is_scrubbed() -> None:
    value = b"\xfb\xff\xbf\xfb\xff\xbf"  # "+/+/+/+/" in the standard alphabet
    assert base64.b64encode(value) == b"+/+/+/+/"
    assert scrub(base64.urlsafe_b64encode(value).decode(), [value]) == "<redacted>"


def test_the_longest_form_goes_first() -> None:
    """One value inside another: the longer is replaced whole, not cut by the shorter."""
    assert scrub("x hunter2-long y", [b"nter2-lo", b"hunter2-long"]) == "x <redacted> y"
