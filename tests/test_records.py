"""The topic contract (hub.records): topic names, headers, record shapes and claim checks."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.records import (
    AXIS_OUTBOUND,
    CLAIM_CHECK_MAGIC,
    DEADLETTER,
    DIRECTORY,
    H_DOC_ID,
    H_INDICATION,
    H_RECEIVED_AT,
    H_SHA256,
    LEDGER,
    ClaimCheck,
    InboundRecord,
    inbox_topic,
    outbox_owner,
    outbox_topic,
    status_topic,
)
from schemas.errors import DocumentRejected

#: What Kafka accepts in a topic name (legal characters, at most 249 of them).
KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")

SHA = st.binary(min_size=32, max_size=32).map(bytes.hex)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["key", "sha256", "size"]), inner),
    max_leaves=6,
)


class TestTopicNames:
    """Topic names are DESIGN.md's contract; agency topics are built only from safe OrganIds."""

    def test_fixed_topic_names(self):
        """The fixed topics are named as DESIGN.md says."""
        assert outbox_topic("000.01.00.H41") == "lienthong.outbox.000.01.00.H41"
        assert outbox_owner("lienthong.outbox.000.01.00.H41") == "000.01.00.H41"
        assert outbox_owner("lienthong.inbox.000.01.00.H41") is None
        assert AXIS_OUTBOUND == "lienthong.axis.outbound"
        assert DEADLETTER == "lienthong.deadletter"
        assert LEDGER == "lienthong.ledger"
        assert DIRECTORY == "lienthong.directory"

    def test_delivery_header_names(self):
        """Delivered records carry the four headers DESIGN.md names."""
        assert (H_DOC_ID, H_SHA256, H_INDICATION, H_RECEIVED_AT) == (
            "lienthong-doc-id",
            "lienthong-sha256",
            "lienthong-indication",
            "lienthong-received-at",
        )

    def test_agency_topics(self):
        """An OrganId names its inbox and status topics."""
        assert inbox_topic("000.00.00.H41") == "lienthong.inbox.000.00.00.H41"
        assert status_topic("000.00.00.G22") == "lienthong.status.000.00.00.G22"

    @pytest.mark.parametrize(
        "organ_id",
        ["", "a/b", "a b", "000.00.00.H41;rm", "Sở Y tế", "a\x00b", "x" * 200, "abc\n", "abc\r\n", "\nabc", "a,b"],
    )
    def test_unsafe_organ_ids_are_refused(self, organ_id):
        """An OrganId with characters Kafka refuses (or too long) cannot name a topic: ValueError."""
        with pytest.raises(ValueError, match="cannot name a topic"):
            inbox_topic(organ_id)
        with pytest.raises(ValueError, match="cannot name a topic"):
            status_topic(organ_id)

    @given(st.text(max_size=60))
    def test_any_topic_returned_is_a_legal_kafka_name(self, organ_id):
        """Whatever the OrganId, the topic returned is a legal Kafka name with the OrganId intact, or ValueError."""
        for build, prefix in ((inbox_topic, "lienthong.inbox."), (status_topic, "lienthong.status.")):
            try:
                topic = build(organ_id)
            except ValueError:
                continue
            assert KAFKA_TOPIC.fullmatch(topic), repr(topic)
            assert topic == prefix + organ_id


class TestInboundRecord:
    """What a consumed record looks like to the processor."""

    def test_source_names_topic_partition_offset(self):
        """``source`` is topic/partition/offset, for dead letters."""
        assert InboundRecord(b"k", b"v", partition=3, offset=42).source == "lienthong.work.bulk/3/42"

    def test_header_returns_the_last_value(self):
        """A repeated header reads as its last value; a missing one as None."""
        record = InboundRecord(b"k", b"v", headers=(("a", b"1"), ("b", b"2"), ("a", b"3")))
        assert record.header("a") == b"3"
        assert record.header("b") == b"2"
        assert record.header("c") is None


