"""The Merkle ledger: proofs through its API, segments, signed and time-stamped heads, tampering, restarts."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.http_clients import request_timestamp
from storage import merkle
from storage.ledger import (
    EventKind,
    Ledger,
    LedgerCorrupt,
    LedgerError,
    LedgerEvent,
    LogReader,
    SealError,
    SignedTreeHead,
    SourcePosition,
    create_seal_identity,
    head_key,
    segment_key,
    verify_log,
    verify_tree_head,
)
from storage.objectstore import MemoryObjectStore, StoreUnavailable
from tests.support.pki_fixtures import FIXED_NOW

T0 = FIXED_NOW
REPO_ROOT = Path(__file__).resolve().parent.parent


def event(i: int, kind: EventKind = EventKind.RECEIVED, **detail: str) -> LedgerEvent:
    """A distinct event number ``i`` about document ``doc-<i // 4>``."""
    doc = i // 4
    return LedgerEvent(
        kind=kind,
        sha256=hashlib.sha256(f"doc-{doc}".encode()).hexdigest(),
        document_id=f"000.00.00.G22,2026/05/01,{doc}/QD-UBND",
        actor="000.00.00.G22" if kind is EventKind.RECEIVED else "hub",
        time=T0 + timedelta(microseconds=i),
        verdict="received",
        detail=detail,
    )


@pytest.fixture(scope="module")
def seal_key(tmp_path_factory):
    """The hub's seal identity, created once for the module."""
    return create_seal_identity(tmp_path_factory.mktemp("seal"), now=T0 - timedelta(days=30))


