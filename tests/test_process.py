"""The hub's pure document logic (hub.process): delivery, rejection, claim checks, dedup, statuses, lanes.

No Kafka and no S3 server: the processor gets an in-memory object store, the demo PKI and directory, the hub's
seal key and a fixed clock, exactly as ``hub.app.HubWorker`` builds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.app import build_policy
from hub.demo import DEMO_AGENCIES, INVALID_KINDS, create_demo_material, demo_documents, demo_status
from hub.directory import Directory, Route, load_directory
from hub.ledger_mac import mac_refusal
from hub.process import DEFAULT_URGENT_PRIORITY, DocumentProcessor, document_index_key, document_key
from hub.records import (
    AXIS_OUTBOUND,
    CLAIM_CHECK_MAGIC,
    DEADLETTER,
    H_DOC_ID,
    H_ERROR,
    H_INDICATION,
    H_ORIGIN,
    H_REASON,
    H_RECEIVED_AT,
    H_SENDER,
    H_SHA256,
    H_SOURCE,
    LEDGER,
    ORIGIN_AXIS,
    WORK_BULK,
    WORK_URGENT,
    ClaimCheck,
    InboundRecord,
    inbox_topic,
    status_topic,
)
from hub.settings import HubSettings
from hub.trust import load_certificates
from schemas import Edoc, StatusMessage, build_document, build_status, parse
from schemas._checks import VIETNAM_TZ
from schemas.examples import example_edoc
from signer import devpki
from signer.keys import PemKey
from signer.policy import RevocationPolicy, TrustPolicy
from signer.sign import sign_document
from signer.verify import Verifier
from storage.archive import Receipt
from storage.ledger import EventKind, Ledger, SourcePosition, create_seal_identity, decode_ledger_record
from storage.objectstore import MemoryObjectStore, original_key

#: The instant the demo PKI is made for; the processor's clock reads a fixed minute later.
NOW = datetime.now(UTC).replace(microsecond=0)
RECEIVED_AT = NOW + timedelta(minutes=1)

SENDER = "000.01.00.H41"
A = "000.00.00.H41"
B = "000.02.00.H41"
C = "000.03.00.H41"
AXIS_AGENCY = "000.00.00.G22"
REVOKED_AGENCY = "000.09.00.H41"
NOT_IN_DIRECTORY = "000.77.00.H77"
FROM_PATH = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganId"
LEDGER_KEY = b"k" * 32

#: What the dead letter's lienthong-error must name for each demo rejection (element path or certificate).
ERROR_NAMES = {
    "HASH_FAILURE": "/edXML/edXMLEnvelope/edXMLHeader/Signature/SignedInfo/Reference",
    "NO_CERTIFICATE_CHAIN_FOUND": "CN=Impostor",
    "SIG_CONSTRAINTS_FAILURE": "/edXML/edXMLEnvelope/edXMLHeader/Signature",
    "REVOKED": "CN=Revoked Demo Agency",
    "UNKNOWN_RECIPIENT": "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To/OrganId: 000.99.00.H99",
    "MALFORMED": "line 1",
    "EMPTY": "0 bytes",
    "WRONG_NAMESPACE": "/html",
    "FORMAT_FAILURE": "ds:Signature",
}


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """The demo PKI, agencies and directory, made once for the module."""
    return create_demo_material(tmp_path_factory.mktemp("demo"), now=NOW)


@pytest.fixture(scope="module")
def hub_settings(material, tmp_path_factory):
    """Settings as ``lienthong up --demo`` builds them: demo anchors, intermediates, CRLs and directory."""
    trust = material.trust_dir
    return HubSettings(
        data_dir=tmp_path_factory.mktemp("data"),
        trust=(trust / "root.pem",),
        intermediates=(trust / "ca.pem",),
        crls=(trust / "ca-crl.pem", trust / "root-crl.pem"),
        directory_file=material.directory_file,
    )


@pytest.fixture(scope="module")
def directory(material):
    """The demo directory."""
    return load_directory(material.directory_file)


@pytest.fixture(scope="module")
def seal(hub_settings):
    """The hub's seal identity, created in its data folder."""
    return create_seal_identity(hub_settings.data_dir, now=NOW)


@pytest.fixture(scope="module")
def verifier(hub_settings, directory):
    """One verifier for the module (it caches validated chains, as the hub's does)."""
    return Verifier(build_policy(hub_settings, directory))


@pytest.fixture(scope="module")
def seal_verifier(seal):
    """Verifies what the hub seals, trusting only the hub's seal certificate."""
    return Verifier(TrustPolicy(anchors=(seal.certificate,), revocation=RevocationPolicy.NONE))


@pytest.fixture(scope="module")
def make_processor(hub_settings, directory, verifier, seal):
    """Build a processor on a fresh memory store (optionally with other settings): ``(processor, store)``."""

    def make(**changes):
        store = MemoryObjectStore()
        processor = DocumentProcessor(
            settings=dataclasses.replace(hub_settings, **changes),
            store=store,
            verifier=verifier,
            directory=lambda: directory,
            seal=seal,
            clock=lambda: RECEIVED_AT,
        )
        return processor, store

    return make


@pytest.fixture
def hub(make_processor):
    """A processor on a fresh store, with the demo settings."""
    return make_processor()


@pytest.fixture(scope="module")
def demo_stream(material):
    """100 demo documents: 90 valid, and each invalid kind at least once."""
    return list(demo_documents(material, 100))


@pytest.fixture(scope="module")
def delivered(make_processor, demo_stream):
    """Every valid demo document processed once on one store: ``(store, [(document, outcome), ...])``."""
    processor, store = make_processor()
    results = [(d, processor.process(InboundRecord(d.sender.encode(), d.data))) for d in demo_stream]
    valid = [(d, o) for d, o in results if d.expect == "delivered"]
    assert len(valid) == 90
    assert any(AXIS_AGENCY in d.recipients for d, _ in valid)  # the axis route is exercised
    return store, valid


@pytest.fixture(scope="module")
def rejected(make_processor, demo_stream):
    """Every invalid demo document processed once: ``[(document, record, outcome), ...]``."""
    processor, _ = make_processor()
    results = []
    for n, d in enumerate(demo_stream):
        if d.expect == "delivered":
            continue
        record = InboundRecord(d.sender.encode(), d.data, topic=WORK_BULK, partition=n % 4, offset=1000 + n)
        results.append((d, record, processor.process(record)))
    assert len({d.expect for d, _, _ in results}) == len(INVALID_KINDS)  # every invalid kind is exercised
    return results


def signed_edoc(material, *, sender=SENDER, recipients=(A, B), number=500, **kwargs):
    """A signed demo document from ``sender`` (today's date, notation LT-TEST)."""
    edoc = example_edoc(
        sender=sender,
        recipients=recipients,
        number=number,
        notation="LT-TEST",
        day=NOW.date(),
        **kwargs,
    )
    return sign_document(build_document(edoc), material.keys[sender])


def by_topic(outcome, topic):
    """The outcome's records on ``topic``."""
    return [r for r in outcome.records if r.topic == topic]


def delivery_records(outcome):
    """The outcome's records to inboxes and to the axis."""
    return [r for r in outcome.records if r.topic.startswith("lienthong.inbox.") or r.topic == AXIS_OUTBOUND]


def expected_topic(directory, organ_id):
    """Where a document for ``organ_id`` must go."""
    route = directory.get(organ_id).route
    return inbox_topic(organ_id) if route is Route.LOCAL else AXIS_OUTBOUND


# --- delivery ---------------------------------------------------------------------------------------------------


