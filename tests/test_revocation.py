"""The revocation service (hub.revocation) and the OCSP client, against real servers.

CRLs are served over HTTP on 127.0.0.1 by a small ``http.server`` whose files the tests replace; the certificates
name those URLs as their CRL distribution points; the cache is a real SeaweedFS bucket; OCSP goes to the real
``openssl ocsp`` responder. Schedules that depend on time use an injected clock, except the one test that shows
the service's own thread picking up a new CRL.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp

from adapters.http_clients import OcspClient
from hub.revocation import CACHE_PREFIX, CrlRefusal, RevocationService
from hub.settings import HubSettings
from signer import devpki
from signer.path import PathValidator
from signer.policy import TrustPolicy
from signer.report import Indication, SubIndication
from tests.support.pki_fixtures import FIXED_NOW, NOT_AFTER, NOT_BEFORE

pytestmark = pytest.mark.servers

WINDOW = {"not_before": NOT_BEFORE, "not_after": NOT_AFTER}
HOUR = timedelta(hours=1)


class CrlServer:
    """Serves the files of a folder on 127.0.0.1; can be stopped and started again on the same port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    def url(self, name: str) -> str:
        """The URL of file ``name``."""
        return f"http://127.0.0.1:{self.port}/{name}"

    def publish(self, name: str, data: bytes) -> None:
        """Replace the file ``name`` at once (readers see the old or the new bytes, never a mix)."""
        tmp = self.root / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.root / name)

    def start(self) -> None:
        """Listen (again) on the same port."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                server.requests[name] = server.requests.get(name, 0) + 1
                try:
                    body = (server.root / name).read_bytes()
                except OSError:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                """Keep test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="test-crl-server", daemon=True).start()

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        """The time the test set."""
        return self.now


