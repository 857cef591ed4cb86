"""Signed PDFs inside edXML documents: their verdicts in the report, the receipt and the bundle, under both policies.

Six PDFs signed in the test (tests/support/pdfs.py): valid, altered after signing, signed by an untrusted or a revoked
certificate, a signature covering only part of the file, and no signature. They are judged by ``signer.verify`` (test
PKI, FIXED_NOW), by the hub's processor (demo PKI, no servers: the hold for missing revocation data), and by one
running hub, first under ``pdf_signatures: report`` and then, its worker restarted on a changed settings file, under
``require``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import yaml

from adapters.dms import HubClient
from hub.app import build_policy
from hub.cli import main
from hub.commands.verify import PDFS_STREAMED
from hub.demo import create_demo_material
from hub.directory import load_directory
from hub.hold import Hold
from hub.process import DocumentProcessor
from hub.records import DEADLETTER, H_REASON, H_SHA256, WORK_RETRY, ClaimCheck, InboundRecord
from hub.settings import HubSettings, write_private
from schemas import build_document, parse
from schemas.examples import example_edoc
from schemas.model import Attachment, Edoc, ManifestReference, StatusMessage
from signer import devpki
from signer.keys import PemKey
from signer.pdf import (
    PDF_SIGNATURE_INVALID,
    PDF_SIGNATURE_MISSING,
    PDF_SIGNATURE_UNCHECKED,
    PdfPolicy,
    PdfVerifier,
    pdf_policy_problem,
)
from signer.policy import TrustPolicy
from signer.report import Indication, SubIndication
from signer.sign import sign_document
from signer.verify import Verifier
from storage.archive import Archive, Receipt
from storage.ledger import create_seal_identity
from storage.objectstore import MemoryObjectStore, ObjectInfo
from tests.support.hub_fixtures import Outputs, Stack, start_stack
from tests.support.pdfs import TEXT, minimal_pdf, sign_pdf, with_gap
from tests.support.pki_fixtures import FIXED_NOW, TestPki
from tests.support.signing import key_of, organ_of, policy_for

NAME = "cong-van.pdf"
CASES = ("valid", "altered", "untrusted", "revoked", "partial", "unsigned")
#: (indication, subindication, the reason code under ``require``) of each PDF.
EXPECTED: dict[str, tuple[Indication | None, SubIndication | None, str | None]] = {
    "valid": (Indication.TOTAL_PASSED, None, None),
    "altered": (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, PDF_SIGNATURE_INVALID),
    "untrusted": (Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND, PDF_SIGNATURE_INVALID),
    "revoked": (Indication.TOTAL_FAILED, SubIndication.REVOKED, PDF_SIGNATURE_INVALID),
    "partial": (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE, PDF_SIGNATURE_INVALID),
    "unsigned": (None, None, PDF_SIGNATURE_MISSING),
}
# The running hub: a local agency sends to another; the demo's revoked agency and impostor sign the bad PDFs.
SENDER = "000.01.00.H41"
RECIPIENT = "000.00.00.H41"
PDF_SIGNER = "000.02.00.H41"
REVOKED_AGENCY = "000.09.00.H41"


def pdf_set(good: devpki.Issued, untrusted: devpki.Issued, revoked: devpki.Issued) -> dict[str, bytes]:
    """The six PDFs of CASES, signed with the given certificates."""
    plain = minimal_pdf()
    valid = sign_pdf(plain, good)
    return {
        "valid": valid,
        "altered": valid.replace(b"(" + TEXT + b")", b"(Cong van so 124)"),
        "untrusted": sign_pdf(plain, untrusted),
        "revoked": sign_pdf(plain, revoked),
        "partial": with_gap(valid, good),
        "unsigned": plain,
    }


def edoc_with_pdf(pdf: bytes, *, sender: str, **kwargs: Any) -> Edoc:
    """A công văn from ``sender`` whose one attachment (in the manifest too) is ``pdf``."""
    edoc = example_edoc(sender=sender, **kwargs)
    return dataclasses.replace(
        edoc,
        attachments=(Attachment("1", NAME, "application/pdf", pdf, "Văn bản gốc"),),
        manifest=(ManifestReference("cid:1", "application/pdf", "Văn bản gốc", NAME),),
    )


def _check_pdf_verdict(pdf_json: dict[str, Any], case: str) -> None:
    indication, sub, _ = EXPECTED[case]
    assert pdf_json["name"] == NAME
    assert pdf_json["indication"] == (indication.value if indication else None)
    assert pdf_json["subindication"] == (sub.value if sub else None)
    if case != "unsigned":
        (signature,) = pdf_json["signatures"]
        assert signature["signer"]["subject"]
        assert signature["coverage"] == ("partial" if case == "partial" else "entire_file")
        assert signature["claimed_signing_time"]


# --- signer.verify: the report ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_pki_pdfs(pki: TestPki) -> dict[str, bytes]:
    """The six PDFs, signed with the test PKI."""
    return pdf_set(pki.agency_rsa, pki.untrusted_leaf, pki.revoked)


@pytest.fixture(scope="module")
def test_pki_verifier(pki: TestPki) -> Verifier:
    """One verifier for the module, as the hub keeps one."""
    return Verifier(policy_for(pki), clock=lambda: FIXED_NOW)


@pytest.mark.parametrize("case", CASES)
def test_each_pdf_verdict_is_in_the_verification_report(
    pki: TestPki, test_pki_pdfs: dict[str, bytes], test_pki_verifier: Verifier, case: str
) -> None:
    """The XML signature passes; the report names the PDF's own verdict, and require's reason follows from it."""
    data = sign_document(
        build_document(edoc_with_pdf(test_pki_pdfs[case], sender=organ_of(pki.agency_rsa))),
        key_of(pki.agency_rsa),
        chain=pki.agency_rsa.chain,
    )
    message = parse(data).message
    assert isinstance(message, Edoc)
    report = test_pki_verifier.verify(data, at=FIXED_NOW, attachments=message.attachments)
    assert report.passed
    assert report.pdfs is not None
    (pdf,) = report.pdfs
    assert (pdf.indication, pdf.subindication) == EXPECTED[case][:2]
    assert pdf.sha256 == hashlib.sha256(test_pki_pdfs[case]).hexdigest()
    _check_pdf_verdict(report.to_json()["pdf_signatures"][0], case)
    assert pdf_policy_problem(report.pdfs, PdfPolicy.REPORT) is None
    found = pdf_policy_problem(report.pdfs, PdfPolicy.REQUIRE)
    assert (found[0] if found else None) == EXPECTED[case][2]
    assert test_pki_verifier.verify(data, at=FIXED_NOW).pdfs is None  # not asked: not checked, and not said to pass


def test_a_document_over_4_mib_parsed_from_bytes_has_its_pdf_checked(pki: TestPki, test_pki_verifier: Verifier) -> None:
    """Above the streaming threshold, parse(bytes) keeps the attachments: the large PDF is checked, not skipped."""
    pdf = sign_pdf(minimal_pdf(padding=3_300_000), pki.agency_rsa)
    edoc = edoc_with_pdf(pdf, sender=organ_of(pki.agency_rsa))
    data = sign_document(build_document(edoc), key_of(pki.agency_rsa), chain=pki.agency_rsa.chain)
    assert len(data) > 4 * 1024 * 1024
    message = parse(data).message
    assert isinstance(message, Edoc)
    report = test_pki_verifier.verify(data, at=FIXED_NOW, attachments=message.attachments)
    assert report.passed
    assert report.pdfs is not None
    assert [(p.size, p.passed) for p in report.pdfs] == [(len(pdf), True)]


def test_receipt_carries_the_pdf_signers_revocation_data_for_an_offline_recheck(
    pki: TestPki, test_pki_pdfs: dict[str, bytes]
) -> None:
    """A PDF signed under another CA: the receipt keeps that CA's CRL, and a re-check from the receipt agrees."""
    window = {"not_before": FIXED_NOW - timedelta(days=30), "not_after": FIXED_NOW + timedelta(days=30)}
    other_ca = devpki.make_ca(pki.root, "Second Issuing CA", **window)
    other_leaf = devpki.make_leaf(other_ca, "So Noi vu", organ_id="000.05.00.H41", **window)
    other_crl = devpki.make_crl(
        other_ca, [], this_update=FIXED_NOW - timedelta(days=1), next_update=window["not_after"]
    )
    policy = policy_for(pki, crls=(pki.crl, pki.root_crl, other_crl), intermediates=(other_ca.cert,))
    edoc = edoc_with_pdf(sign_pdf(minimal_pdf(), other_leaf), sender=organ_of(pki.agency_rsa))
    data = sign_document(build_document(edoc), key_of(pki.agency_rsa), chain=pki.agency_rsa.chain)
    report = Verifier(policy).verify(data, at=FIXED_NOW, attachments=edoc.attachments)
    assert report.pdfs is not None
    assert report.pdfs[0].passed
    stored = Receipt.from_bytes(
        Archive(MemoryObjectStore(), _NoLedger())
        .receipt_for(data, report, sender="000.00.00.G22", doc_id="d", received_at=FIXED_NOW)
        .receipt
    ).report
    assert stored is not None
    assert stored.pdfs == report.pdfs
    crls = stored.crls()
    assert other_crl in crls
    offline = TrustPolicy(anchors=(pki.root.cert,), intermediates=tuple(stored.chain()), crls=tuple(crls))
    again = PdfVerifier(offline).verify_attachments(edoc.attachments, at=FIXED_NOW)
    assert [r.to_json() for r in again] == [r.to_json() for r in report.pdfs]