class FlakyStore(MemoryObjectStore):
    """A memory store whose writes fail while ``down`` (optionally after storing: a lost acknowledgement)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lose_ack = False

    def put(self, key, data, *, metadata=None):
        """Fail like a stopped server, or store then fail like a lost answer."""
        if self.down:
            if self.lose_ack:
                super().put(key, data, metadata=metadata)
            raise StoreUnavailable(f"object store unreachable for {key!r}")
        return super().put(key, data, metadata=metadata)


def filled(n: int, store=None, **kwargs) -> Ledger:
    """A ledger holding events 0..n-1."""
    ledger = Ledger.open(store if store is not None else MemoryObjectStore(), **kwargs)
    ledger.append_many(event(i) for i in range(n))
    return ledger


# --- events -------------------------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


_events = st.builds(
    LedgerEvent,
    kind=st.sampled_from(EventKind),
    sha256=st.just("ab" * 32),
    document_id=_text,
    actor=_text.filter(bool),
    time=st.integers(0, 10**15).map(lambda us: datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)),
    verdict=_text,
    detail=st.dictionaries(_text, _text, max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(_events)
def test_event_bytes_round_trip_and_are_canonical(original):
    """Any event (Vietnamese text included) survives to_bytes/from_bytes, and its bytes are sorted compact JSON."""
    data = original.to_bytes()
    assert LedgerEvent.from_bytes(data) == original
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_non_canonical_or_wrong_events_are_refused():
    """Spaces, extra fields, bad hashes, naive times and unknown kinds are LedgerErrors, never accepted silently."""
    good = event(1).to_bytes()
    for bad in (
        json.dumps(json.loads(good)).encode(),  # spaces
        good.replace(b'"v":1', b'"v":1,"x":1'),
        good.replace(b"T00:00:00.000001Z", b"T00:00:00Z"),
        b"\xff",
        b"[]",
    ):
        with pytest.raises(LedgerError):
            LedgerEvent.from_bytes(bad)
    for kwargs in ({"sha256": "AB" * 32}, {"time": datetime(2026, 1, 1)}, {"kind": "lost"}, {"actor": ""}):
        fields = {
            "kind": EventKind.RECEIVED,
            "sha256": "ab" * 32,
            "document_id": "",
            "actor": "hub",
            "time": T0,
            "verdict": "ok",
            **kwargs,
        }
        with pytest.raises(LedgerError):
            LedgerEvent(**fields)


# --- proofs through the Ledger API --------------------------------------------------------------------------


def test_proofs_for_every_leaf_of_logs_of_size_1_to_257():
    """For every size 1..257, every leaf's proof (streamed from the store) verifies and equals storage.merkle's."""
    ledger = Ledger.open(MemoryObjectStore(), segment_events=16)
    leaves: list[bytes] = []
    for n in range(1, 258):
        e = event(n - 1)
        assert ledger.append(e) == n - 1
        leaves.append(e.leaf_hash())
        root = ledger.root()
        assert root == merkle.root_hash(leaves)
        proofs = ledger.reader().inclusion_proofs(range(n))
        for index in range(n):
            merkle.verify_inclusion(leaves[index], index, n, proofs[index], root)
            if n <= 64 or index % 16 == 0:  # the reference recomputes whole subtrees: sample it on big trees
                assert proofs[index] == merkle.inclusion_proof(index, leaves)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 257).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n), st.integers(0, n - 1))))
def test_consistency_and_past_inclusion_between_any_two_sizes(sizes):
    """Between any two sizes the consistency proof verifies, and proofs against an older head still verify."""
    old, new, index = sizes
    ledger = _LEDGER_257
    proof = ledger.consistency_proof(old, new)
    merkle.verify_consistency(old, new, ledger.root(old), ledger.root(new), proof)
    assert proof == merkle.consistency_proof(old, _LEAVES_257[:new])
    if index < old:
        merkle.verify_inclusion(
            ledger.leaf_hash(index), index, old, ledger.inclusion_proof(index, old), ledger.root(old)
        )


_LEDGER_257 = filled(257, segment_events=32)
_LEAVES_257 = list(_LEDGER_257.reader().leaf_hashes())


def test_a_changed_proof_node_or_index_is_detected():
    """Flipping any bit of any node of a proof, or proving another index, fails verification."""
    ledger = filled(100)
    root, leaf = ledger.root(), ledger.leaf_hash(37)
    proof = ledger.inclusion_proof(37)
    for position in range(len(proof)):
        for bit in (0, 7):
            changed = list(proof)
            node = bytearray(changed[position])
            node[bit % 32] ^= 1 << bit
            changed[position] = bytes(node)
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(leaf, 37, 100, changed, root)
    for other in (36, 38, 99):
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf, other, 100, proof, root)


# --- appending ------------------------------------------------------------------------------------------------


def test_events_are_found_by_sha256_and_document_id():
    """events_for finds a document's events (stored and buffered) by its SHA-256 or its DocumentId."""
    ledger = filled(12, segment_events=6)
    assert ledger.pending == 0
    ledger.append(event(12))
    by_sha = ledger.events_for(event(5).sha256)
    assert [i for i, _ in by_sha] == [4, 5, 6, 7]
    assert by_sha == ledger.events_for(event(5).document_id)
    assert [e for _, e in by_sha] == [event(i) for i in range(4, 8)]
    assert [i for i, _ in ledger.events_for(event(12).sha256)] == [12]


def test_a_record_consumed_again_is_recognised_by_its_position():
    """A batch re-read after a crash (positions at or before the last stored one) adds nothing, across reopenings."""
    store = MemoryObjectStore()
    ledger = Ledger.open(store, segment_events=4)
    for offset in range(5):
        added = ledger.append_many([event(2 * offset), event(2 * offset + 1)], position=SourcePosition("t", 0, offset))
        assert added == [2 * offset, 2 * offset + 1]
    ledger.flush()
    reopened = Ledger.open(store, segment_events=4)
    assert reopened.position == SourcePosition("t", 0, 4)
    for offset in range(3, 5):  # the writer's crash lost its commit: offsets 3 and 4 come again
        assert reopened.append_many([event(99)], position=SourcePosition("t", 0, offset)) == []
    assert reopened.append_many([event(10)], position=SourcePosition("t", 0, 5)) == [10]
    assert (reopened.size, reopened.root()) == (11, filled(11).root())
    reopened.flush()
    assert LogReader.open(store).size == 11


