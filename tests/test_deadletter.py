"""Dead letters as the replay command sees them (no broker needed: the record logic only)."""

from __future__ import annotations

from hub.deadletter import H_REPLAY_OF, DeadLetter
from hub.records import (
    AXIS_INBOUND,
    H_ERROR,
    H_INPUT,
    H_ORIGIN,
    H_REASON,
    H_SENDER,
    H_SHA256,
    H_SOURCE,
    ORIGIN_AXIS,
)


def _letter() -> DeadLetter:
    headers = (
        ("x-dms-trace", b"abc"),
        (H_INPUT, b"lienthong.inbound/2/7"),
        (H_REASON, b"REVOKED"),
        (H_ERROR, b"/edXML/.../Signature: revoked on 2026-01-01"),
        (H_SOURCE, b"lienthong.work.bulk/1/9"),
        (H_SENDER, b"000.01.00.H41"),
        (H_SHA256, b"ab" * 32),
    )
    return DeadLetter(0, 41, b"000.01.00.H41", b"<edXML/>", headers)


def test_a_replay_sends_the_senders_headers_and_names_the_dead_letter() -> None:
    """Replayed records carry the sender's own headers, none of the hub's, and where they were replayed from."""
    headers = dict(_letter().replay_headers())
    assert headers == {"x-dms-trace": b"abc", H_REPLAY_OF: b"deadletter/0/41"}


def test_a_replay_of_a_replay_names_only_the_latest_dead_letter() -> None:
    """A dead letter that was itself a replay is replayed with one replay-of header, not two."""
    first = _letter()
    again = DeadLetter(0, 50, first.key, first.value, (*first.replay_headers(), (H_REASON, b"REVOKED")))
    assert [v for k, v in again.replay_headers() if k == H_REPLAY_OF] == [b"deadletter/0/50"]


def test_the_summary_names_reason_sender_problem_and_position() -> None:
    """What `lienthong deadletter list` prints for a dead letter: position, reason, sender, problem and hash."""
    summary = _letter().summary()
    assert summary["position"] == "deadletter/0/41"
    assert summary["reason"] == "REVOKED"
    assert summary["sender"] == "000.01.00.H41"
    assert "revoked on 2026-01-01" in str(summary["error"])
    assert summary["sha256"] == "ab" * 32


def test_a_dead_letter_from_the_national_axis_replays_to_the_axis_inbound_topic() -> None:
    """A record the connector brought in (origin axis, no key) is replayed to lienthong.axis.inbound, unmarked."""
    letter = DeadLetter(0, 7, None, b"<edXML/>", ((H_ORIGIN, ORIGIN_AXIS), (H_REASON, b"REVOKED")))
    assert letter.from_axis
    assert letter.replay_topic == AXIS_INBOUND
    assert H_ORIGIN not in dict(letter.replay_headers())  # only the intake marks the origin
    assert _letter().replay_topic == "lienthong.outbox.000.01.00.H41"
