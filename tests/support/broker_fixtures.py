"""Apache Kafka as pytest fixtures.

``kafka_broker`` is one single-node KRaft broker for the session: tests share it, so each uses its own topics
(``unique_topic``) and consumer groups, and authenticates as its super user (``kafka_broker.connection``).
``kafka_cluster`` is a 3-node cluster (replication factor 3, ``min.insync.replicas=2``) for a module of cluster
tests, stopped after it: three idle JVMs cost a 2-core machine a third of a core. Missing jars or Java skip the
test locally and fail it in CI, as ``tests.support.require_tool`` does.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest

from hub.embedded._process import ServerStartError
from hub.embedded.kafka import EmbeddedKafka, kafka_classpath
from tests.support import IN_CI

__all__ = ["kafka_broker", "kafka_cluster", "require_kafka", "unique_topic"]

#: Heap of each node of the test cluster: three JVMs share the machine with the hub under test.
_CLUSTER_HEAP_MB = 320


def require_kafka() -> None:
    """Skip the test locally when Kafka's jars are missing (``make setup`` fetches them); fail it in CI."""
    try:
        kafka_classpath()
    except ServerStartError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def unique_topic(prefix: str = "t") -> str:
    """A topic (or group) name no other test uses."""
    return f"{prefix}.{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """One single-node Kafka for the session on a free port, SASL/SCRAM and ACLs on."""
    require_kafka()
    data = tmp_path_factory.mktemp("kafka")
    with EmbeddedKafka(data, username="test-admin", password=secrets.token_urlsafe(16)) as broker:
        yield broker


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """A 3-node Kafka cluster for the module (each node a broker and a controller)."""
    require_kafka()
    data = tmp_path_factory.mktemp("kafka-cluster")
    cluster = EmbeddedKafka(
        data, username="test-admin", password=secrets.token_urlsafe(16), nodes=3, heap_mb=_CLUSTER_HEAP_MB
    )
    with cluster:
        yield cluster
