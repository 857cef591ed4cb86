"""Small helpers shared by sub-commands: reading input files and printing one line per problem."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.settings import HubSettings

__all__ = ["emit_json", "expand_files", "hub_settings", "warn"]


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


def hub_settings(data: Path) -> HubSettings:
    """The settings of the hub whose data folder is ``data``; ``HubError`` in one line if it never started there."""
    from hub.settings import HubSettings  # noqa: PLC0415 - only the commands that talk to a hub load them
    from schemas.errors import HubError  # noqa: PLC0415

    file = data / "settings.yaml"
    if not file.is_file():
        raise HubError(f"no {file}: start the hub once with `lienthong up --data {data}`, or pass --data DIR")
    return HubSettings.load(file)
