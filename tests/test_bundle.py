"""Evidence bundles: export, offline verification, every changed byte caught, revocation before receipt."""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.http_clients import request_timestamp
from signer import devpki
from signer.policy import RevocationPolicy, TrustPolicy
from signer.report import SubIndication
from signer.verify import Verifier
from storage.archive import Archive, Receipt
from storage.bundle import BundleError, CheckStatus, _write_zip, export_bundle, verify_bundle
from storage.ledger import Ledger, LogReader, create_seal_identity, verify_log
from storage.objectstore import MemoryObjectStore, original_key
from tests.support.pki_fixtures import FIXED_NOW, REVOKED_AT
from tests.support.signing import policy_for, signed_by

DOC_ID = "000.00.00.G22,2026/05/30,123/QD-UBND"
RECIPIENT = "000.00.00.H41"


@pytest.fixture(scope="module")
def seal_key(tmp_path_factory):
    """The hub's seal identity (valid from a month before the test PKI's fixed instant)."""
    return create_seal_identity(tmp_path_factory.mktemp("seal"), now=FIXED_NOW - timedelta(days=30))


def archived(pki, seal_key, *, document=None, policy=None, reason=None, tsa=None, at=None):
    """A memory store + ledger holding one archived, delivered and sealed document; (store, ledger, record)."""
    document = document if document is not None else signed_by(pki.agency_rsa)
    report = Verifier(policy or policy_for(pki)).verify(document, at=FIXED_NOW)
    store = MemoryObjectStore()
    ledger = Ledger.open(store)
    archive = Archive(store, ledger, clock=lambda: FIXED_NOW + timedelta(seconds=1))
    record = archive.record(
        document, report, sender="000.00.00.G22", doc_id=DOC_ID, received_at=FIXED_NOW, reason=reason
    )
    if report.passed:
        archive.delivered(record.sha256, DOC_ID, RECIPIENT, at=FIXED_NOW + timedelta(seconds=2))
        archive.status_relayed(
            "cd" * 32,
            DOC_ID,
            reporter=RECIPIENT,
            recipient="000.00.00.G22",
            status_code="03",
            at=FIXED_NOW + timedelta(hours=1),
        )
    ledger.seal(seal_key, at=at or FIXED_NOW + timedelta(hours=2), tsa=tsa)
    return store, ledger, record


class Blob(bytes):
    """Bytes that print as their length (Hypothesis prints every argument of a failing example)."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


@pytest.fixture(scope="module")
def bundle(pki, seal_key):
    """One exported bundle (no time-stamp) shared by the tests that only read it."""
    store, ledger, record = archived(pki, seal_key)
    return Blob(export_bundle(store, ledger, record.sha256, seal_key=seal_key, at=FIXED_NOW + timedelta(days=1)))


def anchors(pki, seal_key):
    """What an auditor trusts: the agencies' root and the hub's seal certificate."""
    return [pki.root.cert, seal_key.certificate]


def test_round_trip_reports_every_check(pki, seal_key, bundle):
    """An exported bundle verifies: zip, manifest, seal, head, each event's proof, the story and the signature."""
    report = verify_bundle(bundle, anchors(pki, seal_key))
    assert report.passed, report.to_text()
    assert report.document_id == DOC_ID
    assert report.document_indication == "TOTAL_PASSED"
    whats = [c.what for c in report.checks]
    for expected in (
        "zip layout is exactly what the exporter writes",
        "manifest signature by the hub's seal key",
        "tree head signature",
        "verification report is the one the ledger names",
        "document signature, re-verified at the time the hub received it",
        "the hub's verdict is reproduced",
    ):
        assert expected in whats
    proven = [c.detail for c in report.checks if c.what.startswith("ledger event ") and "signed log" in c.what]
    assert [d.split(" ", 1)[0] for d in proven] == ["received", "verified", "archived", "delivered", "status_relayed"]
    assert [c.status for c in report.checks if c.what == "tree head time-stamp"] == [CheckStatus.WARNING]
    text = report.to_text()
    assert "RESULT: PASSED" in text
    assert "recipient=000.00.00.H41" in text
    assert json.loads(json.dumps(report.to_json()))["passed"] is True


