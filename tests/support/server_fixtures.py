"""Real servers as pytest fixtures: an OpenSSL OCSP responder, an OpenSSL TSA and a SoftHSM2 token.

``openssl ocsp`` and ``openssl ts -reply`` answer one request per run, so each sits behind a tiny HTTP front
(``http.server`` on 127.0.0.1, a free port) that writes the POSTed body to a temporary file, runs OpenSSL on it
and returns what OpenSSL wrote. The fixtures skip when a tool is missing on a laptop and fail in CI
(``tests.support.require_tool``). Servers are stopped at fixture teardown.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

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
_OPENSSL_TIMEOUT = 30  # seconds; a hung OpenSSL must not hang the suite


# --- the HTTP front ---------------------------------------------------------------------------------------


class _Front:
    """A 127.0.0.1 HTTP server that answers each POST with ``answer(path, body) -> (content type, body)``."""

    def __init__(self, answer: Callable[[str, bytes], tuple[str, bytes]]) -> None:
        self.requests = 0

        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                front.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    content_type, reply = answer(self.path, body)
                except subprocess.SubprocessError as exc:
                    self.send_error(500, str(exc))
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                """Keep test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-http-front", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _run_openssl(args: list[str], body: bytes, workdir: Path) -> bytes:
    """Run OpenSSL with the request in a temporary file; return the DER it wrote."""
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        request = Path(scratch) / "request.der"
        response = Path(scratch) / "response.der"
        request.write_bytes(body)
        command = [arg.replace("{in}", str(request)).replace("{out}", str(response)) for arg in args]
        subprocess.run(command, check=True, capture_output=True, timeout=_OPENSSL_TIMEOUT, cwd=workdir)
        return response.read_bytes()


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
        return "application/ocsp-response", _run_openssl(by_ca if path == "/ca" else delegated, body, workdir)

    front = _Front(answer)
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

_TSA_CONFIG = """\
[ tsa ]
default_tsa = lienthong_tsa

[ lienthong_tsa ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa-chain.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1.1
other_policies = 1.3.6.1.4.1.99999.1.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass(frozen=True)
class TsaServer:
    """A running ``openssl ts -reply`` TSA: ``cert`` (EKU timeStamping, issued by the test CA), ``anchor``."""

    url: str
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    anchor: x509.Certificate
    requests: Callable[[], int]


@pytest.fixture(scope="session")
def tsa_server(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TsaServer]:
    """Run an RFC 3161 TSA (``openssl ts -reply``) on 127.0.0.1 with the test PKI's TSA certificate."""
    openssl = require_tool("openssl")
    workdir = tmp_path_factory.mktemp("tsa")
    (workdir / "tsa.pem").write_bytes(pki.tsa.cert_pem())
    (workdir / "tsa.key").write_bytes(pki.tsa.key_pem())
    (workdir / "tsa-chain.pem").write_bytes(pki.tsa.chain_pem())
    (workdir / "tsaserial").write_text("01\n")
    (workdir / "ts.cnf").write_text(_TSA_CONFIG.format(dir=workdir))
    command = [openssl, "ts", "-reply", "-config", "ts.cnf", "-queryfile", "{in}", "-out", "{out}"]
    lock = threading.Lock()  # the serial file is read and rewritten by each run

    def answer(_path: str, body: bytes) -> tuple[str, bytes]:
        with lock:
            return "application/timestamp-reply", _run_openssl(command, body, workdir)

    front = _Front(answer)
    front.start()
    try:
        yield TsaServer(front.url, pki.tsa.cert, pki.tsa.chain, pki.root.cert, lambda: front.requests)
    finally:
        front.stop()


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
