"""How a client reaches the hub's Kafka: address, SASL principal and TLS, in the dialect of each client library.

One frozen ``KafkaConnection`` is built from the settings (or an agency's credentials) and turned into keyword
arguments for kafka-python and aiokafka, into faust's credentials, or into librdkafka properties (confluent-kafka,
and the ``agency credentials --json`` format that any Kafka client can be configured from).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["DEFAULT_SASL_MECHANISM", "KafkaConnection"]

#: SCRAM keeps no password on the broker (salted, iterated hashes) and every Kafka client speaks it.
DEFAULT_SASL_MECHANISM: Final = "SCRAM-SHA-512"


@dataclass(frozen=True)
class KafkaConnection:
    """A Kafka bootstrap list and the principal a client authenticates as (``username`` empty: no SASL)."""

    bootstrap: str
    username: str = ""
    password: str = ""
    mechanism: str = DEFAULT_SASL_MECHANISM
    tls: bool = False
    ca_file: Path | None = None

    def __repr__(self) -> str:  # never print the password (logs, tracebacks)
        return f"KafkaConnection({self.bootstrap!r}, username={self.username!r}, tls={self.tls})"

    @property
    def security_protocol(self) -> str:
        """``SASL_SSL``, ``SASL_PLAINTEXT``, ``SSL`` or ``PLAINTEXT``."""
        return ("SASL_" if self.username else "") + ("SSL" if self.tls else "PLAINTEXT")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context trusting ``ca_file`` (or the system store), or None without TLS."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def _sasl(self) -> dict[str, Any]:
        if not self.username:
            return {}
        return {
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def options(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's and aiokafka's producers, consumers and admin clients (same names)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.security_protocol,
            **self._sasl(),
        }
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        return options

    def faust_credentials(self) -> Any:
        """Faust's ``broker_credentials`` for this principal (None: plain connection)."""
        import faust  # noqa: PLC0415 - faust is heavy; only workers need it

        if self.username:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                mechanism=self.mechanism,
                ssl_context=self.ssl_context(),
            )
        context = self.ssl_context()
        return faust.SSLCredentials(context) if context is not None else None

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, Any]) -> KafkaConnection:
        """The connection of a credentials object (``lienthong agency credentials --json``; its ``kafka`` section)."""
        kafka = credentials.get("kafka")
        if not isinstance(kafka, Mapping) or not kafka.get("bootstrap.servers"):
            raise ValueError("not a lienthong credentials file: no 'kafka' section with 'bootstrap.servers'")
        ca_file = kafka.get("ssl.ca.location")
        return cls(
            str(kafka["bootstrap.servers"]),
            str(kafka.get("sasl.username", "")),
            str(kafka.get("sasl.password", "")),
            mechanism=str(kafka.get("sasl.mechanism", DEFAULT_SASL_MECHANISM)),
            tls=str(kafka.get("security.protocol", "")).endswith("SSL"),
            ca_file=Path(ca_file) if ca_file else None,
        )

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients, as JSON values (``options`` without the TLS context)."""
        options = {k: v for k, v in self.options().items() if k != "ssl_context"}
        if self.tls and self.ca_file is not None:
            options["ssl_cafile"] = str(self.ca_file)
        return options

    def java_properties(self) -> dict[str, str]:
        """Java client properties (the JAAS line carries the SCRAM login)."""
        properties = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol}
        if self.username:
            user, password = (_jaas_quoted(v) for v in (self.username, self.password))
            properties |= {
                "sasl.mechanism": self.mechanism,
                "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{user}" password="{password}";',
            }
        if self.tls and self.ca_file is not None:
            properties |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ca_file)}
        return properties

    def librdkafka(self) -> dict[str, str]:
        """Librdkafka client properties (confluent-kafka, kcat, and the credentials JSON)."""
        properties = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol}
        if self.username:
            properties |= {
                "sasl.mechanism": self.mechanism,
                "sasl.username": self.username,
                "sasl.password": self.password,
            }
        if self.tls and self.ca_file is not None:
            properties["ssl.ca.location"] = str(self.ca_file)
        return properties


def _jaas_quoted(value: str) -> str:
    """``value`` inside a JAAS double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
