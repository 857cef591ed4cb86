"""A small HTTP front for OpenSSL's one-shot servers (``openssl ts -reply``, ``openssl ocsp``) on 127.0.0.1.

Those commands answer one request per run, from a file, so the front reads each POSTed body (refusing one larger
than its cap), hands it to ``answer(path, body)``, which runs OpenSSL (``run_openssl``), and returns what OpenSSL
wrote. Each request is served on its own thread; a client that stalls is dropped after ``_CLIENT_TIMEOUT``.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "OPENSSL_TIMEOUT", "PostFront", "run_openssl"]

#: Time-stamp and OCSP requests are a few hundred bytes; a body far larger is not one, and is not read.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024
#: Seconds one OpenSSL run may take (they take tens of milliseconds): a hung run must not hold a thread forever.
OPENSSL_TIMEOUT = 30.0
_CLIENT_TIMEOUT = 10.0  # seconds a client may take to send its request

#: ``answer(path, body) -> (content type, reply)``; raises ``subprocess.SubprocessError`` or ``OSError`` on failure.
Answer = Callable[[str, bytes], tuple[str, bytes]]


class PostFront:
    """A 127.0.0.1 HTTP server answering each POST with ``answer``; ``requests`` counts the POSTs served."""

    def __init__(self, answer: Answer, *, port: int = 0, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.requests = 0
        self._answer = answer
        self._max = max_request_bytes
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._bind()

    def _bind(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._server.daemon_threads = True
        self._port = int(self._server.server_address[1])  # a restart binds the same port again

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            timeout = _CLIENT_TIMEOUT

            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    self.send_error(411, "a Content-Length is required")
                    return
                if not 0 < length <= front._max:
                    self.send_error(413, f"the request must be 1 to {front._max} bytes")
                    return
                body = self.rfile.read(length)
                front.requests += 1
                try:
                    content_type, reply = front._answer(self.path, body)
                except (subprocess.SubprocessError, OSError) as exc:
                    self.send_error(500, type(exc).__name__)  # OpenSSL's message may name local files
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                """Quiet: the callers count requests; a line per time-stamp would drown the hub's log."""

        return Handler

    @property
    def port(self) -> int:
        """The port it listens on (fixed at construction, kept across a stop and start)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return f"http://127.0.0.1:{self._port}/"

    @property
    def running(self) -> bool:
        """Whether it is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Serve on a daemon thread (again on the same port after ``stop``)."""
        if self.running:
            return self
        if self._server is None:
            self._bind()
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, name="lienthong-http-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            if thread is not None:
                server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


def run_openssl(args: Sequence[str], body: bytes, workdir: Path, *, timeout: float = OPENSSL_TIMEOUT) -> bytes:
    """Run OpenSSL with ``body`` in a temporary file (``{in}`` in ``args``); return what it wrote to ``{out}``."""
    workdir = workdir.resolve()  # OpenSSL runs in it: a relative scratch path (`--data data`) would not be found
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        request = Path(scratch) / "request.der"
        response = Path(scratch) / "response.der"
        request.write_bytes(body)
        command = [arg.replace("{in}", str(request)).replace("{out}", str(response)) for arg in args]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout, cwd=workdir)  # noqa: S603
        return response.read_bytes()