def test_a_segment_never_splits_one_record_and_carries_its_receipts():
    """Events appended together stay in one segment with the receipts they name, even past segment_events."""
    store = MemoryObjectStore()
    ledger = Ledger.open(store, segment_events=2)
    receipt = b'{"format":"lienthong-receipt-v1","x":1}'
    ledger.append_many([event(0), event(1), event(2)], receipts=[receipt], position=SourcePosition("t", 0, 0))
    ledger.append_many([event(3)], position=SourcePosition("t", 0, 1))
    ledger.flush()
    assert list(store.list("ledger/segments/")) == [segment_key(0, 3), segment_key(3, 1)]
    found = LogReader.open(store).find([event(0).sha256])
    assert found.receipts == {hashlib.sha256(receipt).hexdigest(): receipt}


def test_segments_are_written_every_n_events_and_on_flush():
    """Full segments go out automatically; flush() writes the rest; keys name the first leaf and the count."""
    store = MemoryObjectStore()
    ledger = filled(10, store, segment_events=4)
    assert list(store.list("ledger/segments/")) == [segment_key(0, 4), segment_key(4, 4)]
    assert ledger.stored_size == 8
    assert ledger.pending == 2
    assert ledger.flush() == 2
    assert list(store.list("ledger/segments/"))[-1] == "ledger/segments/000000000008-2.jsonl"
    lines = store.get(segment_key(8, 2)).splitlines()
    assert [LedgerEvent.from_bytes(line) for line in lines[:2]] == [event(8), event(9)]
    trailer = json.loads(lines[-1])
    assert (trailer["format"], trailer["size"], trailer["receipts"]) == ("lienthong-segment-v2", 10, 0)


# --- sealing ------------------------------------------------------------------------------------------------


def test_seal_signs_the_stored_tree_and_is_a_no_op_when_idle(seal_key):
    """seal() flushes, signs size/root/time, stores the head; sealing again with nothing new returns it."""
    store = MemoryObjectStore()
    ledger = filled(5, store)
    head = ledger.seal(seal_key, at=T0 + timedelta(minutes=1))
    assert (head.size, head.root) == (5, ledger.root())
    assert ledger.pending == 0
    assert verify_tree_head(head, [seal_key.certificate]) is None
    assert SignedTreeHead.from_bytes(store.get(head_key(5))) == head
    assert ledger.seal(seal_key, at=T0 + timedelta(minutes=2)) == head
    ledger.append(event(5))
    with pytest.raises(LedgerError, match="before the previous head"):
        ledger.seal(seal_key, at=T0)


def test_a_tree_head_needs_a_trusted_seal_certificate(seal_key, tmp_path):
    """A head signed by another hub's seal key, or checked without anchors, is refused."""
    other = create_seal_identity(tmp_path / "other", now=T0 - timedelta(days=1))
    head = filled(3).seal(other, at=T0 + timedelta(minutes=1))
    with pytest.raises(SealError, match="not trusted"):
        verify_tree_head(head, [seal_key.certificate])
    with pytest.raises(SealError, match="no trust anchors"):
        verify_tree_head(head, [])


def test_create_seal_identity_creates_once_and_then_loads(tmp_path):
    """The first call writes a 0600 key and a self-signed cert; later calls load the same; half a pair is refused."""
    first = create_seal_identity(tmp_path)
    assert stat.S_IMODE((tmp_path / "hub-key.pem").stat().st_mode) == 0o600
    again = create_seal_identity(tmp_path)
    assert again.certificate == first.certificate
    (tmp_path / "hub-cert.pem").unlink()
    with pytest.raises(LedgerError, match="missing"):
        create_seal_identity(tmp_path)


# --- verify_log and tampering ---------------------------------------------------------------------------------


@pytest.fixture
def sealed_log(seal_key):
    """A memory store holding 10 events in 3 segments and heads at sizes 4, 8 and 10."""
    store = MemoryObjectStore()
    ledger = Ledger.open(store, segment_events=4)
    for size, minute in ((4, 1), (8, 2), (10, 3)):
        ledger.append_many(event(i) for i in range(ledger.size, size))
        ledger.seal(seal_key, at=T0 + timedelta(minutes=minute))
    return store