class TestClaimCheck:
    """A claim check names an object in the store by key, SHA-256 and size."""

    @given(key=st.text(min_size=1, max_size=80), sha=SHA, size=st.integers(min_value=0, max_value=2**63))
    def test_round_trip(self, key, sha, size):
        """to_bytes then from_bytes gives back the same claim check, and the bytes start with the magic."""
        check = ClaimCheck(key, sha, size)
        value = check.to_bytes()
        assert value.startswith(CLAIM_CHECK_MAGIC)
        assert ClaimCheck.from_bytes(value) == check

    def test_upper_case_sha256_is_normalised(self):
        """An upper-case SHA-256 reads as lower case."""
        check = ClaimCheck.from_bytes(ClaimCheck("claims/x", "AB" * 32, 1).to_bytes())
        assert check.sha256 == "ab" * 32

    def test_wire_format(self):
        """The record value is compact JSON under the key lienthong-claim-check."""
        value = ClaimCheck("claims/x", "ab" * 32, 7).to_bytes()
        assert json.loads(value) == {"lienthong-claim-check": {"key": "claims/x", "sha256": "ab" * 32, "size": 7}}

    @pytest.mark.parametrize(
        "value",
        [
            b"",
            b"not json",
            CLAIM_CHECK_MAGIC,
            CLAIM_CHECK_MAGIC + b":{}}",
            CLAIM_CHECK_MAGIC + b":[]}",
            CLAIM_CHECK_MAGIC + b':"text"}',
            CLAIM_CHECK_MAGIC + b":null}",
            b"[1, 2]",
            b'{"other": {}}',
            CLAIM_CHECK_MAGIC + b':{"sha256":"' + b"a" * 64 + b'","size":1}}',  # no key
            CLAIM_CHECK_MAGIC + b':{"key":"","sha256":"' + b"a" * 64 + b'","size":1}}',  # empty key
            CLAIM_CHECK_MAGIC + b':{"key":"k","size":1}}',  # no sha256
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"abc","size":1}}',  # short sha256
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"g" * 64 + b'","size":1}}',  # not hex
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'"}}',  # no size
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'","size":-1}}',  # negative
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'","size":"many"}}',
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'","size":NaN}}',
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'","size":null}}',
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'","size":[1]}}',
            CLAIM_CHECK_MAGIC + b"\xff\xfe",  # not UTF-8
        ],
    )
    def test_malformed_claim_checks_are_refused(self, value):
        """Anything that is not a complete, well-typed claim check is DocumentRejected(BAD_CLAIM_CHECK)."""
        with pytest.raises(DocumentRejected) as caught:
            ClaimCheck.from_bytes(value)
        assert caught.value.reason == "BAD_CLAIM_CHECK"
        assert caught.value.problems

    @pytest.mark.parametrize(
        "value",
        [
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'","size":Infinity}}',
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'","size":1e400}}',
            CLAIM_CHECK_MAGIC + b':{"key":"k","sha256":"' + b"a" * 64 + b'","size":-Infinity}}',
        ],
    )
    def test_infinite_size_is_refused(self, value):
        """A size of JSON infinity is BAD_CLAIM_CHECK, not an OverflowError escaping the hub."""
        with pytest.raises(DocumentRejected) as caught:
            ClaimCheck.from_bytes(value)
        assert caught.value.reason == "BAD_CLAIM_CHECK"

    def test_deep_nesting_is_refused(self):
        """A claim check nested 100,000 levels deep is BAD_CLAIM_CHECK, not a RecursionError."""
        with pytest.raises(DocumentRejected) as caught:
            ClaimCheck.from_bytes(CLAIM_CHECK_MAGIC + b":" + b"[" * 100_000 + b"]" * 100_000 + b"}")
        assert caught.value.reason == "BAD_CLAIM_CHECK"

    @settings(max_examples=300)
    @given(body=st.one_of(JSON, st.fixed_dictionaries({"key": JSON, "sha256": JSON | SHA, "size": JSON | st.floats()})))
    def test_any_json_body_is_a_claim_check_or_refused(self, body):
        """Any JSON under lienthong-claim-check reads as a valid claim check or is BAD_CLAIM_CHECK, nothing else."""
        value = json.dumps({"lienthong-claim-check": body}).encode()
        try:
            check = ClaimCheck.from_bytes(value)
        except DocumentRejected as exc:
            assert exc.reason == "BAD_CLAIM_CHECK"
        else:
            assert check.key
            assert re.fullmatch(r"[0-9a-f]{64}", check.sha256)
            assert check.size >= 0
