"""Signed PDFs: each embedded signature judged like the XML one (signer/pdf.py), under both PDF policies.

PDFs are made and signed with pyHanko and the test PKI (tests/support/pdfs.py); every verification runs at FIXED_NOW.
"""

import hashlib
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper

import signer.pdf as pdf_module
from schemas.model import Attachment
from signer import devpki
from signer.path import PathValidator
from signer.pdf import (
    PDF_SIGNATURE_INVALID,
    PDF_SIGNATURE_MISSING,
    PDF_SIGNATURE_TRY_LATER,
    Coverage,
    PdfReport,
    PdfVerifier,
    pdf_policy_problem,
    verify_pdf_signatures,
)
from signer.policy import TrustPolicy
from signer.report import Indication, SubIndication
from signer.verify import Verifier
from tests.support.pdfs import TEXT, TIMESTAMPED_AT, change_page, minimal_pdf, sign_pdf, timestamper, with_gap
from tests.support.pki_fixtures import FIXED_NOW
from tests.support.signing import signed_by

NAME = "cong-van.pdf"


def policy_of(pki, **overrides):
    """The trust policy the XML tests use: the test root, the CA's and root's CRLs, revocation required."""
    settings = {"anchors": (pki.root.cert,), "crls": (pki.crl, pki.root_crl)}
    settings.update(overrides)
    return TrustPolicy(**settings)


@pytest.fixture(scope="module")
def pdfs(pki):
    """Every PDF the tests check, made once."""
    plain = minimal_pdf()
    valid = sign_pdf(plain, pki.agency_rsa, stamper=timestamper(pki))
    return {
        "plain": plain,
        "valid": valid,
        "altered": valid.replace(b"(" + TEXT + b")", b"(Cong van so 124)"),
        "untrusted": sign_pdf(plain, pki.untrusted_leaf),
        "revoked": sign_pdf(plain, pki.revoked),
        "changed_later": change_page(valid),
        "countersigned": sign_pdf(valid, pki.agency_ec, field="Signature2"),
        "gap": with_gap(valid, pki.agency_rsa),
        "doc_timestamp": PdfTimeStamper(timestamper(pki))
        .timestamp_pdf(IncrementalPdfFileWriter(io.BytesIO(valid)), "sha256")
        .getvalue(),
    }


@pytest.fixture(scope="module")
def verifier(pki):
    """One verifier for the whole file, as the hub keeps one."""
    return PdfVerifier(policy_of(pki))


def check(verifier, data):
    """Verify at FIXED_NOW under the attachment name NAME."""
    return verifier.verify(data, name=NAME, at=FIXED_NOW)


def refusal(report):
    """The (reason, message) under each policy: report never refuses, so only require's is returned."""
    assert pdf_policy_problem([report], "report") is None
    return pdf_policy_problem([report], "require")


def test_valid_signature_passes_with_signer_time_and_coverage(pki, pdfs, verifier):
    """A PAdES signature by a trusted, unrevoked agency passes, naming the signer, its times and full coverage."""
    report = check(verifier, pdfs["valid"])
    assert (report.indication, report.signed, report.passed) == (Indication.TOTAL_PASSED, True, True)
    (sig,) = report.signatures
    assert (sig.indication, sig.subindication, sig.errors) == (Indication.TOTAL_PASSED, None, ())
    assert sig.kind == "signature"
    assert sig.signer is not None
    assert sig.signer.spki_sha256 == devpki.spki_sha256(pki.agency_rsa.cert)
    assert sig.signer.cert_organ_id == "000.00.00.G22"
    assert sig.coverage is Coverage.ENTIRE_FILE
    assert sig.modifications == "none"
    assert sig.claimed_signing_time is not None
    assert sig.timestamp_time == TIMESTAMPED_AT
    assert "lienthong Test TSA" in (sig.timestamp_authority or "")
    assert len(sig.chain) == 3
    assert {r.status for r in sig.revocation} == {"good"}
    assert sig.digest_algorithm == "sha256"
    assert report.sha256 == hashlib.sha256(pdfs["valid"]).hexdigest()
    assert refusal(report) is None


def test_altered_after_signing_is_hash_failure(pdfs, verifier):
    """Changing one signed byte of the page text gives TOTAL_FAILED / HASH_FAILURE; require refuses naming it."""
    report = check(verifier, pdfs["altered"])
    assert (report.indication, report.subindication) == (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE)
    reason, message = refusal(report)
    assert reason == PDF_SIGNATURE_INVALID
    assert NAME in message
    assert "HASH_FAILURE" in message


