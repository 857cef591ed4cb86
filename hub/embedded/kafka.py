"""The embedded broker: Apache Kafka 4 in KRaft mode, one or more combined broker/controller JVMs on 127.0.0.1.

``EmbeddedKafka(data, nodes=1)`` is what ``lienthong up`` and the test fixtures run; ``nodes=3`` is a real cluster
on one machine (replication factor 3, ``min.insync.replicas=2``). Each node keeps its log in ``DATA/node-N``,
formatted on first start. Clients authenticate with SASL/SCRAM; the standard authorizer refuses anything no ACL
allows, and the hub's own principal is a super user. The controllers talk to each other over SASL/PLAIN with a
password generated for each start. The jars come from Maven Central (``ops/kafka/pom.xml``, ``make setup``), the
JVM from Debian.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

from kafka import KafkaAdminClient
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from adapters.kafka import DEFAULT_SASL_MECHANISM, KafkaConnection
from hub.embedded._cds import archive_flags, keep_archive
from hub.embedded._process import ManagedProcess, ServerStartError, free_port
from schemas.errors import HubError

__all__ = [
    "DEFAULT_HEAP_MB",
    "BrokerTls",
    "EmbeddedKafka",
    "TopicLayoutError",
    "admin_client",
    "create_topics",
    "kafka_classpath",
    "wait_ready",
]

#: Heap of each broker JVM: the embedded hub's traffic needs little, and the 3-node test cluster shares 24 GB
#: with everything else on a 2-core machine.
DEFAULT_HEAP_MB: Final = 512
#: A broker JVM is up in ~3 s here; formatting the log takes another ~2.5 s on first start.
_START_TIMEOUT: Final = 60.0
_ADMIN_TIMEOUT: Final = 15.0
_STOP_GRACE: Final = 30.0  # a single node flushes and closes its log in well under a second
_CLUSTER_STOP_GRACE: Final = 5.0
_SETUP_HINT: Final = "run `make setup` (it fetches Apache Kafka's jars with Maven and installs a JDK)"
_CONTROLLER_USER: Final = "controller"
_LOG4J: Final = """\
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


class TopicLayoutError(HubError):
    """A topic could not be created or brought to its planned partition count."""


def kafka_classpath() -> str:
    """The broker's classpath (``<venv>/share/lienthong/kafka/*``); ``ServerStartError`` saying what to run."""
    return f"{_kafka_libs()}/*"


def _kafka_libs() -> Path:
    libs = Path(sys.prefix) / "share" / "lienthong" / "kafka"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise ServerStartError(f"Apache Kafka's jars are not in {libs}; {_SETUP_HINT}")
    return libs


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServerStartError(f"no Java runtime on PATH; {_SETUP_HINT}")
    return java


@dataclass(frozen=True)
class _Node:
    node_id: int
    port: int
    controller_port: int


@dataclass(frozen=True)
class BrokerTls:
    """TLS on the client listener, with the operator's CA.

    ``keystore`` is a PEM file with the broker's unencrypted PKCS#8 key and its certificate chain (naming
    127.0.0.1); ``ca_file`` is the CA that clients and the other brokers verify it with.
    """

    keystore: Path
    ca_file: Path