@pytest.fixture(scope="module")
def crl_server(tmp_path_factory):
    """One CRL server for the module."""
    server = CrlServer(tmp_path_factory.mktemp("crls"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def revoc_pki(pki, crl_server):
    """A CA naming the root's CRL URL, and leaves naming the CA's CRL URL (keys reused: signing is what counts)."""
    ca = devpki.make_ca(pki.root, "lienthong Revocation Test CA", crl_url=crl_server.url("root.crl"), **WINDOW)
    key = pki.agency_ec.cert.public_key()

    def leaf(name, url_name="ca.crl", url=None):
        return devpki.make_leaf(ca, name, public_key=key, crl_url=url or crl_server.url(url_name), **WINDOW)

    return {
        "root": pki.root,
        "ca": ca,
        "good": leaf("CRL Good Agency"),
        "victim": leaf("CRL Victim Agency"),
        "leaf": leaf,
    }


def der(crl):
    """The CRL as DER."""
    return crl.public_bytes(serialization.Encoding.DER)


def publish_crls(server, pki_, *, now, revoked=(), valid=HOUR, number=None):
    """Publish the root's and the CA's CRLs, valid from a minute before ``now`` for ``valid``."""
    start = now - timedelta(minutes=1)
    root_crl = devpki.make_crl(pki_["root"], [], this_update=start, next_update=now + valid, number=number)
    entries = [(c.cert.serial_number, start) for c in revoked]
    ca_crl = devpki.make_crl(pki_["ca"], entries, this_update=start, next_update=now + valid, number=number)
    server.publish("root.crl", der(root_crl))
    server.publish("ca.crl", der(ca_crl))


def der_of(issued):
    """The certificate as DER."""
    return issued.cert.public_bytes(serialization.Encoding.DER)


def service_for(pki_, store=None, **kwargs):
    """A service trusting the root and the revocation test CA."""
    return RevocationService((pki_["root"].cert, pki_["ca"].cert), store=store, **kwargs)


def verdict(service, pki_, leaf, at):
    """Validate ``leaf`` with a validator built from the service's current CRLs (as a worker rebuilds it)."""
    policy = TrustPolicy(anchors=(pki_["root"].cert,), intermediates=(pki_["ca"].cert,), crls=service.current_crls())
    return PathValidator(policy).validate(leaf.cert, at=at)


# --- CRLs -------------------------------------------------------------------------------------------------


def test_crls_fetched_verified_and_cached(crl_server, revoc_pki, s3_store):
    """The CA's and the observed leaf's distribution points are fetched, used by the verifier and cached in S3."""
    now = datetime.now(UTC)
    publish_crls(crl_server, revoc_pki, now=now)
    clock = Clock(now)
    service = service_for(revoc_pki, s3_store, clock=clock)
    service.observe(revoc_pki["good"].cert)
    assert service.refresh_due()
    assert len(service.current_crls()) == 2
    assert abs(service.earliest_next_update - (now + HOUR)) < timedelta(seconds=1)  # CRL times are whole seconds
    result = verdict(service, revoc_pki, revoc_pki["good"], now)
    assert result.passed, result.errors
    assert {e.source for e in result.revocation} == {"crl"}
    assert len(list(s3_store.list(CACHE_PREFIX))) == 2
    version = service.version
    clock.now = now + timedelta(minutes=31)  # due again (half the validity); the same bytes change nothing
    assert not service.refresh_due()
    assert service.version == version
    assert crl_server.requests["ca.crl"] >= 2
    assert service.refusals() == {}


def test_new_crl_is_picked_up_by_the_running_service(crl_server, revoc_pki, s3_store):
    """A certificate revoked in a newly published CRL is REVOKED after one refresh of the thread, no restart."""
    now = datetime.now(UTC)
    publish_crls(crl_server, revoc_pki, now=now)
    with service_for(revoc_pki, s3_store, refresh_seconds=0.2, retry_seconds=0.1) as service:
        service.observe(revoc_pki["victim"].cert)
        deadline = time.monotonic() + 10
        while len(service.current_crls()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert verdict(service, revoc_pki, revoc_pki["victim"], datetime.now(UTC)).passed
        version = service.version
        publish_crls(crl_server, revoc_pki, now=datetime.now(UTC) + timedelta(seconds=2), revoked=[revoc_pki["victim"]])
        while service.version == version and time.monotonic() < deadline:
            time.sleep(0.05)
        result = verdict(service, revoc_pki, revoc_pki["victim"], datetime.now(UTC))
    assert result.subindication is SubIndication.REVOKED, result.errors
    assert "CRL Victim Agency" in result.errors[0]
    assert len(list(s3_store.list(CACHE_PREFIX))) == 4  # each version its own object (create-only store)


def test_server_down_cached_crl_used_until_next_update_then_try_later(crl_server, revoc_pki, s3_store):
    """With the server down the held CRL serves until its nextUpdate; then good certificates are TRY_LATER."""
    now = datetime.now(UTC)
    publish_crls(crl_server, revoc_pki, now=now, revoked=[revoc_pki["victim"]])
    clock = Clock(now)
    service = service_for(revoc_pki, s3_store, clock=clock, retry_seconds=1)
    service.observe(revoc_pki["good"].cert)
    service.refresh_due()
    crl_server.stop()
    try:
        clock.now = now + timedelta(minutes=50)
        service.refresh_due()
        assert service.refusals()["unreachable"] == 2  # both distribution points, once each
        assert verdict(service, revoc_pki, revoc_pki["good"], clock.now).passed
        clock.now = now + HOUR + timedelta(minutes=1)  # past nextUpdate, still no server
        service.refresh_due()
        assert service.earliest_next_update is not None
        assert service.earliest_next_update < clock.now
        late = verdict(service, revoc_pki, revoc_pki["good"], clock.now)
        assert (late.indication, late.subindication) == (Indication.INDETERMINATE, SubIndication.TRY_LATER)
        assert any("stale" in e for e in late.errors)
        # A revocation the stale CRL lists stays proven: that document is refused, not held.
        assert verdict(service, revoc_pki, revoc_pki["victim"], clock.now).subindication is SubIndication.REVOKED
        assert all(s.failures >= 2 and "unreachable" in (s.last_error or "") for s in service.sources())
    finally:
        crl_server.start()
    publish_crls(crl_server, revoc_pki, now=clock.now)  # the CA publishes again and the server is back
    clock.now += timedelta(minutes=5)
    assert service.refresh_due()
    assert verdict(service, revoc_pki, revoc_pki["good"], clock.now).passed


def test_new_service_starts_from_the_cache_without_network(crl_server, revoc_pki, s3_store):
    """A service started on a store another one filled has the CRLs at once, with the server down."""
    now = datetime.now(UTC)
    publish_crls(crl_server, revoc_pki, now=now)
    first = service_for(revoc_pki, s3_store)
    first.observe(revoc_pki["good"].cert)
    first.refresh_due()
    crl_server.stop()
    try:
        with service_for(revoc_pki, s3_store, retry_seconds=60) as second:  # no leaf seen: URLs from the cache
            assert len(second.current_crls()) == 2
            assert verdict(second, revoc_pki, revoc_pki["good"], now).passed
            assert {s.url for s in second.sources()} == {crl_server.url("root.crl"), crl_server.url("ca.crl")}
    finally:
        crl_server.start()


def test_from_settings_reads_the_revocation_settings(pki_dir, revoc_pki, crl_server):
    """The settings name the CAs, the CRL files and the three revocation settings; fetch off keeps files only."""
    files = {"trust": (pki_dir / "root.pem",), "intermediates": (pki_dir / "ca.pem",), "crls": (pki_dir / "crl.pem",)}
    env = {"LIENTHONG_REVOCATION_REFRESH_SECONDS": "0.5", "LIENTHONG_REVOCATION_MAX_CRL_BYTES": "1000"}
    service = RevocationService.from_settings(HubSettings.load(None, env=env, **files), None)
    leaf = revoc_pki["leaf"]("Settings Agency", url_name="big.crl")
    entries = [(n, datetime.now(UTC)) for n in range(1, 100)]
    crl_server.publish("big.crl", der(devpki.make_crl(revoc_pki["ca"], entries, **_valid_now())))
    service.observe_der([leaf.cert.public_bytes(serialization.Encoding.DER), der_of(revoc_pki["ca"])])
    service.refresh_due()
    assert service.refusals()[CrlRefusal.TOO_LARGE] == 1  # over revocation_max_crl_bytes
    (source,) = (s for s in service.sources() if s.url == crl_server.url("big.crl"))
    assert source.next_attempt - datetime.now(UTC) < timedelta(seconds=1)  # retry capped by the refresh interval
    assert pki_dir.joinpath("crl.pem").read_bytes() in [
        c.public_bytes(serialization.Encoding.PEM) for c in service.current_crls()
    ]
    off = RevocationService.from_settings(
        HubSettings.load(None, env={"LIENTHONG_REVOCATION_FETCH": "no"}, **files), None
    )
    off.observe(leaf.cert)
    assert off.sources() == ()


def _valid_now():
    return {"this_update": datetime.now(UTC), "next_update": datetime.now(UTC) + HOUR}


def test_crl_file_replaced_on_disk_is_read_again(pki, tmp_path):
    """A CRL file from the settings is in the set, and a replaced file is read again without a restart."""
    path = tmp_path / "ca-crl.pem"
    path.write_bytes(pki.crl.public_bytes(serialization.Encoding.PEM))
    service = RevocationService((pki.root.cert, pki.ca.cert), crl_files=[path], fetch=False, file_check_seconds=0)
    assert service.current_crls() == (pki.crl,)
    newer = devpki.make_crl(pki.ca, [], this_update=FIXED_NOW, next_update=FIXED_NOW + timedelta(days=60))
    path.write_bytes(newer.public_bytes(serialization.Encoding.PEM))
    time.sleep(0.01)  # a new mtime even on coarse file systems
    path.touch()
    assert service.refresh_due()
    assert service.current_crls() == (newer,)


def _wrong_key(pki_):
    impostor = devpki.Issued(pki_["ca"].cert, rsa.generate_private_key(public_exponent=65537, key_size=2048), ())
    return der(devpki.make_crl(impostor, [], this_update=datetime.now(UTC), next_update=datetime.now(UTC) + HOUR))


def _foreign(pki_):
    return der(devpki.make_crl(pki_["root"], [], this_update=datetime.now(UTC), next_update=datetime.now(UTC) + HOUR))


def _oversized(pki_):
    entries = [(n, datetime.now(UTC)) for n in range(1, 200)]
    return der(
        devpki.make_crl(pki_["ca"], entries, this_update=datetime.now(UTC), next_update=datetime.now(UTC) + HOUR)
    )


@pytest.mark.parametrize(
    ("case", "make", "reason"),
    [
        ("wrong-key", _wrong_key, CrlRefusal.BAD_SIGNATURE),
        ("foreign", _foreign, CrlRefusal.WRONG_ISSUER),
        ("oversized", _oversized, CrlRefusal.TOO_LARGE),
        ("garbage", lambda _: b"\x30\x03not a CRL at all", CrlRefusal.NOT_A_CRL),
    ],
)
def test_bad_crl_is_refused_logged_and_counted(crl_server, revoc_pki, caplog, case, make, reason):  # noqa: PLR0917
    """A CRL signed by another key, another CA's CRL, an oversized one or garbage: refused, logged, counted."""
    name = f"{case}.crl"
    crl_server.publish(name, make(revoc_pki))
    service = service_for(revoc_pki, max_crl_bytes=4000)
    service.observe(revoc_pki["leaf"](f"Agency {case}", url_name=name).cert)
    with caplog.at_level(logging.WARNING, logger="lienthong.revocation"):
        service.refresh_due()
    (source,) = (s for s in service.sources() if s.url == crl_server.url(name))
    assert source.this_update is None  # nothing held from that URL
    assert reason in (source.last_error or "")
    assert service.refusals()[reason] == 1
    assert any(crl_server.url(name) in r.message and f"({reason})" in r.message for r in caplog.records)


def test_non_http_distribution_point_is_refused_once(revoc_pki, caplog):
    """An ldap:// or file:// distribution point is never contacted; refused once per URL, however often seen."""
    service = service_for(revoc_pki)
    leaf = revoc_pki["leaf"]("LDAP Agency", url="file:///etc/passwd")
    with caplog.at_level(logging.WARNING, logger="lienthong.revocation"):
        service.observe(leaf.cert)
        service.observe(revoc_pki["leaf"]("LDAP Agency 2", url="file:///etc/passwd").cert)
    assert service.refusals() == {CrlRefusal.NOT_HTTP: 1}
    assert "file:///etc/passwd" not in {s.url for s in service.sources()}
    assert any("file:///etc/passwd" in r.message and "not-http" in r.message for r in caplog.records)


def test_only_certificates_a_known_ca_signed_are_listened_to(crl_server, revoc_pki):
    """A certificate naming a known CA but signed by another key adds no URL: a document cannot steer fetches."""
    impostor = devpki.Issued(revoc_pki["ca"].cert, ec.generate_private_key(ec.SECP256R1()), ())
    forged = devpki.make_leaf(impostor, "Forged Agency", crl_url=crl_server.url("forged.crl"), **WINDOW)
    service = service_for(revoc_pki)
    service.observe(forged.cert)
    service.refresh_due()
    assert crl_server.url("forged.crl") not in {s.url for s in service.sources()}
    assert "forged.crl" not in crl_server.requests


def test_intermediate_from_the_document_is_learnt_when_a_known_ca_signed_it(crl_server, revoc_pki):
    """With only the root configured, a leaf's chain teaches the CA: its CRL is fetched and verified with it."""
    publish_crls(crl_server, revoc_pki, now=datetime.now(UTC))
    service = RevocationService((revoc_pki["root"].cert,))
    good = revoc_pki["good"]
    service.observe_der(
        [
            good.cert.public_bytes(serialization.Encoding.DER),
            *(c.public_bytes(serialization.Encoding.DER) for c in good.chain),
        ]
    )
    service.refresh_due()
    assert {c.issuer for c in service.current_crls()} == {revoc_pki["root"].cert.subject, revoc_pki["ca"].cert.subject}
    assert service.refusals() == {}


def test_older_crl_is_refused(crl_server, revoc_pki):
    """A CRL older than the one held (a replay, a stale mirror) is refused and the newer one kept."""
    now = datetime.now(UTC)
    clock = Clock(now)
    publish_crls(crl_server, revoc_pki, now=now, number=10)
    service = service_for(revoc_pki, clock=clock)
    service.observe(revoc_pki["good"].cert)
    service.refresh_due()
    held = service.current_crls()
    publish_crls(crl_server, revoc_pki, now=now + timedelta(minutes=1), number=9)
    clock.now = now + HOUR / 2
    assert not service.refresh_due()
    assert service.current_crls() == held
    assert service.refusals()[CrlRefusal.OLDER] == 2


# --- OCSP ------------------------------------------------------------------------------------------------


def ocsp_validator(pki, responder, client):
    """OCSP for the responder's leaves, the root's CRL for its CA (validated at FIXED_NOW, as test_path does)."""
    return PathValidator(TrustPolicy(anchors=(responder.anchor,), crls=(pki.root_crl,), ocsp=client))


def test_ocsp_good_with_nonce_and_cached_across_validators(pki, ocsp_responder):
    """A good answer carries our nonce back; a rebuilt validator sharing the client asks the responder no more."""
    client = OcspClient(timeout=10)
    leaf = ocsp_responder.good
    before = ocsp_responder.requests()
    result = ocsp_validator(pki, ocsp_responder, client).validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert result.passed, result.errors
    response = ocsp.load_der_ocsp_response(result.revocation[0].der)
    assert len(response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce) == 16
    again = ocsp_validator(pki, ocsp_responder, client).validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert again.passed
    assert (client.requests, client.cache_hits, ocsp_responder.requests()) == (1, 1, before + 1)


def test_ocsp_revoked(pki, ocsp_responder):
    """The responder's 'revoked', fetched with a nonce, fails the path REVOKED."""
    leaf = ocsp_responder.revoked
    result = ocsp_validator(pki, ocsp_responder, OcspClient(timeout=10)).validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert result.subindication is SubIndication.REVOKED


def test_ocsp_unreachable_is_try_later(pki):
    """A responder that does not listen gives TRY_LATER naming its URL, not a failure."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    leaf = devpki.make_leaf(
        pki.ca, "Dead OCSP Agency", public_key=pki.agency_ec.cert.public_key(), ocsp_url=url, **WINDOW
    )
    policy = TrustPolicy(anchors=(pki.root.cert,), crls=(pki.root_crl,), ocsp=OcspClient(timeout=2))
    result = PathValidator(policy).validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    assert (result.indication, result.subindication) == (Indication.INDETERMINATE, SubIndication.TRY_LATER)
    assert any(url in e for e in result.errors)


def test_ocsp_replayed_response_is_refused(pki, ocsp_responder):
    """A genuine response replayed to a later request (its nonce is another's) is refused: TRY_LATER, 'nonce'."""
    leaf = ocsp_responder.good
    captured = ocsp_validator(pki, ocsp_responder, OcspClient(timeout=10)).validate(leaf.cert, leaf.chain, at=FIXED_NOW)
    replay = captured.revocation[0].der

    class Replayer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Length", str(len(replay)))
            self.end_headers()
            self.wfile.write(replay)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replayer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = OcspClient(timeout=5)
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = ocsp_validator(pki, ocsp_responder, lambda _u, der_: client(url, der_)).validate(
            leaf.cert, leaf.chain, at=FIXED_NOW
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.subindication is SubIndication.TRY_LATER
    assert any("nonce" in e for e in result.errors)