class TestDelivery:
    """Valid demo documents reach every recipient unchanged, with evidence and a hub status 01."""

    def test_each_valid_document_is_delivered_once_per_recipient_with_the_original_bytes(self, delivered, directory):
        """Every valid document is delivered: one record per recipient to its inbox or the axis, bytes untouched."""
        _, results = delivered
        for document, outcome in results:
            assert outcome.outcome == "delivered", (outcome.reason, outcome.problems)
            assert outcome.reason == ""
            assert outcome.sender == document.sender
            assert set(outcome.recipients) == set(document.recipients)
            records = delivery_records(outcome)
            assert sorted(r.topic for r in records) == sorted(expected_topic(directory, t) for t in document.recipients)
            for record in records:
                assert record.value == document.data  # byte for byte: the signature covers the whole document

    def test_axis_records_are_keyed_by_recipient_and_inbox_records_by_sender(self, delivered):
        """Axis-bound records carry the recipient as key (for the connector); inbox records carry the sender."""
        _, results = delivered
        for document, outcome in results:
            for record in delivery_records(outcome):
                expected = AXIS_AGENCY if record.topic == AXIS_OUTBOUND else document.sender
                assert record.key == expected.encode()

    def test_delivered_records_carry_the_contract_headers(self, delivered):
        """Inbox and axis records carry lienthong-doc-id, -sha256, -indication (TOTAL_PASSED) and -received-at."""
        _, results = delivered
        for document, outcome in results:
            message = parse(document.data).message
            for record in delivery_records(outcome):
                headers = dict(record.headers)
                assert headers[H_DOC_ID] == message.document_id.encode()
                assert headers[H_SHA256] == hashlib.sha256(document.data).hexdigest().encode()
                assert headers[H_INDICATION] == b"TOTAL_PASSED"
                assert datetime.fromisoformat(headers[H_RECEIVED_AT].decode()) == RECEIVED_AT

    def test_sender_gets_a_hub_status_01_sealed_by_the_hub(self, delivered, seal_verifier, hub_settings):
        """The sender receives a status 01 about its document, a valid status message sealed by the hub."""
        _, results = delivered
        for document, outcome in results:
            statuses = by_topic(outcome, status_topic(document.sender))
            assert len(statuses) == 1
            status = parse(statuses[0].value).message
            assert isinstance(status, StatusMessage)
            assert status.status_code == "01"
            assert status.sender.organ_id == hub_settings.hub_organ_id
            assert status.response_for.organ_id == document.sender
            assert status.response_for.document_id == outcome.document_id
            report = seal_verifier.verify(statuses[0].value, at=RECEIVED_AT)
            assert report.indication.value == "TOTAL_PASSED", report.errors

    def test_hub_status_is_not_accepted_under_another_anchor(self, delivered, material):
        """The status's seal is the hub's key: it does not verify when only the agencies' root is trusted."""
        _, results = delivered
        document, outcome = results[0]
        status = by_topic(outcome, status_topic(document.sender))[0].value
        anchors = tuple(load_certificates(material.trust_dir / "root.pem"))
        other = Verifier(TrustPolicy(anchors=anchors, revocation=RevocationPolicy.NONE))
        assert other.verify(status, at=RECEIVED_AT).indication.value != "TOTAL_PASSED"

    def test_original_is_archived_under_its_document_key_and_the_receipt_travels_with_the_events(self, delivered):
        """The original is kept under documents/<h(DocumentId)>/<sha256>.xml; its receipt is in the ledger record."""
        store, results = delivered
        for document, outcome in results:
            sha = hashlib.sha256(document.data).hexdigest()
            assert outcome.sha256 == sha
            assert store.get(document_key(outcome.document_id, sha)) == document.data
            assert not store.exists(f"reports/{sha}.json")
            record = outcome.ledger_record(LEDGER_KEY)
            events, receipts = decode_ledger_record(record.value)
            assert (events, receipts) == (list(outcome.events), list(outcome.receipts))
            assert mac_refusal(LEDGER_KEY, record.value, record.headers) is None  # the ledger writer appends it
            receipt = Receipt.from_bytes(receipts[0])
            assert outcome.events[1].detail["receipt_sha256"] == hashlib.sha256(receipts[0]).hexdigest()
            assert receipt.sha256 == sha
            assert receipt.passed
            assert receipt.sender == document.sender
            assert receipt.document_id == outcome.document_id
            assert receipt.received_at == RECEIVED_AT
            assert receipt.report.chain_der  # what an offline verifier needs is kept with the report

    def test_ledger_events_are_received_verified_archived_then_delivered_per_recipient(self, delivered):
        """The ledger events are received, verified, archived, then one delivered event per recipient."""
        _, results = delivered
        for document, outcome in results:
            sha = hashlib.sha256(document.data).hexdigest()
            kinds = [e.kind for e in outcome.events]
            n = len(document.recipients)
            assert kinds == [EventKind.RECEIVED, EventKind.VERIFIED, EventKind.ARCHIVED] + [EventKind.DELIVERED] * n
            assert {e.detail["recipient"] for e in outcome.events[3:]} == set(document.recipients)
            assert all(e.sha256 == sha and e.document_id == outcome.document_id for e in outcome.events)
            received, verified, archived = outcome.events[:3]
            assert (received.actor, received.time) == (document.sender, RECEIVED_AT)
            assert "TOTAL_PASSED" in verified.verdict
            assert archived.detail["key"] == document_key(outcome.document_id, sha)

    def test_stored_original_names_its_sender_recipients_and_input(self, delivered):
        """The accepted original's metadata keeps sender, recipients and the input record (dedup and revocations)."""
        store, results = delivered
        for document, outcome in results:
            metadata = store.stat(document_key(outcome.document_id, outcome.sha256)).metadata
            assert metadata["sender"] == document.sender
            assert set(metadata["recipients"].split(",")) == set(document.recipients)
            assert metadata["source"] == InboundRecord(b"", b"").source

    def test_document_key_hashes_the_document_id(self):
        """The document key hides the DocumentId's '/' behind its SHA-256 and ends with the content hash."""
        key = document_key("000.00.00.G22,2026/05/16,74/VPCP-TTĐT", "ab" * 32)
        digest = hashlib.sha256("000.00.00.G22,2026/05/16,74/VPCP-TTĐT".encode()).hexdigest()
        assert key == f"documents/{digest}/{'ab' * 32}.xml"
        assert document_index_key("x", "ab" * 32).endswith(f"/{'ab' * 32}.json")

    def test_partly_unknown_recipients_deliver_to_the_known_and_answer_02(self, hub, material):
        """A document to one known and one unknown agency reaches the known one; the sender gets 02 naming the other."""
        processor, _ = hub
        data = signed_edoc(material, recipients=(A, NOT_IN_DIRECTORY))
        outcome = processor.process(InboundRecord(SENDER.encode(), data))
        assert outcome.outcome == "delivered"
        assert outcome.reason == "UNKNOWN_RECIPIENT"
        assert [r.topic for r in delivery_records(outcome)] == [inbox_topic(A)]
        status = parse(by_topic(outcome, status_topic(SENDER))[0].value).message
        assert status.status_code == "02"
        assert NOT_IN_DIRECTORY in status.description


# --- rejection --------------------------------------------------------------------------------------------------


