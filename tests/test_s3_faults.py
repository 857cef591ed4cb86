"""The S3 server fails under the adapter: killed mid-write, down, frozen, restarted. Each test has its own rclone."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from storage.objectstore import StoreUnavailable
from storage.s3 import INCOMING_PREFIX, S3ObjectStore
from tests.support.s3_fixtures import unique_bucket
from tests.test_objectstore import VIETNAMESE, PseudoRandomStream

pytestmark = pytest.mark.servers

MB = 1024 * 1024
FAST = 5.0  # seconds: "quickly" for a failure on loopback (the adapter retries for about one second)


class TrippingStream(PseudoRandomStream):
    """Pseudo-random bytes that call ``trip`` once, after ``at`` bytes have been read."""

    def __init__(self, size: int, at: int, trip: Callable[[], None]) -> None:
        super().__init__(size)
        self._at = at
        self._read = 0
        self._trip: Callable[[], None] | None = trip

    def read(self, size: int = -1) -> bytes:
        """The next chunk; trips once the threshold is passed."""
        chunk = super().read(size)
        self._read += len(chunk)
        if self._trip is not None and self._read >= self._at:
            trip, self._trip = self._trip, None
            trip()
        return chunk


def rclone_temporaries(server) -> list[str]:
    """The hidden temporary files rclone left under the server's folder."""
    return [str(p.relative_to(server.root)) for p in server.root.rglob(".rclone_temp_*")]


@pytest.mark.parametrize("moment", ["between parts", "while a part is sent"])
def test_kill_during_multipart_upload(crashable_rclone, moment):
    """SIGKILL mid-upload: StoreUnavailable at once, nothing under the key after restart, and a retry succeeds."""
    server = crashable_rclone
    store = server.store(unique_bucket("fault"))
    if moment == "between parts":
        trip = server.kill  # minio reads a whole part before sending it: the kill lands between two requests
    else:
        # Sending an 8 MiB part over loopback takes about 100 ms: a kill 20 ms after the read lands inside it.
        def trip() -> None:
            threading.Timer(0.02, server.kill).start()

    stream = TrippingStream(64 * MB, at=24 * MB, trip=trip)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.put_stream("big/interrupted", stream, metadata={"sender": "Sở Tư pháp"})
    assert time.monotonic() - started < FAST + 10  # the parts before the kill took their time too
    assert not server.running

    server.start()
    assert not store.exists("big/interrupted")
    assert list(store.list("")) == []
    assert list(store.list(INCOMING_PREFIX)) == []  # the temporary object was never completed
    # What the killed server left is hidden from S3 and removable by age.
    leftovers = rclone_temporaries(server)
    assert server.remove_stale_temporaries(older_than=timedelta(0)) == len(leftovers)
    assert rclone_temporaries(server) == []

    again = PseudoRandomStream(64 * MB)
    info = store.put_stream("big/interrupted", again, metadata={"sender": "Sở Tư pháp"})
    assert info.sha256 == again.sha256.hexdigest()
    assert store.stat("big/interrupted") == info


def test_kill_between_upload_and_copy_leaves_only_a_removable_temp(crashable_rclone, monkeypatch):
    """A crash after the upload but before the copy leaves nothing at the key; cleanup_incoming removes the temp."""
    server = crashable_rclone
    store = server.store(unique_bucket("fault"))
    copy_into_place = store._copy_into_place

    def crash_first(*args, **kwargs):
        server.kill()
        copy_into_place(*args, **kwargs)

    monkeypatch.setattr(store, "_copy_into_place", crash_first)
    with pytest.raises(StoreUnavailable):
        store.put_stream("docs/late", io.BytesIO(b"complete but not yet in place"))
    monkeypatch.undo()

    server.start()
    assert not store.exists("docs/late")
    assert list(store.list("docs/")) == []
    assert len(list(store.list(INCOMING_PREFIX))) == 1
    assert store.cleanup_incoming(older_than=timedelta(hours=1)) == 0  # too young: might still be in progress
    time.sleep(1.1)  # rclone's listing times have one-second resolution
    assert store.cleanup_incoming(older_than=timedelta(0)) == 1
    assert list(store.list(INCOMING_PREFIX)) == []
    assert store.put_stream("docs/late", io.BytesIO(b"again")).size == 5


def test_every_call_fails_fast_while_the_server_is_down(crashable_rclone):
    """With the server down, every call that needs it raises StoreUnavailable within seconds, then works again."""
    server = crashable_rclone
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
        "cleanup_incoming": store.cleanup_incoming,
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


def test_a_frozen_server_times_out(crashable_rclone):
    """A server that accepts connections but never answers (SIGSTOP) gives StoreUnavailable after the timeout."""
    server = crashable_rclone
    store = S3ObjectStore.connect(
        server.endpoint,
        server.access_key,
        server.secret_key,
        unique_bucket("fault"),
        read_timeout=1.0,
        retries=1,
        metadata_sidecars=True,
    )
    store.put("docs/x", b"x")
    assert server.process.pid is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        _wait_stopped(server.process.pid)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.stat("docs/x")
        with pytest.raises(StoreUnavailable):
            store.put("docs/y", b"y")
        assert time.monotonic() - started < 2 * FAST
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert store.get("docs/x") == b"x"


def test_metadata_and_hashes_survive_a_restart(crashable_rclone):
    """After a restart (rclone forgets user metadata) the sidecars keep stat's SHA-256 and metadata exact."""
    server = crashable_rclone
    bucket = unique_bucket("fault")
    store = server.store(bucket)
    put = store.put("docs/vi", b"noi dung", metadata=VIETNAMESE)
    original = store.put_original(b"original bytes", metadata={"sender": "Văn phòng Chính phủ"})
    streamed = store.put_stream("big/s", io.BytesIO(b"z" * (6 * MB)), metadata={"doc-id": "7/CV-VPCP"})

    server.kill()
    server.start()
    fresh = server.store(bucket)
    for info in (put, original, streamed):
        assert fresh.stat(info.key) == info
    assert fresh.put_original(b"original bytes") == original
    assert hashlib.sha256(fresh.get("big/s")).hexdigest() == streamed.sha256
