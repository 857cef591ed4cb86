"""The hub's append-only Merkle ledger: events, segments in object storage, signed and time-stamped tree heads.

Every step of the hub leaves one ``LedgerEvent`` (received, verified, rejected, archived, delivered, status
relayed). Its canonical bytes (sorted-key JSON, no spaces, UTF-8) are one leaf of an RFC 9162 Merkle tree
(``storage.merkle``). Periodically the hub seals the log: a ``SignedTreeHead`` (size, root, time) signed with
the hub's seal key and, when a TSA is configured, RFC 3161 time-stamped (one token for the whole batch).

Persistence (keys under ``ledger/``):

* ``ledger/segments/<first leaf, 12 digits>-<count>.jsonl``: immutable, create-only objects holding one
  canonical event per line, then (format v2) the receipts those events name and a trailer with the tree's
  frontier and the last consumed ``lienthong.ledger`` position (see ``_segments``). Together they are
  contiguous from leaf 0.
* ``ledger/heads/<size, 12 digits>.json``: one signed tree head per sealed size.

One writer at a time. In the pipeline the writer is the consumer of the one-partition ``lienthong.ledger``
topic: it appends each record's events with the record's position, calls ``flush()`` (or ``seal()``), and only
then commits its Kafka offset; a batch consumed again after a crash is recognised by position and skipped.
Readers (``lienthong audit export``, ``lienthong ledger verify``) read the stored log and never write.

Memory stays flat however long the log grows: the writer keeps the frontier (O(log n) hashes) and what is not yet
stored; proofs, searches and past roots stream the stored segments (``LogReader``).

Layers, one concern per private module: ``_events`` (leaves, errors, the topic's record format) → ``_tree``
(frontier, proof ranges) → ``_heads`` (signed heads, the seal) → ``_segments`` (stored objects) → ``_reader`` →
``_writer`` → ``_check`` (``verify_log``).
"""

from storage.ledger._check import LogProblem, LogReport, verify_log
from storage.ledger._events import (
    HUB_ACTOR,
    EventKind,
    LedgerCorrupt,
    LedgerError,
    LedgerEvent,
    SealError,
    decode_ledger_record,
    encode_ledger_record,
)
from storage.ledger._heads import (
    DEFAULT_SEAL_VALIDITY,
    DEFAULT_TIME_SKEW,
    SEAL_CERT_FILE,
    SEAL_KEY_FILE,
    SignedTreeHead,
    TimestampAuthority,
    create_seal_identity,
    create_self_signed_identity,
    tree_head_signed_bytes,
    verify_sealed,
    verify_tree_head,
    verify_tree_head_signature,
    verify_tree_head_timestamp,
)
from storage.ledger._reader import Found, LogReader
from storage.ledger._segments import HEADS_PREFIX, SEGMENTS_PREFIX, SourcePosition, head_key, segment_key
from storage.ledger._writer import DEFAULT_MAX_BUFFERED, DEFAULT_SEGMENT_EVENTS, Ledger

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_SEAL_VALIDITY",
    "DEFAULT_SEGMENT_EVENTS",
    "DEFAULT_TIME_SKEW",
    "HEADS_PREFIX",
    "HUB_ACTOR",
    "SEAL_CERT_FILE",
    "SEAL_KEY_FILE",
    "SEGMENTS_PREFIX",
    "EventKind",
    "Found",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
    "LedgerEvent",
    "LogProblem",
    "LogReader",
    "LogReport",
    "SealError",
    "SignedTreeHead",
    "SourcePosition",
    "TimestampAuthority",
    "create_seal_identity",
    "create_self_signed_identity",
    "decode_ledger_record",
    "encode_ledger_record",
    "head_key",
    "segment_key",
    "tree_head_signed_bytes",
    "verify_log",
    "verify_sealed",
    "verify_tree_head",
    "verify_tree_head_signature",
    "verify_tree_head_timestamp",
]