class TestRejection:
    """Invalid documents go to the dead letters with a reason, and the sender is told why."""

    def test_each_invalid_kind_is_rejected_with_its_reason(self, rejected):
        """Every invalid demo kind is rejected with the reason code the demo expects."""
        for document, _, outcome in rejected:
            assert outcome.outcome == "rejected"
            assert outcome.reason == document.expect, outcome.problems
            assert outcome.recipients == ()

    def test_dead_letter_carries_reason_error_and_source(self, rejected):
        """The dead letter keeps the original value and key, with lienthong-reason, -error (naming where), -source."""
        for document, record, outcome in rejected:
            letters = by_topic(outcome, DEADLETTER)
            assert len(letters) == 1
            letter = letters[0]
            assert letter.value == document.data
            assert letter.key == document.sender.encode()
            headers = dict(letter.headers)
            assert headers[H_REASON] == document.expect.encode()
            assert ERROR_NAMES[document.expect] in headers[H_ERROR].decode(), headers[H_ERROR]
            assert headers[H_SOURCE] == f"{WORK_BULK}/{record.partition}/{record.offset}".encode()
            assert headers[H_SENDER] == document.sender.encode()
            assert headers[H_SHA256] == hashlib.sha256(document.data).hexdigest().encode()

    def test_sender_gets_a_status_02_naming_the_reason(self, rejected, seal_verifier, hub_settings):
        """Every demo sender is in the directory, so each rejection is answered with a sealed status 02 naming it."""
        for document, _, outcome in rejected:
            statuses = by_topic(outcome, status_topic(document.sender))
            assert len(statuses) == 1, document.expect
            status = parse(statuses[0].value).message
            assert isinstance(status, StatusMessage)
            assert status.status_code == "02"
            assert status.sender.organ_id == hub_settings.hub_organ_id
            assert status.response_for.organ_id == document.sender
            assert document.expect in status.description
            assert dict(statuses[0].headers)[H_REASON] == document.expect.encode()
            assert seal_verifier.verify(statuses[0].value, at=RECEIVED_AT).indication.value == "TOTAL_PASSED"

    def test_rejected_documents_reach_no_inbox(self, rejected):
        """A rejected document produces only the dead letter and the status: nothing to an inbox or the axis."""
        for document, _, outcome in rejected:
            assert delivery_records(outcome) == [], document.expect
            assert len(outcome.records) == 2

    def test_rejection_ledger_events_name_the_reason(self, rejected):
        """A rejection leaves a received event and a rejected event whose verdict is the reason (then archived)."""
        for document, _, outcome in rejected:
            kinds = [e.kind for e in outcome.events]
            assert kinds[:2] == [EventKind.RECEIVED, EventKind.REJECTED]
            assert kinds[2:] in ([], [EventKind.ARCHIVED])  # archived when there was a document to keep
            assert outcome.events[1].verdict == document.expect
            assert all(e.sha256 == hashlib.sha256(document.data).hexdigest() for e in outcome.events)

    def test_a_status_02_about_a_document_names_its_document_id(self, rejected):
        """For a readable but refused document, the status 02 answers its DocumentId."""
        for document, _, outcome in rejected:
            if document.expect in {"MALFORMED", "EMPTY", "WRONG_NAMESPACE"}:
                continue
            status = parse(by_topic(outcome, status_topic(document.sender))[0].value).message
            assert status.response_for.document_id == parse(document.data).message.document_id

    def test_zero_byte_value_is_empty(self, hub):
        """A 0-byte record is rejected EMPTY, dead-lettered, and the (known) sender is told."""
        processor, _ = hub
        outcome = processor.process(InboundRecord(A.encode(), b""))
        assert (outcome.outcome, outcome.reason) == ("rejected", "EMPTY")
        assert by_topic(outcome, DEADLETTER)[0].value == b""
        assert len(by_topic(outcome, status_topic(A))) == 1

    def test_none_value_is_empty(self, hub):
        """A record with no value at all (a tombstone) is rejected EMPTY with an empty dead letter."""
        processor, _ = hub
        outcome = processor.process(InboundRecord(A.encode(), None))
        assert (outcome.outcome, outcome.reason) == ("rejected", "EMPTY")
        letter = by_topic(outcome, DEADLETTER)[0]
        assert letter.value == b""
        assert letter.key == A.encode()

    def test_garbage_from_an_unknown_key_is_only_dead_lettered(self, hub):
        """Garbage under a key that is not in the directory: a dead letter, and no status to anyone."""
        processor, _ = hub
        value = bytes(range(256)) * 3
        outcome = processor.process(InboundRecord(NOT_IN_DIRECTORY.encode(), value))
        assert (outcome.outcome, outcome.reason) == ("rejected", "MALFORMED")
        assert [r.topic for r in outcome.records] == [DEADLETTER]
        assert outcome.records[0].value == value

    def test_record_without_key_and_garbage_is_only_dead_lettered(self, hub):
        """Garbage with no key: a dead letter with an empty sender header, and no status."""
        processor, _ = hub
        outcome = processor.process(InboundRecord(None, b"\x00\x01garbage"))
        assert [r.topic for r in outcome.records] == [DEADLETTER]
        assert dict(outcome.records[0].headers)[H_SENDER] == b""

    def test_oversized_value_is_too_large(self, make_processor, material):
        """A value above max_document_bytes is rejected TOO_LARGE before parsing, and the sender is told."""
        processor, _ = make_processor(max_document_bytes=1000)
        data = signed_edoc(material)
        assert len(data) > 1000
        outcome = processor.process(InboundRecord(SENDER.encode(), data))
        assert (outcome.outcome, outcome.reason) == ("rejected", "TOO_LARGE")
        assert "1000" in dict(by_topic(outcome, DEADLETTER)[0].headers)[H_ERROR].decode()
        assert "TOO_LARGE" in parse(by_topic(outcome, status_topic(SENDER))[0].value).message.description
        assert delivery_records(outcome) == []

    def test_value_at_the_limit_is_accepted(self, make_processor, material):
        """A value of exactly max_document_bytes is not too large."""
        data = signed_edoc(material)
        processor, _ = make_processor(max_document_bytes=len(data))
        assert processor.process(InboundRecord(SENDER.encode(), data)).outcome == "delivered"

    def test_key_other_than_from_organid_is_sender_mismatch(self, hub, material):
        """A record keyed by another agency than the document's From/OrganId is refused SENDER_MISMATCH."""
        processor, _ = hub
        data = signed_edoc(material, sender=SENDER, recipients=(A,))
        outcome = processor.process(InboundRecord(B.encode(), data))
        assert (outcome.outcome, outcome.reason) == ("rejected", "SENDER_MISMATCH")
        error = dict(by_topic(outcome, DEADLETTER)[0].headers)[H_ERROR].decode()
        assert FROM_PATH in error
        assert SENDER in error
        assert B in error
        assert delivery_records(outcome) == []
        assert by_topic(outcome, status_topic(B))  # the status 02 goes to who sent it, not to whom From names
        assert not by_topic(outcome, status_topic(SENDER))

    def test_certificate_naming_another_organ_id_is_refused_when_pinned(self, hub_settings, material, directory, seal):
        """C's key pinned for SENDER too (a bad directory record) cannot sign "From SENDER": CERT_ORGAN_MISMATCH."""
        c_pin = devpki.spki_sha256(material.keys[C].certificate)
        pinned = Directory(
            dataclasses.replace(a, cert_spki_sha256=a.cert_spki_sha256 | {c_pin}) if a.id == SENDER else a
            for a in directory
        )
        processor = DocumentProcessor(
            settings=hub_settings,
            store=MemoryObjectStore(),
            verifier=Verifier(build_policy(hub_settings, pinned)),
            directory=lambda: pinned,
            seal=seal,
            clock=lambda: RECEIVED_AT,
        )
        edoc = example_edoc(sender=SENDER, recipients=(A,), number=904, notation="LT-TEST", day=NOW.date())
        forged = sign_document(build_document(edoc), material.keys[C], chain=material.chains[C])
        outcome = processor.process(InboundRecord(SENDER.encode(), forged))
        assert (outcome.outcome, outcome.reason) == ("rejected", "CERT_ORGAN_MISMATCH")
        assert delivery_records(outcome) == []
        error = dict(by_topic(outcome, DEADLETTER)[0].headers)[H_ERROR].decode()
        subject = material.keys[C].certificate.subject.rfc4514_string()
        assert all(name in error for name in (subject, C, SENDER)), error
        answer = parse(by_topic(outcome, status_topic(SENDER))[0].value).message
        assert (answer.status_code, answer.response_for.document_id) == ("02", edoc.document_id)
        assert "CERT_ORGAN_MISMATCH" in answer.description

    def test_certificate_naming_no_organ_id_is_judged_by_the_pin(self, hub_settings, directory, seal):
        """A certificate with no organizationIdentifier and no OrganId OU passes when pinned for From/OrganId."""
        window = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=30)}
        root = devpki.make_root("Plain Root", **window)
        leaf = devpki.make_leaf(root, "Plain Signer", **window)
        pins = {a.id: a.cert_spki_sha256 for a in directory} | {SENDER: frozenset({devpki.spki_sha256(leaf.cert)})}
        policy = TrustPolicy(anchors=(root.cert,), revocation=RevocationPolicy.NONE, pins=pins)
        processor = DocumentProcessor(
            settings=hub_settings,
            store=MemoryObjectStore(),
            verifier=Verifier(policy),
            directory=lambda: directory,
            seal=seal,
            clock=lambda: RECEIVED_AT,
        )
        edoc = example_edoc(sender=SENDER, recipients=(A,), number=905, notation="LT-TEST", day=NOW.date())
        data = sign_document(build_document(edoc), PemKey(leaf.key, leaf.cert), chain=leaf.chain)
        outcome = processor.process(InboundRecord(SENDER.encode(), data))
        assert outcome.outcome == "delivered", outcome.problems

    def test_unknown_sender_with_a_valid_signature_is_refused(self, hub_settings, material, directory, verifier, seal):
        """A correctly signed document from an agency the directory no longer lists is refused UNKNOWN_SENDER."""
        smaller = Directory(a for a in directory if a.id != C)
        processor = DocumentProcessor(
            settings=hub_settings,
            store=MemoryObjectStore(),
            verifier=verifier,  # still pins C's key: only the routing directory changed
            directory=lambda: smaller,
            seal=seal,
            clock=lambda: RECEIVED_AT,
        )
        outcome = processor.process(InboundRecord(C.encode(), signed_edoc(material, sender=C, recipients=(A,))))
        assert (outcome.outcome, outcome.reason) == ("rejected", "UNKNOWN_SENDER")
        assert [r.topic for r in outcome.records] == [DEADLETTER]


