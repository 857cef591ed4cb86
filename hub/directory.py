"""The agency directory: who is served locally, who through the national axis, and which keys sign for whom.

The YAML file of DESIGN.md (``agencies: [{id, name, route: local|axis, cert_spki_sha256: [hex]}]``) seeds the
compacted topic ``lienthong.directory`` on the hub's first start; afterwards every change is a record there signed
by an administrator (``hub.signed_directory``). The directory gives the signer its pins: a document is accepted only
if its signing certificate's SPKI SHA-256 is listed for its ``From/OrganId``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from hub.records import inbox_topic, status_topic
from hub.trust import ConfigError

__all__ = ["Agency", "Directory", "DirectoryError", "Route", "load_directory", "spki_digest"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DirectoryError(ConfigError):
    """The directory file (or a directory record) is malformed; the message names the entry and the field."""


class Route(StrEnum):
    """Where documents for an agency go."""

    LOCAL = "local"  # its DMS reads lienthong.inbox.<OrganId>
    AXIS = "axis"  # forwarded to the national axis through lienthong.axis.outbound


@dataclass(frozen=True)
class Agency:
    """One directory entry."""

    id: str
    name: str
    route: Route
    cert_spki_sha256: frozenset[str] = field(default_factory=frozenset)

    def to_mapping(self) -> dict[str, Any]:
        """The entry as the YAML file and the signed directory records write it (``from_mapping`` reads it)."""
        entry = {"id": self.id, "name": self.name, "route": self.route.value}
        return {**entry, "cert_spki_sha256": sorted(self.cert_spki_sha256)}

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], where: str) -> Agency:
        """Check one entry; ``DirectoryError`` names ``where`` and the field at fault."""
        organ_id = entry.get("id")
        if not isinstance(organ_id, str) or not organ_id.strip():
            raise DirectoryError(f"{where}: 'id' must be the agency's OrganId")
        try:
            inbox_topic(organ_id.strip())
            status_topic(organ_id.strip())
        except ValueError as exc:
            raise DirectoryError(
                f"{where}: 'id' {organ_id!r} cannot name a topic (letters, digits, '.', '_', '-')"
            ) from exc
        route = entry.get("route", "local")
        if route not in {r.value for r in Route}:
            raise DirectoryError(f"{where} ({organ_id}): 'route' must be 'local' or 'axis', not {route!r}")
        pins = entry.get("cert_spki_sha256", [])
        if not isinstance(pins, list):
            raise DirectoryError(f"{where} ({organ_id}): 'cert_spki_sha256' must be a list of SHA-256 hex digests")
        digests = [spki_digest(p) for p in pins]
        for original, digest in zip(pins, digests, strict=True):
            if digest is None:
                raise DirectoryError(f"{where} ({organ_id}): {original!r} is not a SHA-256 hex digest")
        return cls(organ_id.strip(), str(entry.get("name", "")), Route(route), frozenset(filter(None, digests)))


def spki_digest(text: object) -> str | None:
    """A pin as the directory keeps it (SHA-256 hex, lower case, colons and spaces dropped), or None if not one."""
    digest = str(text).strip().lower().replace(":", "")
    return digest if _HEX64.match(digest) else None


class Directory:
    """Agencies by OrganId. Immutable once built; an update builds a new one (``with_record``)."""

    def __init__(self, agencies: Iterable[Agency] = ()) -> None:
        self._agencies = {a.id: a for a in agencies}

    def __len__(self) -> int:
        return len(self._agencies)

    def __iter__(self) -> Iterator[Agency]:
        return iter(self._agencies.values())

    def get(self, organ_id: str) -> Agency | None:
        """The entry for ``organ_id``, or None if the hub does not know it."""
        return self._agencies.get(organ_id)

    def pins(self) -> dict[str, frozenset[str]]:
        """OrganId → allowed signing-key SPKI SHA-256s, for ``signer.policy.TrustPolicy.pins``."""
        return {a.id: a.cert_spki_sha256 for a in self._agencies.values()}

    def with_agency(self, agency: Agency) -> Directory:
        """A directory where ``agency`` replaces any entry with its OrganId."""
        return Directory([*(a for a in self._agencies.values() if a.id != agency.id), agency])

    def without(self, organ_id: str) -> Directory:
        """A directory without ``organ_id`` (the same one if it was not there)."""
        return Directory(a for a in self._agencies.values() if a.id != organ_id)


def load_directory(path: Path) -> Directory:
    """Read the YAML directory file; ``DirectoryError`` says which entry and field is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DirectoryError(f"cannot read the directory {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("agencies"), list):
        raise DirectoryError(f"{path}: expected a mapping with a list 'agencies: [...]'")
    agencies: dict[str, Agency] = {}
    for n, entry in enumerate(data["agencies"], start=1):
        if not isinstance(entry, dict):
            raise DirectoryError(f"{path}: agencies[{n}] is not a mapping")
        agency = Agency.from_mapping(entry, f"{path}: agencies[{n}]")
        if agency.id in agencies:
            raise DirectoryError(f"{path}: agencies[{n}]: {agency.id} is listed twice")
        agencies[agency.id] = agency
    return Directory(agencies.values())
