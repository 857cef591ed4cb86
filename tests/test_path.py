import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import signer.path as path_module
from adapters.http_clients import HttpClientError, ocsp_fetcher
from signer import devpki
from signer.path import PathValidator
from signer.policy import RevocationPolicy, TrustPolicy
from signer.report import Indication, SubIndication
from tests.support.pki_fixtures import FIXED_NOW, NOT_AFTER, NOT_BEFORE, REVOKED_AT, REVOKED_LATER_AT
from tests.support.server_fixtures import OCSP_REVOKED_AT

WINDOW = {"not_before": NOT_BEFORE, "not_after": NOT_AFTER}
OCSP_URL = "http://ocsp.invalid/"


def crl_policy(pki, **overrides):
    """Trust the test root; CRLs for the issuing CA and the root; REQUIRE revocation data."""
    settings_ = {"anchors": (pki.root.cert,), "crls": (pki.crl, pki.root_crl)}
    settings_.update(overrides)
    return TrustPolicy(**settings_)


def validate(pki, issued, *, at=FIXED_NOW, **overrides):
    """Validate ``issued`` with its chain under crl_policy(**overrides)."""
    return PathValidator(crl_policy(pki, **overrides)).validate(issued.cert, issued.chain, at=at)


def subject_cn(issued):
    """Return the CN=... part of the subject, as errors print it."""
    return issued.cert.subject.rfc4514_string().split(",")[0]


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = FIXED_NOW

    def __call__(self):
        """Return the current fake time."""
        return self.now


@dataclass
class FakeResponder:
    """An in-memory OCSP responder built with cryptography, counting the requests it answers."""

    issuer: devpki.Issued
    signer: devpki.Issued
    revoked: dict = field(default_factory=dict)  # serial -> revocation time
    next_update: timedelta | None = timedelta(days=7)
    calls: int = 0

    def __call__(self, _url, request_der):
        """Answer one DER OCSP request."""
        self.calls += 1
        request = ocsp.load_der_ocsp_request(request_der)
        revoked_at = self.revoked.get(request.serial_number)
        status = ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD
        this_update = FIXED_NOW - timedelta(hours=1)
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash,
                issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number,
                algorithm=request.hash_algorithm,
                cert_status=status,
                this_update=this_update,
                next_update=this_update + self.next_update if self.next_update else None,
                revocation_time=revoked_at,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.signer.cert)
            .certificates([self.signer.cert])
        )
        return builder.sign(self.signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def ocsp_leaf(pki):
    """A leaf of the test CA that names an OCSP responder."""
    return devpki.make_leaf(pki.ca, "OCSP Agency", organ_id="000.00.00.C01", ocsp_url=OCSP_URL, **WINDOW)


def ocsp_policy(pki, fetch, **overrides):
    """OCSP for leaves of the test CA; the root's CRL for the CA itself."""
    return crl_policy(pki, crls=(pki.root_crl,), ocsp=fetch, **overrides)


# --- certificate cases ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "indication", "subindication"),
    [
        ("agency_rsa", Indication.TOTAL_PASSED, None),
        ("agency_ec", Indication.TOTAL_PASSED, None),
        ("expired", Indication.TOTAL_FAILED, SubIndication.EXPIRED),
        ("not_yet_valid", Indication.TOTAL_FAILED, SubIndication.NOT_YET_VALID),
        ("wrong_usage", Indication.INDETERMINATE, SubIndication.CHAIN_CONSTRAINTS_FAILURE),
        ("revoked", Indication.TOTAL_FAILED, SubIndication.REVOKED),
        ("weak_rsa1024", Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE),
        ("sha1_signed", Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE),
        ("untrusted_leaf", Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND),
    ],
)
def test_each_certificate_case_gets_its_etsi_indication(pki, name, indication, subindication):
    """Each test certificate gets the ETSI EN 319 102-1 indication and sub-indication of its defect."""
    issued = getattr(pki, name)
    result = validate(pki, issued)
    assert (result.indication, result.subindication) == (indication, subindication), result.errors
    if indication is Indication.TOTAL_PASSED:
        assert result.errors == ()
        assert result.chain == (issued.cert, pki.ca.cert, pki.root.cert)
    else:
        assert any(subject_cn(issued) in error for error in result.errors), result.errors


