"""``lienthong up``: the whole hub on one machine — object store, broker, workers, metrics, and an optional demo.

Start order: ``rclone serve s3`` over ``DATA/s3`` → Tansu with its log in that store (bucket ``tansu``) → topics
(pre-created with explicit partitions) and the directory topic → the hub's seal identity → worker processes →
the HTTP endpoint (``/metrics``, ``/``). Stop order is the reverse; Ctrl-C (SIGINT) or SIGTERM stop it cleanly.
Everything listens on 127.0.0.1. ``DATA`` survives a restart: topics, offsets, archive and ledger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from prometheus_client import generate_latest

from hub.directory import load_directory
from hub.embedded._process import ManagedProcess
from hub.embedded.kafka import EmbeddedKafka
from hub.embedded.s3 import EmbeddedS3
from hub.metrics import collecting_registry
from hub.records import DIRECTORY
from hub.settings import HubSettings
from storage.ledger import create_seal_identity

__all__ = ["Hub", "HubAddresses"]

_WORKER_STOP_GRACE = 15.0  # seconds for a worker to commit and leave the group before it is killed


@dataclass(frozen=True)
class HubAddresses:
    """Where the running hub listens."""

    kafka: str
    s3: str
    http: str


@dataclass
class Hub:
    """The embedded servers and workers of one ``lienthong up``."""

    settings: HubSettings
    workers: int = 1
    progress: Callable[[str], None] = print
    _s3: EmbeddedS3 | None = None
    _kafka: EmbeddedKafka | None = None
    _workers: list[ManagedProcess] = field(default_factory=list)
    _http: ThreadingHTTPServer | None = None

    @property
    def data(self) -> Path:
        """The data folder."""
        return self.settings.data_dir

    def start(self) -> HubAddresses:
        """Start everything in order; on a failure, stop what was started and raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> HubAddresses:
        settings = self.settings
        self.data.mkdir(parents=True, exist_ok=True)
        s3_port = int(settings.s3_endpoint.rsplit(":", 1)[1])
        kafka_port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
        self.progress(f"starting the object store (rclone serve s3) on 127.0.0.1:{s3_port} over {self.data / 's3'}")
        (self.data / "s3" / settings.s3_bucket).mkdir(parents=True, exist_ok=True)
        self._s3 = EmbeddedS3(
            self.data / "s3", port=s3_port, access_key=settings.s3_access_key, secret_key=settings.s3_secret_key
        ).start()
        self.progress(f"starting the broker (Tansu, log in s3://tansu/) on 127.0.0.1:{kafka_port}")
        self._kafka = EmbeddedKafka.durable(
            self._s3, port=kafka_port, log_path=self.data / "logs" / "tansu.log"
        ).start()
        directory = load_directory(settings.directory_file) if settings.directory_file else None
        from hub.app import topic_plan  # noqa: PLC0415 - faust is heavy; import it once we need it

        if directory is not None:
            topics, compacted = topic_plan(settings, directory)
            self._kafka.create_topics(topics, compacted=compacted)
            self._publish_directory(directory)
        create_seal_identity(self.data)
        self.progress(f"hub seal certificate: {settings.seal_cert_path} (what auditors trust for this hub)")
        settings_file = self.data / "settings.yaml"
        settings_file.write_text(yaml.safe_dump(_plain(settings), allow_unicode=True), encoding="utf-8")
        metrics_dir = self.data / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        for n in range(self.workers):
            self.add_worker(settings_file, n)
        self._start_http()
        return HubAddresses(settings.kafka_bootstrap, settings.s3_endpoint, f"127.0.0.1:{settings.http_port}")

    def add_worker(self, settings_file: Path | None = None, n: int | None = None) -> ManagedProcess:
        """Start one more worker process (scale-out); it joins the consumer group."""
        n = len(self._workers) if n is None else n
        settings_file = settings_file or self.data / "settings.yaml"
        argv = [sys.executable, "-m", "hub", "worker", "--settings", str(settings_file), "--loglevel", "warning"]
        worker = _WorkerProcess(f"worker-{n}", argv, log_path=self.data / "logs" / f"worker-{n}.log")
        worker.start()
        self._workers.append(worker)
        self.progress(f"worker {n} started (pid {worker.pid})")
        return worker

    def seal_certificate(self) -> x509.Certificate:
        """The hub's seal certificate (what an auditor trusts for this hub)."""
        return x509.load_pem_x509_certificate(self.settings.seal_cert_path.read_bytes())

    @property
    def worker_processes(self) -> list[ManagedProcess]:
        """The worker processes started so far."""
        return list(self._workers)

    def _publish_directory(self, directory: Any) -> None:
        from kafka import KafkaProducer  # noqa: PLC0415

        producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        try:
            for agency in directory:
                producer.send(DIRECTORY, key=agency.id.encode(), value=agency.to_json())
            producer.flush()
        finally:
            producer.close()

    def _start_http(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    body = generate_latest(collecting_registry())
                    content_type = "text/plain; version=0.0.4; charset=utf-8"
                elif self.path == "/healthz":
                    body, content_type = b"ok\n", "text/plain"
                else:
                    body, content_type = hub.dashboard().encode(), "text/plain; charset=utf-8"
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
                """Quiet."""

        self._http = ThreadingHTTPServer(("127.0.0.1", self.settings.http_port), Handler)
        threading.Thread(target=self._http.serve_forever, name="lienthong-http", daemon=True).start()

    def dashboard(self) -> str:
        """A one-screen text summary of the metrics."""
        lines = ["lienthong hub", ""]
        for metric in collecting_registry().collect():
            for sample in metric.samples:
                if sample.name == "lienthong_documents_total" and sample.value:
                    labels = sample.labels
                    lines.append(
                        f"{labels['stage']:>8} {labels['outcome']:<10} {labels['reason']:<28} {int(sample.value)}"
                    )
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        """Stop workers, then the HTTP endpoint, the broker and the store."""
        for worker in self._workers:
            worker.stop(grace=_WORKER_STOP_GRACE)
        self._workers.clear()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._kafka is not None:
            self._kafka.stop()
            self._kafka = None
        if self._s3 is not None:
            self._s3.stop()
            self._s3 = None


class _WorkerProcess(ManagedProcess):
    """A worker has no port of its own; it is up when its process runs."""

    def __init__(self, name: str, argv: list[str], *, log_path: Path) -> None:
        super().__init__(name, argv, port=0, log_path=log_path)

    def start(self, *, timeout: float = 0) -> _WorkerProcess:  # noqa: ARG002 - nothing to wait for
        """Start the process (no port to wait for)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self


def _plain(settings: HubSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in vars(settings).items():
        if isinstance(value, Path):
            out[name] = str(value)
        elif isinstance(value, tuple):
            out[name] = [str(v) for v in value]
        elif hasattr(value, "value"):
            out[name] = value.value
        elif isinstance(value, dict):
            out[name] = dict(value)
        else:
            out[name] = value
    return out


@contextlib.contextmanager
def running(hub: Hub) -> Iterator[HubAddresses]:
    """Start ``hub``, and stop it on exit, on Ctrl-C, or on SIGTERM."""
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        yield hub.start()
    finally:
        # A second signal (Ctrl-C twice, or `timeout` forwarding its SIGTERM) must not cut the stop short: that
        # left the broker and the store running, orphaned. Each step of the stop is bounded.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            hub.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, interrupt)


def with_demo(settings: HubSettings) -> HubSettings:
    """Settings pointing at the demo PKI and directory in ``DATA/demo`` (created on first use)."""
    from hub.demo import create_demo_material  # noqa: PLC0415

    material = create_demo_material(settings.data_dir / "demo")
    trust = material.trust_dir
    return replace(
        settings,
        directory_file=settings.directory_file or material.directory_file,
        trust=settings.trust or (trust / "root.pem",),
        intermediates=settings.intermediates or (trust / "ca.pem",),
        crls=settings.crls or (trust / "ca-crl.pem", trust / "root-crl.pem"),
    )


def demo_settings_on_free_ports(data: Path, **overrides: Any) -> HubSettings:
    """Demo settings for a private hub in ``data``, every server on a free loopback port (tests, benchmarks)."""
    from hub.embedded._process import free_port  # noqa: PLC0415

    ports = {
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "s3_endpoint": f"127.0.0.1:{free_port()}",
        "http_port": free_port(),
    }
    return with_demo(HubSettings(data_dir=data, **{**ports, **overrides}))


def wait_until(condition: Callable[[], bool], *, timeout: float, every: float = 0.5) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()
