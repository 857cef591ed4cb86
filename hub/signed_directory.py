"""Signed directory records: what an administrator writes on ``lienthong.directory`` and what workers apply.

A record's key is the OrganId; its value is one canonical JSON object (sorted keys, no spaces, UTF-8)::

    {"action": "set" | "remove", "algorithm": <XMLDSig SignatureMethod URI>, "entry": <Agency mapping> | null,
     "format": "lienthong-directory-v1", "issued_at": "2026-06-01T00:00:00.000000Z", "organ_id": <OrganId>,
     "signature": <base64>, "signer": <SHA-256 hex of the administrator certificate's DER>}

The signature covers the line ``lienthong-directory-v1`` followed by the same object without ``signature``. A removal is
a signed record too (never a bare tombstone). ``DirectoryState.apply`` accepts a record only if it is canonical, its
``signer`` is one of the trusted administrator certificates and the signature verifies with it, and its
``issued_at`` is later than the last record applied for that OrganId (a replayed old record cannot roll a pin back).
Anything else raises ``RecordRefused`` with a short reason code (the label of ``lienthong_directory_refused_total``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adapters.kafka import KafkaConnection
from hub.directory import Agency, Directory, DirectoryError
from hub.records import DIRECTORY
from hub.settings import HubSettings
from hub.trust import ConfigError
from schemas.errors import HubError
from signer.keys import PemKey, Pkcs11Key, SigningKey
from storage.ledger import (
    EventKind,
    LedgerEvent,
    SealError,
    create_self_signed_identity,
    verify_sealed,
)
from storage.ledger._events import canonical_json, format_time, parse_time

__all__ = [
    "Action",
    "Change",
    "DirectoryState",
    "RecordRefused",
    "admin_signing_key",
    "certificate_fingerprint",
    "create_admin_identity",
    "current_directory",
    "load_admin_certificates",
    "publish_records",
    "read_directory_topic",
    "sign_record",
]

_FORMAT = "lienthong-directory-v1"
_CONTEXT = _FORMAT.encode() + b"\n"
_FIELDS = frozenset({"action", "algorithm", "entry", "format", "issued_at", "organ_id", "signature", "signer"})
_READ_TIMEOUT_MS = 10_000  # how long a command waits for the broker while reading the directory topic


class Action(StrEnum):
    """What a directory record does to its OrganId."""

    SET = "set"  # add the agency or replace its entry
    REMOVE = "remove"


class RecordRefused(HubError):
    """A directory record that must not be applied; ``reason`` is a short code (unsigned, stale...)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Change:
    """A verified directory record: which OrganId, what it does, when and by whom it was signed."""

    organ_id: str
    action: Action
    agency: Agency | None  # the new entry (None for a removal)
    issued_at: datetime
    signer: str  # SHA-256 hex of the administrator certificate
    sha256: str  # of the record's bytes

    def ledger_event(self, at: datetime) -> LedgerEvent:
        """The ledger event recording that the hub applied this change at ``at``."""
        return LedgerEvent(
            kind=EventKind.DIRECTORY_CHANGED,
            sha256=self.sha256,
            document_id="",
            actor="admin",
            time=at,
            verdict=self.action.value,
            detail={"organ_id": self.organ_id, "issued_at": format_time(self.issued_at), "signer": self.signer},
        )


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 hex of the certificate's DER (how a record names its signer)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _unsigned(organ_id: str, agency: Agency | None, issued_at: datetime, signer: str, algorithm: str) -> dict[str, Any]:
    return {
        "action": (Action.SET if agency is not None else Action.REMOVE).value,
        "algorithm": algorithm,
        "entry": agency.to_mapping() if agency is not None else None,
        "format": _FORMAT,
        "issued_at": format_time(issued_at),
        "organ_id": organ_id,
        "signer": signer,
    }


def sign_record(key: SigningKey, organ_id: str, agency: Agency | None, issued_at: datetime) -> bytes:
    """The value of a record setting ``organ_id`` to ``agency`` (or removing it when None), signed by ``key``."""
    if agency is not None and agency.id != organ_id:
        raise DirectoryError(f"a record for {organ_id!r} cannot describe {agency.id!r}")
    body = _unsigned(organ_id, agency, issued_at, certificate_fingerprint(key.certificate), key.algorithm)
    signature = key.sign(_CONTEXT + canonical_json(body))
    return canonical_json({**body, "signature": base64.b64encode(signature).decode()})


