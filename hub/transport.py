"""faust's aiokafka transport with idempotent producers.

faust turns idempotence on only inside its transactions (``processing_guarantee="exactly_once"``); the hub keeps
at-least-once processing with its own in-doubt check (``hub.guard``) and wants every producer idempotent, so that a
retry after a lost acknowledgement never writes a delivery twice. Registered as the URL scheme ``lienthong-kafka://``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["SCHEME", "Transport", "broker_url"]

#: The URL scheme of this transport (``lienthong-kafka://host:port``).
SCHEME = "lienthong-kafka"


class _Producer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport whose producers are idempotent."""

    Producer: ClassVar[Any] = _Producer


def broker_url(bootstrap: str) -> str:
    """The faust ``broker`` URL for ``host:port[,host:port…]`` through this transport (registering it once)."""
    drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    return ";".join(f"{SCHEME}://{server}" for server in bootstrap.split(","))