# --- claim checks -----------------------------------------------------------------------------------------------


class TestClaimCheck:
    """Large documents travel as a claim check: the key and SHA-256 of an object in the store."""

    def test_claim_check_is_fetched_and_processed(self, hub, material):
        """A claim check to a stored document is fetched, verified and delivered as the document's bytes."""
        processor, store = hub
        data = signed_edoc(material)
        sha = hashlib.sha256(data).hexdigest()
        store.put(f"claims/{sha}", data)
        check = ClaimCheck(f"claims/{sha}", sha, len(data)).to_bytes()
        outcome = processor.process(InboundRecord(SENDER.encode(), check))
        assert outcome.outcome == "delivered", outcome.problems
        assert outcome.sha256 == sha
        assert {r.topic for r in delivery_records(outcome)} == {inbox_topic(A), inbox_topic(B)}
        assert all(r.value == data for r in delivery_records(outcome))
        assert store.get(document_key(outcome.document_id, sha)) == data

    def test_claim_check_with_a_wrong_sha256_is_refused(self, hub, material):
        """A claim check whose object does not hash to the named SHA-256 is BAD_CLAIM_CHECK."""
        processor, store = hub
        data = signed_edoc(material)
        store.put("claims/x", data)
        check = ClaimCheck("claims/x", "0" * 64, len(data)).to_bytes()
        outcome = processor.process(InboundRecord(SENDER.encode(), check))
        assert (outcome.outcome, outcome.reason) == ("rejected", "BAD_CLAIM_CHECK")
        assert by_topic(outcome, DEADLETTER)[0].value == check
        assert delivery_records(outcome) == []

    def test_claim_check_to_a_missing_object_is_refused(self, hub):
        """A claim check to nothing is BAD_CLAIM_CHECK, naming the key."""
        processor, _ = hub
        check = ClaimCheck("claims/nowhere", "ab" * 32, 10).to_bytes()
        outcome = processor.process(InboundRecord(SENDER.encode(), check))
        assert (outcome.outcome, outcome.reason) == ("rejected", "BAD_CLAIM_CHECK")
        assert "claims/nowhere" in dict(by_topic(outcome, DEADLETTER)[0].headers)[H_ERROR].decode()

    def test_claim_check_announcing_too_many_bytes_is_too_large(self, make_processor):
        """A claim check whose size is above max_document_bytes is TOO_LARGE, without fetching anything."""
        processor, _ = make_processor(max_document_bytes=1000)
        check = ClaimCheck("claims/absent", "ab" * 32, 1001).to_bytes()
        outcome = processor.process(InboundRecord(SENDER.encode(), check))
        assert outcome.reason == "TOO_LARGE"

    def test_malformed_claim_check_is_refused(self, hub):
        """A value that starts like a claim check but is not one is BAD_CLAIM_CHECK."""
        processor, _ = hub
        outcome = processor.process(InboundRecord(SENDER.encode(), CLAIM_CHECK_MAGIC + b":{}}"))
        assert (outcome.outcome, outcome.reason) == ("rejected", "BAD_CLAIM_CHECK")

    def test_claim_check_with_infinite_size_is_refused_not_raised(self, hub):
        """A claim check with size 1e400 (JSON infinity) is BAD_CLAIM_CHECK, not an OverflowError."""
        processor, _ = hub
        value = b'{"lienthong-claim-check":{"key":"claims/x","sha256":"' + b"a" * 64 + b'","size":1e400}}'
        outcome = processor.process(InboundRecord(SENDER.encode(), value))
        assert (outcome.outcome, outcome.reason) == ("rejected", "BAD_CLAIM_CHECK")

    def test_deeply_nested_claim_check_is_refused_not_raised(self, hub):
        """A claim check nested 100,000 deep is BAD_CLAIM_CHECK, not a RecursionError."""
        processor, _ = hub
        value = CLAIM_CHECK_MAGIC + b":" + b"[" * 100_000
        outcome = processor.process(InboundRecord(SENDER.encode(), value))
        assert (outcome.outcome, outcome.reason) == ("rejected", "BAD_CLAIM_CHECK")

    def test_large_document_leaves_as_a_claim_check_to_its_archived_original(self, make_processor, material):
        """A document above claim_check_bytes goes out as a claim check to its stored original (Kafka's ~1 MB limit)."""
        processor, store = make_processor(claim_check_bytes=2000)
        data = signed_edoc(material)
        assert len(data) > 2000
        sha = hashlib.sha256(data).hexdigest()
        store.put(f"claims/{sha}", data)
        outcome = processor.process(
            InboundRecord(SENDER.encode(), ClaimCheck(f"claims/{sha}", sha, len(data)).to_bytes())
        )
        assert outcome.outcome == "delivered"
        for record in delivery_records(outcome):
            assert len(record.value) <= 2000, f"{len(record.value)} bytes to {record.topic}: over the claim-check size"
            check = ClaimCheck.from_bytes(record.value)
            assert check.sha256 == sha
            assert store.get(check.key) == data


# --- dedup ------------------------------------------------------------------------------------------------------


