"""Reading the stored log: events, receipts, roots and proofs, computed from the segments as they are read.

Nothing is kept per leaf: a proof or a search reads the segments in order (one pass, one segment in memory at a
time, a frontier per open subtree range), so memory stays O(log n) whatever the log's size. A writer's buffered
events (``pending``) are read after the stored ones.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from storage import merkle
from storage.ledger._events import LedgerCorrupt, LedgerError, LedgerEvent
from storage.ledger._heads import SignedTreeHead
from storage.ledger._segments import (
    Segment,
    SegmentContent,
    contiguous,
    decode_segment,
    list_heads,
    list_segments,
    read_head,
)
from storage.ledger._tree import Frontier, consistency_ranges, inclusion_ranges, range_hashes
from storage.objectstore import ObjectNotFound, ObjectStore


@dataclass(frozen=True, slots=True)
class Found:
    """What a search of the log found: ``(index, event)`` pairs in log order and receipts by their SHA-256."""

    events: list[tuple[int, LedgerEvent]] = field(default_factory=list)
    receipts: dict[str, bytes] = field(default_factory=dict)


class LogReader:
    """A read-only view of the log in ``store`` (and of a writer's ``pending`` events, if given).

    The segments are listed when the reader is made; build a new one to see later writes.
    """

    def __init__(self, store: ObjectStore, *, pending: Sequence[bytes] = (), stored: int | None = None) -> None:
        self._store = store
        segments = list_segments(store)
        contiguous(segments)
        if stored is not None:
            segments = [s for s in segments if s.end <= stored]
        self._segments = segments
        self._firsts = [s.first for s in segments]
        self._stored = segments[-1].end if segments else 0
        self._pending = list(pending)

    @classmethod
    def open(cls, store: ObjectStore) -> LogReader:
        """A reader of what ``store`` holds now."""
        return cls(store)

    # --- sizes and heads --------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Events in the log (stored, then pending)."""
        return self._stored + len(self._pending)

    @property
    def stored_size(self) -> int:
        """Events in stored segments."""
        return self._stored

    @property
    def head_sizes(self) -> list[int]:
        """Sizes of the stored tree heads within the log, ascending."""
        return [size for size in list_heads(self._store) if size <= self.size]

    def head(self, size: int | None = None) -> SignedTreeHead | None:
        """The stored tree head at ``size`` (default: the newest), or None."""
        sizes = self.head_sizes
        if not sizes:
            return None
        try:
            return read_head(self._store, sizes[-1] if size is None else size)
        except ObjectNotFound:
            return None

    def covering_head(self, index: int) -> SignedTreeHead | None:
        """The newest stored head that includes leaf ``index``, or None if none does yet."""
        sizes = self.head_sizes
        if not sizes or sizes[-1] <= index:
            return None
        return self.head(sizes[-1])

    # --- leaves -----------------------------------------------------------------------------------------------

    def _content(self, segment: Segment) -> SegmentContent:
        return decode_segment(segment, self._store.get(segment.key))

    def contents(self, stop: int | None = None) -> Iterator[tuple[Segment, SegmentContent]]:
        """Each stored segment holding leaves below ``stop`` (default: all), decoded, in order."""
        for segment in self._segments:
            if stop is not None and segment.first >= stop:
                return
            yield segment, self._content(segment)

    def lines(self, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(index, event bytes)`` for leaves ``0 .. stop-1`` (default: all), stored then pending."""
        stop = self.size if stop is None else stop
        for segment, content in self.contents(stop):
            for number, line in enumerate(content.events):
                if segment.first + number >= stop:
                    return
                yield segment.first + number, line
        for number, line in enumerate(self._pending[: max(0, stop - self._stored)]):
            yield self._stored + number, line

    def leaf_hashes(self, stop: int | None = None) -> Iterator[bytes]:
        """The leaf hashes of leaves ``0 .. stop-1``, streamed."""
        return (merkle.leaf_hash(line) for _, line in self.lines(stop))

    def _line(self, index: int) -> tuple[str, bytes]:
        self._check_index(index, self.size)
        if index >= self._stored:
            return f"buffered leaf {index}", self._pending[index - self._stored]
        segment = self._segments[bisect.bisect_right(self._firsts, index) - 1]
        return f"{segment.key} (leaf {index})", self._content(segment).events[index - segment.first]

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash of event ``index`` (reads one segment)."""
        return merkle.leaf_hash(self._line(index)[1])

    def event(self, index: int) -> LedgerEvent:
        """Event ``index`` (reads one segment); LedgerCorrupt if it no longer parses."""
        where, data = self._line(index)
        try:
            return LedgerEvent.from_bytes(data)
        except LedgerError as exc:
            raise LedgerCorrupt(where, str(exc)) from exc

    # --- searching ---------------------------------------------------------------------------------------------

    def find(self, refs: Iterable[str]) -> Found:
        """Every event naming one of ``refs`` (a document's SHA-256 or DocumentId), and the receipts beside them.

        Events are parsed lightly while scanning (only matching lines in full); receipts are kept from the segments
        holding a match (a receipt is stored in the segment of the event that names it).
        """
        wanted = set(refs)
        found = Found()
        for segment, content in self.contents():
            hit = False
            for number, line in enumerate(content.events):
                if _names(line, wanted):
                    found.events.append((segment.first + number, self._parse(segment, number, line)))
                    hit = True
            if hit:
                found.receipts.update((hashlib.sha256(r).hexdigest(), r) for r in content.receipts)
        for number, line in enumerate(self._pending):
            if _names(line, wanted):
                found.events.append((self._stored + number, LedgerEvent.from_bytes(line)))
        return found

    @staticmethod
    def _parse(segment: Segment, number: int, line: bytes) -> LedgerEvent:
        try:
            return LedgerEvent.from_bytes(line)
        except LedgerError as exc:
            raise LedgerCorrupt(f"{segment.key} line {number + 1}", str(exc)) from exc

    def events_for(self, ref: str) -> list[tuple[int, LedgerEvent]]:
        """Every (index, event) naming ``ref``: a document's SHA-256 (hex) or its DocumentId, in log order."""
        return self.find([ref]).events

    # --- roots and proofs ----------------------------------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """The Merkle root of the first ``size`` events (default: all), computed from the stored leaves."""
        size = self.size if size is None else size
        self._check_size(size)
        frontier = Frontier()
        frontier.extend(self.leaf_hashes(size))
        return frontier.root()

    def inclusion_proofs(self, indices: Iterable[int], size: int | None = None) -> dict[int, list[bytes]]:
        """RFC 9162 audit paths of several leaves in the tree of ``size`` (default: all), in one pass."""
        size = self.size if size is None else size
        self._check_size(size)
        paths = {}
        for index in indices:
            self._check_index(index, size)
            paths[index] = inclusion_ranges(index, size)
        hashes = self._hashes([r for ranges in paths.values() for r in ranges], size)
        return {index: [hashes[r] for r in ranges] for index, ranges in paths.items()}

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 audit path of leaf ``index`` in the tree of ``size`` (default: the whole log)."""
        return self.inclusion_proofs([index], size)[index]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The RFC 9162 proof that the tree of ``old`` is a prefix of the tree of ``new`` (default: all)."""
        new = self.size if new is None else new
        self._check_size(new)
        if not 0 < old <= new:
            raise LedgerError(f"no consistency proof from size {old} to {new}")
        ranges = consistency_ranges(old, new)
        hashes = self._hashes(ranges, new)
        return [hashes[r] for r in ranges]

    def _hashes(self, ranges: list[tuple[int, int]], size: int) -> dict[tuple[int, int], bytes]:
        stop = max((hi for _, hi in ranges), default=0)
        try:
            return range_hashes(ranges, self.leaf_hashes(min(stop, size)))
        except ValueError as exc:
            raise LedgerCorrupt("ledger/segments/", f"the stored leaves changed while read: {exc}") from exc

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise LedgerError(f"size {size} is outside the log (0..{self.size})")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise LedgerError(f"leaf {index} is not in a tree of {size}")


def _names(line: bytes, wanted: set[str]) -> bool:
    """Whether an event line names one of ``wanted`` as its SHA-256 or DocumentId (a cheap pre-filter first)."""
    if not any(json.dumps(ref, ensure_ascii=False)[1:-1].encode() in line for ref in wanted if ref):
        return False
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    return isinstance(obj, dict) and (obj.get("sha256") in wanted or obj.get("doc_id") in wanted)