def test_passing_path_carries_crl_evidence_for_leaf_and_ca(pki):
    """A passing path has one 'good' CRL answer per non-anchor certificate, with the CRL's DER."""
    result = validate(pki, pki.agency_rsa)
    assert [(e.source, e.status, e.cached) for e in result.revocation] == [("crl", "good", False)] * 2
    assert result.revocation[0].der == pki.crl.public_bytes(serialization.Encoding.DER)
    assert result.revocation[1].der == pki.root_crl.public_bytes(serialization.Encoding.DER)
    assert result.warnings == ()


def test_revoked_leaf_reports_the_revocation_time(pki):
    """A CRL-revoked leaf fails with REVOKED, naming the date, and the CRL entry is in the evidence."""
    result = validate(pki, pki.revoked)
    assert REVOKED_AT.isoformat() in result.errors[0]
    assert result.revocation[0].status == "revoked"
    assert result.revocation[0].revoked_at == REVOKED_AT


def test_revocation_after_validation_time_does_not_fail(pki):
    """A certificate revoked after `at` is not revoked at `at` (auditors judge past signatures)."""
    result = validate(pki, pki.revoked_later)
    assert result.passed
    assert any("after the validation time" in w for w in result.warnings)
    later = validate(pki, pki.revoked_later, at=REVOKED_LATER_AT + timedelta(days=1))
    assert later.subindication is SubIndication.REVOKED


def test_revoked_leaf_passes_before_its_revocation(pki):
    """At an instant before its revocation date, the revoked leaf was still good."""
    assert validate(pki, pki.revoked, at=REVOKED_AT - timedelta(days=1)).passed


def test_expired_issuing_ca_is_named(pki):
    """A leaf under a CA that expired before `at` fails EXPIRED, and the error names the CA."""
    short_ca = devpki.make_ca(
        pki.root, "Short Lived CA", not_before=NOT_BEFORE, not_after=FIXED_NOW - timedelta(days=1)
    )
    leaf = devpki.make_leaf(short_ca, "Leaf Under Short CA", public_key=pki.agency_ec.cert.public_key(), **WINDOW)
    result = validate(pki, leaf, revocation=RevocationPolicy.NONE)
    assert result.subindication is SubIndication.EXPIRED
    assert len(result.errors) == 1
    assert "Short Lived CA" in result.errors[0]


def test_issuer_that_is_not_a_ca_breaks_the_chain(pki):
    """A certificate issued by an end-entity (no CA flag, no keyCertSign) fails CHAIN_CONSTRAINTS_FAILURE."""
    leaf = devpki.make_leaf(pki.agency_rsa, "Sub-leaf", public_key=pki.agency_ec.cert.public_key(), **WINDOW)
    result = validate(pki, leaf, revocation=RevocationPolicy.NONE)
    assert result.subindication is SubIndication.CHAIN_CONSTRAINTS_FAILURE
    assert any("is not a CA" in e and "Van phong Bo A" in e for e in result.errors)


def test_cached_chain_is_rechecked_against_each_instant(pki):
    """A validator that cached a good path still reports EXPIRED for an `at` after the leaf's notAfter."""
    validator = PathValidator(crl_policy(pki, revocation=RevocationPolicy.NONE))
    assert validator.validate(pki.agency_rsa.cert, pki.agency_rsa.chain, at=FIXED_NOW).passed
    later = validator.validate(pki.agency_rsa.cert, pki.agency_rsa.chain, at=NOT_AFTER + timedelta(seconds=1))
    assert later.subindication is SubIndication.EXPIRED
    earlier = validator.validate(pki.agency_rsa.cert, pki.agency_rsa.chain, at=NOT_BEFORE - timedelta(seconds=1))
    assert earlier.subindication is SubIndication.NOT_YET_VALID


def test_naive_instant_is_taken_as_utc(pki):
    """A naive `at` is read as UTC instead of raising."""
    assert validate(pki, pki.agency_rsa, at=FIXED_NOW.replace(tzinfo=None)).passed


