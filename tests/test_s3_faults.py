"""The S3 server fails under the adapter: killed mid-write, down, frozen, restarted. Each test has its own weed."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from storage.objectstore import ObjectInfo, StoreUnavailable
from storage.s3 import S3ObjectStore
from tests.support.s3_fixtures import unique_bucket
from tests.test_objectstore import VIETNAMESE, PseudoRandomStream

pytestmark = pytest.mark.servers

MB = 1024 * 1024
FAST = 5.0  # seconds: "quickly" for a failure on loopback (the adapter retries for about one second)


@pytest.mark.parametrize("moment", ["between parts", "while a part is sent"])
def test_kill_during_multipart_upload(crashable_weed, moment, monkeypatch):
    """SIGKILL mid-upload: StoreUnavailable at once, nothing under the key after restart, and a retry succeeds."""
    server = crashable_weed
    store = server.store(unique_bucket("fault"))
    upload_part = store.client._upload_part
    parts: list[int] = []

    def tripping(*args, **kwargs):
        parts.append(1)
        if len(parts) == 3:
            if moment == "between parts":
                server.kill()
            else:  # sending an 8 MiB part over loopback takes tens of ms: a kill 20 ms in lands inside it
                threading.Timer(0.02, server.kill).start()
        return upload_part(*args, **kwargs)

    monkeypatch.setattr(store.client, "_upload_part", tripping)
    stream = PseudoRandomStream(40 * MB)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.put_stream("big/interrupted", stream, metadata={"sender": "Sở Tư pháp"})
    assert time.monotonic() - started < FAST + 10  # the parts before the kill took their time too
    assert not server.running
    monkeypatch.undo()

    server.start()
    assert not store.exists("big/interrupted")
    assert list(store.list("")) == []  # the upload was never completed, so nothing is visible
    # The upload the crash left open is hidden from listings and aborted by age.
    assert store.abort_stale_uploads(older_than=timedelta(hours=1)) == 0  # too young: might still be in progress
    assert store.abort_stale_uploads(older_than=timedelta(0)) == 1

    again = PseudoRandomStream(40 * MB)
    info = store.put_stream("big/interrupted", again, metadata={"sender": "Sở Tư pháp"})
    assert info.sha256 == again.sha256.hexdigest()
    assert store.stat("big/interrupted") == info


def test_kill_during_many_writes_loses_no_acknowledged_object(crashable_weed):
    """SIGKILL under 8 writers, then restart: every acknowledged object is there, whole; nothing half-written."""
    server = crashable_weed
    store = server.store(unique_bucket("fault"))
    acknowledged: list[ObjectInfo] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            data = f"writer {n} document {i} ".encode() * (50 + i % 200)
            try:
                acknowledged.append(store.put(f"docs/{n}/{i}", data))
            except StoreUnavailable:
                return  # the server is gone: this write was not acknowledged
            i += 1

    with ThreadPoolExecutor(8) as pool:
        for n in range(8):
            pool.submit(writer, n)
        time.sleep(1.0)
        server.kill()
        stop.set()
    assert len(acknowledged) > 50  # the kill landed in the middle of a stream of writes

    started = time.monotonic()
    server.start()
    print(f"{len(acknowledged)} writes acknowledged; restart after kill -9: {time.monotonic() - started:.2f} s")
    for info in acknowledged:
        assert hashlib.sha256(store.get(info.key)).hexdigest() == info.sha256
        assert store.stat(info.key) == info
    known = {info.key for info in acknowledged}
    for key in set(store.list("docs/")) - known:  # written but not acknowledged: whole, or not there at all
        stored = store.get(key)
        assert store.stat(key).sha256 == hashlib.sha256(stored).hexdigest()


def test_every_call_fails_fast_while_the_server_is_down(crashable_weed):
    """With the server down, every call that needs it raises StoreUnavailable within seconds, then works again."""
    server = crashable_weed
    store = server.store(unique_bucket("fault"))
    stored = store.put("docs/before", b"before")
    server.kill()
    calls = {
        "put": lambda: store.put("docs/during", b"x"),
        "put_original": lambda: store.put_original(b"x"),
        "put_stream": lambda: store.put_stream("docs/during", io.BytesIO(b"x")),
        "get": lambda: store.get("docs/before"),
        "open": lambda: store.open("docs/before"),
        "stat": lambda: store.stat("docs/before"),
        "exists": lambda: store.exists("docs/before"),  # not False: the store does not know
        "list": lambda: list(store.list("docs/")),
        "abort_stale_uploads": store.abort_stale_uploads,
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            call()
        assert time.monotonic() - started < FAST, name

    server.start()
    assert store.stat("docs/before") == stored
    assert store.put("docs/after", b"after").size == 5


def _wait_stopped(pid: int) -> None:
    """SIGSTOP is delivered asynchronously: wait until every thread of ``pid`` is stopped (state T)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = [
            (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in Path(f"/proc/{pid}/task").iterdir()
        ]
        if all(state == "T" for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop")


def test_a_frozen_server_times_out(crashable_weed):
    """A server that accepts connections but never answers (SIGSTOP) gives StoreUnavailable after the timeout."""
    server = crashable_weed
    store = S3ObjectStore.connect(
        server.endpoint,
        server.access_key,
        server.secret_key,
        unique_bucket("fault"),
        read_timeout=1.0,
        retries=1,
    )
    store.put("docs/x", b"x")
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        _wait_stopped(pid)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.stat("docs/x")
        with pytest.raises(StoreUnavailable):
            store.put("docs/y", b"y")
        assert time.monotonic() - started < 2 * FAST
    finally:
        os.kill(pid, signal.SIGCONT)
    assert store.get("docs/x") == b"x"


def test_metadata_and_hashes_survive_a_kill(crashable_weed):
    """After kill -9 and a restart, stat's SHA-256, metadata and retention are exactly what the writes returned."""
    server = crashable_weed
    bucket = unique_bucket("fault")
    store = server.store(bucket)
    put = store.put("docs/vi", b"noi dung", metadata=VIETNAMESE)
    original = store.put_original(b"original bytes", metadata={"sender": "Văn phòng Chính phủ"})
    streamed = store.put_stream("big/s", io.BytesIO(b"z" * (9 * MB)), metadata={"doc-id": "7/CV-VPCP"})

    server.kill()
    server.start()
    fresh = server.store(bucket)
    for info in (put, original, streamed):
        assert fresh.stat(info.key) == info
    assert fresh.put_original(b"original bytes") == original
    assert hashlib.sha256(fresh.get("big/s")).hexdigest() == streamed.sha256
