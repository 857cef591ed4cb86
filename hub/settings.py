"""The hub's settings: one frozen object, built once at start-up from a YAML file and the environment.

Precedence: explicit overrides (the command line) > environment (``LIENTHONG_<FIELD>``) > file > defaults.
Nothing else in the hub reads the environment. Every default is named and says why.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.trust import ConfigError
from signer.policy import RevocationPolicy

__all__ = [
    "DEFAULT_CLAIM_CHECK_BYTES",
    "DEFAULT_FETCH_MAX_WAIT_MS",
    "DEFAULT_HUB_ORGAN_ID",
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "DEFAULT_PARTITIONS",
    "HubSettings",
]

#: Kafka's default record limit is 1 MB; above this, senders put the bytes in object storage (a claim check).
DEFAULT_CLAIM_CHECK_BYTES = 900 * 1024
#: Peer systems see documents of 100 MB and more; 150 MB is the parser's cap too (schemas.DEFAULT_MAX_BYTES).
DEFAULT_MAX_DOCUMENT_BYTES = 150 * 1024 * 1024
#: Partitions of the inbound and work topics: enough for two workers with room to scale out to four.
DEFAULT_PARTITIONS = 4
#: The hub's own OrganId in the statuses it sends (a provincial platform unit; set yours in production).
DEFAULT_HUB_ORGAN_ID = "000.00.99.H41"
#: The embedded servers' credentials; they listen on 127.0.0.1 only (change them for anything shared).
DEFAULT_S3_ACCESS_KEY = "lienthong"
DEFAULT_S3_SECRET_KEY = "lienthong-secret"  # noqa: S105 - a loopback-only default, documented as such
#: How long the workers' fetches wait on the broker. Tansu answers an empty fetch only after this wait, so it bounds
#: each hop's latency; on S3 it must also cover listing a partition's batch objects (hub.embedded.kafka).
DEFAULT_FETCH_MAX_WAIT_MS = 500


@dataclass(frozen=True)
class HubSettings:
    """Everything a hub worker needs to know, fixed at start-up."""

    data_dir: Path = Path("data")
    kafka_bootstrap: str = "127.0.0.1:9092"
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = DEFAULT_S3_ACCESS_KEY
    s3_secret_key: str = DEFAULT_S3_SECRET_KEY
    s3_bucket: str = "lienthong"
    http_port: int = 6066
    directory_file: Path | None = None
    trust: tuple[Path, ...] = ()
    intermediates: tuple[Path, ...] = ()
    crls: tuple[Path, ...] = ()
    revocation: RevocationPolicy = RevocationPolicy.REQUIRE
    ocsp: bool = False
    tsa_url: str | None = None
    tsa_trust: tuple[Path, ...] = ()
    hub_organ_id: str = DEFAULT_HUB_ORGAN_ID
    partitions: int = DEFAULT_PARTITIONS
    claim_check_bytes: int = DEFAULT_CLAIM_CHECK_BYTES
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    verify_processes: int = 0  # 0: verify in the worker process; N: a pool of N processes
    seal_interval_seconds: float = 5.0  # how often the ledger writer signs a tree head (when the log grew)
    consumer_group: str = "lienthong-hub"
    fetch_max_wait_ms: int = DEFAULT_FETCH_MAX_WAIT_MS
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def seal_key_path(self) -> Path:
        """The hub's seal key (created on first start)."""
        return self.data_dir / "hub-key.pem"

    @property
    def seal_cert_path(self) -> Path:
        """The hub's seal certificate: what an auditor trusts for the hub."""
        return self.data_dir / "hub-cert.pem"

    @classmethod
    def load(cls, file: Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> HubSettings:
        """Build the settings from ``file`` (YAML mapping of field names), then ``env``, then ``overrides``."""
        values: dict[str, Any] = {}
        if file is not None:
            try:
                loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"cannot read the settings file {file}: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigError(f"{file}: expected a mapping of setting names to values")
            values.update(loaded)
        environ = os.environ if env is None else env
        names = {f.name for f in dataclasses.fields(cls)}
        for name in names:
            key = f"LIENTHONG_{name.upper()}"
            if key in environ:
                values[name] = environ[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - names
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
        return cls(**{name: _coerce(cls, name, value) for name, value in values.items()})


def _paths(value: Any) -> tuple[Path, ...]:
    items = value.split(os.pathsep) if isinstance(value, str) else list(value)
    return tuple(Path(v) for v in items if v)


def _int(value: Any) -> int:
    if isinstance(value, bool | float):
        raise TypeError(f"{value!r} is not an integer")
    return int(value)


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", "on"}


#: How file/env text becomes each field type (keyed by the annotation's text).
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "Path": Path,
    "Path | None": lambda v: Path(v) if v else None,
    "tuple[Path, ...]": _paths,
    "int": _int,
    "float": float,
    "bool": _flag,
    "RevocationPolicy": RevocationPolicy,
    "str": str,
    "str | None": lambda v: str(v) if v else None,
    "Mapping[str, str]": dict,
}


def _coerce(cls: type[HubSettings], name: str, value: Any) -> Any:
    """Turn file/env text into the field's type, with an error naming the setting."""
    kind = str({f.name: f.type for f in dataclasses.fields(cls)}[name])
    try:
        return _CONVERTERS[kind](value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {value!r} is not a valid {kind}") from exc
