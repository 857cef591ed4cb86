"""``lienthong up``: the whole hub on one machine — object store, broker, workers, metrics, and an optional demo.

Start order: SeaweedFS (``weed mini``) over ``DATA/s3`` → Apache Kafka (KRaft) with its log in ``DATA/kafka`` →
topics (explicit partitions) → the administrator identity (``DATA/admin``) and, on the first start only, the YAML
directory published as signed records on ``lienthong.directory`` → the hub's seal identity → worker processes → the HTTP
endpoint (``hub.dashboard``: the page at ``/``, ``/metrics``, ``/healthz``). Either server may be external instead
(``s3_external``, ``kafka_external``). A supervisor restarts any child that dies, as systemd would, and counts it
(``lienthong_restarts_total``; the workers configured and running are gauges beside it). Stop order is the
reverse; Ctrl-C (SIGINT) or SIGTERM stop it cleanly. Everything listens on 127.0.0.1. ``DATA`` survives a restart:
topics, offsets, archive and ledger; the secrets generated on first start are kept in ``DATA/settings.yaml`` (mode
0600).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge, multiprocess

from hub.dashboard import Dashboard, DashboardServer
from hub.directory import Directory, load_directory
from hub.embedded._process import ManagedProcess, ServerStartError
from hub.embedded.kafka import EmbeddedKafka, wait_ready
from hub.embedded.s3 import EmbeddedS3
from hub.embedded.tsa import TSA_KEY_FILE, EmbeddedTsa
from hub.figures import live_agency_figures
from hub.metrics import collecting_registry
from hub.records import DIRECTORY
from hub.settings import HubSettings, write_private
from hub.signed_directory import (
    admin_signing_key,
    create_admin_identity,
    current_directory,
    publish_records,
    read_directory_topic,
    sign_record,
)
from hub.trust import ConfigError
from storage.ledger import create_seal_identity

__all__ = ["Hub", "HubAddresses", "with_secrets"]

log = logging.getLogger("lienthong.up")

_WORKER_STOP_GRACE = 15.0  # seconds for a worker to commit and leave the group before it is killed
_SUPERVISE_EVERY = 1.0  # seconds between looks at the children
_RESTART_BACKOFF_MAX = 30.0  # a child that keeps dying is restarted at most this often


@dataclass(frozen=True)
class HubAddresses:
    """Where the running hub listens."""

    kafka: str
    s3: str
    http: str
    vxp: str = ""  # the VXP facade's endpoint


def with_secrets(settings: HubSettings) -> HubSettings:
    """The settings with the embedded servers' secrets: generated on first start, kept in ``DATA/secrets.yaml``.

    The broker's log and the store's users are made with these secrets, so they must outlive any settings file.
    The workers' ledger key (``hub.ledger_mac``) is generated and kept there too, embedded servers or not.
    """
    path = settings.data_dir / "secrets.yaml"
    kept: dict[str, str] = {}
    if path.is_file():
        kept = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    wanted = {
        "kafka_password": not settings.kafka_external,
        "s3_secret_key": not settings.s3_external,
        "ledger_key": True,  # the workers' own (hub.ledger_mac), whoever runs the broker and the store
        "vxp_kafka_password": True,  # the VXP facade's principal (lienthong-vxp), set on the broker at each start
        "axis_kafka_password": True,  # the axis connector's (lienthong-axis), the same way
    }
    for name, embedded in wanted.items():
        if embedded and not kept.get(name):
            kept[name] = getattr(settings, name) or secrets.token_urlsafe(24)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    write_private(path, yaml.safe_dump(kept))
    given = {name: value for name, value in kept.items() if wanted.get(name)}
    return replace(
        settings,
        kafka_password=given.get("kafka_password", settings.kafka_password),
        s3_secret_key=given.get("s3_secret_key", settings.s3_secret_key),
        ledger_key=given.get("ledger_key", settings.ledger_key),
        vxp_kafka_password=given.get("vxp_kafka_password", settings.vxp_kafka_password),
        axis_kafka_password=given.get("axis_kafka_password", settings.axis_kafka_password),
    )


@dataclass
class _Child:
    """A supervised child: how to tell it died and how to start it again."""

    name: str
    alive: Callable[[], bool]
    restart: Callable[[], object]
    failures: int = 0
    next_try: float = 0.0


@dataclass
class Hub:
    """The embedded servers and workers of one ``lienthong up``."""

    settings: HubSettings
    workers: int = 1
    progress: Callable[[str], None] = print
    _s3: EmbeddedS3 | None = None
    _kafka: EmbeddedKafka | None = None
    _workers: list[ManagedProcess] = field(default_factory=list)
    _http: DashboardServer | None = None
    _vxp: ManagedProcess | None = None
    _children: list[_Child] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None
    _registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _restarts: Counter | None = None
    _axis_connector: ManagedProcess | None = None

    @property
    def data(self) -> Path:
        """The data folder."""
        return self.settings.data_dir

    @property
    def kafka(self) -> EmbeddedKafka | None:
        """The embedded broker while it runs (None with an external cluster)."""
        return self._kafka

    @property
    def s3(self) -> EmbeddedS3 | None:
        """The embedded object store while it runs (None with an external endpoint)."""
        return self._s3

    def start(self) -> HubAddresses:
        """Start everything in order; on a failure, stop what was started and raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> HubAddresses:
        self.settings = settings = with_secrets(self.settings)
        self._restarts = Counter(
            "lienthong_restarts_total",
            "Children of lienthong up restarted after they died",
            ["process"],
            registry=self._registry,
        )
        # The workers the supervisor keeps (scale-out and scale-in change it), and those whose process is alive.
        configured = Gauge(
            "lienthong_workers_configured", "Worker processes lienthong up runs", registry=self._registry
        )
        configured.set_function(lambda: len(self._workers))
        running = Gauge("lienthong_workers_running", "Worker processes alive now", registry=self._registry)
        running.set_function(lambda: sum(worker.running for worker in self._workers))
        settings_file = self.data / "settings.yaml"  # what the workers (and the next start) read
        write_private(settings_file, yaml.safe_dump(_plain(settings), allow_unicode=True))
        self._start_servers(settings)
        from hub.app import open_store  # noqa: PLC0415 - faust is heavy; import it once we need it

        open_store(settings)  # the archive bucket, with object lock and its retention, before any worker races for it
        seed = load_directory(settings.directory_file) if settings.directory_file else Directory()
        self._create_topics(seed)
        create_admin_identity(settings)
        records = read_directory_topic(settings.kafka)
        if not records and len(seed):  # the first start: the YAML file seeds the topic; later ones leave it alone
            self._publish_directory(seed)
            records = read_directory_topic(settings.kafka)
        elif records:
            self.progress(f"directory: {DIRECTORY} kept as administrators left it (the YAML seeds a first start)")
        directory = current_directory(settings, records).directory  # the seed, or what administrators made of it
        self._create_topics(directory)
        self._grant(directory)
        create_seal_identity(self.data)
        self.progress(f"hub seal certificate: {settings.seal_cert_path} (what auditors trust for this hub)")
        metrics_dir = self.data / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        for n in range(self.workers):
            self.add_worker(settings_file, n)
        vxp = self.start_vxp_facade()
        self._start_axis_connector()
        self._start_http()
        self._supervisor = threading.Thread(target=self._watch, name="lienthong-supervisor", daemon=True)
        self._supervisor.start()
        http = f"127.0.0.1:{settings.http_port}"
        return HubAddresses(settings.kafka_bootstrap, settings.s3_endpoint, http, vxp)

    def _create_topics(self, directory: Directory) -> None:
        from hub.access import create_hub_topics, topic_plan  # noqa: PLC0415

        topics, compacted = topic_plan(self.settings, directory)
        create_hub_topics(self.settings, topics, compacted=compacted)

    def _grant(self, directory: Directory) -> None:
        """Create the ACLs of every principal (agencies, administrator, facade, connector) for ``directory``."""
        from hub.access import access_plan, apply_plan  # noqa: PLC0415

        settings = self.settings
        grants = access_plan(directory, hub_user=settings.kafka_username, consumer_group=settings.consumer_group)
        apply_plan(settings.kafka, grants)
        self.progress(f"access: {len(grants)} ACLs for {len(directory)} agencies (lienthong acl plan lists them)")

    # --- supervision -----------------------------------------------------------------------------------------

    def _supervise(self, name: str, alive: Callable[[], bool], restart: Callable[[], object]) -> None:
        self._children.append(_Child(name, alive, restart))

    def _watch(self) -> None:
        """Restart any child that died (with a growing pause if it keeps dying), until the hub stops."""
        while not self._stopping.wait(_SUPERVISE_EVERY):
            for child in list(self._children):
                if self._stopping.is_set() or child.alive() or time.monotonic() < child.next_try:
                    continue
                child.failures += 1
                self.progress(f"{child.name} died; restarting it (restart {child.failures})")
                assert self._restarts is not None
                self._restarts.labels(child.name).inc()
                try:
                    child.restart()
                except Exception as exc:  # noqa: BLE001 - a failed restart is retried on the next round
                    self.progress(f"{child.name} did not restart: {exc}")
                child.next_try = time.monotonic() + min(_RESTART_BACKOFF_MAX, 2.0 ** min(child.failures, 5))

    def _start_servers(self, settings: HubSettings) -> None:
        """The embedded object store and broker, side by side, supervised (or wait for an external broker)."""
        if not settings.kafka_external and (settings.kafka_tls or settings.kafka_ca_file):
            raise ConfigError(
                "kafka_tls and kafka_ca_file are for your own Kafka cluster (kafka_external: true); "
                "the embedded broker listens on 127.0.0.1 without TLS: remove them or set kafka_external"
            )
        servers: list[Callable[[], object]] = []
        if not settings.s3_external:
            s3_port = int(settings.s3_endpoint.rsplit(":", 1)[1])
            self.progress(f"starting the object store (SeaweedFS) on 127.0.0.1:{s3_port}, data in {self.data / 's3'}")
            self._s3 = s3 = EmbeddedS3(
                self.data / "s3",
                port=s3_port,
                access_key=settings.s3_access_key,
                secret_key=settings.s3_secret_key,
                log_path=self.data / "logs" / "seaweedfs.log",
            )
            servers.append(s3.start)
            self._supervise("object store", lambda: s3.running, s3.restart)  # watched once the hub has started
        if settings.kafka_external:
            servers.append(functools.partial(wait_ready, settings.kafka))
        else:
            kafka_port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
            self.progress(f"starting the broker (Apache Kafka) on 127.0.0.1:{kafka_port}, log in {self.data / 'kafka'}")
            self._kafka = kafka = EmbeddedKafka(
                self.data / "kafka",
                username=settings.kafka_username,
                password=settings.kafka_password,
                ports=[kafka_port],
                log_dir=self.data / "logs",
            )
            servers.append(kafka.start)
            self._supervise("broker", lambda: kafka.process(0).running, lambda: kafka.restart(0))
        _all_at_once(servers)

    def add_worker(self, settings_file: Path | None = None, n: int | None = None) -> ManagedProcess:
        """Start one more worker process (scale-out); it joins the consumer group."""
        n = len(self._workers) if n is None else n
        settings_file = settings_file or self.data / "settings.yaml"
        level = self.settings.log_level.value
        argv = [sys.executable, "-m", "hub", "worker", "--settings", str(settings_file), "--loglevel", level]
        worker = _WorkerProcess(f"worker-{n}", argv, log_path=self.data / "logs" / f"worker-{n}.log")
        worker.start()
        self._workers.append(worker)
        self._supervise(worker.name, lambda: worker.running, lambda: _restart_worker(worker))
        self.progress(f"worker {n} started (pid {worker.pid})")
        return worker

    def _start_axis_connector(self) -> None:
        """With ``axis_url`` set: the national-axis connector, supervised, as Kafka principal ``lienthong-axis``.

        Its password is generated once and kept in ``DATA/secrets.yaml`` (``with_secrets``), set on the broker at
        each start; the connector reads it with everything else from ``DATA/settings.yaml``.
        """
        if not self.settings.axis_url:
            return
        from hub.access import AXIS_USER  # noqa: PLC0415

        self._set_principal_password(AXIS_USER, self.settings.axis_kafka_password)
        argv = [sys.executable, "-m", "hub", "axis-connector", "--data", str(self.data)]
        argv += ["--loglevel", self.settings.log_level.value]
        connector = _WorkerProcess("axis-connector", argv, log_path=self.data / "logs" / "axis-connector.log")
        connector.start()
        self._axis_connector = connector
        self._supervise(connector.name, lambda: connector.running, connector.start)
        self.progress(f"axis connector started (pid {connector.pid}): {self.settings.axis_url}")

    def _set_principal_password(self, user: str, password: str) -> None:
        """Give a hub process's own principal its password (kept in ``DATA/secrets.yaml``) on the broker."""
        from hub.access import set_password  # noqa: PLC0415

        if self.settings.kafka_username and password:
            set_password(self.settings.kafka, [user], given={user: password})

    def start_vxp_facade(self) -> str:
        """Start the VXP facade process (``lienthong vxp-facade``), supervised; its endpoint.

        Its Kafka principal ``lienthong-vxp`` gets the password kept in ``DATA/secrets.yaml`` (``with_secrets``).
        """
        from hub.access import VXP_USER  # noqa: PLC0415

        settings = self.settings
        self._set_principal_password(VXP_USER, settings.vxp_kafka_password)
        argv = [sys.executable, "-m", "hub", "vxp-facade", "--data", str(self.data), "--port", str(settings.vxp_port)]
        argv += ["--loglevel", settings.log_level.value]
        self._vxp = facade = ManagedProcess(
            "vxp-facade", argv, port=settings.vxp_port, log_path=self.data / "logs" / "vxp-facade.log"
        )
        facade.start()
        # The port answering is not enough: another server may hold it (a free port picked twice), and then ours
        # dies on bind while that one answers. Ours answers any path with a JSON envelope.
        wait_until(lambda: not facade.running or _answers_vxp(settings.vxp_port), timeout=60, every=0.2)
        if not facade.running or not _answers_vxp(settings.vxp_port):
            facade.stop()
            raise ServerStartError(f"the VXP facade did not start on port {settings.vxp_port}:\n{facade.log_tail()}")
        self._supervise("vxp facade", lambda: facade.running, facade.start)
        endpoint = f"http://127.0.0.1:{settings.vxp_port}/vxp"
        self.progress(f"VXP facade started at {endpoint} (pid {facade.pid})")
        return endpoint

    @property
    def vxp_facade(self) -> ManagedProcess | None:
        """The VXP facade process while the hub runs."""
        return self._vxp

    def remove_worker(self, worker: ManagedProcess) -> None:
        """Stop one worker for good (scale-in): it commits, leaves the group, and is not restarted."""
        self._children = [c for c in self._children if c.name != worker.name]
        pid = worker.pid
        worker.stop(grace=_WORKER_STOP_GRACE)
        self._workers.remove(worker)
        _forget_metrics_of(pid)

    def seal_certificate(self) -> x509.Certificate:
        """The hub's seal certificate (what an auditor trusts for this hub)."""
        return x509.load_pem_x509_certificate(self.settings.seal_cert_path.read_bytes())

    @property
    def worker_processes(self) -> list[ManagedProcess]:
        """The worker processes started so far."""
        return list(self._workers)

    def _publish_directory(self, directory: Directory) -> None:
        """Publish the YAML file's agencies on ``lienthong.directory``, each a record signed by the administrator."""
        issued_at = datetime.now(UTC)
        with admin_signing_key(self.settings) as key:
            records = [(agency.id, sign_record(key, agency.id, agency, issued_at)) for agency in directory]
        publish_records(self.settings.kafka, records)
        self.progress(f"directory: {len(records)} agencies seeded on {DIRECTORY}, signed by the administrator key")

    def _start_http(self) -> None:
        """The dashboard and ``/metrics`` (every worker's metrics and this supervisor's own) on 127.0.0.1."""
        # Per agency, statuses outstanding and overdue documents need the ledger's whole history, read incrementally.
        agency_figures = live_agency_figures(self.settings.open_store(max_connections=2))
        dashboard = Dashboard(lambda: (collecting_registry(), self._registry), agency_figures=agency_figures)
        self._http = DashboardServer(dashboard, self.settings.http_port).start()
        self.progress(f"dashboard at http://127.0.0.1:{self.settings.http_port}/ (read-only, this machine only)")

    def dashboard(self) -> str:
        """A one-screen text summary of the metrics (the page at ``/`` shows them all; this is for a terminal)."""
        lines = ["lienthong hub", ""]
        for metric in collecting_registry().collect():
            for sample in metric.samples:
                if sample.name == "lienthong_documents_total" and sample.value:
                    labels = sample.labels
                    lines.append(
                        f"{labels['stage']:>8} {labels['outcome']:<10} {labels['reason']:<28} {int(sample.value)}"
                    )
                elif sample.name == "lienthong_vxp_failed_total" and sample.value:  # updateStatus fail, by agency
                    lines.append(f"{'vxp':>8} {'fail':<10} {sample.labels['agency']:<28} {int(sample.value)}")
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        """Stop the supervisor and the workers, then the HTTP endpoint, the broker and the store."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        self._children.clear()
        # The hub's own processes together (each gets its grace), then the servers together: workers commit their
        # offsets and seal the ledger before the broker and the store go.
        own: list[Callable[[], None]] = [functools.partial(w.stop, grace=_WORKER_STOP_GRACE) for w in self._workers]
        if self._vxp is not None:
            own.append(self._vxp.stop)
        if self._axis_connector is not None:
            own.append(functools.partial(self._axis_connector.stop, grace=_WORKER_STOP_GRACE))
        _all_at_once(own)
        self._workers.clear()
        self._vxp = self._axis_connector = None
        if self._http is not None:
            self._http.stop()
            self._http = None
        _all_at_once([server.stop for server in (self._kafka, self._s3) if server is not None])
        self._kafka = self._s3 = None


def _all_at_once(steps: Sequence[Callable[[], object]]) -> None:
    """Run each step on its own thread and wait for all (each mostly waits on a process); raise the first failure."""
    failures: list[BaseException] = []

    def run(step: Callable[[], object]) -> None:
        try:
            step()
        except BaseException as exc:  # noqa: BLE001 - raised again below, on the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(step,), name="lienthong-step") for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


class _WorkerProcess(ManagedProcess):
    """A worker has no port of its own; it is up when its process runs."""

    def __init__(self, name: str, argv: list[str], *, log_path: Path) -> None:
        super().__init__(name, argv, port=0, log_path=log_path)

    def start(self, *, timeout: float = 0) -> _WorkerProcess:  # noqa: ARG002 - nothing to wait for
        """Start the process (no port to wait for)."""
        return self.launch()


def _forget_metrics_of(pid: int | None) -> None:
    """Drop a gone process's live gauges (its consumer lag) from ``/metrics``; counters keep what it counted."""
    if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _restart_worker(worker: ManagedProcess) -> None:
    """Start a dead worker again, its old process's live gauges gone first."""
    _forget_metrics_of(worker.pid)
    worker.start()


