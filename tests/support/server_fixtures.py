"""Real servers as pytest fixtures: an OpenSSL OCSP responder, an OpenSSL TSA and a SoftHSM2 token.

``openssl ocsp`` and ``openssl ts -reply`` answer one request per run, so each sits behind the hub's small HTTP
front (``hub.embedded._front`` on 127.0.0.1, a free port), which runs OpenSSL on each POSTed body and returns what
OpenSSL wrote; the TSA is the one ``lienthong up --demo`` runs (``hub.embedded.tsa``). The fixtures skip when a
tool is missing on a laptop and fail in CI (``tests.support.require_tool``). Servers are stopped at fixture teardown.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.embedded._front import PostFront, run_openssl
from hub.embedded.tsa import TSA_CERT_FILE, TSA_CHAIN_FILE, TSA_KEY_FILE, EmbeddedTsa
from signer import devpki
from tests.support import require_tool
from tests.support.pki_fixtures import NOT_AFTER, NOT_BEFORE, TestPki

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from cryptography import x509

__all__ = [
    "OCSP_REVOKED_AT",
    "OcspResponder",
    "SoftHsmToken",
    "TsaServer",
    "ocsp_responder",
    "softhsm_token",
    "tsa_server",
]

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
OCSP_REVOKED_AT = datetime(2026, 1, 1, tzinfo=UTC)
_OPENSSL_TIMEOUT = 30  # seconds; a hung softhsm2-util must not hang the suite


# --- OCSP -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OcspResponder:
    """A running ``openssl ocsp`` responder and the certificates it answers for.

    ``ca`` (issued by the test root) issued ``good``, ``revoked`` (revoked on ``OCSP_REVOKED_AT``) and
    ``unknown`` (not in the responder's index), all with ``url`` as their AIA OCSP URL. POSTs to ``url``
    are answered by the delegated responder ``signer``; POSTs to ``url + "ca"`` are signed by ``ca`` itself.
    ``requests()`` counts the POSTs served.
    """

    url: str
    ca: devpki.Issued
    good: devpki.Issued
    revoked: devpki.Issued
    unknown: devpki.Issued
    signer: devpki.Issued
    anchor: x509.Certificate
    requests: Callable[[], int]


def _index_line(issued: devpki.Issued, revoked_at: datetime | None) -> str:
    expiry = issued.cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    revocation = revoked_at.strftime("%y%m%d%H%M%SZ") if revoked_at else ""
    status = "R" if revoked_at else "V"
    subject = "/CN=" + issued.cert.subject.rfc4514_string()
    return f"{status}\t{expiry}\t{revocation}\t{issued.cert.serial_number:X}\tunknown\t{subject}\n"


@pytest.fixture(scope="session")
def ocsp_responder(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OcspResponder]:
    """Run ``openssl ocsp`` on 127.0.0.1 for a CA whose leaves name it as their OCSP responder."""
    openssl = require_tool("openssl")
    workdir = tmp_path_factory.mktemp("ocsp")
    delegated = [openssl, "ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "signer.pem"]
    delegated += ["-rkey", "signer.key", "-reqin", "{in}", "-respout", "{out}"]
    by_ca = [openssl, "ocsp", "-index", "index.txt", "-CA", "ca.pem", "-rsigner", "ca.pem"]
    by_ca += ["-rkey", "ca.key", "-reqin", "{in}", "-respout", "{out}"]

    def answer(path: str, body: bytes) -> tuple[str, bytes]:
        return "application/ocsp-response", run_openssl(by_ca if path == "/ca" else delegated, body, workdir)

    front = PostFront(answer)
    url = front.url  # the port is known before the leaves are issued, so they can carry it
    window = {"not_before": NOT_BEFORE, "not_after": NOT_AFTER}
    ca = devpki.make_ca(pki.root, "lienthong OCSP Test CA", **window)
    good = devpki.make_leaf(ca, "OCSP Good Agency", organ_id="000.00.00.O01", ocsp_url=url, **window)
    revoked = devpki.make_leaf(ca, "OCSP Revoked Agency", organ_id="000.00.00.O02", ocsp_url=url, **window)
    unknown = devpki.make_leaf(ca, "OCSP Unknown Agency", organ_id="000.00.00.O03", ocsp_url=url, **window)
    signer = devpki.make_ocsp_signer(ca, "lienthong OCSP Test Responder", **window)
    (workdir / "ca.pem").write_bytes(ca.cert_pem())
    (workdir / "ca.key").write_bytes(ca.key_pem())
    (workdir / "signer.pem").write_bytes(signer.cert_pem())
    (workdir / "signer.key").write_bytes(signer.key_pem())
    (workdir / "index.txt").write_text(_index_line(good, None) + _index_line(revoked, OCSP_REVOKED_AT))
    (workdir / "index.txt.attr").write_text("unique_subject = no\n")
    front.start()
    try:
        yield OcspResponder(url, ca, good, revoked, unknown, signer, pki.root.cert, lambda: front.requests)
    finally:
        front.stop()


# --- TSA --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TsaServer:
    """A running ``openssl ts -reply`` TSA (``hub.embedded.tsa``) and its ``cert`` (EKU timeStamping, test CA).

    ``server.stop()`` and ``server.start()`` take it down and bring it back on the same URL.
    """

    url: str
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    anchor: x509.Certificate
    requests: Callable[[], int]
    server: EmbeddedTsa


@pytest.fixture(scope="session")
def tsa_server(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaServer]:
    """Run an RFC 3161 TSA (``openssl ts -reply``) on 127.0.0.1 with the test PKI's TSA certificate."""
    require_tool("openssl")
    workdir = tmp_path_factory.mktemp("tsa")
    (workdir / TSA_CERT_FILE).write_bytes(pki.tsa.cert_pem())
    (workdir / TSA_KEY_FILE).write_bytes(pki.tsa.key_pem())
    (workdir / TSA_CHAIN_FILE).write_bytes(pki.tsa.chain_pem())
    server = EmbeddedTsa(workdir).start()
    try:
        yield TsaServer(server.url, pki.tsa.cert, pki.tsa.chain, pki.root.cert, lambda: server.requests, server)
    finally:
        server.stop()


# --- SoftHSM2 ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftHsmToken:
    """A fresh SoftHSM2 token holding an RSA-2048 key generated inside it, and a certificate for that key.

    ``env`` holds ``SOFTHSM2_CONF`` for subprocesses (the fixture also sets it in ``os.environ`` for the
    session). ``uri`` is the RFC 7512 URI of the private key, with module path and PIN.
    """

    module: str
    token_label: str
    user_pin: str
    so_pin: str
    key_label: str
    key_id: bytes
    cert: devpki.Issued
    conf: Path
    env: dict[str, str]
    uri: str


@pytest.fixture(scope="session")
def softhsm_token(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    """Create a SoftHSM2 token with a non-extractable RSA key and a test-CA certificate for it."""
    util = require_tool("softhsm2-util")
    if not Path(SOFTHSM_MODULE).exists():
        require_tool("libsofthsm2.so")  # skip locally / fail in CI with a clear name
    import pkcs11  # noqa: PLC0415 - only tests that ask for the token need python-pkcs11
    from pkcs11 import Attribute, KeyType  # noqa: PLC0415

    workdir = tmp_path_factory.mktemp("softhsm")
    (workdir / "tokens").mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {workdir / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    token_label, user_pin, so_pin, key_label, key_id = "lienthong-test", "1234", "5678", "agency-key", b"\x01"
    try:
        init = [util, "--init-token", "--free", "--label", token_label, "--pin", user_pin, "--so-pin", so_pin]
        subprocess.run(init, check=True, capture_output=True, timeout=_OPENSSL_TIMEOUT)
        lib = pkcs11.lib(SOFTHSM_MODULE)
        if lib.initialized:
            lib.reinitialize()  # an earlier token's configuration must not linger
        token = lib.get_token(token_label=token_label)
        with token.open(user_pin=user_pin, rw=True) as session:
            public, _private = session.generate_keypair(
                KeyType.RSA,
                2048,
                label=key_label,
                id=key_id,
                store=True,
                public_template={Attribute.VERIFY: True},
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True},
            )
            numbers = rsa.RSAPublicNumbers(
                int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                int.from_bytes(public[Attribute.MODULUS], "big"),
            )
        cert = devpki.make_leaf(
            pki.ca,
            "HSM Agency",
            organ_id="000.00.00.H01",
            public_key=numbers.public_key(),
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
        )
        uri = (
            f"pkcs11:token={token_label};object={key_label};type=private"
            f"?module-path={SOFTHSM_MODULE}&pin-value={user_pin}"
        )
        yield SoftHsmToken(
            module=SOFTHSM_MODULE,
            token_label=token_label,
            user_pin=user_pin,
            so_pin=so_pin,
            key_label=key_label,
            key_id=key_id,
            cert=cert,
            conf=conf,
            env={"SOFTHSM2_CONF": str(conf)},
            uri=uri,
        )
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