# --- trust: anchors only ----------------------------------------------------------------------------------


def test_no_anchors_means_no_path_even_with_the_root_in_the_document(pki):
    """A root supplied in the document's certificates is not trusted: only policy anchors are."""
    result = validate(pki, pki.agency_rsa, anchors=())
    assert result.subindication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert any("self-signed" in e and "Test Root CA" in e for e in result.errors)


def test_untrusted_root_is_reported_as_such(pki):
    """A chain ending in a root that is not an anchor names that root in the error."""
    result = validate(pki, pki.untrusted_leaf)
    assert result.chain == ()
    assert any("Untrusted Root CA" in e and "not a trust anchor" in e for e in result.errors)


def test_look_alike_root_with_the_anchors_name_is_not_trusted(pki):
    """A self-signed root copying the anchor's subject, with another key, does not make a path."""
    fake_root = devpki.make_root("lienthong Test Root CA", **WINDOW)
    assert fake_root.cert.subject == pki.root.cert.subject
    fake_ca = devpki.make_ca(fake_root, "lienthong Test Issuing CA", **WINDOW)
    leaf = devpki.make_leaf(fake_ca, "Impostor", public_key=pki.agency_ec.cert.public_key(), **WINDOW)
    result = validate(pki, leaf)
    assert result.subindication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert any("does not verify" in e for e in result.errors)


def test_leaf_claiming_the_real_ca_but_signed_by_another_key_fails(pki):
    """A leaf naming the real CA as issuer but signed by an attacker key finds no path."""
    attacker = devpki.Issued(cert=pki.ca.cert, key=pki.untrusted_root.key, chain=pki.ca.chain)
    leaf = devpki.make_leaf(attacker, "Forged Agency", public_key=pki.agency_ec.cert.public_key(), **WINDOW)
    result = validate(pki, leaf)
    assert result.subindication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert any("Forged Agency" in e and "does not verify" in e for e in result.errors)


def test_missing_intermediate_is_found_in_policy_intermediates(pki):
    """Without the CA in the document the path fails; with it among policy intermediates it passes."""
    alone = PathValidator(crl_policy(pki)).validate(pki.agency_rsa.cert, (), at=FIXED_NOW)
    assert alone.subindication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert any("Test Issuing CA" in e for e in alone.errors)
    helped = PathValidator(crl_policy(pki, intermediates=(pki.ca.cert,))).validate(
        pki.agency_rsa.cert, (), at=FIXED_NOW
    )
    assert helped.passed


def test_intermediate_can_be_the_anchor(pki):
    """An issuing CA configured as anchor ends the path there; the root is not needed."""
    result = validate(pki, pki.agency_rsa, anchors=(pki.ca.cert,))
    assert result.passed
    assert result.chain == (pki.agency_rsa.cert, pki.ca.cert)
    assert len(result.revocation) == 1


# --- revocation policy ------------------------------------------------------------------------------------


def test_require_without_revocation_data_is_try_later(pki):
    """REQUIRE with neither CRL nor OCSP gives INDETERMINATE/TRY_LATER, telling the user what to supply."""
    result = validate(pki, pki.agency_rsa, crls=())
    assert (result.indication, result.subindication) == (Indication.INDETERMINATE, SubIndication.TRY_LATER)
    assert any("Van phong Bo A" in e and "--crl" in e and "--ocsp" in e for e in result.errors)


def test_if_available_without_data_passes_with_a_warning(pki):
    """IF_AVAILABLE with no revocation data passes, warning for each unchecked certificate."""
    result = validate(pki, pki.agency_rsa, crls=(), revocation=RevocationPolicy.IF_AVAILABLE)
    assert result.passed
    assert len(result.warnings) == 2


def test_if_available_still_fails_a_revoked_certificate(pki):
    """IF_AVAILABLE never lets a certificate that a CRL lists as revoked pass."""
    result = validate(pki, pki.revoked, revocation=RevocationPolicy.IF_AVAILABLE)
    assert result.subindication is SubIndication.REVOKED