def test_export_by_document_id_is_the_same_bundle(pki, seal_key):
    """DOC may be the DocumentId or the SHA-256: both yield the same files (the ECDSA signature is randomised)."""
    store, ledger, record = archived(pki, seal_key)
    at = FIXED_NOW + timedelta(days=1)
    by_sha = export_bundle(store, ledger, record.sha256, seal_key=seal_key, at=at)
    by_id = export_bundle(store, ledger, DOC_ID, seal_key=seal_key, at=at)
    assert [e for e in _entries(by_sha) if e[0] != "manifest.sig"] == [
        e for e in _entries(by_id) if e[0] != "manifest.sig"
    ]
    names = zipfile.ZipFile(io.BytesIO(by_sha)).namelist()
    assert names[:2] == ["manifest.json", "manifest.sig"]
    assert {"original.xml", "report.json", "events.json", "tree-head.json", "hub-chain.pem"} <= set(names)


@pytest.mark.servers
def test_round_trip_with_a_real_tsa(pki, seal_key, tsa_server):
    """With the openssl TSA, the head's token is in the bundle (and alone as tree-head.tst) and verifies."""

    def tsa(data: bytes) -> bytes:
        return request_timestamp(tsa_server.url, data, anchors=[tsa_server.anchor], timeout=10).token_der

    store, ledger, record = archived(pki, seal_key, tsa=tsa, at=datetime.now(UTC))
    data = export_bundle(store, ledger, record.sha256, seal_key=seal_key)
    assert "tree-head.tst" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    report = verify_bundle(data, anchors(pki, seal_key), tsa_anchors=[tsa_server.anchor])
    assert report.passed, report.to_text()
    stamp = next(c for c in report.checks if c.what.startswith("tree head time-stamp"))
    assert stamp.status is CheckStatus.PASSED
    assert "lienthong Test TSA" in stamp.detail
    untrusted = verify_bundle(data, anchors(pki, seal_key), tsa_anchors=[pki.untrusted_root.cert])
    assert [c.file for c in untrusted.failures] == ["tree-head.tst"]