def resend(record, n):
    """The same bytes in another input record (a sender's resend, or a second copy in flight)."""
    return dataclasses.replace(record, offset=record.offset + n)


class TestDedup:
    """The create-only write of the accepted original is the dedup check: no read on the happy path."""

    def test_a_resend_is_a_duplicate_with_nothing_to_produce(self, hub, material):
        """The same document in another input record is a duplicate: no records, no events."""
        processor, _ = hub
        record = InboundRecord(SENDER.encode(), signed_edoc(material), offset=10)
        first = processor.process(record)
        assert first.outcome == "delivered"
        again = processor.process(resend(record, 1))
        assert again.outcome == "duplicate"
        assert again.records == ()
        assert again.events == ()
        assert again.ledger_record(LEDGER_KEY) is None
        assert (again.document_id, again.sha256) == (first.document_id, first.sha256)

    def test_a_resend_is_a_duplicate_for_another_processor_on_the_same_store(self, make_processor, material):
        """Dedup lives in the store, not in a worker: a restarted or second worker answers DUPLICATE too."""
        first_worker, store = make_processor()
        record = InboundRecord(SENDER.encode(), signed_edoc(material), offset=20)
        assert first_worker.process(record).outcome == "delivered"
        second_worker, _ = make_processor()
        second_worker._store = store
        assert second_worker.process(resend(record, 1)).outcome == "duplicate"

    def test_a_replay_of_the_same_input_record_is_processed_again_with_its_first_time(self, make_processor, material):
        """The same input record again (a crash before its commit) is processed again, with the first received-at."""
        times = iter([RECEIVED_AT, RECEIVED_AT + timedelta(minutes=5)])
        processor, _ = make_processor()
        processor._clock = lambda: next(times)
        record = InboundRecord(SENDER.encode(), signed_edoc(material), offset=30)
        first = processor.process(record)
        again = processor.process(record)
        assert again.outcome == "delivered"
        assert [(r.topic, r.value, r.headers) for r in again.records if r.topic != status_topic(SENDER)] == [
            (r.topic, r.value, r.headers) for r in first.records if r.topic != status_topic(SENDER)
        ]
        assert again.events[0] == first.events[0]  # received at the first attempt's time
        delivered = [e for e in first.events if e.kind is EventKind.DELIVERED]
        assert delivered == [e for e in again.events if e.kind is EventKind.DELIVERED]

    def test_same_document_id_with_other_bytes_is_not_a_duplicate(self, hub, material):
        """Dedup is on DocumentId and content: other bytes under the same DocumentId are processed."""
        processor, _ = hub
        first = processor.process(InboundRecord(SENDER.encode(), signed_edoc(material), offset=40))
        other = signed_edoc(material, subject="V/v một nội dung khác")
        outcome = processor.process(InboundRecord(SENDER.encode(), other, offset=41))
        assert outcome.document_id == first.document_id
        assert outcome.outcome == "delivered"

    def test_a_rejected_document_is_judged_again_when_resent(self, hub, material):
        """A refusal never marks the document delivered: the same bytes are judged again next time."""
        processor, store = hub
        data = sign_document(
            build_document(example_edoc(sender=SENDER, recipients=(A,), number=7, day=NOW.date())), material.unpinned
        )
        record = InboundRecord(SENDER.encode(), data, offset=50)
        first = processor.process(record)
        assert first.outcome == "rejected"
        assert store.exists(original_key(first.sha256))  # the refused original is evidence
        assert not store.exists(document_key(first.document_id, first.sha256))
        assert processor.process(resend(record, 1)).outcome == "rejected"

    def test_a_delivered_document_resent_is_a_duplicate_even_if_it_would_now_be_refused(self, make_processor, material):
        """Once delivered, a resend is DUPLICATE (as before verification moved ahead of the dedup write)."""
        processor, store = make_processor()
        record = InboundRecord(SENDER.encode(), signed_edoc(material, recipients=(A,)), offset=60)
        assert processor.process(record).outcome == "delivered"
        later, _ = make_processor()
        later._store = store
        later._directory = Directory  # nobody is known any more: the sender would be UNKNOWN_SENDER
        assert later.process(resend(record, 1)).outcome == "duplicate"

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(copies=st.integers(2, 6), offset=st.integers(0, 10**6))
    def test_copies_at_once_on_several_workers_deliver_once(self, make_processor, material, copies, offset):
        """Any number of copies of one document, processed concurrently by workers sharing a store: one delivers."""
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only this test runs threads

        _, store = make_processor()
        workers = []
        for _ in range(copies):
            worker, _ = make_processor()
            worker._store = store
            workers.append(worker)
        data = signed_edoc(material, number=1000 + offset % 1000)
        records = [InboundRecord(SENDER.encode(), data, offset=offset + n) for n in range(copies)]
        with ThreadPoolExecutor(copies) as pool:
            outcomes = list(pool.map(lambda wr: wr[0].process(wr[1]), zip(workers, records, strict=True)))
        assert sorted(o.outcome for o in outcomes) == ["delivered"] + ["duplicate"] * (copies - 1)


# --- statuses and revocations -----------------------------------------------------------------------------------


