"""Stored objects of the ledger: segment and head keys, the segment format (v1 and v2), reading heads.

A segment ``ledger/segments/<first leaf, 12 digits>-<count>.jsonl`` is one create-only object:

* lines ``1..count``: the canonical events, one leaf each (the only lines of a v1 segment);
* v2 then adds the receipts those events name (each the exact canonical JSON bytes of a
  ``lienthong-receipt-v1``, one per line) and a last *trailer* line: canonical JSON
  ``{"format": "lienthong-segment-v2", "receipts": k, "size": first + count, "frontier": [hex, ...],
  "position": {"topic", "partition", "offset"} | null}``.

The receipts are covered by the tree through the ``receipt_sha256`` their ``verified``/``rejected`` event names
(in the same segment). The trailer is not a leaf: its frontier (the right edge of the tree after this segment) lets a
writer restart by reading one segment instead of the whole log, and ``verify_log`` recomputes and compares it; its
position is the last ``lienthong.ledger`` record whose events are stored, so a batch consumed again after a crash
is recognised by where it was read, not by remembering every event.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from storage.ledger._events import LedgerCorrupt, LedgerError, canonical_json, is_hex64
from storage.ledger._heads import SignedTreeHead
from storage.objectstore import ObjectStore

SEGMENTS_PREFIX = "ledger/segments/"
HEADS_PREFIX = "ledger/heads/"
SEGMENT_FORMAT = "lienthong-segment-v2"

_INDEX_DIGITS = 12
_SEGMENT_NAME = re.compile(r"^(\d{12})-([1-9]\d*)\.jsonl$")
_HEAD_NAME = re.compile(r"^(\d{12})\.json$")
_MAX_SEGMENT_BYTES = 64 * 1024 * 1024  # far above a segment's events and receipts; refuses absurd objects
_MAX_HEAD_BYTES = 1024 * 1024


def segment_key(first: int, count: int, prefix: str = SEGMENTS_PREFIX) -> str:
    """The object key of the segment holding leaves ``first .. first+count-1``."""
    return f"{prefix}{first:0{_INDEX_DIGITS}d}-{count}.jsonl"


def head_key(size: int, prefix: str = HEADS_PREFIX) -> str:
    """The object key of the tree head at ``size``."""
    return f"{prefix}{size:0{_INDEX_DIGITS}d}.json"


@dataclass(frozen=True, slots=True, order=True)
class SourcePosition:
    """Where a ledger record was read: its topic, partition and offset (``lienthong.ledger`` has one partition)."""

    topic: str
    partition: int
    offset: int

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in a segment's trailer."""
        return {"offset": self.offset, "partition": self.partition, "topic": self.topic}

    @classmethod
    def from_json(cls, obj: object) -> SourcePosition:
        """Parse ``to_json``'s object; ``LedgerError`` when malformed."""
        if not isinstance(obj, dict) or set(obj) != {"topic", "partition", "offset"}:
            raise LedgerError("a position has exactly topic, partition and offset")
        topic, partition, offset = obj["topic"], obj["partition"], obj["offset"]
        if not isinstance(topic, str) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (partition, offset)
        ):
            raise LedgerError("a position is a topic name and two non-negative integers")
        return cls(topic, partition, offset)

    def follows(self, other: SourcePosition | None) -> bool:
        """Whether this record comes after ``other`` in the same partition (or there is nothing to compare)."""
        if other is None or (self.topic, self.partition) != (other.topic, other.partition):
            return True
        return self.offset > other.offset


