"""The real S3 servers as pytest fixtures: ``rclone serve s3`` on a temporary folder and ``moto_server``.

Session-scoped servers (``rclone_server``, ``moto_server``) are shared; each test gets a store on a fresh bucket
(``rclone_store``, ``moto_store`` with object lock, or ``s3_store`` parametrized over both). Tests that crash a
server use ``crashable_rclone``, their own server on their own folder, so the shared ones are never disturbed.
A missing binary skips locally and fails in CI (``tests.support.require_tool``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.embedded.s3 import EmbeddedMoto, EmbeddedS3, find_executable
from storage.s3 import S3ObjectStore
from tests.support import require_tool

__all__ = [
    "crashable_rclone",
    "moto_server",
    "moto_store",
    "rclone_server",
    "rclone_store",
    "s3_store",
    "unique_bucket",
]


def unique_bucket(prefix: str = "t") -> str:
    """A bucket name no other test uses (S3 rules: lowercase, digits and '-', 3 to 63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def _tool(name: str) -> str:
    # The wheels put rclone and moto_server in the venv's bin/, which is not on PATH unless the venv is active.
    return find_executable(name) or require_tool(name)


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    """One ``rclone serve s3`` for the session, on a temporary folder."""
    base = tmp_path_factory.mktemp("rclone-s3")
    server = EmbeddedS3(base / "data", rclone=_tool("rclone"), log_path=base / "rclone.log")
    with server:
        yield server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMoto]:
    """One ``moto_server`` for the session (in memory; versioning and object lock)."""
    base = tmp_path_factory.mktemp("moto-s3")
    server = EmbeddedMoto(moto_server=_tool("moto_server"), log_path=base / "moto.log")
    with server:
        yield server


@pytest.fixture
def rclone_store(rclone_server: EmbeddedS3) -> S3ObjectStore:
    """A store on a fresh bucket of the shared rclone server (no lock; metadata sidecars on)."""
    return rclone_server.store(unique_bucket("rc"))


@pytest.fixture
def moto_store(moto_server: EmbeddedMoto) -> S3ObjectStore:
    """A store on a fresh bucket of the shared moto server, created with object lock."""
    return moto_server.store(unique_bucket("mo"), object_lock=True)


@pytest.fixture(params=["rclone", "moto"])
def s3_store(request: pytest.FixtureRequest) -> S3ObjectStore:
    """The same test against both servers: a fresh ``rclone_store``, then a fresh ``moto_store``."""
    store: S3ObjectStore = request.getfixturevalue(f"{request.param}_store")
    return store


@pytest.fixture
def crashable_rclone(tmp_path: Path) -> Iterator[EmbeddedS3]:
    """A private ``rclone serve s3`` that a test may kill and restart (same port, same folder)."""
    server = EmbeddedS3(tmp_path / "data", rclone=_tool("rclone"), log_path=tmp_path / "rclone.log")
    with server:
        yield server