def test_untrusted_signer_has_no_chain(pdfs, verifier):
    """A signer from an unconfigured root is INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND; require refuses."""
    report = check(verifier, pdfs["untrusted"])
    assert (report.indication, report.subindication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert report.signatures[0].coverage is Coverage.ENTIRE_FILE  # the signature itself is sound
    reason, message = refusal(report)
    assert reason == PDF_SIGNATURE_INVALID
    assert "NO_CERTIFICATE_CHAIN_FOUND" in message


def test_revoked_signer_is_revoked(pdfs, verifier):
    """A signer revoked before the validation time is TOTAL_FAILED / REVOKED, from the caller's CRL."""
    report = check(verifier, pdfs["revoked"])
    assert (report.indication, report.subindication) == (Indication.TOTAL_FAILED, SubIndication.REVOKED)
    assert any(r.status == "revoked" for r in report.signatures[0].revocation)
    reason, message = refusal(report)
    assert reason == PDF_SIGNATURE_INVALID
    assert "REVOKED" in message


def test_page_changed_in_a_later_update_is_not_accepted(pdfs, verifier):
    """An incremental update replacing the page after signing: whole-revision coverage, SIG_CONSTRAINTS_FAILURE."""
    report = check(verifier, pdfs["changed_later"])
    (sig,) = report.signatures
    assert sig.coverage is Coverage.ENTIRE_REVISION
    assert sig.modifications == "other"
    assert (sig.indication, sig.subindication) == (Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE)
    assert not any("HASH_FAILURE" in e for e in sig.errors)  # the signed revision itself is intact
    reason, message = refusal(report)
    assert reason == PDF_SIGNATURE_INVALID
    assert "changed after signing" in message


def test_a_second_signature_after_the_first_is_allowed(pki, pdfs, verifier):
    """A countersignature is a later update the first signer allows: both pass, the first covering its revision."""
    report = check(verifier, pdfs["countersigned"])
    first, second = report.signatures
    assert (first.coverage, second.coverage) == (Coverage.ENTIRE_REVISION, Coverage.ENTIRE_FILE)
    assert first.indication is Indication.TOTAL_PASSED
    assert first.warnings  # the later update is reported
    assert second.signer.spki_sha256 == devpki.spki_sha256(pki.agency_ec.cert)
    assert report.passed
    assert refusal(report) is None


def test_byte_range_with_a_gap_is_a_format_failure(pdfs, verifier):
    """A ByteRange skipping bytes after /Contents is partial coverage: TOTAL_FAILED / FORMAT_FAILURE, digest intact."""
    report = check(verifier, pdfs["gap"])
    (sig,) = report.signatures
    assert sig.coverage is Coverage.PARTIAL
    assert (sig.indication, sig.subindication) == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE)
    assert len(sig.errors) == 1  # only the gap: the digest and the signature value verify
    reason, _ = refusal(report)
    assert reason == PDF_SIGNATURE_INVALID


def test_unsigned_pdf_is_missing_under_require(pdfs, verifier):
    """A PDF without signatures has no indication; report accepts it, require refuses with PDF_SIGNATURE_MISSING."""
    report = check(verifier, pdfs["plain"])
    assert (report.indication, report.signed, report.signatures) == (None, False, ())
    reason, message = refusal(report)
    assert reason == PDF_SIGNATURE_MISSING
    assert NAME in message


def test_document_timestamp_is_checked_and_not_counted_as_a_signature(pdfs, verifier):
    """A PAdES document time-stamp verifies against the same anchors and leaves the signature passing."""
    report = check(verifier, pdfs["doc_timestamp"])
    signature, stamp = report.signatures
    assert stamp.kind == "document_timestamp"
    assert (stamp.indication, stamp.timestamp_time) == (Indication.TOTAL_PASSED, TIMESTAMPED_AT)
    assert signature.indication is Indication.TOTAL_PASSED
    assert report.passed


