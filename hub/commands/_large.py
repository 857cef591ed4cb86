"""Reading documents from files for the commands: whole when small, as chunks when large (README, "Large documents")."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from hub.settings import HubSettings
from schemas._parse import STREAM_THRESHOLD_BYTES
from schemas._stream import DEFAULT_CHUNK_BYTES

__all__ = ["STREAM_THRESHOLD_BYTES", "file_chunks", "is_large", "max_document_bytes", "opener"]

_SETTING = "LIENTHONG_MAX_DOCUMENT_BYTES"


def max_document_bytes() -> int:
    """The ``max_document_bytes`` setting as the commands see it: its default, or ``LIENTHONG_MAX_DOCUMENT_BYTES``."""
    env = {_SETTING: os.environ[_SETTING]} if _SETTING in os.environ else {}
    return HubSettings.load(env=env).max_document_bytes


def is_large(path: Path) -> bool:
    """Whether ``path`` is read as chunks (streaming path) rather than whole (libxml2's tree)."""
    return path.stat().st_size > STREAM_THRESHOLD_BYTES


def file_chunks(path: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes of ``path`` in chunks, the file open only while they are read."""
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk


def opener(path: Path) -> Callable[[], Iterator[bytes]]:
    """A function that reads ``path`` afresh each call (the verifier and signer may read twice)."""
    return lambda: file_chunks(path)