def test_verify_log_passes_a_consistent_log(sealed_log, seal_key):
    """Every segment and head checks out, heads are consistent with each other, and the report says so."""
    report = verify_log(sealed_log, [seal_key.certificate])
    assert report.ok, report.problem
    assert (report.size, report.segments, report.heads) == (10, 3, 3)
    assert "OK" in report.to_text()
    assert report.to_json()["problem"] is None


def test_a_changed_leaf_is_detected_and_located(sealed_log, seal_key):
    """Rewriting one event (still valid, canonical JSON) breaks the root of the first head covering it."""
    key = segment_key(4, 4)
    lines = sealed_log.get(key).splitlines(keepends=True)
    changed = json.loads(lines[1])
    changed["verdict"] = "forged"
    lines[1] = LedgerEvent.from_json(changed).to_bytes() + b"\n"
    sealed_log.tamper(key, b"".join(lines))
    report = verify_log(sealed_log, [seal_key.certificate])
    assert not report.ok
    assert report.problem.where == f"{head_key(8)} / leaves 4..7"
    assert key in report.problem.message
    # A writer reopened on the changed store continues from its trailers, so its next head still signs the
    # original history and the change stays exposed.
    reopened = Ledger.open(sealed_log, segment_events=4)
    reopened.append(event(10))
    reopened.seal(seal_key, at=T0 + timedelta(minutes=4))
    assert verify_log(sealed_log, [seal_key.certificate]).problem.where == f"{head_key(8)} / leaves 4..7"


def test_a_damaged_or_missing_segment_is_named(sealed_log, seal_key):
    """An unparseable line names the segment, line and leaf; a removed segment is a gap at its first leaf."""
    key = segment_key(4, 4)
    data = sealed_log.get(key)
    sealed_log.tamper(key, data.replace(b'"v":1', b'"v": 1', 1))
    problem = verify_log(sealed_log, [seal_key.certificate]).problem
    assert problem.where == f"{key} line 1 (leaf 4)"
    assert "canonical" in problem.message
    sealed_log.tamper(key, data)
    del sealed_log._objects[key]
    problem = verify_log(sealed_log, [seal_key.certificate]).problem
    assert problem.where == segment_key(8, 2)
    assert "starts at leaf 8" in problem.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("root", "00" * 32), ("size", 9), ("time", "2026-06-01T00:02:30.000000Z"), ("signature", "AAAA")],
)
def test_a_changed_tree_head_is_detected(sealed_log, seal_key, field, value):
    """Changing a head's root, size, time or signature (kept canonical) fails its signature check, named."""
    key = head_key(8)
    obj = json.loads(sealed_log.get(key))
    obj[field] = value
    sealed_log.tamper(key, SignedTreeHead.from_json(obj).to_bytes())
    problem = verify_log(sealed_log, [seal_key.certificate]).problem
    assert problem is not None
    assert problem.where == key
    assert problem.message.startswith("signature") or "size" in problem.message


def test_heads_trusted_only_with_the_right_anchor(sealed_log, tmp_path):
    """verify_log with another hub's certificate fails at the first head."""
    other = create_seal_identity(tmp_path)
    problem = verify_log(sealed_log, [other.certificate]).problem
    assert problem.where == head_key(4)
    assert "not trusted" in problem.message