class TestStatusesAndRevocations:
    """Recipients' statuses flow back to the sender; revocations reach the original recipients."""

    def test_recipient_status_is_relayed_to_the_original_sender(self, hub, material):
        """A recipient's status 03 goes, byte for byte, to lienthong.status.<original sender>."""
        processor, _ = hub
        document = signed_edoc(material, recipients=(A, B))
        assert processor.process(InboundRecord(SENDER.encode(), document)).outcome == "delivered"
        status = demo_status(material, document, by=A, code="03")
        outcome = processor.process(InboundRecord(A.encode(), status))
        assert outcome.outcome == "relayed", outcome.problems
        assert outcome.sender == A
        assert outcome.recipients == (SENDER,)
        assert [r.topic for r in outcome.records] == [status_topic(SENDER)]
        record = outcome.records[0]
        assert record.value == status
        headers = dict(record.headers)
        assert headers[H_SHA256] == hashlib.sha256(status).hexdigest().encode()
        assert headers[H_INDICATION] == b"TOTAL_PASSED"
        assert [e.kind for e in outcome.events][-1] is EventKind.STATUS_RELAYED

    def test_relayed_status_is_deduplicated_like_a_document(self, hub, material):
        """The same status in another input record is a duplicate."""
        processor, _ = hub
        document = signed_edoc(material, recipients=(A,))
        assert processor.process(InboundRecord(SENDER.encode(), document)).outcome == "delivered"
        status = demo_status(material, document, by=A, code="05")
        first = processor.process(InboundRecord(A.encode(), status, offset=1))
        assert first.outcome == "relayed"
        assert processor.process(InboundRecord(A.encode(), status, offset=2)).outcome == "duplicate"

    def test_every_recipient_status_code_is_relayed(self, hub, material):
        """Statuses 01–06, 15 and 16 from a recipient are all relayed to the original sender."""
        processor, _ = hub
        document = signed_edoc(material, recipients=(B,))
        assert processor.process(InboundRecord(SENDER.encode(), document)).outcome == "delivered"
        for code in ("01", "02", "03", "04", "05", "06", "15", "16"):
            outcome = processor.process(InboundRecord(B.encode(), demo_status(material, document, by=B, code=code)))
            assert outcome.outcome == "relayed", (code, outcome.reason, outcome.problems)
            assert [r.topic for r in outcome.records] == [status_topic(SENDER)]

    def test_recall_request_from_the_sender_reaches_every_recipient(self, hub, material):
        """A 13 from the document's sender goes to each agency it was delivered to (the axis too), not to itself."""
        processor, _ = hub
        document = signed_edoc(material, recipients=(A, B, AXIS_AGENCY))
        assert processor.process(InboundRecord(SENDER.encode(), document)).outcome == "delivered"
        recall = demo_status(material, document, by=SENDER, code="13")
        outcome = processor.process(InboundRecord(SENDER.encode(), recall))
        assert outcome.outcome == "relayed", outcome.problems
        assert set(outcome.recipients) == {A, B, AXIS_AGENCY}
        assert sorted(r.topic for r in outcome.records) == sorted([status_topic(A), status_topic(B), AXIS_OUTBOUND])
        assert all(r.value == recall for r in outcome.records)

    def test_status_from_an_agency_the_axis_delivered_to_reaches_the_axis(self, hub, material):
        """A document pulled from the axis is archived like any other: its recipient's 03 goes back to the axis."""
        processor, _ = hub
        document = signed_edoc(material, sender=AXIS_AGENCY, recipients=(A,))
        assert processor.process(InboundRecord(AXIS_AGENCY.encode(), document)).outcome == "delivered"
        outcome = processor.process(InboundRecord(A.encode(), demo_status(material, document, by=A, code="03")))
        assert outcome.outcome == "relayed", outcome.problems
        assert [r.topic for r in outcome.records] == [AXIS_OUTBOUND]

    @pytest.mark.parametrize(
        ("by", "code", "named"),
        [
            (C, "03", f"{C} did not receive"),
            (A, "13", "only the sender of"),
            (SENDER, "15", f"{SENDER} did not receive"),
        ],
        ids=["stranger-03", "recipient-13", "sender-15"],
    )
    def test_status_not_allowed_is_refused_with_a_status_02(self, hub, material, by, code, named):
        """A status from a stranger, a 13 from a recipient or a 15 from the sender: refused, the sender told why."""
        processor, _ = hub
        document = signed_edoc(material, recipients=(A, B))
        delivered = processor.process(InboundRecord(SENDER.encode(), document))
        outcome = processor.process(InboundRecord(by.encode(), demo_status(material, document, by=by, code=code)))
        assert (outcome.outcome, outcome.reason) == ("rejected", "STATUS_NOT_ALLOWED")
        assert [r.topic for r in outcome.records] == [DEADLETTER, status_topic(by)]
        error = dict(outcome.records[0].headers)[H_ERROR].decode()
        assert named in error
        assert delivered.document_id in error
        answer = parse(outcome.records[1].value).message
        assert answer.status_code == "02"
        assert "STATUS_NOT_ALLOWED" in answer.description
        assert named in answer.description

    def test_status_about_a_document_never_handled_is_refused(self, hub, material):
        """A status, or a recall, about a document this hub never delivered is refused STATUS_NOT_ALLOWED."""
        processor, _ = hub
        document = signed_edoc(material, recipients=(A,), number=903)
        for by, code in ((A, "03"), (SENDER, "13")):
            outcome = processor.process(InboundRecord(by.encode(), demo_status(material, document, by=by, code=code)))
            assert (outcome.outcome, outcome.reason) == ("rejected", "STATUS_NOT_ALLOWED"), code
            assert delivery_records(outcome) == []
            assert [r.topic for r in outcome.records if r.topic.startswith("lienthong.status.")] == [status_topic(by)]

    def test_status_naming_another_sender_is_refused(self, hub, material):
        """A recipient cannot send its status to a third agency by naming it in ResponseFor/OrganId."""
        processor, _ = hub
        document = signed_edoc(material, recipients=(A,))
        assert processor.process(InboundRecord(SENDER.encode(), document)).outcome == "delivered"
        status = parse(demo_status(material, document, by=A, code="03")).message
        misdirected = dataclasses.replace(status, response_for=dataclasses.replace(status.response_for, organ_id=B))
        forged = sign_document(build_status(misdirected), material.keys[A], chain=material.chains[A])
        outcome = processor.process(InboundRecord(A.encode(), forged))
        assert (outcome.outcome, outcome.reason) == ("rejected", "STATUS_NOT_ALLOWED")
        assert status_topic(B) not in {r.topic for r in outcome.records}

    def test_revocation_reaches_the_original_recipients(self, hub, material):
        """A revocation (BussinessDocType 1) naming only A in To still reaches B, who received the original."""
        processor, _ = hub
        original = processor.process(InboundRecord(SENDER.encode(), signed_edoc(material, recipients=(A, B))))
        assert original.outcome == "delivered"
        revocation = signed_edoc(material, recipients=(A,), business_doc_type=1)
        message = parse(revocation).message
        assert message.business.bussiness_doc_type == 1
        assert message.business.document_id == original.document_id
        outcome = processor.process(InboundRecord(SENDER.encode(), revocation))
        assert outcome.outcome == "delivered", outcome.problems
        assert set(outcome.recipients) == {A, B}
        assert {r.topic for r in delivery_records(outcome)} == {inbox_topic(A), inbox_topic(B)}
        assert all(r.value == revocation for r in delivery_records(outcome))

    def test_revocation_without_a_known_original_goes_to_its_to_list(self, hub, material):
        """A revocation of a document the hub never delivered reaches only the agencies in its To."""
        processor, _ = hub
        revocation = signed_edoc(material, recipients=(A,), business_doc_type=1, number=901)
        outcome = processor.process(InboundRecord(SENDER.encode(), revocation))
        assert outcome.recipients == (A,)

    def test_revocation_naming_another_senders_document_does_not_reach_its_recipients(self, hub, material):
        """Agency C cannot pull another sender's recipients (B) into its "revocation" of that sender's document."""
        processor, _ = hub
        original = processor.process(InboundRecord(SENDER.encode(), signed_edoc(material, recipients=(A, B))))
        edoc = example_edoc(sender=C, recipients=(A,), number=77, notation="LT-X", day=NOW.date(), business_doc_type=1)
        edoc = dataclasses.replace(edoc, business=dataclasses.replace(edoc.business, document_id=original.document_id))
        forged = sign_document(build_document(edoc), material.keys[C])
        outcome = processor.process(InboundRecord(C.encode(), forged))
        assert outcome.outcome == "delivered"
        assert inbox_topic(B) not in {r.topic for r in outcome.records}
        status = parse(by_topic(outcome, status_topic(C))[0].value).message
        assert B not in status.description  # nor learns who received it


# --- from the national axis -------------------------------------------------------------------------------------


def from_axis(data, offset=1):
    """A work-lane record as the intake makes it from lienthong.axis.inbound: no key, the axis origin header."""
    return InboundRecord(None, data, headers=((H_ORIGIN, ORIGIN_AXIS),), offset=offset)