# --- every changed byte is caught -----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_single_byte_flip_is_caught(pki, seal_key, bundle, data):
    """Flip any byte of the zip to any other value: verification fails (and never raises)."""
    position = data.draw(st.integers(0, len(bundle) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    changed = bytearray(bundle)
    changed[position] ^= mask
    report = verify_bundle(bytes(changed), anchors(pki, seal_key))
    assert not report.passed
    assert report.failures[0].detail


def _entries(bundle_bytes):
    with zipfile.ZipFile(io.BytesIO(bundle_bytes)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_changed_file_in_a_well_formed_zip_is_caught_and_named(pki, seal_key, bundle, data):
    """Change a byte inside any file and re-zip it properly (valid CRCs): the check on that file fails."""
    entries = _entries(bundle)
    index = data.draw(st.integers(0, len(entries) - 1), label="entry")
    name, content = entries[index]
    position = data.draw(st.integers(0, len(content) - 1), label="position")
    changed = bytearray(content)
    changed[position] ^= data.draw(st.integers(1, 255), label="mask")
    entries[index] = (name, bytes(changed))
    report = verify_bundle(_write_zip(entries)[0], anchors(pki, seal_key))
    assert not report.passed
    assert any(name in (c.file or "").split(" + ") for c in report.failures), report.to_text()


def test_the_zip_layout_check_names_the_changed_region(pki, seal_key, bundle):
    """A change zipfile itself ignores (an entry's date) still fails, naming the offset and the entry."""
    changed = bytearray(bundle)
    changed[10] ^= 0x01  # the first local header's modification time
    report = verify_bundle(bytes(changed), anchors(pki, seal_key))
    assert [c.what for c in report.failures] == ["zip layout is exactly what the exporter writes"]
    assert "byte 10 (in the zip header of manifest.json)" in report.failures[0].detail


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all", b"PK\x05\x06" + b"\x00" * 18],
    ids=["empty", "text", "empty-zip"],
)
def test_malformed_input_is_a_failed_check_not_a_traceback(pki, seal_key, data):
    """Empty, random and empty-zip inputs fail the first check with a reason."""
    report = verify_bundle(data, anchors(pki, seal_key))
    assert not report.passed
    assert report.failures
    assert "RESULT: FAILED" in report.to_text()


def test_truncated_bundles_fail(pki, seal_key, bundle):
    """Any truncation fails."""
    for length in (0, 30, len(bundle) // 2, len(bundle) - 1):
        assert not verify_bundle(bundle[:length], anchors(pki, seal_key)).passed


def test_path_traversal_and_zip_bombs_are_refused(pki, seal_key):
    """Entry names with folders or '..' and compressed entries (a 100 MB bomb) are refused before reading."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("../../etc/passwd", b"x")
    report = verify_bundle(out.getvalue(), anchors(pki, seal_key))
    assert "plain, unique file name" in report.failures[0].detail
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("original.xml", b"\0" * (100 * 1024 * 1024))
    assert len(bomb.getvalue()) < 200_000
    started = time.perf_counter()
    report = verify_bundle(bomb.getvalue(), anchors(pki, seal_key))
    assert time.perf_counter() - started < 1.0
    assert "compressed" in report.failures[0].detail
    too_big = verify_bundle(b"x" * 2048, anchors(pki, seal_key), max_bytes=1024)
    assert "more than" in too_big.failures[0].detail


def test_untrusted_hub_certificate_fails_the_seal_checks(pki, seal_key, bundle, tmp_path):
    """With another hub's certificate as anchor, the manifest signature and the tree head are not trusted."""
    other = create_seal_identity(tmp_path, now=FIXED_NOW - timedelta(days=1))
    report = verify_bundle(bundle, [pki.root.cert, other.certificate])
    failed = {c.what for c in report.failures}
    assert {"manifest signature by the hub's seal key", "tree head signature"} <= failed


# --- export refusals ------------------------------------------------------------------------------------------


def test_export_refuses_unknown_unsealed_and_changed_documents(pki, seal_key):
    """Unknown DOC, events not yet sealed, and a stored original that no longer hashes to its name are refused."""
    store, ledger, record = archived(pki, seal_key)
    with pytest.raises(BundleError, match="no events"):
        export_bundle(store, ledger, "ab" * 32, seal_key=seal_key)
    with pytest.raises(BundleError, match="no received document"):
        export_bundle(store, ledger, "000.00.00.G22,2026/01/01,1/X", seal_key=seal_key)
    Archive(store, ledger).delivered(record.sha256, DOC_ID, "000.00.00.X99", at=FIXED_NOW + timedelta(hours=3))
    with pytest.raises(BundleError, match="no signed tree head covering"):
        export_bundle(store, ledger, record.sha256, seal_key=seal_key)
    ledger.seal(seal_key, at=FIXED_NOW + timedelta(hours=4))
    store.tamper(original_key(record.sha256), b"<edXML>changed</edXML>")
    with pytest.raises(BundleError, match="stored original was changed"):
        export_bundle(store, ledger, record.sha256, seal_key=seal_key)


# --- revoked after signing, before receipt --------------------------------------------------------------------


def test_revoked_after_signing_but_before_receipt_fails_with_the_reason(pki, seal_key):
    """Signed at T0, revoked at T1 (CRL from devpki), received at T2 > T1: the bundle fails with REVOKED."""
    signed_at = REVOKED_AT - timedelta(days=30)  # T0
    revoked_at = REVOKED_AT  # T1
    received_at = FIXED_NOW  # T2
    crl = devpki.make_crl(
        pki.ca,
        [(pki.revoked.cert.serial_number, revoked_at)],
        this_update=revoked_at + timedelta(days=1),
        next_update=received_at + timedelta(days=30),
    )
    policy = TrustPolicy(anchors=(pki.root.cert,), crls=(crl, pki.root_crl), revocation=RevocationPolicy.REQUIRE)
    document = signed_by(pki.revoked)
    assert Verifier(policy).verify(document, at=signed_at).passed  # the signature was good when it was made
    store, ledger, record = archived(pki, seal_key, document=document, policy=policy, reason="REVOKED")
    hub_report = Receipt.from_bytes(record.receipt)
    assert hub_report.report is not None
    assert hub_report.report.subindication == SubIndication.REVOKED
    data = export_bundle(store, ledger, DOC_ID, seal_key=seal_key, at=received_at + timedelta(days=1))
    report = verify_bundle(data, anchors(pki, seal_key))
    assert not report.passed
    assert report.document_indication == "TOTAL_FAILED/REVOKED"
    (failure,) = report.failures
    assert failure.what == "document signature, re-verified at the time the hub received it"
    assert "REVOKED" in failure.detail
    assert f"revoked on {revoked_at.isoformat()}" in failure.detail
    reproduced = next(c for c in report.checks if c.what == "the hub's verdict is reproduced")
    assert reproduced.status is CheckStatus.PASSED
    assert "TOTAL_FAILED/REVOKED" in report.to_text()


# --- only the anchors are needed ------------------------------------------------------------------------------


def test_a_bundle_verifies_with_only_the_trust_anchors(pki, seal_key, bundle, tmp_path):
    """`lienthong audit verify` in a clean process, env and folder holding only the bundle and two PEMs: exit 0."""
    (tmp_path / "bundle.zip").write_bytes(bundle)
    (tmp_path / "root.pem").write_bytes(pki.root.cert_pem())
    (tmp_path / "hub-cert.pem").write_bytes(seal_key.certificate.public_bytes(serialization.Encoding.PEM))
    command = [sys.executable, "-I", "-m", "hub", "audit", "verify", "bundle.zip"]
    command += ["--trust", "root.pem", "--trust", "hub-cert.pem", "--json"]
    done = subprocess.run(command, cwd=tmp_path, env={}, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    result = json.loads(done.stdout)
    assert result["passed"] is True
    assert result["file"] == "bundle.zip"
    without_hub = subprocess.run(
        [*command[:7], "--trust", "root.pem"], cwd=tmp_path, env={}, capture_output=True, timeout=120, check=False
    )
    assert without_hub.returncode == 1
    assert b"FAILED" in without_hub.stdout


def test_bundle_verification_is_fast(pki, seal_key, bundle):
    """Verifying a bundle takes well under 100 ms (median of five)."""
    trusted = anchors(pki, seal_key)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert verify_bundle(bundle, trusted).passed
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.1


def test_every_position_flipped_once_is_caught(pki, seal_key, bundle):
    """Exhaustively: inverting the low bit of each byte, one position at a time, always fails verification."""
    trusted = anchors(pki, seal_key)
    changed = bytearray(bundle)
    for position in range(len(bundle)):
        changed[position] ^= 0x01
        assert not verify_bundle(bytes(changed), trusted).passed, position
        changed[position] ^= 0x01


def test_export_refuses_a_receipt_changed_in_its_segment(pki, seal_key):
    """A receipt line changed in its segment is no longer the one the ledger names: no bundle is made of it."""
    store, ledger, record = archived(pki, seal_key)
    (key,) = store.list("ledger/segments/")
    store.tamper(key, store.get(key).replace(record.receipt, json.dumps({"indication": "TOTAL_PASSED"}).encode()))
    with pytest.raises(BundleError, match="receipt the ledger names"):
        export_bundle(store, ledger, record.sha256, seal_key=seal_key)
    problem = verify_log(store, [seal_key.certificate]).problem
    assert problem is not None
    assert problem.where == f"{key} receipt 1"


def test_a_receipt_too_large_for_the_ledger_record_is_stored_apart_and_still_exported(pki, seal_key):
    """A receipt above the inline limit goes to receipts/<its SHA-256>.json; the bundle finds and verifies it."""
    document = signed_by(pki.agency_rsa)
    report = Verifier(policy_for(pki)).verify(document, at=FIXED_NOW)
    store = MemoryObjectStore()
    ledger = Ledger.open(store)
    archive = Archive(store, ledger, clock=lambda: FIXED_NOW + timedelta(seconds=1))
    record = archive.store(document, report, sender="000.00.00.G22", doc_id=DOC_ID, received_at=FIXED_NOW)
    assert archive.carried_receipts(record, max_inline=100) == ()
    ledger.append_many(record.events)
    ledger.seal(seal_key, at=FIXED_NOW + timedelta(hours=2))
    assert store.get(f"receipts/{record.receipt_sha256}.json") == record.receipt
    data = export_bundle(store, ledger, record.sha256, seal_key=seal_key, at=FIXED_NOW + timedelta(days=1))
    assert verify_bundle(data, anchors(pki, seal_key)).passed
    assert verify_log(store, [seal_key.certificate]).ok


def test_export_reads_a_log_written_before_receipts_were_in_segments(pki, seal_key):
    """Old data: v1 segments (events only) with the receipt at reports/<sha256>.json still export and verify."""
    store, ledger, record = archived(pki, seal_key)
    old = MemoryObjectStore()
    for key in store.list(""):
        data = store.get(key)
        if key.startswith("ledger/segments/"):
            count = int(key.rsplit("-", 1)[1].removesuffix(".jsonl"))
            data = b"".join(line + b"\n" for line in data.split(b"\n")[:count])
        old.put(key, data)
    old.put(f"reports/{record.sha256}.json", record.receipt)
    data = export_bundle(old, LogReader.open(old), record.sha256, seal_key=seal_key, at=FIXED_NOW + timedelta(days=1))
    assert verify_bundle(data, anchors(pki, seal_key)).passed
    assert verify_log(old, [seal_key.certificate]).ok
    assert Ledger.open(old).root() == ledger.root()  # a writer rebuilds its frontier from v1 segments
    old.put(f"reports/{'00' * 32}.json", b"{}")  # and a v1 receipt that is not one is refused
    old.tamper(f"reports/{record.sha256}.json", json.dumps({"indication": "TOTAL_PASSED"}).encode())
    with pytest.raises(BundleError, match="not one written by"):
        export_bundle(old, LogReader.open(old), record.sha256, seal_key=seal_key)