class EmbeddedKafka:
    """``nodes`` Kafka processes, each a broker and a controller, their logs under ``data``.

    ``start()`` returns once every node answers as the hub's principal; ``stop()``, ``kill(i)`` and ``restart(i)``
    keep the ports, so clients reconnect to the same addresses.
    """

    def __init__(
        self,
        data: Path,
        *,
        username: str,
        password: str,
        nodes: int = 1,
        ports: Sequence[int] | None = None,
        heap_mb: int = DEFAULT_HEAP_MB,
        log_dir: Path | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        if ports is not None and len(ports) != nodes:
            raise ValueError(f"{nodes} node(s) need {nodes} port(s), got {len(ports)}")
        self.data = Path(data)
        self.username = username
        self._password = password
        self.heap_mb = heap_mb
        self.log_dir = log_dir or self.data
        self.tls = tls
        self.nodes = [
            _Node(i + 1, ports[i] if ports else free_port(), free_port()) for i in range(nodes)
        ]
        self._controller_password = secrets.token_urlsafe(24)
        self._processes: dict[int, ManagedProcess] = {}
        self._archives: dict[int, Path | None] = {}  # class archives the nodes write on exit (hub.embedded._cds)

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:P1,127.0.0.1:P2,…``."""
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    @property
    def connection(self) -> KafkaConnection:
        """How the hub's principal (a super user) reaches the cluster."""
        ca_file = self.tls.ca_file if self.tls is not None else None
        return KafkaConnection(self.bootstrap, self.username, self._password, tls=ca_file is not None, ca_file=ca_file)

    @property
    def replication(self) -> int:
        """The replication factor of every topic: 3 on a cluster, 1 on a single node."""
        return min(3, len(self.nodes))

    def start(self, *, timeout: float = _START_TIMEOUT) -> Self:
        """Format each node's log on first start, start every node, and wait until the cluster answers."""
        cluster_id = self._cluster_id()
        # Every node first: a node opens its client port only once a quorum of controllers runs.
        for index in range(len(self.nodes)):
            self._launch_node(index, cluster_id)
        for process in self._processes.values():
            process.wait_listening(timeout=timeout)
        wait_ready(self.connection, timeout=timeout, brokers=len(self.nodes))
        return self

    def stop(self) -> None:
        """Stop every node at once (SIGTERM: a controlled shutdown; one by one, the last would lose its quorum)."""
        # Nodes of a cluster stopping together wait for each other's controlled shutdown until the grace ends.
        grace = _STOP_GRACE if len(self.nodes) == 1 else _CLUSTER_STOP_GRACE
        stopping = [threading.Thread(target=p.stop, kwargs={"grace": grace}) for p in self._processes.values()]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        for node_id, process in self._processes.items():
            code = process.returncode
            keep_archive(self._archives.pop(node_id, None), exited_cleanly=code is not None and code >= 0)

    def kill(self, index: int = 0) -> None:
        """SIGKILL node ``index`` (crash tests)."""
        node_id = self.nodes[index].node_id
        self._processes[node_id].kill()
        keep_archive(self._archives.pop(node_id, None), exited_cleanly=False)

    def restart(self, index: int = 0, *, timeout: float = _START_TIMEOUT) -> Self:
        """Start node ``index`` again on its ports after a stop or kill, and wait until the cluster answers."""
        self._launch_node(index, self._cluster_id()).wait_listening(timeout=timeout)
        wait_ready(self.connection, timeout=timeout, brokers=len(self.nodes))
        return self

    def process(self, index: int = 0) -> ManagedProcess:
        """The process of node ``index`` (its pid, its log)."""
        return self._processes[self.nodes[index].node_id]

    def create_topics(self, topics: Mapping[str, int], *, compacted: Collection[str] = ()) -> None:
        """Create the topics (or add partitions) with this cluster's replication; see ``create_topics``."""
        create_topics(self.connection, topics, compacted=compacted, replication=self.replication)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of each node's log."""
        return "\n".join(p.log_tail(lines) for p in self._processes.values())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one node --------------------------------------------------------------------------------------------

    def _cluster_id(self) -> str:
        """The cluster's id, made once and kept in ``data/cluster-id`` (every node is formatted with it)."""
        path = self.data / "cluster-id"
        if not path.is_file():
            self.data.mkdir(parents=True, exist_ok=True)
            path.write_text(random_cluster_id() + "\n", encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    def _launch_node(self, index: int, cluster_id: str) -> ManagedProcess:
        node = self.nodes[index]
        log_dirs = self.data / f"node-{node.node_id}"
        config = self.data / f"node-{node.node_id}.properties"
        config.write_text(self._properties(node, log_dirs), encoding="utf-8")
        config.chmod(0o600)  # it holds the controllers' password
        log4j = self.data / "log4j2.properties"
        log4j.write_text(_LOG4J, encoding="utf-8")
        log_path = self.log_dir / f"kafka-{node.node_id}.log"
        if not (log_dirs / "meta.properties").is_file():
            self._format(config, cluster_id, log_path)
        java = _java()
        flags, self._archives[node.node_id] = archive_flags(java, _kafka_libs(), "broker")
        argv = [
            java,
            *flags,
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            kafka_classpath(),
            "kafka.Kafka",
            str(config),
        ]
        process = ManagedProcess(f"Kafka node {node.node_id}", argv, port=node.port, log_path=log_path)
        self._processes[node.node_id] = process.launch()
        return process

    def _format(self, config: Path, cluster_id: str, log_path: Path) -> None:
        scram = f"{DEFAULT_SASL_MECHANISM}=[name={self.username},password={self._password}]"
        java = _java()
        flags, writing = archive_flags(java, _kafka_libs(), "format")
        argv = [
            java,
            *flags,
            f"-Dlog4j2.configurationFile={self.data / 'log4j2.properties'}",
            "-cp",
            kafka_classpath(),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(config),
            "--add-scram",
            scram,
        ]
        answer = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - our own argv
        keep_archive(writing, exited_cleanly=answer.returncode == 0)
        if answer.returncode != 0:
            raise ServerStartError(f"cannot format the Kafka log in {config.parent}: {answer.stdout}{answer.stderr}")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            log.write(answer.stdout.replace(self._password, "***"))

    def _properties(self, node: _Node, log_dirs: Path) -> str:
        n = len(self.nodes)
        voters = ",".join(f"{v.node_id}@127.0.0.1:{v.controller_port}" for v in self.nodes)
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        cpw = self._controller_password
        client_protocol = "SASL_PLAINTEXT" if self.tls is None else "SASL_SSL"
        settings: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"CLIENTS://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"CLIENTS://127.0.0.1:{node.port}",
            "listener.security.protocol.map": f"CLIENTS:{client_protocol},CONTROLLER:SASL_PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "CLIENTS",
            "sasl.enabled.mechanisms": DEFAULT_SASL_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": DEFAULT_SASL_MECHANISM,
            "listener.name.clients.scram-sha-512.sasl.jaas.config": (
                f'{scram} required username="{self.username}" password="{self._password}";'
            ),
            # SCRAM credentials live in the metadata log, which controllers need before they can read it.
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain} required username="{_CONTROLLER_USER}" password="{cpw}" user_{_CONTROLLER_USER}="{cpw}";'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{self.username};User:{_CONTROLLER_USER}",
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(log_dirs),
            "auto.create.topics.enable": "false",  # the hub creates its topics with explicit partitions
            "num.partitions": 1,
            "default.replication.factor": min(3, n),
            "min.insync.replicas": min(2, n),
            "offsets.topic.replication.factor": min(3, n),
            "transaction.state.log.replication.factor": min(3, n),
            "transaction.state.log.min.isr": min(2, n),
            "group.initial.rebalance.delay.ms": 0,  # a new consumer group is served at once
            "log.cleaner.backoff.ms": 5000,
            "delete.topic.enable": "true",
        }
        if self.tls is not None:  # clients and brokers between them: TLS, verified against the operator's CA
            settings |= {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self.tls.keystore),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.tls.ca_file),
            }
        return "".join(f"{key}={value}\n" for key, value in settings.items())