@dataclass(frozen=True, slots=True)
class Trailer:
    """The last line of a v2 segment (see the module docstring)."""

    receipts: int
    size: int
    frontier: tuple[bytes, ...]
    position: SourcePosition | None

    def to_bytes(self) -> bytes:
        """Canonical JSON."""
        return canonical_json(
            {
                "format": SEGMENT_FORMAT,
                "receipts": self.receipts,
                "size": self.size,
                "frontier": [h.hex() for h in self.frontier],
                "position": self.position.to_json() if self.position is not None else None,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Trailer:
        """Parse a trailer line; ``LedgerError`` when malformed."""
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise LedgerError(f"not a JSON trailer: {exc}") from exc
        if not isinstance(obj, dict) or obj.get("format") != SEGMENT_FORMAT:
            raise LedgerError(f"the last line is not a {SEGMENT_FORMAT} trailer")
        if set(obj) != {"format", "receipts", "size", "frontier", "position"}:
            raise LedgerError("trailer fields must be exactly format, receipts, size, frontier, position")
        receipts, size, frontier = obj["receipts"], obj["size"], obj["frontier"]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (receipts, size)):
            raise LedgerError("trailer receipts and size must be non-negative integers")
        if (
            not isinstance(frontier, list)
            or not all(is_hex64(h) for h in frontier)
            or len(frontier) != size.bit_count()
        ):
            raise LedgerError("the trailer's frontier must be one SHA-256 (hex) per one bit of its size")
        position = None if obj["position"] is None else SourcePosition.from_json(obj["position"])
        trailer = cls(receipts, size, tuple(bytes.fromhex(h) for h in frontier), position)
        if trailer.to_bytes() != data:
            raise LedgerError("the trailer is not in canonical form")
        return trailer


@dataclass(frozen=True, slots=True)
class Segment:
    """A stored segment's name: its first leaf, event count and key."""

    first: int
    count: int
    key: str

    @property
    def end(self) -> int:
        """One past its last leaf."""
        return self.first + self.count


@dataclass(frozen=True, slots=True)
class SegmentContent:
    """A segment's lines: the events (leaves), the receipts and the trailer (both empty/None in v1)."""

    events: list[bytes]
    receipts: list[bytes]
    trailer: Trailer | None


def encode_segment(lines: list[bytes], receipts: list[bytes], trailer: Trailer) -> bytes:
    """The bytes of a v2 segment."""
    return b"".join(line + b"\n" for line in (*lines, *receipts, trailer.to_bytes()))


def list_segments(store: ObjectStore) -> list[Segment]:
    """The stored segments in order; LedgerCorrupt for a name that is not a segment's."""
    segments: list[Segment] = []
    for key in store.list(SEGMENTS_PREFIX):
        match = _SEGMENT_NAME.match(key[len(SEGMENTS_PREFIX) :])
        if match is None:
            raise LedgerCorrupt(key, "not a ledger segment name (<first leaf, 12 digits>-<count>.jsonl)")
        segments.append(Segment(int(match.group(1)), int(match.group(2)), key))
    segments.sort(key=lambda s: s.first)
    return segments


def contiguous(segments: list[Segment]) -> None:
    """LedgerCorrupt naming the first segment that does not start where the ones before it end."""
    end = 0
    for segment in segments:
        if segment.first != end:
            raise LedgerCorrupt(segment.key, f"starts at leaf {segment.first}; the segments before end at leaf {end}")
        end = segment.end


def list_heads(store: ObjectStore) -> list[int]:
    """The sizes of the stored tree heads, ascending."""
    sizes: list[int] = []
    for key in store.list(HEADS_PREFIX):
        match = _HEAD_NAME.match(key[len(HEADS_PREFIX) :])
        if match is None:
            raise LedgerCorrupt(key, "not a tree head name (<size, 12 digits>.json)")
        sizes.append(int(match.group(1)))
    return sorted(sizes)


def decode_segment(segment: Segment, data: bytes) -> SegmentContent:
    """Split a segment into events, receipts and trailer; LedgerCorrupt when its shape is not what its name says."""
    if len(data) > _MAX_SEGMENT_BYTES:
        raise LedgerCorrupt(segment.key, f"larger than {_MAX_SEGMENT_BYTES} bytes")
    if not data.endswith(b"\n"):
        raise LedgerCorrupt(segment.key, "does not end with a newline (truncated?)")
    lines = data[:-1].split(b"\n")
    if len(lines) < segment.count:
        raise LedgerCorrupt(segment.key, f"holds {len(lines)} events, its name says {segment.count}")
    if len(lines) == segment.count:
        return SegmentContent(lines, [], None)
    try:
        trailer = Trailer.from_bytes(lines[-1])
    except LedgerError as exc:
        raise LedgerCorrupt(f"{segment.key} trailer", str(exc)) from exc
    if trailer.size != segment.end:
        raise LedgerCorrupt(f"{segment.key} trailer", f"says the log has {trailer.size} leaves here, not {segment.end}")
    extra = lines[segment.count : -1]
    if len(extra) != trailer.receipts:
        raise LedgerCorrupt(
            segment.key,
            f"holds {len(extra)} lines between events and trailer, the trailer says {trailer.receipts} receipts",
        )
    return SegmentContent(lines[: segment.count], extra, trailer)


def line_where(segment: Segment, number: int) -> str:
    """How a report names line ``number`` (0-based) of a segment."""
    return f"{segment.key} line {number + 1} (leaf {segment.first + number})"


def read_head(store: ObjectStore, size: int) -> SignedTreeHead:
    """The stored head at ``size``; LedgerCorrupt when it is not one."""
    key = head_key(size)
    data = store.get(key)
    if len(data) > _MAX_HEAD_BYTES:
        raise LedgerCorrupt(key, f"larger than {_MAX_HEAD_BYTES} bytes")
    try:
        head = SignedTreeHead.from_bytes(data)
    except LedgerError as exc:
        raise LedgerCorrupt(key, str(exc)) from exc
    if head.size != size:
        raise LedgerCorrupt(key, f"names size {head.size}, its key says {size}")
    return head
