"""Exactly-once delivery on an at-least-once broker: the in-doubt check.

Kafka without transactions gives at-least-once: a worker that dies after producing a document's
deliveries but before committing the input offset leaves that record "in doubt"; whoever consumes the partition
next processes it again. Only records between the partition's committed offset and its end at assignment time
can be in doubt (a previous owner cannot have seen later ones). For those, and only those, the guard looks at what
is already on the output topics: every record the hub produces carries ``lienthong-input`` (the position of the
record that caused it), so ``(topic, input position)`` names one output. The look-back starts at the in-doubt
records' own timestamp (an output is always produced after the record that caused it), so it reads seconds of
output, not the whole log.

Normal records (offset ≥ the end at assignment) skip the check: the happy path costs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from adapters.kafka import KafkaConnection
from hub.records import H_INPUT

__all__ = ["DEFAULT_SKEW_MS", "DeliveryGuard"]

log = logging.getLogger(__name__)

#: Producer clocks on one hub agree to well under a second; look back this much further to be safe.
DEFAULT_SKEW_MS = 5_000


@dataclass
class _Window:
    """One input partition's in-doubt range [committed, end at assignment)."""

    start: int
    end: int


@dataclass
class DeliveryGuard:
    """Remembers in-doubt ranges per input partition and which deliveries already exist on the output topics."""

    connection: KafkaConnection
    windows: dict[tuple[str, int], _Window] = field(default_factory=dict)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _scanned_from_ms: dict[tuple[str, ...], int] = field(default_factory=dict)  # per set of output topics
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pending: dict[tuple[str, int], asyncio.Event] = field(default_factory=dict)

    def expect(self, partitions: Iterable[tuple[str, int]]) -> asyncio.Event:
        """Mark newly assigned partitions as not yet looked up: ``in_doubt`` waits until ``assigned`` is done.

        faust hands out a new assignment's records while its assignment handler still runs; without this wait the
        first records of an in-doubt range were checked against no window and delivered a second time.
        """
        ready = asyncio.Event()
        for partition in partitions:
            self._pending[partition] = ready
        return ready

    def looked_up(self, ready: asyncio.Event) -> None:
        """Release the records ``expect`` held (after ``assigned``, or after it failed for good)."""
        for partition, event in list(self._pending.items()):
            if event is ready:
                del self._pending[partition]
        ready.set()

    def assign(self, topic: str, partition: int, committed: int, end: int) -> None:
        """Record a newly assigned input partition: offsets in [committed, end) are in doubt."""
        if end > committed:
            self.windows[(topic, partition)] = _Window(committed, end)
            self._scanned_from_ms.clear()  # a new doubt window: look again
        else:
            self.windows.pop((topic, partition), None)

    async def assigned(self, group: str, partitions: Iterable[tuple[str, int]]) -> None:
        """Look up the group's committed offsets and the ends of newly assigned input partitions."""
        tps = [TopicPartition(t, p) for t, p in partitions]
        admin = AIOKafkaAdminClient(**self.connection.options())
        consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, **self.connection.options())
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
            await admin.close()
        for tp in tps:
            found = committed.get(tp)
            start = found.offset if found is not None and found.offset >= 0 else 0
            self.assign(tp.topic, tp.partition, start, ends[tp])
            if ends[tp] > start:
                log.info("%s/%d: offsets %d..%d are in doubt", tp.topic, tp.partition, start, ends[tp] - 1)

    def revoke(self, topic: str, partition: int) -> None:
        """Forget a partition that moved to another worker."""
        self.windows.pop((topic, partition), None)

    async def in_doubt(self, topic: str, partition: int, offset: int) -> bool:
        """Whether a previous owner may already have delivered this record (waits for a pending look-up)."""
        pending = self._pending.get((topic, partition))
        if pending is not None:
            await pending.wait()
        # The window stays for the whole assignment: an agent's actors take one partition's records out of order,
        # so a record past the window's end says nothing about the in-doubt records still in flight.
        window = self.windows.get((topic, partition))
        return window is not None and window.start <= offset < window.end

    async def already_delivered(self, topic: str, cause: str, *, since_ms: int, topics: Iterable[str]) -> bool:
        """Whether an output of ``cause`` (an input position) is on ``topic``; reads output topics once per window."""
        key = tuple(sorted(topics))
        async with self._lock:
            scanned = self._scanned_from_ms.get(key)
            if scanned is None or since_ms < scanned:
                await self._scan(list(key), since_ms - DEFAULT_SKEW_MS)
                self._scanned_from_ms[key] = since_ms
        return (topic, cause) in self._seen

    def note_delivered(self, topic: str, cause: str) -> None:
        """Remember a delivery this worker made for an in-doubt record (the scan may have run before it)."""
        self._seen.add((topic, cause))

    async def _scan(self, topics: list[str], since_ms: int) -> None:
        consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, **self.connection.options())
        await consumer.start()
        try:
            partitions = [
                TopicPartition(t, p)
                for t in topics
                for p in (consumer.partitions_for_topic(t) or await _partitions(consumer, t))
            ]
            if not partitions:
                return
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.offsets_for_times(dict.fromkeys(partitions, max(since_ms, 0)))
            todo = {}
            for tp in partitions:
                found = starts.get(tp)
                start = found.offset if found is not None else ends[tp]
                if start < ends[tp]:
                    consumer.seek(tp, start)
                    todo[tp] = ends[tp]
            while todo:
                batches = await consumer.getmany(*todo, timeout_ms=1000)
                for tp, messages in batches.items():
                    for message in messages:
                        cause = dict(message.headers or ()).get(H_INPUT)
                        if cause is not None:
                            self._seen.add((tp.topic, cause.decode()))
                        if message.offset + 1 >= todo.get(tp, 0):
                            todo.pop(tp, None)
            log.info("in-doubt check read %d output partitions; %d deliveries known", len(partitions), len(self._seen))
        finally:
            await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
    return consumer.partitions_for_topic(topic) or set()