@pytest.mark.parametrize(
    "mangle",
    [
        lambda _valid: b"",
        lambda _valid: b"not a PDF at all",
        lambda _valid: b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%%EOF\n",
        lambda valid: valid[: len(valid) // 2],
        lambda valid: valid.replace(b"/ByteRange [", b"/ByteRange [x"),
    ],
    ids=["empty", "not-pdf", "no-xref", "truncated", "bad-byterange"],
)
def test_malformed_pdf_is_a_result_not_an_exception(pdfs, verifier, mangle):
    """Broken PDFs give TOTAL_FAILED / FORMAT_FAILURE with a message, never an exception; require refuses them."""
    report = check(verifier, mangle(pdfs["valid"]))
    assert report.indication is Indication.TOTAL_FAILED
    assert report.subindication is SubIndication.FORMAT_FAILURE
    assert report.errors or report.signatures[0].errors
    reason, _ = refusal(report)
    assert reason == PDF_SIGNATURE_INVALID


def test_oversized_pdf_is_not_parsed(pki, pdfs):
    """A PDF over max_bytes is INDETERMINATE / FORMAT_FAILURE without being parsed, naming the limit."""
    report = verify_pdf_signatures(pdfs["valid"], policy=policy_of(pki), name=NAME, at=FIXED_NOW, max_bytes=1000)
    assert (report.indication, report.subindication) == (Indication.INDETERMINATE, SubIndication.FORMAT_FAILURE)
    assert "limit of 1000 bytes" in report.errors[0]


def test_missing_revocation_data_is_try_later(pki, pdfs):
    """Without the CA's CRL the signer is INDETERMINATE / TRY_LATER, and require says to retry, not refuse."""
    report = verify_pdf_signatures(pdfs["valid"], policy=policy_of(pki, crls=()), name=NAME, at=FIXED_NOW)
    assert (report.indication, report.subindication) == (Indication.INDETERMINATE, SubIndication.TRY_LATER)
    reason, message = refusal(report)
    assert reason == PDF_SIGNATURE_TRY_LATER
    assert NAME in message


def test_require_refuses_on_the_worst_attachment(pdfs, verifier):
    """Under require one bad attachment refuses the document; no attachment at all is accepted."""
    good = check(verifier, pdfs["valid"])
    bad = verifier.verify(pdfs["revoked"], name="phu-luc.pdf", at=FIXED_NOW)
    reason, message = pdf_policy_problem([good, bad], "require")
    assert reason == PDF_SIGNATURE_INVALID
    assert "phu-luc.pdf" in message
    assert pdf_policy_problem([], "require") is None
    assert pdf_policy_problem([good, bad], "report") is None


def test_attachments_are_picked_by_type_name_or_bytes(pdfs, verifier):
    """verify_attachments checks every PDF attachment, even one labelled octet-stream, and skips the rest."""
    attachments = [
        Attachment("a1", "cong-van.pdf", "application/pdf", pdfs["valid"]),
        Attachment("a2", "scan.bin", "application/octet-stream", pdfs["revoked"]),
        Attachment("a3", "ghi-chu.txt", "text/plain", b"not a PDF"),
    ]
    reports = verifier.verify_attachments(attachments, at=FIXED_NOW)
    assert [(r.name, r.indication) for r in reports] == [
        ("cong-van.pdf", Indication.TOTAL_PASSED),
        ("scan.bin", Indication.TOTAL_FAILED),
    ]
    reason, message = pdf_policy_problem(reports, "require")
    assert reason == PDF_SIGNATURE_INVALID
    assert "scan.bin" in message


def test_verdicts_agree_with_the_xml_signature(pki, pdfs):
    """The same signer gets the same indication in a PDF as in an XML signature, sharing one PathValidator."""
    policy = policy_of(pki)
    xml = Verifier(policy)
    pdf = PdfVerifier(policy, paths=PathValidator(policy))
    for issued, key in ((pki.agency_rsa, "valid"), (pki.revoked, "revoked"), (pki.untrusted_leaf, "untrusted")):
        xml_report = xml.verify(signed_by(issued), at=FIXED_NOW)
        pdf_report = pdf.verify(pdfs[key], at=FIXED_NOW)
        assert (pdf_report.indication, pdf_report.subindication) == (xml_report.indication, xml_report.subindication)


def test_reports_round_trip_through_json_and_recheck_the_same(pki, pdfs, verifier):
    """Every report survives JSON unchanged, and verifying again offline with the same inputs gives the same JSON."""
    fresh = PdfVerifier(policy_of(pki))  # an auditor's verifier: no cache shared with the first run
    for data in pdfs.values():
        report = check(verifier, data)
        text = json.dumps(report.to_json())
        assert PdfReport.from_json(json.loads(text)) == report
        assert check(fresh, data).to_json() == report.to_json()


def _read_both(data):
    """Read ``data`` as a hex string with pyHanko's reader and with ours: (value or error type, position) each."""
    outcomes = []
    for reader in (pdf_module._pyhanko_read_hex_string, pdf_module._read_hex_string):
        stream = io.BytesIO(data)
        try:
            value = reader(stream)
            outcomes.append((type(value), bytes(value.original_bytes), stream.tell()))
        except Exception as exc:  # noqa: BLE001 - the point is to compare failures too
            outcomes.append((type(exc), None, None))
    return outcomes


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"0", b"7", b"a", b"F", b" ", b"\n", b"\x00", b"%", b">", b"g", b"<", b"\r"]), max_size=40
    )
)
def test_fast_hex_reader_reads_exactly_what_pyhanko_reads(pieces):
    """The faster /Contents reader gives pyHanko's value, error and stream position on any input."""
    data = b"<" + b"".join(pieces) + b"> /Next"
    pyhanko, ours = _read_both(data)
    assert ours == pyhanko
