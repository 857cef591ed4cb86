import hashlib
import socket
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms, tsp
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.http_clients import HttpClientError, post, request_timestamp
from schemas.errors import HubError
from signer.timestamp import TimestampError, build_request, verify_response, verify_token

DATA = b"<edXML>a signed document</edXML>"
DIGEST = hashlib.sha256(DATA).digest()
NONCE = 0x1234_5678_9ABC_DEF0


def ask(tsa_server, request_der):
    """POST a DER request to the test TSA and return its reply."""
    return post(
        tsa_server.url,
        request_der,
        content_type="application/timestamp-query",
        accept="application/timestamp-reply",
        timeout=10,
    )


@pytest.fixture(scope="module")
def reply(tsa_server):
    """One real reply from the TSA for DATA with NONCE, shared by the tests that only read it."""
    return ask(tsa_server, build_request(DATA, nonce=NONCE))


def token_of(reply_der):
    """Return the DER token inside a reply."""
    return tsp.TimeStampResp.load(reply_der)["time_stamp_token"].dump()


# --- requests ---------------------------------------------------------------------------------------------


def test_request_carries_imprint_nonce_and_cert_req():
    """build_request hashes the data and encodes the nonce and certReq as asked."""
    request = tsp.TimeStampReq.load(build_request(DATA, nonce=7, cert_req=False))
    assert request["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert request["message_imprint"]["hashed_message"].native == DIGEST
    assert request["nonce"].native == 7
    assert request["cert_req"].native is False


def test_prehashed_request_takes_the_digest_as_is():
    """With prehashed=True the digest goes in unchanged; a digest of the wrong size is refused."""
    digest = hashlib.sha384(DATA).digest()
    request = tsp.TimeStampReq.load(build_request(digest, hash="sha384", nonce=None, prehashed=True))
    assert request["message_imprint"]["hashed_message"].native == digest
    assert request["nonce"].native is None
    with pytest.raises(TimestampError, match="48 bytes"):
        build_request(DIGEST, hash="sha384", nonce=None, prehashed=True)


def test_weak_hash_is_refused_for_requests():
    """SHA-1 and MD5 imprints are refused with a TimestampError (a HubError)."""
    for weak in ("sha1", "md5"):
        with pytest.raises(TimestampError, match="not allowed"):
            build_request(DATA, hash=weak, nonce=1)
    assert issubclass(TimestampError, HubError)


# --- against the real TSA ---------------------------------------------------------------------------------


@pytest.mark.servers
def test_round_trip_with_the_openssl_tsa(tsa_server):
    """A request to `openssl ts -reply` comes back as a verified token for our digest."""
    before = datetime.now(UTC) - timedelta(minutes=1)
    token = request_timestamp(tsa_server.url, DATA, anchors=[tsa_server.anchor], timeout=10)
    assert token.digest == DIGEST
    assert token.hash_algorithm == "sha256"
    assert "lienthong Test TSA" in token.tsa_subject
    assert token.tsa_cert == tsa_server.cert
    assert before <= token.gen_time <= datetime.now(UTC) + timedelta(minutes=1)
    assert token.policy == "1.3.6.1.4.1.99999.1.1"
    again = verify_token(token.token_der, digest=DIGEST, anchors=[tsa_server.anchor])
    assert again.serial == token.serial


@pytest.mark.servers
def test_reply_verifies_with_its_nonce(tsa_server, reply):
    """verify_response accepts the reply for the digest and nonce that were sent."""
    token = verify_response(reply, digest=DIGEST, anchors=[tsa_server.anchor], nonce=NONCE)
    assert token.nonce == NONCE


@pytest.mark.servers
def test_wrong_digest_is_rejected(tsa_server, reply):
    """A token over other data fails: the message imprint does not match."""
    with pytest.raises(TimestampError, match="message imprint"):
        verify_response(reply, digest=hashlib.sha256(b"other").digest(), anchors=[tsa_server.anchor])


@pytest.mark.servers
def test_wrong_nonce_is_rejected(tsa_server, reply):
    """A reply whose nonce is not the one sent (a replay) fails."""
    with pytest.raises(TimestampError, match="nonce"):
        verify_response(reply, digest=DIGEST, anchors=[tsa_server.anchor], nonce=NONCE + 1)


@pytest.mark.servers
def test_wrong_anchor_is_rejected(tsa_server, reply, pki):
    """A TSA that does not chain to the given anchors is not trusted."""
    with pytest.raises(TimestampError, match="not trusted"):
        verify_response(reply, digest=DIGEST, anchors=[pki.untrusted_root.cert])
    with pytest.raises(TimestampError, match="no trust anchors"):
        verify_response(reply, digest=DIGEST, anchors=[])


@pytest.mark.servers
def test_tsa_certificate_must_be_valid_at_the_instant(tsa_server, reply):
    """Judged at an instant after the TSA certificate expired, the token is refused."""
    with pytest.raises(TimestampError, match="EXPIRED"):
        verify_response(reply, digest=DIGEST, anchors=[tsa_server.anchor], at=datetime(2031, 1, 1, tzinfo=UTC))


@pytest.mark.servers
def test_tampered_tst_info_is_rejected(tsa_server, reply):
    """Changing the signed TSTInfo (here its serial number) breaks the message-digest attribute."""
    info = cms.ContentInfo.load(token_of(reply))
    content = info["content"]["encap_content_info"]["content"]
    tst = tsp.TSTInfo.load(content.contents)
    tst["serial_number"] = tst["serial_number"].native + 1
    info["content"]["encap_content_info"]["content"] = cms.ParsableOctetString(tst.dump(force=True))
    with pytest.raises(TimestampError, match="altered"):
        verify_token(info.dump(force=True), digest=DIGEST, anchors=[tsa_server.anchor])


@pytest.mark.servers
def test_tampered_signature_is_rejected(tsa_server, reply):
    """Flipping a bit of the CMS signature makes the token fail signature verification."""
    info = cms.ContentInfo.load(token_of(reply))
    signer_info = info["content"]["signer_infos"][0]
    signature = bytearray(signer_info["signature"].native)
    signature[-1] ^= 1
    signer_info["signature"] = bytes(signature)
    with pytest.raises(TimestampError, match="signature does not verify"):
        verify_token(info.dump(force=True), digest=DIGEST, anchors=[tsa_server.anchor])


@pytest.mark.servers
def test_token_without_certificates_needs_them_passed(tsa_server):
    """With cert_req=False the TSA omits its certificate: verification needs it in certs=."""
    reply = ask(tsa_server, build_request(DATA, nonce=3, cert_req=False))
    with pytest.raises(TimestampError, match="not in the token"):
        verify_response(reply, digest=DIGEST, anchors=[tsa_server.anchor], nonce=3)
    token = verify_response(
        reply, digest=DIGEST, anchors=[tsa_server.anchor], nonce=3, certs=[tsa_server.cert, *tsa_server.chain]
    )
    assert token.tsa_cert == tsa_server.cert


@pytest.mark.servers
def test_rejected_request_reports_the_tsa_status(tsa_server):
    """A request the TSA refuses (SHA-1 imprint, not in its config) raises with the TSA's status."""
    weak_digest = hashlib.sha1(DATA).digest()  # noqa: S324 - a weak imprint the TSA must refuse
    imprint = {"hash_algorithm": {"algorithm": "sha1"}, "hashed_message": weak_digest}
    request = tsp.TimeStampReq({"version": "v1", "message_imprint": imprint, "cert_req": True}).dump()
    with pytest.raises(TimestampError, match="did not grant"):
        verify_response(ask(tsa_server, request), digest=DIGEST, anchors=[tsa_server.anchor])


def test_unreachable_tsa_is_an_http_client_error(pki):
    """A TSA on a closed port raises HttpClientError (a HubError) naming the URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(HttpClientError, match="cannot reach") as caught:
        request_timestamp(url, DATA, anchors=[pki.root.cert], timeout=2)
    assert url in str(caught.value)
    assert isinstance(caught.value, HubError)


# --- hostile input ----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=2000))
def test_random_bytes_give_a_timestamp_error(pki, garbage):
    """Any random bytes make verify_response and verify_token raise TimestampError, nothing else."""
    for verify in (verify_response, verify_token):
        with pytest.raises(TimestampError):
            verify(garbage, digest=DIGEST, anchors=[pki.root.cert])


@pytest.mark.servers
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_replies_give_a_token_or_a_timestamp_error(tsa_server, reply, data):
    """A real reply with bytes changed is either still a valid token for our digest or a TimestampError."""
    mutated = bytearray(reply)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        index = data.draw(st.integers(min_value=0, max_value=len(mutated) - 1))
        mutated[index] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        token = verify_response(bytes(mutated), digest=DIGEST, anchors=[tsa_server.anchor], nonce=NONCE)
    except TimestampError:
        return
    assert token.digest == DIGEST
    assert token.nonce == NONCE
