"""Reading and replaying ``lienthong.deadletter``.

A dead letter is the refused record as it arrived (key and value untouched) with the hub's headers added: the
reason code, the problems in words, the source position, the sender and the SHA-256. Replaying one publishes the
original key and value to the sender's outbox (``lienthong.outbox.<OrganId>``) again, without the hub's headers and with
``lienthong-replay-of: deadletter/<partition>/<offset>``, so it goes through every check again (after the operator
fixed what refused it: a trust anchor, a directory entry, a bug). Replays cannot cause a second delivery: documents
that were delivered once are answered as duplicates (the DocumentId + SHA-256 index), so replaying the same dead
letter twice, or one that a later resend already fixed, delivers nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from adapters.kafka import KafkaConnection
from hub.records import (
    AXIS_INBOUND,
    DEADLETTER,
    H_ERROR,
    H_INPUT,
    H_ORIGIN,
    H_REASON,
    H_RECEIVED_AT,
    H_SENDER,
    H_SHA256,
    H_SOURCE,
    ORIGIN_AXIS,
    Headers,
    outbox_topic,
)
from schemas.errors import HubError

__all__ = ["H_REPLAY_OF", "DeadLetter", "read_dead_letters", "replay"]

#: Header on a replayed record: which dead letter it replays.
H_REPLAY_OF = "lienthong-replay-of"
#: Headers the hub adds on the way; a replay sends the record as its sender did, without them.
_HUB_HEADERS = frozenset(
    {H_ORIGIN, H_REASON, H_ERROR, H_SOURCE, H_SENDER, H_SHA256, H_RECEIVED_AT, H_INPUT, H_REPLAY_OF}
)
_READ_IDLE_MS = 3000  # a read stops once the topic end is reached, or after this long without a record


@dataclass(frozen=True)
class DeadLetter:
    """One record of ``lienthong.deadletter``."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers

    def header(self, name: str) -> str:
        """A header's text ('' when absent)."""
        return next((v.decode("utf-8", "replace") for k, v in self.headers if k == name), "")

    @property
    def reason(self) -> str:
        """The reason code (``EMPTY``, ``HASH_FAILURE``, ``INTERNAL_ERROR``, ...)."""
        return self.header(H_REASON)

    @property
    def position(self) -> str:
        """``deadletter/<partition>/<offset>``: how replays and the CLI name it."""
        return f"deadletter/{self.partition}/{self.offset}"

    def summary(self) -> dict[str, object]:
        """What an operator needs to decide on a replay."""
        return {
            "position": self.position,
            "reason": self.reason,
            "error": self.header(H_ERROR),
            "sender": self.header(H_SENDER),
            "source": self.header(H_SOURCE),
            "sha256": self.header(H_SHA256),
            "received_at": self.header(H_RECEIVED_AT),
            "bytes": len(self.value),
            "replay_of": self.header(H_REPLAY_OF),
        }

    @property
    def from_axis(self) -> bool:
        """Whether the record came in through the national axis (the intake marked it; it has no sender key)."""
        return self.header(H_ORIGIN) == ORIGIN_AXIS.decode()

    @property
    def replay_topic(self) -> str:
        """Where a replay goes: the sender's outbox, or ``lienthong.axis.inbound`` for what came from the axis."""
        if self.from_axis:
            return AXIS_INBOUND
        return outbox_topic((self.key or b"").decode("utf-8", "replace"))

    def replay_headers(self) -> Headers:
        """The sender's own headers, plus where this replay comes from."""
        own = tuple((k, v) for k, v in self.headers if k not in _HUB_HEADERS)
        return (*own, (H_REPLAY_OF, self.position.encode()))


def read_dead_letters(connection: KafkaConnection, *, reason: str | None = None) -> Iterator[DeadLetter]:
    """Every dead letter from the start of the topic to its current end (optionally one reason only)."""
    try:
        consumer = KafkaConsumer(
            group_id=None, enable_auto_commit=False, consumer_timeout_ms=_READ_IDLE_MS, **connection.options()
        )
    except Exception as exc:  # kafka-python's own error tree; say what to do
        raise HubError(
            f"cannot reach the hub's broker at {connection.bootstrap}: {exc} (is `lienthong up` running?)"
        ) from exc
    try:
        partitions = consumer.partitions_for_topic(DEADLETTER) or set()
        tps = [TopicPartition(DEADLETTER, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        for message in consumer:
            letter = DeadLetter(
                message.partition,
                message.offset,
                message.key,
                message.value or b"",
                tuple((k, bytes(v or b"")) for k, v in message.headers or ()),
            )
            if reason is None or letter.reason == reason:
                yield letter
    finally:
        consumer.close()


def replay(connection: KafkaConnection, letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """Publish each dead letter's original record where it came from; return those the broker acknowledged.

    The key of a dead letter is the sender the hub authenticated (the owner of the outbox it arrived on); a record
    from the national axis goes back to ``lienthong.axis.inbound``.
    """
    producer = KafkaProducer(
        acks="all", enable_idempotence=True, max_request_size=4 * 1024 * 1024, **connection.options()
    )
    try:
        pending = [
            (
                letter,
                producer.send(
                    letter.replay_topic,
                    key=None if letter.from_axis else letter.key,
                    value=letter.value,
                    headers=list(letter.replay_headers()),
                ),
            )
            for letter in letters
        ]
        producer.flush()
        done = []
        for letter, future in pending:
            try:
                future.get(timeout=30)
            except Exception as exc:
                raise HubError(f"the broker did not accept the replay of {letter.position}: {exc}") from exc
            done.append(letter)
        return done
    finally:
        producer.close()
