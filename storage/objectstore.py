"""The object-store port: what the archive and the ledger need from S3, and an in-memory stand-in for unit tests.

The real adapter is ``storage.s3.S3ObjectStore`` (the ``minio`` client). ``MemoryObjectStore`` exists only so that
pure logic (ledger segments, bundle assembly) can be unit-tested without a server; every capability the issues ask
for is tested against the real servers.

Keys are ``/``-separated text. Originals are content-addressed: ``originals/<sha256 hex>``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol

from schemas.errors import HubError

__all__ = [
    "ORIGINALS_PREFIX",
    "MemoryObjectStore",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "StoreUnavailable",
    "original_key",
]

ORIGINALS_PREFIX = "originals/"


def original_key(sha256_hex: str) -> str:
    """The content address of an original: ``originals/<sha256 hex>``."""
    return f"{ORIGINALS_PREFIX}{sha256_hex}"


class StoreUnavailable(HubError):
    """The object store did not answer or failed (our side: retry later; nothing was half-written)."""


class ObjectNotFound(HubError):
    """No object under this key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no object {key!r}")


class ObjectExists(HubError):
    """A create-only write found an object already under this key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"object {key!r} already exists and is never overwritten")


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object.

    ``sha256`` is the hex SHA-256 of the content (recorded at write time); ``retain_until`` is set when the object
    is under COMPLIANCE object-lock retention.
    """

    key: str
    size: int
    sha256: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    retain_until: datetime | None = None


class ObjectStore(Protocol):
    """Create-only object storage. Every write is all-or-nothing: a reader never sees a partial object."""

    @property
    def supports_object_lock(self) -> bool:
        """Whether the bucket enforces COMPLIANCE retention (detected from the server, never assumed)."""
        ...

    def put(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store ``data`` under ``key`` if nothing is there yet; ``ObjectExists`` otherwise."""
        ...

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int = -1,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
    ) -> ObjectInfo:
        """Like ``put`` for large content, read from ``stream`` in parts (memory stays bounded).

        With ``sha256`` (the content's, declared by the caller) the stream is read once and the content must hash
        to it, or nothing is stored (``ValueError``).
        """
        ...

    def put_original(self, data: bytes, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store an original under its content address; storing the same bytes again is a no-op."""
        ...

    def get(self, key: str) -> bytes:
        """The whole object; ``ObjectNotFound`` if absent."""
        ...

    def open(self, key: str, *, length: int | None = None) -> BinaryIO:
        """A stream over the object (its first ``length`` bytes only, when given), for large ones; close it."""
        ...

    def copy(self, source: str, key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Copy ``source`` to ``key`` inside the store (no bytes through the caller), create-only like ``put``.

        ``metadata`` replaces the source's; the recorded SHA-256 is the source's. ``ObjectNotFound`` (the source)
        or ``ObjectExists`` (the target).
        """
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size, SHA-256, metadata and retention; ``ObjectNotFound`` if absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def list(self, prefix: str, *, start_after: str = "") -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order (only those after ``start_after``, if given)."""
        ...

    def presigned_get(self, key: str, *, expires_seconds: int = 3600) -> str:
        """A URL that lets its holder GET the object until it expires (a claim check)."""
        ...


class MemoryObjectStore:
    """An in-memory ``ObjectStore`` for unit tests of logic only (no lock, no presigning)."""

    supports_object_lock = False

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store ``data`` under ``key`` unless something is there."""
        with self._lock:
            if key in self._objects:
                raise ObjectExists(key)
            self._objects[key] = (bytes(data), dict(metadata or {}))
        return self.stat(key)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int = -1,
        metadata: Mapping[str, str] | None = None,
        sha256: str | None = None,
    ) -> ObjectInfo:
        """Read the whole stream and ``put`` it (checking ``sha256`` when given)."""
        data = stream.read() if size < 0 else stream.read(size)
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"the stream for {key!r} does not have the SHA-256 {sha256}")
        return self.put(key, data, metadata=metadata)

    def put_original(self, data: bytes, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store under ``originals/<sha256>``; the same bytes again return the stored object."""
        key = original_key(hashlib.sha256(data).hexdigest())
        try:
            return self.put(key, data, metadata=metadata)
        except ObjectExists:
            return self.stat(key)

    def get(self, key: str) -> bytes:
        """The stored bytes."""
        try:
            return self._objects[key][0]
        except KeyError:
            raise ObjectNotFound(key) from None

    def open(self, key: str, *, length: int | None = None) -> BinaryIO:
        """A stream over the stored bytes (the first ``length`` only, when given)."""
        import io  # noqa: PLC0415 - only the stand-in needs it

        data = self.get(key)
        return io.BytesIO(data if length is None else data[:length])

    def copy(self, source: str, key: str, *, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """``put`` of the source's bytes under ``key``."""
        return self.put(key, self.get(source), metadata=metadata)

    def stat(self, key: str) -> ObjectInfo:
        """Size, SHA-256 and metadata."""
        try:
            data, metadata = self._objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None
        return ObjectInfo(key, len(data), hashlib.sha256(data).hexdigest(), dict(metadata))

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        return key in self._objects

    def list(self, prefix: str, *, start_after: str = "") -> Iterator[str]:
        """Stored keys under ``prefix`` (after ``start_after``), sorted."""
        return iter(sorted(k for k in list(self._objects) if k.startswith(prefix) and k > start_after))

    def presigned_get(self, key: str, *, expires_seconds: int = 3600) -> str:
        """Not a real URL: the stand-in has no server."""
        self.stat(key)
        return f"memory://{key}?expires={expires_seconds}"

    def tamper(self, key: str, data: bytes) -> None:
        """Overwrite an object behind the store's back (tests of tamper detection only)."""
        self._objects[key] = (data, self._objects[key][1])