class _NoLedger:
    """The archive's ledger, unused: only receipts are made here."""

    def append_many(self, events: object, *, receipts: object = ()) -> object:
        """Nothing to append."""
        raise AssertionError(f"not called ({events}, {receipts})")


def test_lienthong_verify_shows_pdf_results_and_says_when_it_streamed(
    pki: TestPki, pki_dir: Path, test_pki_pdfs: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lienthong verify` prints each PDF signature (text and --json); a streamed file says its PDFs went unchecked."""
    key, chain, sender = key_of(pki.agency_rsa), pki.agency_rsa.chain, organ_of(pki.agency_rsa)
    small = tmp_path / "revoked-pdf.xml"
    edoc = edoc_with_pdf(test_pki_pdfs["revoked"], sender=sender)
    small.write_bytes(sign_document(build_document(edoc), key, chain=chain))
    large_edoc = example_edoc(sender=sender, attachment_bytes=3_300_000)  # over 4 MiB once in base64
    large = tmp_path / "large.xml"
    large.write_bytes(sign_document(build_document(large_edoc), key, chain=chain))
    trust = ["--trust", str(pki_dir / "root.pem"), "--crl", str(pki_dir / "crl.pem")]
    trust += ["--crl", str(pki_dir / "root-crl.pem"), "--at", FIXED_NOW.isoformat()]
    assert main(["verify", str(small), *trust]) == 0  # the exit status is the document's signature's
    text = capsys.readouterr().out
    assert f"PDF {NAME}: TOTAL_FAILED/REVOKED" in text
    assert "coverage entire_file" in text
    assert main(["verify", str(small), str(large), *trust, "--json"]) == 0
    small_line, large_line = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    _check_pdf_verdict(small_line["pdf_signatures"][0], "revoked")
    assert large_line["pdf_signatures"] is None
    assert PDFS_STREAMED in large_line["warnings"]


# --- the hub's processor: missing revocation data for a PDF's signer is held ------------------------------------


def test_pdf_signer_without_revocation_data_is_held_under_require(pki: TestPki, pki_dir: Path, tmp_path: Path) -> None:
    """A PDF signer without a current CRL: require holds, then refuses after the deadline; report delivers."""
    now = datetime.now(UTC).replace(microsecond=0)
    material = create_demo_material(tmp_path / "demo", now=now)
    trust = material.trust_dir
    settings = HubSettings(
        data_dir=tmp_path / "data",
        trust=(trust / "root.pem", pki_dir / "root.pem"),  # the test PKI is trusted, its CA's CRL is not given
        intermediates=(trust / "ca.pem",),
        crls=(trust / "ca-crl.pem", trust / "root-crl.pem"),
        directory_file=material.directory_file,
    )
    directory = load_directory(material.directory_file)
    verifier = Verifier(build_policy(settings, directory))
    seal = create_seal_identity(settings.data_dir, now=now)
    edoc = edoc_with_pdf(
        sign_pdf(minimal_pdf(), pki.agency_rsa), sender=SENDER, recipients=(RECIPIENT,), day=now.date()
    )
    data = sign_document(build_document(edoc), material.keys[SENDER])
    outcomes = {}
    for policy in (PdfPolicy.REPORT, PdfPolicy.REQUIRE):  # the last processor (require) is used again below
        processor = DocumentProcessor(
            settings=dataclasses.replace(settings, pdf_signatures=policy),
            store=MemoryObjectStore(),
            verifier=verifier,
            directory=lambda: directory,
            seal=seal,
            clock=lambda: now,
        )
        outcomes[policy] = processor.process(InboundRecord(SENDER.encode(), data))
    # Held since two days: past the default deadline of a day, it is refused, naming the attachment.
    stale = Hold(now - timedelta(days=2), 3, now).record(InboundRecord(SENDER.encode(), data))
    late = processor.process(InboundRecord(stale.key, stale.value, stale.headers, topic=WORK_RETRY))
    assert (late.outcome, late.reason) == ("rejected", "REVOCATION_UNAVAILABLE")
    assert late.problems[0].path == "AttachmentEncoded/Attachment[1]"
    assert "no current revocation data for CN=Van phong Bo A" in late.problems[0].message
    held = outcomes[PdfPolicy.REQUIRE]
    assert (held.outcome, held.reason) == ("held", "REVOCATION_UNAVAILABLE")
    assert [r.topic for r in held.records] == [WORK_RETRY, f"lienthong.status.{SENDER}"]
    assert "held: revocation data for CN=Van phong Bo A" in parse(held.records[1].value).message.description
    assert held.problems[0].path == "AttachmentEncoded/Attachment[1]"
    delivered = outcomes[PdfPolicy.REPORT]
    assert delivered.outcome == "delivered"
    receipt = Receipt.from_bytes(delivered.receipts[0])
    assert receipt.report is not None
    assert receipt.report.pdfs is not None
    assert receipt.report.pdfs[0].subindication is SubIndication.TRY_LATER


class _CountingStore(MemoryObjectStore):
    """A memory store that notes each read of an object (``open`` streams it, ``get`` reads it whole)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, list[str]] = {}
        self._copying = False

    def get(self, key: str) -> bytes:
        if not self._copying:  # the stand-in's copy reads; a real store copies on the server
            self.reads.setdefault(key, []).append("get")
        return super().get(key)

    def copy(self, source: str, key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        self._copying = True
        try:
            return super().copy(source, key, metadata=metadata)
        finally:
            self._copying = False

    def open(self, key: str, *, length: int | None = None) -> BinaryIO:
        self.reads.setdefault(key, []).append("open")
        return io.BytesIO(super().get(key)[:length])


@pytest.mark.parametrize("bound", ["large enough", "too small"])
def test_a_streamed_claim_checked_document_has_its_pdf_checked_up_to_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    """A claim check streamed from the store: its PDF is checked; over the bound, reported unchecked or refused."""
    now = datetime.now(UTC).replace(microsecond=0)
    material = create_demo_material(tmp_path / "demo", now=now)
    trust = material.trust_dir
    settings = HubSettings(
        data_dir=tmp_path / "data",
        trust=(trust / "root.pem",),
        intermediates=(trust / "ca.pem",),
        crls=(trust / "ca-crl.pem", trust / "root-crl.pem"),
        directory_file=material.directory_file,
    )
    directory = load_directory(material.directory_file)
    edoc = edoc_with_pdf(sign_pdf(minimal_pdf(), _issued(material, PDF_SIGNER)), sender=SENDER, day=now.date())
    padding = Attachment("2", "phu-luc.bin", "application/octet-stream", bytes(range(256)) * 5000, "Phụ lục")
    listed = ManifestReference("cid:2", "application/octet-stream", "Phụ lục", "phu-luc.bin")
    edoc = dataclasses.replace(
        edoc,
        recipients=edoc.recipients[:1],
        attachments=(*edoc.attachments, padding),
        manifest=(*edoc.manifest, listed),
    )
    data = sign_document(build_document(edoc), material.keys[SENDER])
    assert len(data) > settings.claim_check_bytes  # so the worker streams it
    if bound == "too small":
        monkeypatch.setattr("hub.process.PDF_CHECK_MAX_DOCUMENT_BYTES", len(data) - 1)
    sha256 = hashlib.sha256(data).hexdigest()
    record = InboundRecord(SENDER.encode(), ClaimCheck(f"claims/{SENDER}/{sha256}", sha256, len(data)).to_bytes())
    outcomes = {}
    for policy in (PdfPolicy.REPORT, PdfPolicy.REQUIRE):  # a store each: the second would be a duplicate
        store = _CountingStore()
        store.put(f"claims/{SENDER}/{sha256}", data)
        processor = DocumentProcessor(
            settings=dataclasses.replace(settings, pdf_signatures=policy),
            store=store,
            verifier=Verifier(build_policy(settings, directory)),
            directory=lambda: directory,
            seal=create_seal_identity(settings.data_dir, now=now),
            clock=lambda: now,
        )
        outcomes[policy] = processor.process(record)
        # Parsing and verifying read the object once, streamed; the PDF check reads it whole once, when it may.
        assert store.reads[f"claims/{SENDER}/{sha256}"] == (["open", "get"] if bound == "large enough" else ["open"])
    reported = Receipt.from_bytes(outcomes[PdfPolicy.REPORT].receipts[0]).report
    assert outcomes[PdfPolicy.REPORT].outcome == "delivered"
    assert reported is not None
    if bound == "large enough":
        assert reported.pdfs is not None
        assert reported.pdfs[0].indication is Indication.TOTAL_PASSED
        assert outcomes[PdfPolicy.REQUIRE].outcome == "delivered"
    else:
        assert reported.pdfs is None  # the receipt's "not checked"
        refused = outcomes[PdfPolicy.REQUIRE]
        assert (refused.outcome, refused.reason) == ("rejected", PDF_SIGNATURE_UNCHECKED)
        assert "PDF signatures are checked in documents up to" in refused.problems[0].message


# --- one running hub, under both policies -------------------------------------------------------------------------


def _issued(material: Any, organ_id: str) -> devpki.Issued:
    key: PemKey = material.impostor if organ_id == "impostor" else material.keys[organ_id]
    return devpki.Issued(key.certificate, key.private_key, material.chains[organ_id])


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One hub for the module, started under the default policy (report)."""
    stack = start_stack(tmp_path_factory.mktemp("pdf-hub") / "data")
    try:
        yield stack
    finally:
        stack.hub.stop()


@pytest.fixture(scope="module")
def demo_pdfs(running: Stack) -> dict[str, bytes]:
    """The six PDFs, signed with the demo PKI (an agency, the impostor, the revoked agency)."""
    material = running.material
    return pdf_set(_issued(material, PDF_SIGNER), _issued(material, "impostor"), _issued(material, REVOKED_AGENCY))


def _send(stack: Stack, pdfs: dict[str, bytes], first_number: int) -> dict[str, str]:
    """Send one signed document per case; case → the document's SHA-256."""
    today = datetime.now(UTC).date()
    key = stack.material.keys[SENDER]
    documents = {
        case: sign_document(
            build_document(
                edoc_with_pdf(pdfs[case], sender=SENDER, recipients=(RECIPIENT,), number=n, notation="PDF", day=today)
            ),
            key,
        )
        for n, case in enumerate(CASES, first_number)
    }
    client = HubClient(stack.connection, organ_id=SENDER)
    client.send_many(list(documents.values()))
    client.close()
    return {case: hashlib.sha256(data).hexdigest() for case, data in documents.items()}


def _statuses(outputs: Outputs, sha: str) -> list[tuple[str, str]]:
    """(code, description) of the statuses the sender got about ``sha``."""
    found = []
    for headers, value in outputs.records.get(f"lienthong.status.{SENDER}", []):
        if headers.get(H_SHA256, b"").decode() == sha:
            message = parse(value).message
            assert isinstance(message, StatusMessage)
            found.append((message.status_code, message.description or ""))
    return found


def _delivered(outputs: Outputs, sha: str) -> bool:
    return any(h.get(H_SHA256, b"").decode() == sha for _, h, _ in outputs.deliveries())


def _dead(outputs: Outputs, sha: str) -> list[dict[str, bytes]]:
    return [h for h, _ in outputs.records.get(DEADLETTER, []) if h.get(H_SHA256, b"").decode() == sha]


def _export(stack: Stack, sha: str, out: Path) -> None:
    """`lienthong audit export` of ``sha`` once the ledger writer has sealed its events."""
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    args = ["audit", "export", sha, "--out", str(out), "--data", str(stack.settings.data_dir)]
    while main(args) != 0:
        assert datetime.now(UTC) < deadline, f"no bundle of {sha} within 30 s"


def test_report_policy_delivers_all_and_records_results_in_receipt_and_bundle(
    running: Stack, demo_pdfs: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under report every document is delivered; its bundle's receipt holds the PDF verdict, re-checked offline."""
    outputs = Outputs(running.connection)
    try:
        sent = _send(running, demo_pdfs, 1)
        assert outputs.wait_for(lambda o: all(_delivered(o, sha) for sha in sent.values()), timeout=90)
        assert all(code == "01" for sha in sent.values() for code, _ in _statuses(outputs, sha))
    finally:
        outputs.close()
    data = running.settings.data_dir
    trust = ["--trust", str(running.material.trust_dir / "root.pem"), "--trust", str(data / "hub-cert.pem")]
    for case, sha in sent.items():
        bundle = tmp_path / f"{case}.zip"
        _export(running, sha, bundle)
        with zipfile.ZipFile(io.BytesIO(bundle.read_bytes())) as archive:
            receipt = json.loads(archive.read("report.json"))
        (pdf_json,) = receipt["report"]["pdf_signatures"]
        _check_pdf_verdict(pdf_json, case)
        capsys.readouterr()
        assert main(["audit", "verify", str(bundle), *trust]) == 0, capsys.readouterr().out
        text = capsys.readouterr().out
        assert f"PASSED  PDF {NAME}: signatures re-checked at the time the hub received it" in text
        indication, sub, _ = EXPECTED[case]
        shown = "not signed" if indication is None else indication.value + (f"/{sub.value}" if sub else "")
        assert shown in text
        if case != "unsigned":
            assert "signer CN=" in text
            assert "signing time 20" in text


def test_require_policy_refuses_invalid_and_missing_pdfs_with_the_reason(
    running: Stack, demo_pdfs: dict[str, bytes]
) -> None:
    """With pdf_signatures: require (worker restarted on the changed settings), only the valid PDF is delivered."""
    hub = running.hub
    settings_file = running.settings.data_dir / "settings.yaml"
    changed = yaml.safe_load(settings_file.read_text(encoding="utf-8"))
    changed["pdf_signatures"] = "require"
    require_file = settings_file.with_name("settings-require.yaml")
    write_private(require_file, yaml.safe_dump(changed, allow_unicode=True))
    (old,) = hub.worker_processes
    hub.remove_worker(old)
    hub.add_worker(require_file)
    outputs = Outputs(running.connection)
    try:
        outputs.skip_existing()
        sent = _send(running, demo_pdfs, 101)
        refused = {case: sha for case, sha in sent.items() if case != "valid"}

        def answered(o: Outputs) -> bool:
            refusals = all(any(c == "02" for c, _ in _statuses(o, sha)) and _dead(o, sha) for sha in refused.values())
            return refusals and _delivered(o, sent["valid"])

        assert outputs.wait_for(answered, timeout=90)
        for case, sha in refused.items():
            reason = EXPECTED[case][2]
            assert reason is not None
            ((code, description),) = _statuses(outputs, sha)
            assert code == "02"
            assert reason in description
            assert NAME in description
            assert [h[H_REASON].decode() for h in _dead(outputs, sha)] == [reason]
            assert not _delivered(outputs, sha)
        assert [code for code, _ in _statuses(outputs, sent["valid"])] == ["01"]
    finally:
        outputs.close()