def test_policy_none_skips_revocation_with_a_warning(pki):
    """NONE checks nothing, warns "revocation not checked", and so lets even a revoked leaf through."""
    result = validate(pki, pki.revoked, revocation=RevocationPolicy.NONE)
    assert result.passed
    assert result.revocation == ()
    assert any("revocation not checked" in w for w in result.warnings)


def test_stale_crl_is_not_used(pki):
    """A CRL whose nextUpdate is before `at` is stale: REQUIRE gives TRY_LATER and says why."""
    result = validate(pki, pki.agency_rsa, at=FIXED_NOW + timedelta(days=60))
    assert result.subindication is SubIndication.TRY_LATER
    assert any("stale" in e for e in result.errors)


def test_crl_signed_by_another_key_is_ignored(pki):
    """A CRL with the CA's name but another key's signature neither revokes nor vouches."""
    forged_ca = devpki.Issued(cert=pki.ca.cert, key=pki.untrusted_root.key, chain=pki.ca.chain)
    forged = devpki.make_crl(
        forged_ca,
        [(pki.agency_rsa.cert.serial_number, REVOKED_AT)],
        this_update=FIXED_NOW - timedelta(days=1),
        next_update=FIXED_NOW + timedelta(days=1),
    )
    result = validate(pki, pki.agency_rsa, crls=(forged, pki.root_crl))
    assert result.subindication is SubIndication.TRY_LATER
    assert any("signature does not verify" in e for e in result.errors)


# --- OCSP, in memory --------------------------------------------------------------------------------------


def test_ocsp_good_answer_passes_with_evidence(pki, ocsp_leaf):
    """A good OCSP answer from a delegated responder passes; the evidence holds the response DER."""
    responder = FakeResponder(pki.ca, pki.ocsp_signer)
    result = PathValidator(ocsp_policy(pki, responder)).validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW)
    assert result.passed, result.errors
    leaf_evidence = result.revocation[0]
    assert (leaf_evidence.source, leaf_evidence.status) == ("ocsp", "good")
    assert ocsp.load_der_ocsp_response(leaf_evidence.der).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert OCSP_URL in leaf_evidence.responder


def test_ocsp_revoked_answer_fails(pki, ocsp_leaf):
    """An OCSP 'revoked' dated before `at` fails REVOKED."""
    responder = FakeResponder(pki.ca, pki.ocsp_signer, revoked={ocsp_leaf.cert.serial_number: REVOKED_AT})
    result = PathValidator(ocsp_policy(pki, responder)).validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW)
    assert result.subindication is SubIndication.REVOKED


def test_ocsp_signed_by_the_ca_itself_is_accepted(pki, ocsp_leaf):
    """The CA may sign its own OCSP responses."""
    responder = FakeResponder(pki.ca, pki.ca)
    assert PathValidator(ocsp_policy(pki, responder)).validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW).passed


def test_ocsp_signed_by_an_unauthorised_key_is_rejected(pki, ocsp_leaf):
    """A response signed by a certificate the CA did not authorise for OCSP is not used."""
    for impostor in (pki.agency_rsa, pki.untrusted_leaf):  # issued by the CA without OCSPSigning; foreign
        responder = FakeResponder(pki.ca, impostor, revoked={})
        result = PathValidator(ocsp_policy(pki, responder)).validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW)
        assert result.subindication is SubIndication.TRY_LATER
        assert any("rejected" in e for e in result.errors)


def test_stale_ocsp_answer_is_not_used(pki, ocsp_leaf):
    """An OCSP answer whose nextUpdate precedes `at` is stale and gives TRY_LATER under REQUIRE."""
    responder = FakeResponder(pki.ca, pki.ocsp_signer, next_update=timedelta(minutes=1))
    result = PathValidator(ocsp_policy(pki, responder)).validate(
        ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW + timedelta(hours=1)
    )
    assert result.subindication is SubIndication.TRY_LATER
    assert any("stale" in e for e in result.errors)