def _parse(organ_id: str, value: bytes | None) -> tuple[dict[str, Any], bytes]:
    """The record's fields and its signature bytes; ``RecordRefused`` (unsigned, malformed) otherwise."""
    if not value:
        raise RecordRefused("unsigned", "an empty record (a bare tombstone): removals must be signed")
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RecordRefused("malformed", f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise RecordRefused("malformed", "not a JSON object")
    if obj.get("format") != _FORMAT or "signature" not in obj:
        raise RecordRefused("unsigned", f"not a signed {_FORMAT} record")
    if set(obj) != _FIELDS:
        raise RecordRefused("malformed", f"fields must be exactly {sorted(_FIELDS)}")
    if canonical_json(obj) != value:
        raise RecordRefused("malformed", "not in canonical form (sorted keys, no spaces, UTF-8)")
    if obj["organ_id"] != organ_id:
        raise RecordRefused("malformed", f"the record describes {obj['organ_id']!r}: its key and OrganId must match")
    text = obj["signature"]
    try:
        signature = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    except binascii.Error:
        signature = b""
    if not signature or base64.b64encode(signature).decode() != text:
        raise RecordRefused("malformed", "the signature is not canonical base64")
    return obj, signature


def _change(organ_id: str, obj: dict[str, Any], sha256: str) -> Change:
    """The change a verified record's fields describe; ``RecordRefused`` (malformed) if they disagree."""
    try:
        action = Action(obj["action"])
        issued_at = parse_time(obj["issued_at"], "issued_at")
        entry = obj["entry"]
        if (entry is None) != (action is Action.REMOVE) or not isinstance(entry, dict | None):
            raise DirectoryError("a 'set' record carries an entry, a 'remove' record none")
        agency = None if entry is None else Agency.from_mapping(entry, "entry")
    except (ValueError, HubError) as exc:
        raise RecordRefused("malformed", str(exc)) from exc
    if agency is not None and (agency.id != organ_id or agency.to_mapping() != entry):
        raise RecordRefused("malformed", "the entry is not the canonical entry of the record's OrganId")
    return Change(organ_id, action, agency, issued_at, obj["signer"], sha256)


@dataclass
class DirectoryState:
    """The directory built from verified records, and the ``issued_at`` last applied per OrganId."""

    admin_certs: Sequence[x509.Certificate]
    directory: Directory = field(default_factory=Directory)
    applied: dict[str, Change] = field(default_factory=dict)  # the last change applied per OrganId

    def verify(self, organ_id: str, value: bytes | None) -> Change:
        """The change ``value`` makes, if it is a record to apply now; ``RecordRefused`` saying why not."""
        obj, signature = _parse(organ_id, value)
        assert value is not None  # _parse refuses empty values
        anchors = {certificate_fingerprint(c): c for c in self.admin_certs}
        cert = anchors.get(obj["signer"])
        if cert is None:
            raise RecordRefused("unknown_key", f"signed by {str(obj['signer'])[:16]}…, not a trusted administrator")
        body = {k: v for k, v in obj.items() if k != "signature"}
        change = _change(organ_id, obj, hashlib.sha256(value).hexdigest())
        try:
            verify_sealed(
                _CONTEXT + canonical_json(body),
                signature=signature,
                algorithm=str(obj["algorithm"]),
                certificates=[cert.public_bytes(serialization.Encoding.DER)],
                anchors=self.admin_certs,
                at=change.issued_at,
            )
        except SealError as exc:
            raise RecordRefused("bad_signature", str(exc)) from exc
        last = self.applied.get(organ_id)
        if last is not None and change.issued_at <= last.issued_at:
            raise RecordRefused(
                "stale", f"issued {format_time(change.issued_at)}, not after the applied {format_time(last.issued_at)}"
            )
        return change

    def apply(self, organ_id: str, value: bytes | None) -> Change:
        """Verify the record and apply it; ``RecordRefused`` leaves the state as it was."""
        change = self.verify(organ_id, value)
        if change.agency is None:
            self.directory = self.directory.without(organ_id)
        else:
            self.directory = self.directory.with_agency(change.agency)
        self.applied[organ_id] = change
        return change

    def next_issued_at(self, organ_id: str, now: datetime | None = None) -> datetime:
        """A time for a new record about ``organ_id``: now, or just after the last applied one if the clock lags."""
        when = now or datetime.now(UTC)
        last = self.applied.get(organ_id)
        return max(when, last.issued_at + timedelta(microseconds=1)) if last is not None else when


# --- the administrator's identity ---------------------------------------------------------------------------


def create_admin_identity(settings: HubSettings) -> None:
    """Create the administrator key and certificate in ``DATA/admin`` on first start (unless on a PKCS#11 token)."""
    if settings.admin_pkcs11_uri:
        if not settings.admin_certs:
            raise ConfigError("admin_pkcs11_uri is set: set admin_certs to the token key's certificate (PEM) too")
        return
    create_self_signed_identity(
        settings.admin_key_path, settings.admin_cert_path, common_name="lienthong directory administrator"
    )


def load_admin_certificates(settings: HubSettings) -> list[x509.Certificate]:
    """The certificates whose records workers apply (``trusted_admin_certs``); ``ConfigError`` naming a bad file."""
    certs: list[x509.Certificate] = []
    for path in settings.trusted_admin_certs:
        try:
            certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the administrator certificate {path} (admin_certs): {exc}") from exc
    return certs


@contextlib.contextmanager
def admin_signing_key(settings: HubSettings) -> Iterator[SigningKey]:
    """The administrator's key: on the PKCS#11 token of ``admin_pkcs11_uri``, else ``DATA/admin/key.pem``."""
    if settings.admin_pkcs11_uri:
        cert = load_admin_certificates(settings)[0]
        with Pkcs11Key.open(settings.admin_pkcs11_uri, cert=cert) as token_key:
            yield token_key
        return
    try:
        key_pem, cert_pem = settings.admin_key_path.read_bytes(), settings.admin_cert_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"no administrator key in {settings.admin_key_path.parent}: start the hub once") from exc
    yield PemKey.load(key_pem, cert_pem)


