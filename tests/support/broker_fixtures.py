"""The embedded broker (Tansu) as pytest fixtures.

``kafka_broker`` is one in-memory broker for the session: tests share it, so each uses its own topics
(``unique_topic``) and consumer groups. ``durable_kafka`` is a private broker per test whose log lives in a bucket
of a private ``rclone serve s3`` (``durable_s3``) in the test's temporary folder; a test may stop, kill and restart
either. A missing Tansu or rclone skips the test locally and fails it in CI, as ``tests.support.require_tool`` does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.embedded._process import ServerStartError
from hub.embedded.kafka import EmbeddedKafka, tansu_binary
from hub.embedded.s3 import EmbeddedS3, find_executable
from tests.support import IN_CI, require_tool

__all__ = ["durable_kafka", "durable_s3", "kafka_broker", "require_tansu", "unique_topic"]


def require_tansu() -> str:
    """The Tansu binary; skip the test locally when it is missing, fail it in CI."""
    try:
        return tansu_binary()
    except ServerStartError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def unique_topic(prefix: str = "t") -> str:
    """A topic (or group) name no other test uses."""
    return f"{prefix}.{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    """One in-memory Tansu for the session on a free port; ``.bootstrap`` is ``127.0.0.1:PORT``."""
    tansu = require_tansu()
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedKafka.memory(log_path=log, tansu=tansu) as broker:
        yield broker


@pytest.fixture
def durable_s3(tmp_path: Path) -> Iterator[EmbeddedS3]:
    """A private ``rclone serve s3`` on ``tmp_path / "s3"`` (the durable broker's store)."""
    rclone = find_executable("rclone") or require_tool("rclone")
    with EmbeddedS3(tmp_path / "s3", rclone=rclone, log_path=tmp_path / "rclone.log") as server:
        yield server


@pytest.fixture
def durable_kafka(durable_s3: EmbeddedS3, tmp_path: Path) -> Iterator[EmbeddedKafka]:
    """A private Tansu whose log is in bucket ``tansu`` of ``durable_s3``; stop/kill/restart keep its port."""
    broker = EmbeddedKafka.durable(durable_s3, log_path=tmp_path / "tansu.log", tansu=require_tansu())
    with broker:
        yield broker
