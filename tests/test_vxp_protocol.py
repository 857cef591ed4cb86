"""The VXP protocol module alone (adapters.vxp): the per-call HMAC and the reply envelope, no server."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.vxp import (
    DEFAULT_TIMESTAMP_WINDOW,
    VxpCode,
    VxpError,
    authenticate,
    encode,
    fail,
    format_timestamp,
    hash_file,
    ok,
    parse_timestamp,
    sign_request,
)

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
SECRETS = {"000.01.00.H41": "s3cret-A", "000.02.00.H41": "s3cret-B"}


def _signed(
    parameters: list[tuple[str, str]], *, at: datetime = NOW, secret: str = SECRETS["000.01.00.H41"]
) -> dict[str, str]:
    return sign_request("000.01.00.H41", secret, parameters, timestamp=format_timestamp(at))


def _code(headers: list[tuple[str, str]], **kwargs: Any) -> VxpCode:
    with pytest.raises(VxpError) as refused:
        authenticate(headers, SECRETS, now=kwargs.pop("now", NOW), **kwargs)
    return refused.value.code


@given(st.lists(st.booleans(), min_size=12, max_size=12))
def test_header_names_match_whatever_their_case(uppers: list[bool]) -> None:
    """Header names are compared case-insensitively: any casing of the sent names authenticates."""
    headers = _signed([("docId", "X_1"), ("status", "done")])
    recased = [
        ((name.upper() if up else name.lower()), value)
        for (name, value), up in zip(headers.items(), uppers, strict=False)
    ]
    caller = authenticate(recased, SECRETS, now=NOW)
    assert caller.system_id == "000.01.00.H41"
    assert (caller.get("docid"), caller.get("DOCID"), caller.require("status")) == ("X_1", "X_1", "done")


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40))
def test_lingering_unsigned_headers_are_ignored(stale: str) -> None:
    """A header left from an earlier call (docId beside this call's signed docid) never replaces the signed value."""
    headers = list(
        sign_request("000.01.00.H41", "s3cret-A", [("docid", "NEW_2")], timestamp=format_timestamp(NOW)).items()
    )
    headers += [("XroadVnpt-docId", stale), ("XroadVnpt-filePath", "C:\\old"), ("XroadVnpt-status", "fail")]
    caller = authenticate(headers, SECRETS, now=NOW)
    assert caller.get("docId") == "NEW_2"
    assert caller.get("status") == ""  # unsigned: not a parameter of this call
    assert caller.get("filePath") == ""


@given(st.integers(min_value=1, max_value=10 * 24 * 3600), st.sampled_from([1, -1]))
def test_the_timestamp_window_holds_both_ways(seconds: int, sign: int) -> None:
    """A timestamp within the window (old or ahead) passes; one beyond it, either way, is STALE_TIMESTAMP."""
    at = NOW + sign * timedelta(seconds=seconds)
    headers = list(_signed([("status", "done")], at=at).items())
    if timedelta(seconds=seconds) <= DEFAULT_TIMESTAMP_WINDOW:
        assert authenticate(headers, SECRETS, now=NOW).timestamp is not None
    else:
        assert _code(headers) is VxpCode.STALE_TIMESTAMP
    assert _code(headers, window=timedelta(seconds=seconds - 1)) is VxpCode.STALE_TIMESTAMP


def test_each_refusal_has_its_code() -> None:
    """Wrong secret, unknown system, a signed value the headers do not carry, a missing header: distinct codes."""
    good = _signed([("from", "000.01.00.H41")])
    assert _code(list(_signed([("from", "000.01.00.H41")], secret="wrong").items())) is VxpCode.BAD_SIGNATURE
    unknown = sign_request("000.99.00.H99", "x", [], timestamp=format_timestamp(NOW))
    assert _code(list(unknown.items())) is VxpCode.UNKNOWN_SYSTEM
    altered = {**good, "XroadVnpt-from": "000.02.00.H41"}
    assert _code(list(altered.items())) is VxpCode.HEADER_MISMATCH
    assert _code([(k, v) for k, v in good.items() if k != "XroadVnpt-hash-header"]) is VxpCode.AUTH_MISSING
    unreadable = sign_request("000.01.00.H41", "s3cret-A", [], timestamp="yesterday")
    assert _code(list(unreadable.items())) is VxpCode.STALE_TIMESTAMP


def test_the_sign_header_is_verified_as_received_never_reserialised() -> None:
    """A sign-header with spaces and unsorted keys verifies by its own bytes (a re-serialised one would not)."""
    stamp = format_timestamp(NOW)
    sign_header = (
        f'{{ "XroadVnpt-timestamp" : "{stamp}", "XroadVnpt-systemid": "000.01.00.H41", '
        '"XroadVnpt-Content-Type": "application/json" }'
    )
    mac = hmac.new(b"s3cret-A", sign_header.encode(), hashlib.sha256).hexdigest()
    headers = [
        ("XroadVnpt-systemid", "000.01.00.H41"),
        ("XroadVnpt-timestamp", stamp),
        ("XroadVnpt-Content-Type", "application/json"),
        ("XroadVnpt-sign-header", sign_header),
        ("XroadVnpt-hash-header", mac.upper()),
    ]
    assert authenticate(headers, SECRETS, now=NOW).system_id == "000.01.00.H41"


@given(st.binary(max_size=2000))
def test_hash_file_prints_each_byte_without_zero_padding(body: bytes) -> None:
    """hash-file is the SHA-256 with each byte in hex unpadded: shorter than 64 exactly when a byte is below 0x10."""
    digest = hashlib.sha256(body).digest()
    assert hash_file(body) == "".join(format(b, "x") for b in digest)
    assert (len(hash_file(body)) < 64) == any(b < 0x10 for b in digest)


def test_a_known_hash_file_is_shorter_than_64() -> None:
    """The SHA-256 of b"" starts with e3 b0 c4 42 98 fc 1c …: the 1c byte stays two digits, a 0x0? byte one."""
    text = hash_file(b"")
    assert text.startswith("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"[:14])
    assert len(text) == 64 - sum(1 for b in hashlib.sha256(b"").digest() if b < 0x10)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)))
def test_timestamps_round_trip_to_the_millisecond(at: datetime) -> None:
    """FormatTimestamp writes ddMMyyyy'T'HHmmss+SSSS; parse_timestamp reads it back to the millisecond."""
    text = format_timestamp(at)
    assert len(text) == 20
    assert text[15] == "+"
    assert parse_timestamp(text) == at.replace(microsecond=at.microsecond // 1000 * 1000)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


@given(st.dictionaries(st.from_regex(r"[a-zA-Z]{1,10}", fullmatch=True), _JSON, max_size=5), st.booleans())
def test_replies_are_ascii_json_without_null(fields: dict[str, Any], failed: bool) -> None:
    r"""Every reply encodes to plain ASCII (\uXXXX escapes) with no JSON null anywhere; text survives intact."""
    fields.pop("status", None)
    fields.pop("ErrorCode", None)
    fields.pop("ErrorDesc", None)
    reply = fail(VxpError(VxpCode.BAD_BODY, "Văn bản rỗng"), **fields) if failed else ok(**fields)
    data = encode(reply)
    data.decode("ascii")
    decoded = json.loads(data)
    assert not _has_null(decoded)
    assert decoded["status"] == ("FAIL" if failed else "OK")
    if failed:
        assert decoded["ErrorDesc"] == "Văn bản rỗng"
        assert decoded["ErrorCode"] == "2002"
    for name, value in fields.items():
        if value is not None and not _has_null(value):
            assert decoded[name] == value