@pytest.mark.servers
def test_time_stamped_heads_and_a_changed_token(tsa_server, seal_key):
    """With a TSA each head carries a token over its signature; a flipped byte in it is detected and named."""
    store = MemoryObjectStore()
    ledger = filled(6, store)

    def tsa(data: bytes) -> bytes:
        return request_timestamp(tsa_server.url, data, anchors=[tsa_server.anchor], timeout=10).token_der

    head = ledger.seal(seal_key, at=datetime.now(UTC), tsa=tsa)
    token = verify_tree_head(head, [seal_key.certificate], tsa_anchors=[tsa_server.anchor])
    assert token is not None
    assert token.digest == hashlib.sha256(head.signature).digest()
    report = verify_log(store, [seal_key.certificate], tsa_anchors=[tsa_server.anchor])
    assert report.ok, report.problem
    assert report.timestamped == 1
    assert verify_log(store, [seal_key.certificate], tsa_anchors=()).warnings
    for position in (len(head.timestamp) // 2, len(head.timestamp) - 10):
        token_bytes = bytearray(head.timestamp)
        token_bytes[position] ^= 0x01
        obj = head.to_json()
        obj["timestamp"] = base64.b64encode(bytes(token_bytes)).decode()
        store.tamper(head_key(6), SignedTreeHead.from_json(obj).to_bytes())
        problem = verify_log(store, [seal_key.certificate], tsa_anchors=[tsa_server.anchor]).problem
        assert problem is not None
        assert problem.where == head_key(6)
        assert "time-stamp" in problem.message


# --- failures and restarts ------------------------------------------------------------------------------------


def test_a_failed_segment_write_keeps_the_ledger_consistent():
    """While the store is down, events stay buffered and in the tree; nothing is stored; a later flush catches up."""
    store = FlakyStore()
    ledger = filled(6, store, segment_events=4)
    ledger.flush()
    store.down = True
    ledger.append_many(event(i) for i in range(6, 15))  # auto-flushes fail quietly
    root = ledger.root()
    with pytest.raises(StoreUnavailable):
        ledger.flush()
    assert (ledger.size, ledger.stored_size, ledger.root()) == (15, 6, root)
    assert Ledger.open(store).size == 6  # nothing half-visible
    store.down = False
    assert ledger.flush() == 9
    reopened = Ledger.open(store)
    assert (reopened.size, reopened.root()) == (15, root)


def test_a_write_that_landed_without_an_answer_is_not_written_twice():
    """A segment stored although the put reported failure is retried identically, so no segments overlap."""
    store = FlakyStore()
    ledger = filled(3, store, segment_events=4)
    store.down = store.lose_ack = True
    with pytest.raises(StoreUnavailable):
        ledger.flush()
    store.down = False
    ledger.append_many(event(i) for i in range(3, 6))  # more events before the retry
    ledger.flush()
    # The unconfirmed 0..2 segment was retried as it was (found identical), then 3 and 4..5 followed it.
    assert list(store.list("ledger/segments/")) == [segment_key(0, 3), segment_key(3, 1), segment_key(4, 2)]
    assert Ledger.open(store).root() == ledger.root()


def test_backpressure_when_the_buffer_is_full():
    """With max_buffered events waiting for a dead store, append refuses (StoreUnavailable) and adds nothing."""
    store = FlakyStore()
    store.down = True
    ledger = Ledger.open(store, segment_events=2, max_buffered=4)
    ledger.append_many(event(i) for i in range(4))
    with pytest.raises(StoreUnavailable):
        ledger.append(event(4))
    assert ledger.size == 4


def test_a_second_writer_is_refused():
    """Two writers on one store: the second one's segment collides with different events and is refused."""
    store = MemoryObjectStore()
    first, second = Ledger.open(store), Ledger.open(store)
    first.append(event(0))
    first.flush()
    second.append(event(1))
    with pytest.raises(LedgerCorrupt, match="second ledger writer"):
        second.flush()


@pytest.mark.servers
def test_restart_rebuilds_the_same_root_from_seaweedfs(s3_store, seal_key):
    """Against SeaweedFS: 2,500 events in segments and two heads; a fresh Ledger.open has the same root and proofs."""
    ledger = Ledger.open(s3_store, segment_events=1024)
    ledger.append_many(event(i) for i in range(2000))
    ledger.seal(seal_key, at=T0 + timedelta(minutes=1))
    ledger.append_many(event(i) for i in range(2000, 2500))
    ledger.seal(seal_key, at=T0 + timedelta(minutes=2))
    reopened = Ledger.open(s3_store)
    assert (reopened.size, reopened.root()) == (2500, ledger.root())
    assert reopened.head_sizes == [2000, 2500]
    assert reopened.inclusion_proof(1234, 2000) == ledger.inclusion_proof(1234, 2000)
    assert reopened.events_for(event(1234).sha256) == ledger.events_for(event(1234).sha256)
    assert verify_log(s3_store, [seal_key.certificate]).ok
    reopened.append(event(2500))  # the reopened writer continues where the first stopped
    reopened.flush()
    assert Ledger.open(s3_store).root() == reopened.root()


@pytest.mark.servers
def test_the_s3_server_dies_during_writes_and_comes_back(crashable_weed, seal_key):
    """Kill weed mini mid-stream: flush fails, nothing partial is listed; after a restart the ledger catches up."""
    store = crashable_weed.store("ledger")
    ledger = Ledger.open(store, segment_events=100)
    ledger.append_many(event(i) for i in range(250))
    crashable_weed.kill()
    ledger.append_many(event(i) for i in range(250, 420))
    with pytest.raises(StoreUnavailable):
        ledger.flush()
    root = ledger.root()
    crashable_weed.restart()
    assert Ledger.open(store).size == 200  # exactly the two segments written before the kill
    ledger.seal(seal_key, at=T0 + timedelta(minutes=1))
    reopened = Ledger.open(store)
    assert (reopened.size, reopened.root()) == (420, root)
    assert verify_log(store, [seal_key.certificate]).ok


def test_a_bad_head_before_a_bad_segment_is_reported_first(sealed_log, seal_key):
    """With a broken head at size 4 and a broken segment after it, the head (earlier in the log) is named."""
    obj = json.loads(sealed_log.get(head_key(4)))
    obj["root"] = "00" * 32
    sealed_log.tamper(head_key(4), SignedTreeHead.from_json(obj).to_bytes())
    sealed_log.tamper(segment_key(8, 2), b"garbage\n")
    assert verify_log(sealed_log, [seal_key.certificate]).problem.where == head_key(4)


# --- memory -----------------------------------------------------------------------------------------------------


class ForgetfulStore(MemoryObjectStore):
    """Keeps every key but no body: what grows in the store is not the writer's memory."""

    def put(self, key, data, *, metadata=None):  # noqa: ARG002 - the body is what it forgets
        """Store an empty object under ``key`` (create-only as before)."""
        return super().put(key, b"", metadata=metadata)


def _append_batches(ledger: Ledger, start: int, stop: int) -> None:
    """Events start..stop-1, ten per record and 100 records per flush, as the ledger agent appends them."""
    for first in range(start, stop, 1000):
        for record in range(first, min(first + 1000, stop), 10):
            events = [event(i) for i in range(record, min(record + 10, stop))]
            ledger.append_many(events, position=SourcePosition("lienthong.ledger", 0, record // 10))
        ledger.flush()


def measure_writer_memory() -> dict[str, int]:
    """Traced memory of a writer appending 100,000 events: after the first 10k and over the next 90k."""
    ledger = Ledger.open(ForgetfulStore(), segment_events=1024)
    tracemalloc.start()
    try:
        _append_batches(ledger, 0, 10_000)
        current_10k, peak_10k = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        _append_batches(ledger, 10_000, 100_000)
        current_100k, peak_100k = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "size": ledger.size,
        "frontier": len(ledger._frontier.hashes),
        "current_10k": current_10k,
        "peak_10k": peak_10k,
        "current_100k": current_100k,
        "peak_100k": peak_100k,
    }


def test_writer_memory_stays_flat_over_100_000_events():
    """Peak traced memory while appending events 10k..100k is not meaningfully above the peak over the first 10k."""
    # A fresh interpreter: tracemalloc counts every thread, and threads left by earlier tests (clients retrying,
    # log records captured for this test) would be counted as the writer's.
    code = "import json; from tests.test_ledger import measure_writer_memory as m; print(json.dumps(m()))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=True
    )
    m = json.loads(done.stdout.strip().splitlines()[-1])
    assert m["size"] == 100_000
    # The frontier holds popcount(n) hashes; what else grows is one store key per segment (~100 bytes each).
    assert m["peak_100k"] <= m["peak_10k"] * 1.25 + 64 * 1024, m
    assert m["current_100k"] - m["current_10k"] < 64 * 1024, m
    assert m["frontier"] == (100_000).bit_count()
