"""Demo material: a PKI, agencies, a directory and a stream of signed documents, some invalid on purpose.

Used by ``lienthong up --demo``, the end-to-end tests and ``lienthong bench e2e``, so that all three exercise
the same hub with the same kinds of traffic. Everything is made relative to ``now`` (the CRL is current, the
certificates valid), written under one folder:

    DIR/trust/root.pem            the anchor the hub trusts
    DIR/trust/ca.pem              the issuing CA (an intermediate)
    DIR/trust/ca-crl.pem          the CA's current CRL (revocation policy "require" is satisfied)
    DIR/trust/root-crl.pem        the root's CRL (covers the issuing CA)
    DIR/ca-key.pem                the issuing CA's key (a throwaway: to publish its next CRL)
    DIR/tsa/{tsa,tsa-chain}.pem   the demo time-stamp authority's certificate (EKU timeStamping, by the root)
    DIR/tsa/tsa.key               and its key (``hub.embedded.tsa`` serves it); its anchor is DIR/trust/root.pem
    DIR/directory.yaml            agencies, routes and SPKI pins
    DIR/agencies/<OrganId>/{key,cert,chain}.pem
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hub.embedded.tsa import TSA_CERT_FILE, TSA_CHAIN_FILE, TSA_KEY_FILE
from hub.settings import write_private
from schemas import build_document, build_status
from schemas.examples import example_edoc, example_status
from schemas.model import Edoc
from signer import devpki
from signer.keys import PemKey
from signer.sign import sign_document

__all__ = [
    "DEMO_AGENCIES",
    "DemoDocument",
    "DemoMaterial",
    "create_demo_material",
    "demo_documents",
    "describe_demo_agencies",
    "write_axis_sim_agencies",
]

#: OrganId → (name, route). One agency is reached through the national axis.
DEMO_AGENCIES: dict[str, tuple[str, str]] = {
    "000.00.00.H41": ("UBND tỉnh Nghệ An", "local"),
    "000.01.00.H41": ("Sở Tư pháp tỉnh Nghệ An", "local"),
    "000.02.00.H41": ("Sở Tài chính tỉnh Nghệ An", "local"),
    "000.03.00.H41": ("Sở Y tế tỉnh Nghệ An", "local"),
    "000.00.00.G22": ("Văn phòng Chính phủ (qua trục quốc gia)", "axis"),
}
_REVOKED_ID = "000.09.00.H41"  # in the directory, but its certificate is on the CRL
_UNKNOWN_ID = "000.99.00.H99"  # nobody: documents to it are refused


def describe_demo_agencies() -> str:
    """The demo's agencies in words: "5 agencies (4 served by this hub, 000.00.00.G22 through the national axis)"."""
    axis = [oid for oid, (_, route) in DEMO_AGENCIES.items() if route == "axis"]
    local = len(DEMO_AGENCIES) - len(axis)
    return f"{len(DEMO_AGENCIES)} agencies ({local} served by this hub, {', '.join(axis)} through the national axis)"