class TestAxisOrigin:
    """Documents the connector pulled from the national axis, and the 01 for documents queued for it."""

    def test_axis_recipients_are_told_queued_and_local_ones_delivered(self, hub, material):
        """The routing-time 01 says the local recipient has it and the axis recipient waits for the national axis."""
        processor, _ = hub
        outcome = processor.process(InboundRecord(SENDER.encode(), signed_edoc(material, recipients=(A, AXIS_AGENCY))))
        status = parse(by_topic(outcome, status_topic(SENDER))[0].value).message
        assert status.status_code == "01"
        assert status.description.startswith(f"Hub lienthong đã nhận và chuyển tới: {A};")
        assert f"đang chờ gửi lên Trục liên thông văn bản quốc gia tới: {AXIS_AGENCY}" in status.description

    def test_document_from_the_axis_reaches_local_recipients_only_without_a_hub_01(self, hub, material):
        """From an axis agency (pins kept): delivered to the local recipient; never back to the axis; no hub 01."""
        processor, _ = hub
        document = signed_edoc(material, sender=AXIS_AGENCY, recipients=(A, AXIS_AGENCY, NOT_IN_DIRECTORY))
        outcome = processor.process(from_axis(document))
        assert outcome.outcome == "delivered", outcome.problems
        assert [(r.topic, r.value) for r in outcome.records] == [(inbox_topic(A), document)]

    def test_axis_document_claiming_a_local_sender_is_refused_without_any_status(self, hub, material):
        """From/OrganId of a local agency through the axis: SENDER_MISMATCH, a dead letter, no status to anyone."""
        processor, _ = hub
        outcome = processor.process(from_axis(signed_edoc(material, sender=SENDER, recipients=(A,))))
        assert (outcome.outcome, outcome.reason) == ("rejected", "SENDER_MISMATCH")
        assert [r.topic for r in outcome.records] == [DEADLETTER]

    def test_axis_document_with_a_bad_signature_gets_its_02_back_through_the_axis(self, hub, material):
        """A refused axis document's 02 goes to lienthong.axis.outbound, keyed by its sender, sealed by the hub."""
        processor, _ = hub
        document = signed_edoc(material, sender=AXIS_AGENCY, recipients=(A,)).replace(b"V/v ", b"V/V ", 1)
        outcome = processor.process(from_axis(document))
        assert (outcome.outcome, outcome.reason) == ("rejected", "HASH_FAILURE")
        assert [r.topic for r in outcome.records] == [DEADLETTER, AXIS_OUTBOUND]
        answer = outcome.records[1]
        assert answer.key == AXIS_AGENCY.encode()
        status = parse(answer.value).message
        assert (status.status_code, status.response_for.organ_id) == ("02", AXIS_AGENCY)

    def test_unknown_axis_sender_signing_with_a_certificate_naming_another_agency_is_refused(self, hub, material):
        """No pin for an unlisted axis sender, but a certificate that names another OrganId: CERT_ORGAN_MISMATCH."""
        processor, _ = hub
        edoc = example_edoc(sender=NOT_IN_DIRECTORY, recipients=(A,), number=78, notation="LT-TEST", day=NOW.date())
        outcome = processor.process(from_axis(sign_document(build_document(edoc), material.keys[AXIS_AGENCY])))
        assert (outcome.outcome, outcome.reason) == ("rejected", "CERT_ORGAN_MISMATCH")
        assert [r.topic for r in outcome.records] == [DEADLETTER, AXIS_OUTBOUND]

    def test_unknown_axis_sender_needs_a_chain_not_a_pin(self, hub, material):
        """Not in the directory and signed by a key the anchors do not reach: refused on the chain, not the pin."""
        processor, _ = hub
        edoc = example_edoc(sender=NOT_IN_DIRECTORY, recipients=(A,), number=77, notation="LT-TEST", day=NOW.date())
        outcome = processor.process(from_axis(sign_document(build_document(edoc), material.impostor)))
        assert (outcome.outcome, outcome.reason) == ("rejected", "NO_CERTIFICATE_CHAIN_FOUND")
        error = dict(outcome.records[0].headers)[H_ERROR].decode()
        assert "not listed in the directory" not in error


# --- edXML as the field writes it -------------------------------------------------------------------------------

RANDOM_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
FIELD_DAY = re.compile(rb"<edXML:PromulgationDate>\d{4}/\d{2}/\d{2}</edXML:PromulgationDate>")


def signed_with_random_id(material, number=950):
    """A signed document whose DocumentId is a random UUID, as DMS libraries left to their defaults write it."""
    edoc = example_edoc(sender=SENDER, recipients=(A, B), number=number, notation="LT-TEST", day=NOW.date())
    return sign_document(build_document(dataclasses.replace(edoc, document_id=RANDOM_ID)), material.keys[SENDER])


class TestFieldEdxml:
    """Routing and dedup never depend on a well-formed DocumentId; strict_edxml refuses field quirks."""

    def test_a_uuid_document_id_is_routed_and_deduplicated(self, hub, material):
        """A document with a UUID DocumentId reaches its recipients, is filed under it, and a resend is a duplicate."""
        processor, store = hub
        data = signed_with_random_id(material)
        record = InboundRecord(SENDER.encode(), data, offset=30)
        outcome = processor.process(record)
        assert outcome.outcome == "delivered", outcome.problems
        assert (outcome.document_id, set(outcome.recipients)) == (RANDOM_ID, {A, B})
        assert [w.code for w in outcome.warnings] == ["UUID_DOCUMENT_ID"]  # counted per agency by the worker
        assert all(dict(r.headers)[H_DOC_ID] == RANDOM_ID.encode() for r in delivery_records(outcome))
        assert store.get(document_key(RANDOM_ID, hashlib.sha256(data).hexdigest())) == data
        assert processor.process(resend(record, 1)).outcome == "duplicate"

    def test_strict_edxml_refuses_a_uuid_document_id(self, make_processor, material):
        """With strict_edxml, the same document is refused, naming the DocumentId and the quirk, with a status 02."""
        processor, _ = make_processor(strict_edxml=True)
        outcome = processor.process(InboundRecord(SENDER.encode(), signed_with_random_id(material)))
        assert (outcome.outcome, outcome.reason) == ("rejected", "INVALID_EDXML")
        assert [(p.path, p.code) for p in outcome.problems] == [
            ("/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DocumentId", "UUID_DOCUMENT_ID")
        ]
        status = parse(by_topic(outcome, status_topic(SENDER))[0].value).message
        assert status.status_code == "02"

    def test_strict_edxml_is_a_setting(self, tmp_path):
        """strict_edxml is off by default and read from the settings file or LIENTHONG_STRICT_EDXML."""
        assert HubSettings().strict_edxml is False
        assert HubSettings.load(env={"LIENTHONG_STRICT_EDXML": "true"}).strict_edxml is True
        (tmp_path / "settings.yaml").write_text("strict_edxml: true\n", encoding="utf-8")
        assert HubSettings.load(tmp_path / "settings.yaml", env={}).strict_edxml is True

    def test_hub_statuses_carry_dates_in_the_field_format(self, delivered, rejected):
        """Every status the hub sends writes dates as yyyy/MM/dd and its time as yyyy/MM/dd HH:mm:ss in Vietnam time."""
        outcomes = [o for _, o in delivered[1]] + [o for _, _, o in rejected]
        statuses = [r.value for o in outcomes for r in o.records if r.topic.startswith("lienthong.status.")]
        timestamp = f"<edXML:Timestamp>{RECEIVED_AT.astimezone(VIETNAM_TZ):%Y/%m/%d %H:%M:%S}</edXML:Timestamp>"
        assert statuses
        for status in statuses:
            assert FIELD_DAY.search(status), status
            assert timestamp.encode() in status, status


# --- lanes ------------------------------------------------------------------------------------------------------


