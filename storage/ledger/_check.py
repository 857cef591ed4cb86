"""``verify_log``: check the whole stored log, streaming, and report the first inconsistency."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from storage import merkle
from storage.ledger._events import EventKind, LedgerCorrupt, LedgerError, LedgerEvent, SealError
from storage.ledger._heads import SignedTreeHead, verify_tree_head_signature, verify_tree_head_timestamp
from storage.ledger._segments import Segment, decode_segment, head_key, line_where, list_heads, list_segments, read_head
from storage.ledger._tree import Frontier
from storage.objectstore import ObjectStore


@dataclass(frozen=True, slots=True)
class LogProblem:
    """The first inconsistency found: ``where`` (segment key and line, head key, leaf range) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class LogReport:
    """What ``verify_log`` checked and the first inconsistency, if any (``ok`` when there is none)."""

    size: int
    segments: int
    heads: int
    timestamped: int
    root: bytes
    problem: LogProblem | None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every segment and head checked out."""
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        """A JSON object for ``lienthong ledger verify --json``."""
        return {
            "ok": self.ok,
            "size": self.size,
            "segments": self.segments,
            "heads": self.heads,
            "timestamped_heads": self.timestamped,
            "root": self.root.hex(),
            "problem": {"where": self.problem.where, "message": self.problem.message} if self.problem else None,
            "warnings": list(self.warnings),
        }

    def to_text(self) -> str:
        """A few lines a person can read."""
        lines = [
            (
                f"ledger: {self.size} events in {self.segments} segments, {self.heads} signed tree heads "
                f"({self.timestamped} time-stamped), root {self.root.hex()}"
            ),
        ]
        lines.extend(f"warning: {w}" for w in self.warnings)
        lines.append(
            "OK: every segment and tree head is consistent" if self.problem is None else f"FAILED at {self.problem}"
        )
        return "\n".join(lines)


class _Stop(Exception):
    """Control flow inside verify_log: carries the first problem out; never escapes."""

    def __init__(self, where: str, message: str) -> None:
        self.problem = LogProblem(where, message)

    @classmethod
    def of(cls, exc: LedgerCorrupt) -> _Stop:
        return cls(exc.where, str(exc).removeprefix(f"{exc.where}: "))


class _LogCheck:
    """One pass of ``verify_log`` over a store: segments in order (roots taken at head sizes), then the heads."""

    def __init__(
        self,
        store: ObjectStore,
        anchors: Sequence[x509.Certificate],
        tsa_anchors: Sequence[x509.Certificate] | None,
    ) -> None:
        self.store = store
        self.anchors = anchors
        self.tsa_anchors = tsa_anchors
        self.frontier = Frontier()
        self.head_sizes: list[int] = []
        self.roots: dict[int, bytes] = {}
        self.segments: list[Segment] = []
        self.heads = 0
        self.timestamped = 0
        self.warnings: list[str] = []
        # Problems in what no head signs (trailers, receipts): reported when the heads themselves are all right.
        self.unsigned_problem: LogProblem | None = None

    def report(self, problem: LogProblem | None) -> LogReport:
        return LogReport(
            self.frontier.size,
            len(self.segments),
            self.heads,
            self.timestamped,
            self.frontier.root(),
            problem or self.unsigned_problem,
            tuple(self.warnings),
        )

    def list_heads(self) -> None:
        try:
            self.head_sizes = list_heads(self.store)
        except LedgerCorrupt as exc:
            raise _Stop.of(exc) from exc

    def check_segments(self) -> None:
        try:
            found = list_segments(self.store)
        except LedgerCorrupt as exc:
            raise _Stop.of(exc) from exc
        wanted = set(self.head_sizes)
        for segment in found:
            if segment.first != self.frontier.size:
                where = f"starts at leaf {segment.first}; the segments before end at leaf {self.frontier.size}"
                raise _Stop(segment.key, where)
            try:
                content = decode_segment(segment, self.store.get(segment.key))
            except LedgerCorrupt as exc:
                raise _Stop.of(exc) from exc
            named: set[str] = set()
            for number, line in enumerate(content.events):
                try:
                    event = LedgerEvent.from_bytes(line)
                except LedgerError as exc:
                    raise _Stop(line_where(segment, number), str(exc)) from exc
                if event.kind in {EventKind.VERIFIED, EventKind.REJECTED} and "receipt_sha256" in event.detail:
                    named.add(event.detail["receipt_sha256"])
                self.frontier.append(merkle.leaf_hash(line))
                if self.frontier.size in wanted:
                    self.roots[self.frontier.size] = self.frontier.root()
            self.check_unsigned(segment, content.receipts, content.trailer, named)
            self.segments.append(segment)

    def check_unsigned(self, segment: Segment, receipts: list[bytes], trailer: object, named: set[str]) -> None:
        """A receipt no event of its segment names, or a trailer whose frontier is not the recomputed one."""
        if self.unsigned_problem is not None:
            return
        for number, receipt in enumerate(receipts):
            if hashlib.sha256(receipt).hexdigest() not in named:
                self.unsigned_problem = LogProblem(
                    f"{segment.key} receipt {number + 1}",
                    "no verified/rejected event of the segment names its SHA-256: the receipt was changed or added",
                )
                return
        frontier = getattr(trailer, "frontier", None)
        if frontier is not None and frontier != self.frontier.hashes:
            self.unsigned_problem = LogProblem(
                f"{segment.key} trailer",
                "its frontier is not the one recomputed from the events: an event or the trailer was changed",
            )

    def check_heads(self, *, up_to: int | None = None) -> None:
        sizes = self.head_sizes
        if up_to is not None:
            sizes = [size for size in sizes if size <= up_to]
        previous: SignedTreeHead | None = None
        for size in sizes:
            head = self.read_head(size)
            self.check_root(head, previous)
            if previous is not None:
                self.check_order(head, previous)
            self.check_timestamp(head)
            self.heads += 1
            previous = head

    def read_head(self, size: int) -> SignedTreeHead:
        key = head_key(size)
        try:
            head = read_head(self.store, size)
        except LedgerCorrupt as exc:
            raise _Stop.of(exc) from exc
        try:
            verify_tree_head_signature(head, self.anchors)
        except SealError as exc:
            raise _Stop(key, f"signature: {exc}") from exc
        return head

    def check_root(self, head: SignedTreeHead, previous: SignedTreeHead | None) -> None:
        key = head_key(head.size)
        if head.size > self.frontier.size:
            raise _Stop(
                key, f"signs {head.size} leaves but the segments hold only {self.frontier.size} (segments missing)"
            )
        root = self.roots.get(head.size, merkle.EMPTY_ROOT if head.size == 0 else None)
        if head.root != root:
            since = previous.size if previous is not None else 0
            keys = [s.key for s in self.segments if s.first < head.size and s.end > since]
            raise _Stop(
                f"{key} / leaves {since}..{head.size - 1}",
                "the stored events do not hash to the signed root: an event in "
                f"{', '.join(keys) or 'these leaves'} was changed, added or removed after the head was signed",
            )

    @staticmethod
    def check_order(head: SignedTreeHead, previous: SignedTreeHead) -> None:
        # Both roots were recomputed from the same stored leaves, so the older tree is a prefix of the newer one
        # (RFC 9162 consistency); what is left to check is that time does not go back.
        if head.time < previous.time:
            raise _Stop(
                head_key(head.size),
                f"its time {head.time.isoformat()} is before the previous head's {previous.time.isoformat()}",
            )

    def check_timestamp(self, head: SignedTreeHead) -> None:
        if head.timestamp is None:
            return
        key = head_key(head.size)
        if self.tsa_anchors is not None and len(self.tsa_anchors) == 0:
            self.warnings.append(f"{key}: time-stamp not checked (no TSA trust anchor given)")
            return
        try:
            verify_tree_head_timestamp(head, self.anchors if self.tsa_anchors is None else self.tsa_anchors)
        except SealError as exc:
            raise _Stop(key, str(exc)) from exc
        self.timestamped += 1


def verify_log(
    store: ObjectStore,
    anchors: Sequence[x509.Certificate],
    *,
    tsa_anchors: Sequence[x509.Certificate] | None = None,
) -> LogReport:
    """Check the whole stored log and report the first inconsistency.

    Segments must be contiguous from leaf 0, parse, and hold canonical events; every tree head must be
    signed by a seal certificate chaining to ``anchors`` at its time, sign the root recomputed from the
    segments at its size (read once, in order, in O(log n) memory: two heads whose roots both match the same
    leaves are consistent) and not go back in time; v2 segments' receipts must each be named by an event of their
    segment and their trailers' frontiers must be the recomputed ones (reported after any head problem, as no
    head signs them); a time-stamp, when present, must verify against ``tsa_anchors`` (default ``anchors``; pass
    ``()`` to skip time-stamps with a warning). Store failures propagate as ``StoreUnavailable``.
    """
    check = _LogCheck(store, anchors, tsa_anchors)
    try:
        check.list_heads()
        check.check_segments()
    except _Stop as stop:
        # The log is readable up to the broken segment: a head within that prefix that is itself wrong is an
        # earlier inconsistency, so it is reported first.
        try:
            check.check_heads(up_to=check.frontier.size)
        except _Stop as earlier:
            return check.report(earlier.problem)
        return check.report(stop.problem)
    try:
        check.check_heads()
    except _Stop as stop:
        return check.report(stop.problem)
    return check.report(None)
