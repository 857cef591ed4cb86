"""The ledger writer: appends events, writes them as create-only segments, seals signed tree heads.

Memory is bounded whatever the log's size: the writer keeps the tree's frontier (O(log n) hashes), the events
not yet stored (at most ``max_buffered``), the segment being written and the newest head. Everything else (proofs,
searches, past roots) is read back from the store by ``LogReader``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from signer.keys import SigningKey
from storage import merkle
from storage.ledger._events import LedgerCorrupt, LedgerError, LedgerEvent
from storage.ledger._heads import SignedTreeHead, TimestampAuthority, sign_head
from storage.ledger._reader import LogReader
from storage.ledger._segments import (
    Segment,
    SourcePosition,
    Trailer,
    contiguous,
    decode_segment,
    encode_segment,
    head_key,
    list_heads,
    list_segments,
    read_head,
    segment_key,
)
from storage.ledger._tree import Frontier
from storage.objectstore import ObjectExists, ObjectStore, StoreUnavailable

#: Events per segment object: ~300 KB at ~300 B/event (plus the receipts they name), and 50 puts/s at 50,000
#: events/s, while a crash loses at most one unflushed segment to replay.
DEFAULT_SEGMENT_EVENTS = 1024
#: Events kept in memory while the store is down before ``append`` refuses more (backpressure, ~30 MB).
DEFAULT_MAX_BUFFERED = 100_000


@dataclass(frozen=True, slots=True)
class _Unit:
    """Events appended together (one ledger record): a segment never splits one. ``end``: one past its last leaf."""

    end: int
    receipts: tuple[bytes, ...]
    position: SourcePosition | None


@dataclass(frozen=True, slots=True)
class _Cut:
    """A segment whose write was attempted and not yet confirmed (retried byte for byte before anything else)."""

    key: str
    body: bytes
    count: int
    units: int
    frontier: Frontier
    position: SourcePosition | None


class Ledger:
    """The append-only event log over an ``ObjectStore``; construct with ``Ledger.open(store)``.

    Opening reads the newest segment (its trailer holds the tree's frontier and the last consumed position) and the
    newest head; a log written before trailers existed is read once in full to rebuild the frontier. Appended events
    are in the tree at once and buffered: ``flush()`` writes them as create-only segment objects of about
    ``segment_events`` (automatically when that many wait), never splitting what one ``append_many`` call added; a
    failed write leaves them buffered and nothing partial in the store. ``seal`` flushes, then signs the tree head of
    everything stored. One writer at a time; not thread-safe.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        segment_events: int = DEFAULT_SEGMENT_EVENTS,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        if segment_events < 1 or max_buffered < segment_events:
            raise LedgerError("need 1 ≤ segment_events ≤ max_buffered")
        self._store = store
        self._segment_events = segment_events
        self._max_buffered = max_buffered
        self._frontier = Frontier()
        self._stored_frontier = Frontier()
        self._stored = 0
        self._pending: list[bytes] = []
        self._pending_leaves: list[bytes] = []
        self._units: deque[_Unit] = deque()
        self._position: SourcePosition | None = None
        self._stored_position: SourcePosition | None = None
        self._inflight: _Cut | None = None
        self._auto_flush_at = segment_events
        self._last_head: SignedTreeHead | None = None
        self._load()

    @classmethod
    def open(
        cls,
        store: ObjectStore,
        *,
        segment_events: int = DEFAULT_SEGMENT_EVENTS,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> Ledger:
        """Open the log stored in ``store`` (empty if there is none); LedgerCorrupt if it is inconsistent."""
        return cls(store, segment_events=segment_events, max_buffered=max_buffered)

    def _load(self) -> None:
        segments = list_segments(self._store)
        contiguous(segments)
        if segments:
            self._stored_frontier, self._stored_position = self._recover(segments)
            self._stored = segments[-1].end
            self._frontier = self._stored_frontier.copy()
            self._position = self._stored_position
        sizes = list_heads(self._store)
        if sizes:
            head = read_head(self._store, sizes[-1])
            if head.size > self._stored:
                raise LedgerCorrupt(head_key(head.size), f"signs {head.size} leaves, the segments hold {self._stored}")
            if head.size == self._stored and head.root != self._frontier.root():
                raise LedgerCorrupt(head_key(head.size), "its root does not match the stored segments")
            self._last_head = head

    def _recover(self, segments: list[Segment]) -> tuple[Frontier, SourcePosition | None]:
        """The frontier and position after the last segment: from its trailer, checked against its own events."""
        last = segments[-1]
        content = decode_segment(last, self._store.get(last.key))
        trailer = content.trailer
        if trailer is None:  # a log written before trailers: read it once to rebuild the frontier
            frontier = Frontier()
            frontier.extend(LogReader(self._store).leaf_hashes())
            return frontier, None
        before: Frontier | None = Frontier() if last.first == 0 else None
        if before is None and len(segments) > 1:
            previous = decode_segment(segments[-2], self._store.get(segments[-2].key)).trailer
            if previous is not None:
                before = Frontier(previous.size, previous.frontier)
        if before is not None:
            before.extend(merkle.leaf_hash(line) for line in content.events)
            if before.hashes != trailer.frontier:
                raise LedgerCorrupt(f"{last.key} trailer", "its frontier does not match the segment's events")
        return Frontier(trailer.size, trailer.frontier), trailer.position

    # --- state --------------------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Events in the log, stored or buffered."""
        return self._frontier.size

    @property
    def stored_size(self) -> int:
        """Events written to the store (a prefix of the log)."""
        return self._stored

    @property
    def pending(self) -> int:
        """Events buffered and not yet stored."""
        return len(self._pending)

    @property
    def position(self) -> SourcePosition | None:
        """The last source record appended (stored or buffered), or None."""
        return self._position

    @property
    def stored_position(self) -> SourcePosition | None:
        """The last source record whose events are stored, or None."""
        return self._stored_position

    def root(self, size: int | None = None) -> bytes:
        """The Merkle root of the first ``size`` events (default: all; other sizes are read from the store)."""
        if size is None or size == self.size:
            return self._frontier.root()
        return self.reader().root(size)

    def reader(self) -> LogReader:
        """A reader of the stored log followed by this writer's buffered events."""
        return LogReader(self._store, pending=self._pending, stored=self._stored)

    # Reads, computed from the stored segments (and the buffer): see ``LogReader``.

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash of event ``index``."""
        return self.reader().leaf_hash(index)

    def event(self, index: int) -> LedgerEvent:
        """Event ``index``, read back from its segment (or the buffer)."""
        return self.reader().event(index)

    def events_for(self, ref: str) -> list[tuple[int, LedgerEvent]]:
        """Every (index, event) naming ``ref`` (a SHA-256 or DocumentId), in log order, read from the store."""
        return self.reader().events_for(ref)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 audit path of leaf ``index`` in the tree of ``size`` (default: the whole log)."""
        return self.reader().inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The RFC 9162 proof that the tree of ``old`` is a prefix of the tree of ``new`` (default: all)."""
        return self.reader().consistency_proof(old, new)

    @property
    def head_sizes(self) -> list[int]:
        """Sizes of the stored tree heads, ascending (listed from the store)."""
        return self.reader().head_sizes

    def head(self, size: int | None = None) -> SignedTreeHead | None:
        """The stored tree head at ``size`` (default: the newest), or None when there is none."""
        if size is None:
            return self._last_head
        return self.reader().head(size)

    def covering_head(self, index: int) -> SignedTreeHead | None:
        """The newest stored head that includes leaf ``index``, or None if none does yet."""
        return self.reader().covering_head(index)

    # --- writing ------------------------------------------------------------------------------------------------

    def append(self, event: LedgerEvent) -> int:
        """Add ``event`` and return its index (stored by the next flush, automatic every ``segment_events``)."""
        return self.append_many([event])[0]

    def append_many(
        self,
        events: Iterable[LedgerEvent],
        *,
        receipts: Sequence[bytes] = (),
        position: SourcePosition | None = None,
    ) -> list[int]:
        """Append events in order and return their indices.

        With ``receipts`` (the canonical receipts the events name) or ``position`` (the source record they were read
        from) the events are one unit, stored in one segment with the receipts. A ``position`` at or before the last
        one appended is a record already in the log (consumed again after a crash): nothing is added and ``[]`` is
        returned. Raises ``StoreUnavailable`` without adding anything when ``max_buffered`` events already wait for
        a store that still does not answer.
        """
        if position is not None and not position.follows(self._position):
            return []
        lines = [e.to_bytes() for e in events]
        if any(b"\n" in r for r in receipts):
            raise LedgerError("a receipt is one line of canonical JSON")
        if position is None and not receipts:
            return [self._add([line], (), None) for line in lines]
        first = self._add(lines, tuple(receipts), position)
        return list(range(first, first + len(lines)))

    def _add(self, lines: list[bytes], receipts: tuple[bytes, ...], position: SourcePosition | None) -> int:
        if not lines:  # a record without events: its position is stored with the next segment
            self._position = position or self._position
            return self.size
        if self.pending >= self._max_buffered:
            self.flush()  # raises StoreUnavailable while the store is down: the caller backs off
        first = self.size
        for line in lines:
            leaf = merkle.leaf_hash(line)
            self._frontier.append(leaf)
            self._pending.append(line)
            self._pending_leaves.append(leaf)
        self._units.append(_Unit(self.size, receipts, position))
        if position is not None:
            self._position = position
        if self.pending >= self._auto_flush_at:
            try:
                self.flush()
            except StoreUnavailable:
                # The events stay buffered and the caller's explicit flush() reports the failure; a store that is
                # down is tried again only after another segment's worth of events, not on every append.
                self._auto_flush_at = self.pending + self._segment_events
        return first

    def flush(self) -> int:
        """Write buffered events as segments; returns how many were written.

        Raises ``StoreUnavailable`` if the store fails: what was written stays written, the rest stays
        buffered for the next call, and no segment is ever half-visible (each is one create-only object).
        """
        written = 0
        while self._inflight is not None or self._units:
            if self._inflight is None:
                self._inflight = self._cut()
            cut = self._inflight
            self._put_segment(cut.key, cut.body)
            self._inflight = None
            del self._pending[: cut.count]
            del self._pending_leaves[: cut.count]
            for _ in range(cut.units):
                self._units.popleft()
            self._stored += cut.count
            self._stored_frontier = cut.frontier
            self._stored_position = cut.position
            written += cut.count
        self._auto_flush_at = self._segment_events
        return written

    def _cut(self) -> _Cut:
        """The next segment: whole units from the front of the buffer, about ``segment_events`` events."""
        count, taken = 0, 0
        receipts: list[bytes] = []
        position = self._stored_position
        for unit in self._units:
            size = unit.end - self._stored - count
            if taken and count + size > self._segment_events:
                break
            count += size
            taken += 1
            receipts.extend(unit.receipts)
            position = unit.position or position
        frontier = self._stored_frontier.copy()
        frontier.extend(self._pending_leaves[:count])
        trailer = Trailer(len(receipts), self._stored + count, frontier.hashes, position)
        body = encode_segment(self._pending[:count], receipts, trailer)
        return _Cut(segment_key(self._stored, count), body, count, taken, frontier, position)

    def _put_segment(self, key: str, body: bytes) -> None:
        try:
            self._store.put(key, body, metadata={"ledger-object": "segment"})
        except ObjectExists:
            # An earlier attempt may have landed although we saw an error: identical bytes are that write.
            if self._store.get(key) != body:
                raise LedgerCorrupt(
                    key, "already stored with other events: is a second ledger writer running?"
                ) from None

    def seal(self, key: SigningKey, *, at: datetime, tsa: TimestampAuthority | None = None) -> SignedTreeHead:
        """Flush, then sign (and time-stamp, with ``tsa``) the tree head of every stored event, and store it.

        When the newest head already covers every event, it is returned unchanged (sealing an idle log is a
        no-op). ``at`` (aware) is the head's time; it may not go back before the previous head's.
        """
        if at.tzinfo is None:
            raise LedgerError("the seal time must be an aware datetime")
        self.flush()
        size = self._stored
        previous = self._last_head
        if previous is not None:
            if previous.size == size:
                return previous
            if at < previous.time:
                raise LedgerError(
                    f"seal time {at.isoformat()} is before the previous head's {previous.time.isoformat()}"
                )
        head = sign_head(key, size, self._stored_frontier.root(), at, tsa)
        try:
            self._store.put(head_key(size), head.to_bytes(), metadata={"ledger-object": "tree-head"})
        except ObjectExists:
            head = read_head(self._store, size)  # a write we could not confirm landed: that one stands
        self._last_head = head
        return head