def _answers_vxp(port: int) -> bool:
    """Whether the server on ``port`` is a VXP facade (its refusal of an unknown operation is a JSON envelope)."""
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/vxp/ping", timeout=2):
            return False
    except urllib.error.HTTPError as exc:
        return b'"ErrorCode"' in exc.read()
    except OSError:
        return False


def _plain(settings: HubSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in vars(settings).items():
        if isinstance(value, Path):
            out[name] = str(value)
        elif isinstance(value, tuple):
            out[name] = [str(v) for v in value]
        elif hasattr(value, "value"):
            out[name] = value.value
        else:
            out[name] = value
    return out


@contextlib.contextmanager
def running(hub: Hub) -> Iterator[HubAddresses]:
    """Start ``hub``, and stop it on exit, on Ctrl-C, or on SIGTERM."""
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Ctrl-C too when SIGINT came ignored (a shell's background job, a test runner's worker): Python then keeps it so.
    previous_interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield hub.start()
    finally:
        # A second signal (Ctrl-C twice, or `timeout` forwarding its SIGTERM) must not cut the stop short: that
        # left the broker and the store running, orphaned. Each step of the stop is bounded.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            hub.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_interrupt)


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


def _demo_axis_secret(settings: HubSettings) -> Path:
    return settings.data_dir / "demo" / "axis-sim" / "secret"


def uses_demo_axis(settings: HubSettings) -> bool:
    """Whether ``axis_url`` is the demo's simulator (set by ``with_demo_axis``), not a real axis."""
    secret_file = _demo_axis_secret(settings)
    return bool(settings.axis_url) and secret_file.is_file() and secret_file.read_text().strip() == settings.axis_secret


def with_demo_axis(settings: HubSettings) -> HubSettings:
    """Demo settings reaching a local national-axis simulator on a free port, unless ``axis_url`` is set.

    The hub's systemId at the simulated axis is its OrganId; its secret is generated once and kept in
    ``DATA/demo/axis-sim/secret`` (0600). A restart of the demo finds the simulator again on a new port.
    """
    if settings.axis_url and not uses_demo_axis(settings):
        return settings
    from hub.embedded._process import free_port  # noqa: PLC0415

    secret_file = _demo_axis_secret(settings)
    if not secret_file.is_file():
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        write_private(secret_file, secrets.token_urlsafe(24))
    return replace(
        settings,
        axis_url=f"http://127.0.0.1:{free_port()}/vxp",
        axis_system_id=settings.hub_organ_id,
        axis_secret=secret_file.read_text(encoding="utf-8").strip(),
    )


@contextlib.contextmanager
def demo_axis_simulator(settings: HubSettings) -> Iterator[ManagedProcess]:
    """Run ``lienthong axis-sim`` at ``settings.axis_url`` for the demo: its axis agencies answer with 01 and 03."""
    from urllib.parse import urlsplit  # noqa: PLC0415

    from hub.demo import create_demo_material, write_axis_sim_agencies  # noqa: PLC0415

    material = create_demo_material(settings.data_dir / "demo")
    agencies = write_axis_sim_agencies(
        material,
        settings.data_dir / "demo" / "axis-sim" / "agencies.yaml",
        system_id=settings.axis_system_id,
        secret=settings.axis_secret,
        hub_organ_id=settings.hub_organ_id,
    )
    port = urlsplit(settings.axis_url).port or 80
    argv = [sys.executable, "-m", "hub", "axis-sim", "--port", str(port), "--data", str(settings.data_dir / "axis-sim")]
    argv += ["--agencies", str(agencies)]
    simulator = ManagedProcess("axis-sim", argv, port=port, log_path=settings.data_dir / "logs" / "axis-sim.log")
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


def _demo_tsa_anchor(settings: HubSettings) -> Path:
    return settings.data_dir / "demo" / "trust" / "root.pem"  # the demo root issued the demo TSA's certificate


def uses_demo_tsa(settings: HubSettings) -> bool:
    """Whether ``tsa_url`` is the demo's own TSA (set by ``with_demo_tsa``), not a real one."""
    return bool(settings.tsa_url) and settings.tsa_trust == (_demo_tsa_anchor(settings),)


def with_demo_tsa(settings: HubSettings, *, demo: bool) -> HubSettings:
    """Settings time-stamping tree heads at the demo's TSA on a free port: for a ``demo``, or a restart of one.

    The TSA's certificate and key are the demo PKI's (``DATA/demo/tsa``, anchored in the demo root), so tokens of
    earlier runs verify with the same anchor; a restart finds the TSA again on a new port. Left as they are: settings
    naming another TSA, those of a hub that is not a demo, and a demo folder made before the hub time-stamped.
    """
    ours = uses_demo_tsa(settings)
    if (settings.tsa_url and not ours) or not (demo or ours):
        return settings
    if not (settings.data_dir / "demo" / "tsa" / TSA_KEY_FILE).is_file():
        return settings
    from hub.embedded._process import free_port  # noqa: PLC0415

    return replace(settings, tsa_url=f"http://127.0.0.1:{free_port()}/", tsa_trust=(_demo_tsa_anchor(settings),))


@contextlib.contextmanager
def demo_tsa(settings: HubSettings, progress: Callable[[str], None]) -> Iterator[EmbeddedTsa | None]:
    """Run the demo's TSA (``openssl ts -reply``, ``hub.embedded.tsa``) at ``tsa_url`` on a thread, if it is the demo's.

    Started before the workers and stopped after them, so that their last tree heads are time-stamped too.
    """
    if not uses_demo_tsa(settings):
        yield None
        return
    from urllib.parse import urlsplit  # noqa: PLC0415

    port = urlsplit(settings.tsa_url).port or 80
    tsa = EmbeddedTsa(settings.data_dir / "demo" / "tsa", port=port).start()
    progress(f"time-stamp authority (demo, openssl ts): {tsa.url}, anchor {_demo_tsa_anchor(settings)}")
    try:
        yield tsa
    finally:
        tsa.stop()


def demo_settings_on_free_ports(data: Path, **overrides: Any) -> HubSettings:
    """Demo settings for a private hub in ``data``, every server on a free loopback port (tests, benchmarks)."""
    from hub.embedded._process import free_port  # noqa: PLC0415

    ports: dict[str, Any] = {"http_port": free_port(), "vxp_port": free_port()}
    if not overrides.get("kafka_external"):
        ports["kafka_bootstrap"] = f"127.0.0.1:{free_port()}"
    if not overrides.get("s3_external"):
        ports["s3_endpoint"] = f"127.0.0.1:{free_port()}"
    return with_demo(HubSettings(data_dir=data, **{**ports, **overrides}))


def wait_until(condition: Callable[[], bool], *, timeout: float, every: float = 0.5) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()