# --- the topic ----------------------------------------------------------------------------------------------


def read_directory_topic(connection: KafkaConnection) -> list[tuple[str, bytes | None, int]]:
    """Every record on ``lienthong.directory`` up to its end now: (key, value, offset), oldest first."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415 - kafka is imported only when needed

    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **connection.options())
    try:
        partition = TopicPartition(DIRECTORY, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        end = consumer.end_offsets([partition])[partition]
        records: list[tuple[str, bytes | None, int]] = []
        while consumer.position(partition) < end:
            batches = consumer.poll(timeout_ms=_READ_TIMEOUT_MS)
            if not batches:
                raise HubError(f"{DIRECTORY} did not answer within {_READ_TIMEOUT_MS // 1000} s")
            records.extend(((m.key or b"").decode(), m.value, m.offset) for ms in batches.values() for m in ms)
        return records
    finally:
        consumer.close()


def current_directory(
    settings: HubSettings, records: Sequence[tuple[str, bytes | None, int]] | None = None
) -> DirectoryState:
    """The directory as workers see it: every record on ``lienthong.directory`` that verifies, applied in order.

    ``records`` are the topic's, already read (``read_directory_topic``); by default they are read here.
    """
    state = DirectoryState(load_admin_certificates(settings))
    for key, value, _offset in read_directory_topic(settings.kafka) if records is None else records:
        try:
            state.apply(key, value)
        except RecordRefused:
            continue  # the workers ignore it too (and count it)
    return state


def publish_records(connection: KafkaConnection, records: Sequence[tuple[str, bytes]]) -> None:
    """Write signed records (key, value) on ``lienthong.directory`` and wait for the broker's acknowledgement."""
    from kafka import KafkaProducer  # noqa: PLC0415

    producer = KafkaProducer(acks="all", **connection.options())
    try:
        for key, value in records:
            producer.send(DIRECTORY, key=key.encode(), value=value)
        producer.flush()
    finally:
        producer.close()