def random_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes one, without starting a JVM for it.

    16 random bytes (a version-4 UUID) in URL-safe base64 without padding; never one that starts with '-' (the
    tools would read it as an option) nor the all-zero id.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-") and text != "AAAAAAAAAAAAAAAAAAAAAA":
            return text


def admin_client(connection: KafkaConnection, *, timeout: float = _ADMIN_TIMEOUT) -> Any:
    """A kafka-python admin client for ``connection`` (close it when done)."""
    return KafkaAdminClient(
        client_id="lienthong-admin", request_timeout_ms=int(timeout * 1000), **connection.options()
    )


def wait_ready(connection: KafkaConnection, *, timeout: float = _START_TIMEOUT, brokers: int = 1) -> None:
    """Wait until ``brokers`` brokers answer the hub's principal; ``ServerStartError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        admin = None
        try:
            admin = admin_client(connection, timeout=min(_ADMIN_TIMEOUT, max(deadline - time.monotonic(), 1.0)))
            cluster = admin.describe_cluster()
            if len(cluster.get("brokers", ())) >= brokers and cluster.get("controller_id", -1) >= 0:
                return
            last = f"{len(cluster.get('brokers', ()))} of {brokers} brokers up"
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            if admin is not None:
                with contextlib.suppress(Exception):
                    admin.close()
        time.sleep(0.2)
    raise ServerStartError(f"Kafka at {connection.bootstrap} was not ready within {timeout:g}s: {last}")


def create_topics(
    connection: KafkaConnection,
    topics: Mapping[str, int],
    *,
    compacted: Collection[str] = (),
    replication: int = 1,
) -> None:
    """Create each topic ``name: partitions`` that is missing, and add partitions to those that have fewer.

    Idempotent. ``compacted`` topics get ``cleanup.policy=compact`` (the last record of each key is kept).
    ``TopicLayoutError`` when a topic has more partitions than planned (Kafka cannot remove partitions).
    """
    unknown = set(compacted) - set(topics)
    if unknown:
        raise ValueError(f"compacted topics not in the plan: {sorted(unknown)}")
    admin = admin_client(connection)
    try:
        existing = _partition_counts(admin, topics)
        missing = [
            NewTopic(
                name,
                partitions,
                replication,
                topic_configs={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
                if name in compacted
                else {},
            )
            for name, partitions in topics.items()
            if name not in existing
        ]
        for topic in missing:
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass  # another process won the race
            except KafkaError as exc:
                raise TopicLayoutError(f"cannot create topic {topic.name!r}: {exc}") from exc
        grow = {
            name: NewPartitions(partitions)
            for name, partitions in topics.items()
            if name in existing and existing[name] < partitions
        }
        if grow:
            admin.create_partitions(grow)
        shrink = {name: have for name, have in existing.items() if have > topics[name]}
    finally:
        admin.close()
    if shrink:
        raise TopicLayoutError(
            "topics with more partitions than planned (Kafka cannot remove partitions; raise the plan): "
            + ", ".join(f"{name} has {have}, want {topics[name]}" for name, have in sorted(shrink.items()))
        )


def _partition_counts(admin: Any, names: Collection[str]) -> dict[str, int]:
    """Partition counts of the topics in ``names`` that exist."""
    present = set(admin.list_topics()) & set(names)
    if not present:
        return {}
    return {d["name"]: len(d["partitions"]) for d in admin.describe_topics(sorted(present))}