def test_unreachable_responder_is_try_later_and_not_retried_at_once(pki, ocsp_leaf):
    """A fetcher that fails gives TRY_LATER naming the responder, and is not called again right away."""
    calls = []

    def dead(url, der):
        calls.append(url)
        raise HttpClientError(f"cannot reach {url}: connection refused")

    validator = PathValidator(ocsp_policy(pki, dead), clock=FakeClock())
    for _ in range(3):
        result = validator.validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW)
        assert result.subindication is SubIndication.TRY_LATER
        assert any("connection refused" in e for e in result.errors)
    assert calls == [OCSP_URL]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=600))
def test_garbage_ocsp_answers_never_pass(pki, ocsp_leaf, garbage):
    """Whatever bytes the responder returns, an unverifiable answer gives TRY_LATER, never a pass or a crash."""
    result = PathValidator(ocsp_policy(pki, lambda _url, _der: garbage)).validate(
        ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW
    )
    assert result.subindication is SubIndication.TRY_LATER


# --- caching ----------------------------------------------------------------------------------------------


def test_cache_reuses_ocsp_answers_within_ttl_and_refetches_after(pki, ocsp_leaf):
    """Within cache_ttl the answer is reused (cached=True, no fetch); after it, the responder is asked again."""
    responder = FakeResponder(pki.ca, pki.ocsp_signer)
    clock = FakeClock()
    validator = PathValidator(ocsp_policy(pki, responder, cache_ttl=timedelta(minutes=10)), clock=clock)

    first = validator.validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW)
    assert first.passed
    assert [e.cached for e in first.revocation] == [False, False]
    assert responder.calls == 1

    clock.now += timedelta(minutes=9)
    second = validator.validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW)
    assert second.passed
    assert [e.cached for e in second.revocation] == [True, True]
    assert second.revocation[0].der == first.revocation[0].der
    assert responder.calls == 1

    clock.now += timedelta(minutes=2)
    third = validator.validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW)
    assert third.passed
    assert third.revocation[0].cached is False
    assert responder.calls == 2


def test_cached_good_answer_still_sees_a_later_revocation_after_ttl(pki, ocsp_leaf):
    """Once the TTL passes, a revocation published meanwhile is seen."""
    responder = FakeResponder(pki.ca, pki.ocsp_signer)
    clock = FakeClock()
    validator = PathValidator(ocsp_policy(pki, responder, cache_ttl=timedelta(minutes=5)), clock=clock)
    assert validator.validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW).passed
    responder.revoked[ocsp_leaf.cert.serial_number] = REVOKED_AT
    assert validator.validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW).passed  # within TTL: cached good
    clock.now += timedelta(minutes=6)
    assert validator.validate(ocsp_leaf.cert, ocsp_leaf.chain, at=FIXED_NOW).subindication is SubIndication.REVOKED


def test_cached_chain_expires_with_ttl(pki, monkeypatch):
    """The structural path is rebuilt after cache_ttl (counted by how often signatures are checked)."""
    checks = []
    real = path_module._signed_by
    monkeypatch.setattr(path_module, "_signed_by", lambda c, i: checks.append(1) or real(c, i))
    clock = FakeClock()
    validator = PathValidator(crl_policy(pki, cache_ttl=timedelta(minutes=1)), clock=clock)
    for _ in range(3):
        assert validator.validate(pki.agency_rsa.cert, pki.agency_rsa.chain, at=FIXED_NOW).passed
    assert len(checks) == 2  # leaf by CA, CA by root: once
    clock.now += timedelta(minutes=2)
    assert validator.validate(pki.agency_rsa.cert, pki.agency_rsa.chain, at=FIXED_NOW).passed
    assert len(checks) == 4


def test_cached_validation_is_cheap(pki):
    """A cached validation costs well under the per-document budget (4,000 docs/s leaves 250 µs in total)."""
    validator = PathValidator(crl_policy(pki))
    validator.validate(pki.agency_rsa.cert, pki.agency_rsa.chain, at=FIXED_NOW)
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        validator.validate(pki.agency_rsa.cert, pki.agency_rsa.chain, at=FIXED_NOW)
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 100e-6, f"{per_call * 1e6:.1f} µs per cached validation"


# --- OCSP against the real openssl responder ----------------------------------------------------------------


