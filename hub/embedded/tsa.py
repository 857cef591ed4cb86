"""A local RFC 3161 time-stamp authority: ``openssl ts -reply`` behind a small HTTP front on 127.0.0.1.

For the demo (``lienthong up --demo`` time-stamps every tree head with it) and the tests. Its folder holds the TSA's
certificate (extended key usage timeStamping, critical), key and issuer chain; it keeps its serial number there too,
so a restart goes on counting. Requests go one at a time to OpenSSL (it rewrites the serial file on each).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Self

from hub.embedded._front import DEFAULT_MAX_REQUEST_BYTES, PostFront, run_openssl
from hub.embedded._process import ServerStartError

__all__ = ["TSA_CERT_FILE", "TSA_CHAIN_FILE", "TSA_KEY_FILE", "EmbeddedTsa"]

TSA_CERT_FILE = "tsa.pem"
TSA_KEY_FILE = "tsa.key"
TSA_CHAIN_FILE = "tsa-chain.pem"  # the TSA certificate's issuers, put in each token with it

#: An OID under a placeholder private-enterprise arc: the policy a real TSA publishes for its tokens.
DEMO_TSA_POLICY = "1.3.6.1.4.1.99999.1.1"

_CONFIG = f"""\
[ tsa ]
default_tsa = lienthong_tsa

[ lienthong_tsa ]
dir = .
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/{TSA_CERT_FILE}
certs = $dir/{TSA_CHAIN_FILE}
signer_key = $dir/{TSA_KEY_FILE}
signer_digest = sha256
default_policy = {DEMO_TSA_POLICY}
other_policies = 1.3.6.1.4.1.99999.1.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class EmbeddedTsa:
    """``openssl ts -reply`` over the files in ``folder``, answering POSTs at ``url`` (127.0.0.1, ``port`` or free)."""

    def __init__(self, folder: Path, *, port: int = 0, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ServerStartError("the time-stamp authority needs the openssl command (Debian package openssl)")
        missing = [name for name in (TSA_CERT_FILE, TSA_KEY_FILE, TSA_CHAIN_FILE) if not (folder / name).is_file()]
        if missing:
            raise ServerStartError(f"the time-stamp authority in {folder} lacks {', '.join(missing)}")
        self.folder = folder
        if not (folder / "tsaserial").exists():
            (folder / "tsaserial").write_text("01\n")
        (folder / "ts.cnf").write_text(_CONFIG)
        self._command = [openssl, "ts", "-reply", "-config", "ts.cnf", "-queryfile", "{in}", "-out", "{out}"]
        self._lock = threading.Lock()
        self._front = PostFront(self._answer, port=port, max_request_bytes=max_request_bytes)

    def _answer(self, _path: str, body: bytes) -> tuple[str, bytes]:
        with self._lock:
            return "application/timestamp-reply", run_openssl(self._command, body, self.folder)

    @property
    def url(self) -> str:
        """Where to POST time-stamp requests (``application/timestamp-query``)."""
        return self._front.url

    @property
    def port(self) -> int:
        """Its port on 127.0.0.1 (the same after a stop and start)."""
        return self._front.port

    @property
    def requests(self) -> int:
        """Requests answered (or attempted) so far."""
        return self._front.requests

    @property
    def running(self) -> bool:
        """Whether it is serving."""
        return self._front.running

    def start(self) -> Self:
        """Serve on a thread of this process."""
        self._front.start()
        return self

    def stop(self) -> None:
        """Stop serving (``start`` serves again on the same port)."""
        self._front.stop()
