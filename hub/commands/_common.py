"""Small helpers shared by sub-commands: reading input files, printing one line per problem, naming commands.

Commands that talk to a server (the hub's Kafka broker, an S3 store) check that it answers before they start
(``require_server``) and are wrapped in ``server_command``, so a server that is down or unreachable ends the command
within seconds with one line naming it and saying what to do, never with a client library's traceback.
"""

from __future__ import annotations

import functools
import json
import shlex
import shutil
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.errors import HubError

if TYPE_CHECKING:
    import argparse

    from adapters.kafka import KafkaConnection
    from hub.settings import HubSettings

__all__ = [
    "CONNECT_TIMEOUT",
    "ServerUnreachable",
    "emit_json",
    "expand_files",
    "hub_settings",
    "lienthong_command",
    "require_hub",
    "require_kafka",
    "require_server",
    "server_command",
    "server_remedy",
    "shown_path",
    "start_hub_hint",
    "warn",
]

#: Seconds to wait for a server's TCP handshake: a server on this network answers in milliseconds, and each
#: address of a bootstrap list gets this much, so a command gives up well within 10 s.
CONNECT_TIMEOUT = 3.0

Command = Callable[["argparse.Namespace"], int]


class ServerUnreachable(HubError):
    """A server the command needs is not there; the message names it, its address and what to do."""


def expand_files(names: Iterable[str | Path], pattern: str = "*.xml") -> Iterator[Path]:
    """Each named file, and for a directory every ``pattern`` file inside it, sorted."""
    for name in names:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.glob(pattern) if p.is_file())
        else:
            yield path


def emit_json(obj: dict[str, Any]) -> None:
    """Print ``obj`` as one JSON line (UTF-8 text kept readable)."""
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def warn(message: str) -> None:
    """One readable line on stderr."""
    print(message, file=sys.stderr, flush=True)


# --- commands the user can type as they are printed --------------------------------------------------------------


def _here(path: Path) -> str:
    """``path`` relative to the current folder when inside it (``./x`` for a file right here), else absolute."""
    absolute = path.absolute()
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    return str(relative) if len(relative.parts) != 1 else f"./{relative}"


def _typeable(program: str) -> str:
    """``program`` (a path) as the user can type it here: its bare name when PATH finds this very file."""
    path = Path(program)
    found = shutil.which(path.name)
    if found is not None and Path(found).absolute() == path.absolute():
        return path.name
    return shlex.quote(_here(path))


def lienthong_command() -> str:
    """This program as the user can type it in the current folder.

    ``lienthong`` when PATH finds the running script, else its path (``.venv/bin/lienthong``); for ``python -m hub``
    the running interpreter the same way (``.venv/bin/python -m hub``).
    """
    script = sys.argv[0] if sys.argv else ""
    if Path(script).name == "lienthong":
        return _typeable(script)
    return f"{_typeable(sys.executable)} -m hub"


def shown_path(path: Path) -> str:
    """``path`` for a printed command: relative to the current folder when inside it, quoted for the shell."""
    return shlex.quote(_here(path).removeprefix("./"))


def start_hub_hint(data: Path) -> str:
    """What to do when the embedded hub of ``data`` is not running."""
    return f"is the hub running? Start it with `{lienthong_command()} up --data {shown_path(data)}`"


# --- servers -----------------------------------------------------------------------------------------------------


def require_server(what: str, addresses: str, remedy: str, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Return once one of ``addresses`` (``host:port``, comma-separated) accepts a connection.

    Otherwise raise ``ServerUnreachable``: "cannot reach WHAT at ADDRESSES (why): REMEDY". Client libraries retry
    an absent server for 30 s or more before failing with a traceback; a TCP handshake answers in milliseconds.
    """
    reason = "no address"
    for address in (a.strip() for a in addresses.split(",") if a.strip()):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
        except ValueError:
            reason = f"{address!r} is not HOST:PORT"
        except TimeoutError:
            reason = f"no answer within {timeout:g} s"
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
        else:
            return
    raise ServerUnreachable(f"cannot reach {what} at {addresses} ({reason}): {remedy}")


def require_kafka(connection: KafkaConnection, remedy: str) -> KafkaConnection:
    """``connection`` once its broker answers (``require_server``)."""
    require_server("the hub's Kafka broker", connection.bootstrap, remedy)
    return connection


def server_remedy(settings: HubSettings, setting: str, *, external: bool) -> str:
    """What to do about an unreachable server of ``settings``: start the embedded hub, or check the setting."""
    if external:
        return f"check that it runs and the {setting} setting in {shown_path(settings.data_dir / 'settings.yaml')}"
    return start_hub_hint(settings.data_dir)


def require_hub(settings: HubSettings, *, kafka: bool = True, s3: bool = False) -> HubSettings:
    """``settings`` once the servers the command needs answer: the broker, and with ``s3`` the object store."""
    if kafka:
        remedy = server_remedy(settings, "kafka_bootstrap", external=settings.kafka_external)
        require_server("the hub's Kafka broker", settings.kafka_bootstrap, remedy)
    if s3:
        remedy = server_remedy(settings, "s3_endpoint", external=settings.s3_external)
        require_server("the hub's object store (S3)", settings.s3_endpoint, remedy)
    return settings


def server_command(name: str) -> Callable[[Command], Command]:
    """Wrap the ``run`` of ``lienthong NAME``: a missing server ends it with one line on stderr and exit 1.

    The command checks its servers first (``require_server``); one that stops answering on the way ends it the same
    way, instead of with the client library's traceback.
    """

    def wrap(run: Command) -> Command:
        @functools.wraps(run)
        def wrapped(args: argparse.Namespace) -> int:
            from kafka.errors import KafkaError  # noqa: PLC0415 - kafka only for the commands that use it

            from storage.objectstore import StoreUnavailable  # noqa: PLC0415

            try:
                return run(args)
            except ServerUnreachable as exc:
                warn(f"lienthong {name}: {exc}")
            except KafkaError as exc:  # it answered the check, then went away (or is not a Kafka broker)
                warn(f"lienthong {name}: the hub's Kafka broker stopped answering ({exc}); try again once it runs")
            except StoreUnavailable as exc:  # the same for the object store
                warn(f"lienthong {name}: {exc}; try again once it runs")
            return 1

        return wrapped

    return wrap


def hub_settings(data: Path) -> HubSettings:
    """The settings of the hub whose data folder is ``data``; ``HubError`` in one line if it never started there."""
    from hub.settings import HubSettings  # noqa: PLC0415 - only the commands that talk to a hub load them

    file = data / "settings.yaml"
    if not file.is_file():
        raise HubError(
            f"no {file}: start the hub once with `{lienthong_command()} up --data {shown_path(data)}`, "
            "or pass --data DIR"
        )
    return HubSettings.load(file)