def real_ocsp_policy(pki, responder, fetch):
    """Trust the root; OCSP for the responder's leaves, the root CRL for its CA."""
    return TrustPolicy(anchors=(responder.anchor,), crls=(pki.root_crl,), ocsp=fetch)


@pytest.mark.servers
def test_real_ocsp_good(pki, ocsp_responder):
    """The OpenSSL responder says 'good' for a valid leaf, through the HTTP fetcher, and the path passes."""
    leaf = ocsp_responder.good
    validator = PathValidator(real_ocsp_policy(pki, ocsp_responder, ocsp_fetcher(timeout=10)))
    result = validator.validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert result.passed, result.errors
    assert (result.revocation[0].source, result.revocation[0].status) == ("ocsp", "good")
    assert "lienthong OCSP Test Responder" in result.revocation[0].responder


@pytest.mark.servers
def test_real_ocsp_revoked(pki, ocsp_responder):
    """The OpenSSL responder says 'revoked' for the leaf marked R in its index: TOTAL_FAILED/REVOKED."""
    leaf = ocsp_responder.revoked
    validator = PathValidator(real_ocsp_policy(pki, ocsp_responder, ocsp_fetcher(timeout=10)))
    result = validator.validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert result.subindication is SubIndication.REVOKED
    assert result.revocation[0].revoked_at == OCSP_REVOKED_AT
    assert "OCSP Revoked Agency" in result.errors[0]


@pytest.mark.servers
def test_real_ocsp_unknown_is_try_later(pki, ocsp_responder):
    """A leaf missing from the responder's index is 'unknown': TRY_LATER under REQUIRE."""
    leaf = ocsp_responder.unknown
    validator = PathValidator(real_ocsp_policy(pki, ocsp_responder, ocsp_fetcher(timeout=10)))
    result = validator.validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert result.subindication is SubIndication.TRY_LATER


@pytest.mark.servers
def test_real_ocsp_signed_by_the_ca(pki, ocsp_responder):
    """Responses that openssl signs with the CA key (not a delegated responder) are accepted too."""
    fetch = ocsp_fetcher(timeout=10)
    leaf = ocsp_responder.revoked
    validator = PathValidator(real_ocsp_policy(pki, ocsp_responder, lambda url, der: fetch(url + "ca", der)))
    result = validator.validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert result.subindication is SubIndication.REVOKED
    assert "lienthong OCSP Test CA" in result.revocation[0].responder


@pytest.mark.servers
def test_real_ocsp_revoked_after_at_passes(pki, ocsp_responder):
    """The OCSP-revoked leaf is good at an instant before its revocation time."""
    leaf = ocsp_responder.revoked
    validator = PathValidator(real_ocsp_policy(pki, ocsp_responder, ocsp_fetcher(timeout=10)))
    result = validator.validate(leaf.cert, leaf.chain, at=OCSP_REVOKED_AT - timedelta(days=1))
    assert result.passed, result.errors


@pytest.mark.servers
def test_real_ocsp_answer_is_cached(pki, ocsp_responder):
    """A second validation within the TTL does not contact the responder again."""
    leaf = ocsp_responder.good
    validator = PathValidator(real_ocsp_policy(pki, ocsp_responder, ocsp_fetcher(timeout=10)))
    before = ocsp_responder.requests()
    validator.validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    result = validator.validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert ocsp_responder.requests() == before + 1
    assert result.revocation[0].cached


def test_unreachable_real_url_gives_try_later(pki):
    """A leaf whose OCSP URL points at a closed port gives TRY_LATER naming the URL."""
    with socket.socket() as probe:  # find a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    leaf = devpki.make_leaf(
        pki.ca, "Dead Responder Agency", public_key=pki.agency_ec.cert.public_key(), ocsp_url=url, **WINDOW
    )
    policy = TrustPolicy(anchors=(pki.root.cert,), crls=(pki.root_crl,), ocsp=ocsp_fetcher(timeout=2))
    result = PathValidator(policy).validate(leaf.cert, leaf.chain, at=datetime(2026, 6, 1, tzinfo=UTC))
    assert result.subindication is SubIndication.TRY_LATER
    assert any(url in e for e in result.errors)
