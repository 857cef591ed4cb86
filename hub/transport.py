"""faust's aiokafka transport, with the workers' fetch wait chosen by the hub.

faust-streaming builds its worker consumer with ``fetch_max_wait_ms=1500`` hard-coded. On Kafka that costs
nothing (a broker answers a waiting fetch as soon as records arrive), but Tansu answers an empty fetch only when
the wait is over, so every hop of a document (inbound → lane → inbox) could wait up to 1.5 s. This transport is
faust's own with one change: the worker consumer's wait is ``HubApp.fetch_max_wait_ms``
(``HubSettings.fetch_max_wait_ms``). It is registered under the URL scheme ``lienthong-kafka://``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import faust
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["SCHEME", "HubApp", "Transport", "broker_url"]

#: The URL scheme of this transport (``lienthong-kafka://host:port``).
SCHEME = "lienthong-kafka"


class HubApp(faust.App):
    """A faust app that carries the consumer fetch wait for the transport."""

    fetch_max_wait_ms: int = 1500  # faust's own value, until the hub sets its own


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the value here and hands it to its fetcher when the consumer starts.
        consumer._fetch_max_wait_ms = int(  # noqa: SLF001 - no public setter; read once, at start
            getattr(self.app, "fetch_max_wait_ms", 1500)
        )
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport whose worker consumer uses the app's fetch wait."""

    Consumer: ClassVar[Any] = _Consumer


def broker_url(bootstrap: str) -> str:
    """The faust ``broker`` URL for ``host:port`` through this transport (registering the scheme once)."""
    drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    return f"{SCHEME}://{bootstrap}"
