"""Trust that holds over time, in the running hub: CRLs fetched and refreshed, TRY_LATER held, OCSP end to end.

One hub for the module (``start_stack``): the demo PKI's agency certificates name a CRL distribution point on a small
HTTP server this module runs on 127.0.0.1, and three more agencies sign with certificates of the real ``openssl
ocsp`` responder's CA (good, revoked, and one whose responder URL answers nothing). CRLs are valid for seconds and
refreshed every ``REFRESH`` seconds, and a held document is refused after ``DEADLINE`` seconds, so the module runs
in well under a minute and a half. The tests build on each other in file order (each counts only its own records).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.dms import HubClient
from hub.demo import create_demo_material
from hub.hold import Hold
from hub.up import wait_until
from schemas import build_document, parse
from schemas.examples import example_edoc
from schemas.model import StatusMessage
from signer import devpki
from signer.keys import PemKey
from signer.sign import sign_document
from storage.ledger import Ledger
from storage.s3 import S3ObjectStore
from tests.support.hub_fixtures import Outputs, Stack, start_stack
from tests.support.pki_fixtures import TestPki
from tests.support.server_fixtures import OcspResponder

pytestmark = pytest.mark.servers

REFRESH = 2.0  # revocation_refresh_seconds: how often the hub asks the distribution point again
DEADLINE = 15.0  # try_later_deadline_seconds: a held document is refused after this
WAIT = 60.0  # the longest any outcome may take here (the broker and the store share 2 cores with other tests)
SENDER = "000.00.00.H41"
RECIPIENT = "000.01.00.H41"
REVOKED_LATER = "000.02.00.H41"  # a demo agency whose certificate this module revokes while the hub runs
OCSP_GOOD, OCSP_REVOKED, OCSP_DOWN = "000.00.00.O01", "000.00.00.O02", "000.00.00.O04"


class CrlServer:
    """A CRL distribution point on 127.0.0.1: serves the last CRL published; while ``down``, answers 503."""

    def __init__(self) -> None:
        self.crl = b""
        self.down = False
        self.gets = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.gets += 1
                if server.down or not server.crl:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(server.crl)))
                self.end_headers()
                self.wfile.write(server.crl)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                """Keep test output quiet."""

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, name="test-crl-server", daemon=True).start()
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/ca.crl"

    def stop(self) -> None:
        """Stop serving."""
        self._http.shutdown()
        self._http.server_close()


class Hub:
    """The running hub, its CRL server, the demo issuing CA (to publish CRLs) and the OCSP agencies' keys."""

    def __init__(self, stack: Stack, crls: CrlServer, ca: devpki.Issued, ocsp_keys: dict[str, PemKey]) -> None:
        self.stack = stack
        self.crls = crls
        self.ca = ca
        self.ocsp_keys = ocsp_keys
        self.revoked: list[tuple[int, datetime]] = []
        self.held_by_ocsp: str | None = None  # a document held for its unreachable OCSP responder (the deadline test)
        self._number = 0

    def publish(self, *, valid: float, revoke: str | None = None) -> x509.CertificateRevocationList:
        """Publish a new CRL of the demo CA, valid ``valid`` seconds, also revoking agency ``revoke``."""
        now = datetime.now(UTC)
        if revoke is not None:
            self.revoked.append((self.stack.material.keys[revoke].certificate.serial_number, now - timedelta(hours=1)))
        self._number += 1
        crl = devpki.make_crl(
            self.ca,
            self.revoked,
            this_update=now - timedelta(seconds=1),
            next_update=now + timedelta(seconds=valid),
            number=self._number,
        )
        self.crls.crl = crl.public_bytes(serialization.Encoding.DER)
        return crl

    def store(self) -> S3ObjectStore:
        """The hub's object store."""
        s = self.stack.settings
        return S3ObjectStore.connect(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_bucket, create_bucket=False)

    def cached_numbers(self) -> set[int]:
        """The CRL numbers of the demo CA's CRLs cached in the object store (``revocation/crl/``)."""
        store = self.store()
        numbers = set()
        for key in store.list("revocation/crl/"):
            crl = x509.load_der_x509_crl(store.get(key))
            numbers.add(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        return numbers

    def send(self, sender: str, number: int) -> str:
        """Send a signed document from ``sender`` to ``RECIPIENT``; its SHA-256."""
        key = self.ocsp_keys.get(sender) or self.stack.material.keys[sender]
        edoc = example_edoc(
            sender=sender, recipients=(RECIPIENT,), number=number, notation="TRUST", day=datetime.now(UTC).date()
        )
        data = sign_document(build_document(edoc), key)
        client = HubClient(self.stack.connection, organ_id=sender)
        client.send_many([data])
        client.close()
        return hashlib.sha256(data).hexdigest()


def _add_agencies(material_root: Path, keys: dict[str, PemKey]) -> None:
    """Add agencies pinned to ``keys`` to the demo directory (before the hub's first start seeds it)."""
    directory = material_root / "directory.yaml"
    entries = yaml.safe_load(directory.read_text(encoding="utf-8"))
    for oid, key in keys.items():
        pin = devpki.spki_sha256(key.certificate)
        entries["agencies"].append({"id": oid, "name": f"OCSP {oid}", "route": "local", "cert_spki_sha256": [pin]})
    directory.write_text(yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _key(issued: devpki.Issued) -> PemKey:
    return PemKey.load(issued.key_pem(), issued.cert_pem())


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, pki: TestPki, ocsp_responder: OcspResponder) -> Iterator[Hub]:
    """The module's hub: demo certificates naming the CRL server, OCSP agencies, short revocation times."""
    data = tmp_path_factory.mktemp("trust") / "data"
    crls = CrlServer()
    material = create_demo_material(data / "demo", crl_url=crls.url)
    now = datetime.now(UTC)
    dead_responder = "http://127.0.0.1:9/"  # the discard port: nothing answers there
    window: dict[str, Any] = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=30)}
    down = devpki.make_leaf(
        ocsp_responder.ca, "OCSP Down Agency", organ_id=OCSP_DOWN, ocsp_url=dead_responder, **window
    )
    ocsp_keys = {
        OCSP_GOOD: _key(ocsp_responder.good),
        OCSP_REVOKED: _key(ocsp_responder.revoked),
        OCSP_DOWN: _key(down),
    }
    _add_agencies(material.root, ocsp_keys)
    trust = material.trust_dir
    extra = data / "ocsp-trust"
    extra.mkdir()
    (extra / "root.pem").write_bytes(pki.root.cert_pem())
    (extra / "ca.pem").write_bytes(ocsp_responder.ca.cert_pem())
    # The OCSP CA's own status: a current CRL of the test root (the session PKI's is dated for a fixed clock).
    root_crl = devpki.make_crl(pki.root, [], this_update=now - timedelta(hours=1), next_update=now + timedelta(days=1))
    (extra / "root-crl.pem").write_bytes(root_crl.public_bytes(serialization.Encoding.PEM))
    # The demo CA's CRL comes only from the distribution point: no file for it (the root's file covers the CA).
    ca_key = serialization.load_pem_private_key((material.root / "ca-key.pem").read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    ca = devpki.Issued(x509.load_pem_x509_certificate((trust / "ca.pem").read_bytes()), ca_key, ())
    stack = start_stack(
        data,
        trust=(trust / "root.pem", extra / "root.pem"),
        intermediates=(trust / "ca.pem", extra / "ca.pem"),
        crls=(trust / "root-crl.pem", extra / "root-crl.pem"),
        ocsp=True,
        revocation_refresh_seconds=REFRESH,
        try_later_retry_seconds=1.0,
        try_later_deadline_seconds=DEADLINE,
    )
    try:
        yield Hub(stack, crls, ca, ocsp_keys)
    finally:
        stack.hub.stop()
        crls.stop()


def _statuses(outputs: Outputs, sender: str, sha: str) -> list[tuple[str, str, dict[str, bytes]]]:
    """(code, description, headers) of the statuses ``sender`` got about the document with SHA-256 ``sha``."""
    found = []
    for headers, value in outputs.records.get(f"lienthong.status.{sender}", []):
        if headers.get("lienthong-sha256", b"").decode() == sha:
            message = parse(value).message
            assert isinstance(message, StatusMessage)
            found.append((message.status_code, message.description or "", headers))
    return found


def _delivered(outputs: Outputs, sha: str) -> int:
    return sum(1 for _, headers, _ in outputs.deliveries() if headers.get("lienthong-sha256", b"").decode() == sha)


def _dead(outputs: Outputs, sha: str) -> list[dict[str, bytes]]:
    return [h for h, _ in outputs.records.get("lienthong.deadletter", []) if h.get("lienthong-sha256") == sha.encode()]


def _held(outputs: Outputs, sender: str, sha: str) -> bool:
    return any(
        code == "01" and "held: revocation data for" in text for code, text, _ in _statuses(outputs, sender, sha)
    )


@pytest.fixture
def outputs(hub: Hub) -> Iterator[Outputs]:
    """The hub's output topics, from after what earlier tests produced."""
    reader = Outputs(hub.stack.connection)
    reader.skip_existing()
    try:
        yield reader
    finally:
        reader.close()


def test_crl_fetched_cached_and_a_new_revocation_refused_without_restart(hub: Hub, outputs: Outputs) -> None:
    """A new signer's CRL is fetched and cached (its first document waits for it); a newly revoked one is refused."""
    hub.publish(valid=120)
    first = hub.send(SENDER, 1)
    assert outputs.wait_for(lambda o: _delivered(o, first) == 1, timeout=WAIT)
    assert hub.cached_numbers() == {1}
    # Its CRL was unknown until the hub saw the certificate: held, then delivered as soon as the CRL came.
    assert _held(outputs, SENDER, first)
    assert [c for c, _, _ in _statuses(outputs, SENDER, first)] == ["01", "01"]
    revoked_crl = hub.publish(valid=120, revoke=REVOKED_LATER)
    assert wait_until(lambda: 2 in hub.cached_numbers(), timeout=WAIT, every=0.25), "the new CRL was not fetched"
    assert revoked_crl.get_revoked_certificate_by_serial_number(hub.revoked[0][0]) is not None
    refused = hub.send(REVOKED_LATER, 2)
    assert outputs.wait_for(lambda o: any(c == "02" for c, _, _ in _statuses(o, REVOKED_LATER, refused)), timeout=WAIT)
    [(_, text, headers)] = [s for s in _statuses(outputs, REVOKED_LATER, refused) if s[0] == "02"]
    assert headers["lienthong-reason"] == b"REVOKED"
    assert "REVOKED" in text
    assert _delivered(outputs, refused) == 0


def test_ocsp_good_revoked_and_unreachable_in_the_running_hub(hub: Hub, outputs: Outputs) -> None:
    """OCSP through the real openssl responder: good delivered, revoked refused, unreachable held (not refused)."""
    good, revoked, down = hub.send(OCSP_GOOD, 3), hub.send(OCSP_REVOKED, 4), hub.send(OCSP_DOWN, 5)
    assert outputs.wait_for(
        lambda o: _delivered(o, good) == 1 and _dead(o, revoked) and _held(o, OCSP_DOWN, down), timeout=WAIT
    )
    [(_, _, rejection)] = [s for s in _statuses(outputs, OCSP_REVOKED, revoked) if s[0] == "02"]
    assert rejection["lienthong-reason"] == b"REVOKED"
    hub.held_by_ocsp = down
    [(code, text, _)] = _statuses(outputs, OCSP_DOWN, down)
    assert code == "01"
    assert "OCSP Down Agency" in text
    assert not _dead(outputs, down)
    assert _delivered(outputs, down) == 0


def test_crl_server_down_cached_crl_used_then_held_then_delivered_once(hub: Hub, outputs: Outputs) -> None:
    """Server down: the held CRL serves until nextUpdate, then documents are held; server back: delivered once."""
    valid = 8.0
    short = hub.publish(valid=valid)
    assert wait_until(lambda: 3 in hub.cached_numbers(), timeout=WAIT, every=0.25), "the short CRL was not fetched"
    hub.crls.down = True
    on_time = hub.send(SENDER, 6)
    assert outputs.wait_for(lambda o: _delivered(o, on_time) == 1, timeout=WAIT)
    assert short.next_update_utc is not None
    time.sleep(max(0.0, (short.next_update_utc - datetime.now(UTC)).total_seconds()) + 0.5)
    late = hub.send(SENDER, 7)
    assert outputs.wait_for(lambda o: _held(o, SENDER, late), timeout=WAIT)
    outputs.poll(REFRESH)  # held: nothing else comes while the distribution point stays down
    assert _delivered(outputs, late) == 0
    assert not _dead(outputs, late)
    assert [c for c, _, _ in _statuses(outputs, SENDER, late)] == ["01"]
    hub.publish(valid=120)
    hub.crls.down = False
    assert outputs.wait_for(lambda o: _delivered(o, late) == 1, timeout=WAIT)
    outputs.poll(2 * REFRESH)  # a second copy would have come by now
    assert _delivered(outputs, late) == 1
    assert [c for c, _, _ in _statuses(outputs, SENDER, late)] == ["01", "01"]
    assert not _dead(outputs, late)
    verdicts = _ledger_verdicts(hub, late)
    assert "held" in verdicts
    assert "sent" in verdicts


def test_held_document_refused_after_the_deadline(hub: Hub) -> None:
    """A document held past the deadline (OCSP still unreachable) is refused: REVOCATION_UNAVAILABLE naming the cert."""
    outputs = Outputs(hub.stack.connection)  # from the beginning: the OCSP test's held document, held since then
    down = hub.held_by_ocsp or hub.send(OCSP_DOWN, 8)
    assert outputs.wait_for(lambda o: _held(o, OCSP_DOWN, down), timeout=WAIT)
    assert outputs.wait_for(lambda o: _dead(o, down), timeout=DEADLINE + WAIT)
    [dead] = _dead(outputs, down)
    assert dead["lienthong-reason"] == b"REVOCATION_UNAVAILABLE"
    assert b"OCSP Down Agency" in dead["lienthong-error"]
    [(_, text, _)] = [s for s in _statuses(outputs, OCSP_DOWN, down) if s[0] == "02"]
    assert "REVOCATION_UNAVAILABLE" in text
    assert "OCSP Down Agency" in text
    assert _delivered(outputs, down) == 0
    outputs.close()


def test_backoff_doubles_to_fifteen_minutes_and_never_passes_the_deadline() -> None:
    """A held document is due after 30 s, 60 s, 120 s ... at most 15 minutes apart, and last at its deadline."""
    since = datetime(2026, 12, 1, tzinfo=UTC)
    hold, now, waits = Hold(since, 0, since), since, []
    for _ in range(8):
        hold = hold.again(now, retry_seconds=30, deadline_seconds=3600)
        waits.append((hold.retry_at - now).total_seconds())
        now = hold.retry_at
    assert waits[:6] == [30, 60, 120, 240, 480, 900]
    assert now == since + timedelta(seconds=3600)  # capped: the last attempt is at the deadline, then refused
    assert hold.attempts == 8


def _ledger_verdicts(hub: Hub, sha: str) -> set[str]:
    """The verdicts of the ledger's events about the document with SHA-256 ``sha`` (waits for them to be stored)."""
    store = hub.store()
    verdicts: set[str] = set()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        ledger = Ledger.open(store)
        verdicts = {e.verdict for i in range(ledger.size) if (e := ledger.event(i)).sha256 == sha}
        if {"held", "sent"} <= verdicts:
            break
        time.sleep(0.5)
    return verdicts