class TestLanes:
    """Urgent documents (Priority 3–4, hỏa tốc) take their own lane."""

    @pytest.mark.parametrize(
        ("priority", "lane"),
        [(0, WORK_BULK), (1, WORK_BULK), (2, WORK_BULK), (3, WORK_URGENT), (4, WORK_URGENT)],
    )
    def test_priority_picks_the_lane(self, hub, material, priority, lane):
        """Priority 3 and 4 go to lienthong.work.urgent, 0–2 to lienthong.work.bulk."""
        processor, _ = hub
        data = signed_edoc(material, priority=priority)
        assert processor.lane(InboundRecord(SENDER.encode(), data)) == lane

    def test_urgent_threshold_is_three(self):
        """The urgent lane starts at Priority 3."""
        assert DEFAULT_URGENT_PRIORITY == 3

    def test_demo_stream_lanes_follow_priority(self, hub, demo_stream):
        """Every valid demo document takes the lane its Priority asks for."""
        processor, _ = hub
        for document in demo_stream:
            if document.expect != "delivered":
                continue
            expected = WORK_URGENT if document.priority >= 3 else WORK_BULK
            assert processor.lane(InboundRecord(document.sender.encode(), document.data)) == expected

    @pytest.mark.parametrize("value", [b"", None, b"\x00garbage\xff", b"<html/>", CLAIM_CHECK_MAGIC + b"nonsense"])
    def test_unreadable_records_go_bulk(self, hub, value):
        """Anything unreadable goes to the bulk lane (and is refused there)."""
        processor, _ = hub
        assert processor.lane(InboundRecord(SENDER.encode(), value)) == WORK_BULK

    def test_statuses_go_bulk(self, hub, material):
        """Status messages have no Priority: bulk lane."""
        processor, _ = hub
        status = demo_status(material, signed_edoc(material, priority=4), by=A)
        assert processor.lane(InboundRecord(A.encode(), status)) == WORK_BULK

    def test_urgent_claim_check_goes_urgent(self, hub, material):
        """An urgent document sent as a claim check is read from the store and takes the urgent lane."""
        processor, store = hub
        data = signed_edoc(material, priority=3)
        sha = hashlib.sha256(data).hexdigest()
        store.put(f"claims/{sha}", data)
        check = ClaimCheck(f"claims/{sha}", sha, len(data)).to_bytes()
        assert processor.lane(InboundRecord(SENDER.encode(), check)) == WORK_URGENT


# --- any bytes at all -------------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)
_CLAIM_BODY = st.one_of(
    st.fixed_dictionaries({"key": _JSON, "sha256": _JSON, "size": _JSON}),
    st.fixed_dictionaries(
        {
            "key": st.text(max_size=20),
            "sha256": st.binary(min_size=32, max_size=32).map(bytes.hex),
            "size": st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.none()),
        }
    ),
    _JSON,
)
_EDXML_START = (
    b'<?xml version="1.0" encoding="UTF-8"?><edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
)
VALUES = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=200).map(lambda b: CLAIM_CHECK_MAGIC + b),
    _CLAIM_BODY.map(lambda body: json.dumps({"lienthong-claim-check": body}).encode()),
    _CLAIM_BODY.map(lambda body: json.dumps({"lienthong-claim-check": body}, separators=(",", ":")).encode()),
    st.binary(max_size=200).map(lambda b: _EDXML_START + b),
    st.text(max_size=200).map(lambda t: ("<?xml version='1.0'?>" + t).encode()),
    st.none(),
)
KEYS = st.one_of(
    st.none(),
    st.binary(max_size=30),
    st.sampled_from([*DEMO_AGENCIES, REVOKED_AGENCY]).map(str.encode),
    st.text(max_size=20).map(str.encode),
)


class TestAnyInput:
    """Whatever a record holds, the processor answers with an Outcome and a dead letter, never an exception."""

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(key=KEYS, value=VALUES)
    def test_arbitrary_records_are_rejected_with_a_dead_letter(self, hub, key, value):
        """Arbitrary bytes under arbitrary keys: a rejected Outcome whose dead letter carries the original value."""
        processor, _ = hub
        record = InboundRecord(key, value)
        outcome = processor.process(record)
        assert outcome.outcome == "rejected"
        assert outcome.reason
        letters = by_topic(outcome, DEADLETTER)
        assert len(letters) == 1
        assert letters[0].value == (value or b"")
        assert letters[0].key == key
        assert dict(letters[0].headers)[H_REASON] == outcome.reason.encode()
        assert delivery_records(outcome) == []
        assert processor.lane(record) == WORK_BULK

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
    def test_a_document_with_any_byte_changed_is_an_outcome(self, hub, material, position, byte):
        """A signed document with one byte changed gives an Outcome (delivered only if untouched where signed)."""
        processor, _ = hub
        data = bytearray(signed_edoc(material))
        data[position % len(data)] = byte
        outcome = processor.process(InboundRecord(SENDER.encode(), bytes(data)))
        assert outcome.outcome in {"delivered", "rejected"}
        if outcome.outcome == "rejected":
            assert by_topic(outcome, DEADLETTER)[0].value == bytes(data)
        else:
            assert all(r.value == bytes(data) for r in delivery_records(outcome))
            assert isinstance(parse(bytes(data)).message, Edoc)


# --- what a document costs in object-store requests ------------------------------------------------------------


class CountingStore(MemoryObjectStore):
    """The in-memory store, counting requests by kind: writes (put), reads (get/open/stat/exists) and listings."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.reads: list[str] = []
        self.lists: list[str] = []
        self._inside_put = False

    def put(self, key, data, *, metadata=None):
        """Count a write (also a refused one: the server answered a request)."""
        self.writes.append(key)
        self._inside_put = True  # the stand-in's put answers with its own stat; S3's PUT needs no HEAD
        try:
            return super().put(key, data, metadata=metadata)
        finally:
            self._inside_put = False

    def get(self, key):
        """Count a read."""
        self.reads.append(key)
        return super().get(key)

    def stat(self, key):
        """Count a HEAD."""
        if not self._inside_put:
            self.reads.append(key)
        return super().stat(key)

    def exists(self, key):
        """Count a HEAD."""
        self.reads.append(key)
        return super().exists(key)

    def list(self, prefix):
        """Count a listing."""
        self.lists.append(prefix)
        return super().list(prefix)


class TestRequestsPerDocument:
    """Archive, dedup and ledger together cost at most two writes and no read per document on the happy path."""

    def test_happy_path_costs_one_write_and_no_read_per_document_with_the_ledger_amortised(
        self, make_processor, material, seal
    ):
        """90 documents, their ledger records appended as the ledger agent does, one seal: ≤ 2 writes, 0 reads each."""
        processor, _ = make_processor()
        store = CountingStore()
        processor._store = store
        processor._archive._store = store
        documents = [d for d in demo_documents(material, 100) if d.expect == "delivered"]
        outcomes = [
            processor.process(InboundRecord(d.sender.encode(), d.data, topic=WORK_BULK, offset=n))
            for n, d in enumerate(documents)
        ]
        assert all(o.outcome == "delivered" for o in outcomes)
        processing_writes, processing_reads = len(store.writes), len(store.reads)
        ledger = Ledger.open(store)
        for offset, outcome in enumerate(outcomes):  # what hub.app's ledger agent does with one batch
            events, receipts = decode_ledger_record(outcome.ledger_record(LEDGER_KEY).value)
            ledger.append_many(events, receipts=receipts, position=SourcePosition(LEDGER, 0, offset))
        ledger.flush()
        ledger.seal(seal, at=RECEIVED_AT + timedelta(minutes=1))
        n = len(outcomes)
        assert processing_writes == n  # one create-only write of each original, nothing else
        assert processing_reads == 0, store.reads[:3]  # no HEAD, no GET: the write is the dedup check
        assert store.reads == []  # the ledger writer reads nothing either (an empty log: one listing at open)
        assert (len(store.writes) - processing_writes) / n < 0.1  # one segment and one head for the whole batch
        assert len(store.writes) / n <= 2

    def test_a_resend_costs_one_refused_write_and_one_head(self, make_processor, material):
        """A duplicate is one write answered "already there" and one HEAD that finds another input record."""
        processor, _ = make_processor()
        store = CountingStore()
        processor._store = store
        processor._archive._store = store
        record = InboundRecord(SENDER.encode(), signed_edoc(material, recipients=(A,)), offset=1)
        processor.process(record)
        store.writes.clear()
        assert processor.process(dataclasses.replace(record, offset=2)).outcome == "duplicate"
        assert (len(store.writes), len(store.reads)) == (1, 1)