@dataclass(frozen=True)
class DemoMaterial:
    """Where the demo files are, and the keys to sign with."""

    root: Path
    keys: dict[str, PemKey]
    chains: dict[str, tuple[x509.Certificate, ...]]
    impostor: PemKey  # a key from a CA the hub does not trust, claiming a real agency's OrganId
    unpinned: PemKey  # a key from the trusted CA, but not listed for the agency it signs for

    @property
    def trust_dir(self) -> Path:
        """The folder of anchors, intermediates and CRLs."""
        return self.root / "trust"

    @property
    def tsa_dir(self) -> Path:
        """The demo TSA's certificate, chain and key (absent in a demo made before the hub time-stamped)."""
        return self.root / "tsa"

    @property
    def directory_file(self) -> Path:
        """The directory YAML."""
        return self.root / "directory.yaml"

    @property
    def local_agencies(self) -> list[str]:
        """OrganIds served by this hub."""
        return [a for a, (_, route) in DEMO_AGENCIES.items() if route == "local"]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_demo_material(folder: Path, *, now: datetime | None = None, crl_url: str | None = None) -> DemoMaterial:
    """Create (or load, if already there) the demo PKI, agency keys and directory in ``folder``.

    ``crl_url``: the CRL distribution point the issuing CA's certificates name (none by default).
    """
    if (folder / "directory.yaml").exists():
        return _load(folder)
    now = now or datetime.now(UTC)
    window: dict[str, Any] = {"not_before": now - timedelta(days=30), "not_after": now + timedelta(days=3650)}
    root = devpki.make_root("lienthong Demo Root CA", **window)
    ca = devpki.make_ca(root, "lienthong Demo Issuing CA", **window)
    issued: dict[str, Any] = {**window, "crl_url": crl_url}
    leaves = {oid: devpki.make_leaf(ca, name, organ_id=oid, **issued) for oid, (name, _) in DEMO_AGENCIES.items()}
    leaves[_REVOKED_ID] = devpki.make_leaf(ca, "Revoked Demo Agency", organ_id=_REVOKED_ID, **issued)
    leaves["impostor"] = devpki.make_leaf(
        devpki.make_root("Impostor Root CA", **window), "Impostor", organ_id="000.00.00.H41", **window
    )
    leaves["unpinned"] = devpki.make_leaf(ca, "Unlisted key", organ_id="000.01.00.H41", **issued)
    tsa = devpki.make_tsa(root, "lienthong Demo TSA", **window)
    crl = devpki.make_crl(
        ca,
        [(leaves[_REVOKED_ID].cert.serial_number, now - timedelta(days=1))],
        this_update=now - timedelta(hours=1),
        next_update=now + timedelta(days=3650),
    )
    trust = folder / "trust"
    trust.mkdir(parents=True, exist_ok=True)
    (trust / "root.pem").write_bytes(root.cert_pem())
    (trust / "ca.pem").write_bytes(ca.cert_pem())
    write_private(folder / "ca-key.pem", ca.key_pem().decode())  # to publish the demo CA's next CRL (crl_url)
    (trust / "ca-crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    root_crl = devpki.make_crl(root, [], this_update=now - timedelta(hours=1), next_update=now + timedelta(days=3650))
    (folder / "tsa").mkdir(exist_ok=True)
    (folder / "tsa" / TSA_CERT_FILE).write_bytes(tsa.cert_pem())
    (folder / "tsa" / TSA_CHAIN_FILE).write_bytes(tsa.chain_pem())
    write_private(folder / "tsa" / TSA_KEY_FILE, tsa.key_pem().decode())
    (trust / "root-crl.pem").write_bytes(root_crl.public_bytes(serialization.Encoding.PEM))
    for oid, leaf in leaves.items():
        where = folder / "agencies" / oid
        where.mkdir(parents=True, exist_ok=True)
        (where / "key.pem").write_bytes(leaf.key_pem())
        (where / "cert.pem").write_bytes(leaf.cert_pem())
        (where / "chain.pem").write_bytes(leaf.chain_pem())
    entries = [
        {"id": oid, "name": name, "route": route, "cert_spki_sha256": [devpki.spki_sha256(leaves[oid].cert)]}
        for oid, (name, route) in DEMO_AGENCIES.items()
    ]
    entries.append(
        {
            "id": _REVOKED_ID,
            "name": "Cơ quan có chứng thư bị thu hồi",
            "route": "local",
            "cert_spki_sha256": [devpki.spki_sha256(leaves[_REVOKED_ID].cert)],
        }
    )
    text = yaml.safe_dump({"agencies": entries}, allow_unicode=True, sort_keys=False)
    (folder / "directory.yaml").write_text(text, encoding="utf-8")
    return _load(folder)


def _load(folder: Path) -> DemoMaterial:
    keys: dict[str, PemKey] = {}
    chains: dict[str, tuple[x509.Certificate, ...]] = {}
    for where in sorted((folder / "agencies").iterdir()):
        keys[where.name] = PemKey.load((where / "key.pem").read_bytes(), (where / "cert.pem").read_bytes())
        chains[where.name] = tuple(x509.load_pem_x509_certificates((where / "chain.pem").read_bytes()))
    impostor, unpinned = keys.pop("impostor"), keys.pop("unpinned")
    chains.pop("unpinned")
    return DemoMaterial(folder, keys, chains, impostor, unpinned)


@dataclass(frozen=True)
class DemoDocument:
    """One document of the demo stream and what the hub should do with it."""

    sender: str
    data: bytes
    expect: str  # "delivered" or the rejection reason code
    recipients: tuple[str, ...] = ()
    priority: int = 0


#: The invalid kinds, each with the reason the hub must give.
INVALID_KINDS = (
    "tampered",
    "impostor",
    "unpinned",
    "revoked",
    "unknown_recipient",
    "garbage",
    "empty",
    "not_edxml",
    "unsigned",
)


def demo_documents(  # noqa: C901 - one branch per kind of document, read top to bottom
    material: DemoMaterial,
    count: int,
    *,
    invalid_every: int = 10,
    seed: int = 102,
    content_padding: int = 0,
    start_number: int = 1,
) -> Iterator[DemoDocument]:
    """``count`` documents between the demo agencies; every ``invalid_every``-th is one of the invalid kinds.

    Valid documents carry 1–3 recipients (sometimes the axis-routed agency) and priorities 0–4; the default
    padding makes them about 5 KB. Signed ones carry the issuing CA in KeyInfo, so that ``lienthong verify --trust
    root.pem`` finds the path without ``--untrusted``. Numbers start at ``start_number`` so that runs do not repeat
    DocumentIds.
    """
    rng = random.Random(seed)  # noqa: S311 - demo traffic, not cryptography
    agencies = list(DEMO_AGENCIES)
    local = material.local_agencies
    day = datetime.now(UTC).date()
    for n in range(start_number, start_number + count):
        sender = rng.choice(local)
        others = [a for a in agencies if a != sender]
        recipients = tuple(rng.sample(others, rng.randint(1, 3)))
        priority = rng.choice((0, 0, 0, 1, 2, 3, 4))
        edoc = example_edoc(
            sender=sender,
            recipients=recipients,
            number=n,
            notation="LT-DEMO",
            day=day,
            priority=priority,
            content_padding=content_padding,
        )
        kind = INVALID_KINDS[(n // invalid_every) % len(INVALID_KINDS)] if n % invalid_every == 0 else "valid"
        key = material.keys[sender]
        chain = material.chains[sender]
        if kind == "valid":
            signed = sign_document(build_document(edoc), key, chain=chain)
            yield DemoDocument(sender, signed, "delivered", recipients, priority)
        elif kind == "tampered":
            signed = sign_document(build_document(edoc), key, chain=chain)
            yield DemoDocument(sender, signed.replace(b"V/v ", b"V/V ", 1), "HASH_FAILURE")
        elif kind == "impostor":
            yield DemoDocument(
                sender, sign_document(build_document(edoc), material.impostor), "NO_CERTIFICATE_CHAIN_FOUND"
            )
        elif kind == "unpinned":
            edoc = example_edoc(
                sender="000.01.00.H41", recipients=("000.00.00.H41",), number=n, notation="LT-DEMO", day=day
            )
            yield DemoDocument(
                "000.01.00.H41",
                sign_document(build_document(edoc), material.unpinned, chain=chain),
                "SIG_CONSTRAINTS_FAILURE",
            )
        elif kind == "revoked":
            edoc = example_edoc(sender=_REVOKED_ID, recipients=(local[0],), number=n, notation="LT-DEMO", day=day)
            revoked_key = material.keys[_REVOKED_ID]
            yield DemoDocument(
                _REVOKED_ID,
                sign_document(build_document(edoc), revoked_key, chain=material.chains[_REVOKED_ID]),
                "REVOKED",
            )
        elif kind == "unknown_recipient":
            edoc = example_edoc(sender=sender, recipients=(_UNKNOWN_ID,), number=n, notation="LT-DEMO", day=day)
            yield DemoDocument(sender, sign_document(build_document(edoc), key, chain=chain), "UNKNOWN_RECIPIENT")
        elif kind == "garbage":
            yield DemoDocument(sender, rng.randbytes(600), "MALFORMED")
        elif kind == "empty":
            yield DemoDocument(sender, b"", "EMPTY")
        elif kind == "not_edxml":
            yield DemoDocument(
                sender, b"<?xml version='1.0'?><html><body>not a document</body></html>", "WRONG_NAMESPACE"
            )
        else:  # unsigned
            yield DemoDocument(sender, build_document(edoc), "FORMAT_FAILURE")


def demo_status(material: DemoMaterial, document: bytes, *, by: str, code: str = "03") -> bytes:
    """A signed status ``code`` from recipient ``by`` about a delivered demo ``document``."""
    from schemas import parse  # noqa: PLC0415 - only this helper parses

    message = parse(document).message
    if not isinstance(message, Edoc):
        raise TypeError("a status answers a document")
    status = example_status(message, by=by, code=code)
    return sign_document(build_status(status), material.keys[by], chain=material.chains[by])


def write_axis_sim_agencies(
    material: DemoMaterial, path: Path, *, system_id: str, secret: str, hub_organ_id: str
) -> Path:
    """Write the agencies file of ``lienthong axis-sim`` for the demo (``adapters.axis_sim``).

    One system, the hub (``system_id``/``secret``, its VXP credentials with the axis), sending and receiving for
    the demo's local agencies and for the hub itself (``hub_organ_id`` signs its own statuses); each axis-routed
    agency answers every document with signed statuses 01 and 03, with its demo key (its certificate names it).
    The file holds the secret: written readable by its owner only.
    """
    axis = [oid for oid, (_, route) in DEMO_AGENCIES.items() if route == "axis"]
    agencies = [*material.local_agencies, hub_organ_id]
    replies = [
        {
            "organ_id": oid,
            "key": str((material.root / "agencies" / oid / "key.pem").resolve()),
            "cert": str((material.root / "agencies" / oid / "cert.pem").resolve()),
            "chain": str((material.root / "agencies" / oid / "chain.pem").resolve()),
        }
        for oid in axis
    ]
    directory = [
        {"code": oid, "name": DEMO_AGENCIES.get(oid, ("Cổng liên thông tỉnh", ""))[0]} for oid in agencies + axis
    ]
    text = yaml.safe_dump(
        {
            "systems": [{"system_id": system_id, "secret": secret, "agencies": agencies}],
            "auto_reply": replies,
            "directory": directory,
        },
        allow_unicode=True,
        sort_keys=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, text)
    return path
