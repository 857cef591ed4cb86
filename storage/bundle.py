r"""Evidence bundles: everything an auditor needs to check one document offline, in one zip.

Contents (flat, fixed names; the zip is written byte for byte the same way every time, entries STORED):

================  ===================================================================================
``manifest.json``  canonical JSON: format, the document (SHA-256, DocumentId), export time, and every other
                   file with its SHA-256 and size
``manifest.sig``   canonical JSON: the hub seal key's signature over ``lienthong-bundle-v1\\n`` + manifest
``original.xml``   the original bytes exactly as received
``report.json``    the hub's receipt: sender, times, reject reason, the verification report with the DER of
                   the chain and of every CRL/OCSP response used, and the verdict on each PDF attachment's
                   signatures (``pdf_signatures``), which verification re-checks offline
``events.json``    the document's ledger events, each with its RFC 9162 inclusion proof to the tree head
``tree-head.json`` the signed tree head (size, root, time, signature, seal certificates, time-stamp token)
``tree-head.tst``  the RFC 3161 token alone (DER), for ``openssl ts -verify`` (only when time-stamped)
``hub-chain.pem``  the seal certificate (and issuers) that signed the manifest
``README.txt``     how to check it
================  ===================================================================================

What covers what, so that a changed byte anywhere is detected and named: the manifest lists the SHA-256 of
every other file and is signed by the hub's seal key, whose certificate must chain to an anchor the auditor
passes (``hub-cert.pem``); the zip structure itself (headers, central directory, dates, attributes) must be the
exact bytes the exporter writes for those files, so a change there fails the "zip layout" check with its
offset. Independently of the manifest, the events are proven into the signed (and time-stamped) tree head, the
original's SHA-256 is what the events name, and the receipt's SHA-256 is what the ``verified``/``rejected``
event names: the bundle's story holds even if the seal key that signed the manifest were later compromised.

``verify_bundle`` never raises on bad input: every problem is a failed check naming the file.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from schemas import parse
from schemas.errors import HubError
from schemas.model import Edoc
from signer.keys import SigningKey
from signer.pdf import PdfReport, PdfVerifier
from signer.policy import RevocationPolicy, TrustPolicy
from signer.report import SubIndication, VerificationReport
from signer.verify import Verifier
from storage import merkle
from storage.archive import Receipt, ReceiptError, receipt_key, report_key
from storage.ledger import (
    DEFAULT_TIME_SKEW,
    EventKind,
    Found,
    Ledger,
    LedgerError,
    LedgerEvent,
    LogReader,
    SealError,
    SignedTreeHead,
    verify_sealed,
    verify_tree_head_signature,
    verify_tree_head_timestamp,
)
from storage.objectstore import ObjectNotFound, ObjectStore, original_key

__all__ = [
    "BUNDLE_FORMAT",
    "DEFAULT_MAX_BUNDLE_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "BundleCheck",
    "BundleError",
    "BundleReport",
    "CheckStatus",
    "export_bundle",
    "verify_bundle",
]

BUNDLE_FORMAT = "lienthong-evidence-bundle-v1"
#: Originals may reach ``schemas.DEFAULT_MAX_BYTES`` (150 MiB); the rest of a bundle is a few hundred KB.
DEFAULT_MAX_BUNDLE_BYTES = 256 * 1024 * 1024
#: A bundle has at most nine files; a few more leaves room for later versions, far fewer than a zip can claim.
DEFAULT_MAX_ENTRIES = 32

MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
ORIGINAL = "original.xml"
REPORT = "report.json"
EVENTS = "events.json"
TREE_HEAD = "tree-head.json"
TIMESTAMP = "tree-head.tst"
HUB_CHAIN = "hub-chain.pem"
README = "README.txt"

_SIGNED_CONTEXT = b"lienthong-bundle-v1\n"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = (ORIGINAL, REPORT, EVENTS, TREE_HEAD, HUB_CHAIN)
# Zip entries carry this fixed DOS date (1980-01-01 00:00): the export time is in the manifest, where it is
# signed, and a fixed date keeps the zip's bytes a function of its contents alone.
_DOS_DATE = (0 << 9) | (1 << 5) | 1
_DOS_TIME = 0
_ZIP_VERSION = 20  # 2.0: what STORED entries need
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")

_README_TEXT = """\
lienthong evidence bundle ({format})

Document SHA-256: {sha256}
DocumentId:       {doc_id}

Check it offline with the hub's seal certificate (hub-cert.pem) and the agencies' root certificate:

    lienthong audit verify BUNDLE.zip --trust hub-cert.pem --trust agency-root.pem [--tsa-trust tsa-root.pem]

manifest.json lists every other file with its SHA-256 and is signed (manifest.sig) by the hub's seal key.
events.json holds the document's ledger events with RFC 9162 inclusion proofs to the signed tree head in
tree-head.json, whose RFC 3161 time-stamp (over SHA-256 of the head's signature) is also tree-head.tst.
"""


class BundleError(HubError):
    """A bundle cannot be exported (unknown document, not yet sealed, ambiguous DocumentId)."""


# --- the zip writer (deterministic) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Region:
    start: int
    end: int
    label: str


def _write_zip(files: Sequence[tuple[str, bytes]]) -> tuple[bytes, list[_Region]]:
    """A STORED zip of ``files`` in order with fixed dates and attributes, and what each byte range is."""
    out = bytearray()
    central = bytearray()
    regions: list[_Region] = []
    central_labels: list[tuple[int, str]] = []
    for name, data in files:
        encoded = name.encode("ascii")
        crc = zlib.crc32(data)
        offset = len(out)
        out += _LOCAL.pack(
            0x04034B50, _ZIP_VERSION, 0, 0, _DOS_TIME, _DOS_DATE, crc, len(data), len(data), len(encoded), 0
        )
        out += encoded
        regions.append(_Region(offset, len(out), f"the zip header of {name}"))
        regions.append(_Region(len(out), len(out) + len(data), f"the content of {name}"))
        out += data
        central_labels.append((len(central), name))
        central += _CENTRAL.pack(
            0x02014B50,
            _ZIP_VERSION,
            _ZIP_VERSION,
            0,
            0,
            _DOS_TIME,
            _DOS_DATE,
            crc,
            len(data),
            len(data),
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += encoded
    directory = len(out)
    for i, (start, name) in enumerate(central_labels):
        end = central_labels[i + 1][0] if i + 1 < len(central_labels) else len(central)
        regions.append(_Region(directory + start, directory + end, f"the zip directory entry of {name}"))
    out += central
    end_start = len(out)
    out += _END.pack(0x06054B50, 0, 0, len(files), len(files), len(central), directory, 0)
    regions.append(_Region(end_start, len(out), "the zip end record"))
    return bytes(out), regions


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: object) -> datetime:
    if not isinstance(text, str):
        raise TypeError("a time must be a string")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# --- export -------------------------------------------------------------------------------------------------


def _resolve(reader: LogReader, doc_ref: str) -> tuple[str, str, Found]:
    """(SHA-256, DocumentId) of the document ``doc_ref`` names, and every event and receipt about it."""
    ref = doc_ref.strip()
    if _HEX64.match(ref.lower()):
        sha256 = ref.lower()
        found = reader.find([sha256])
        own = [e for _, e in found.events if e.sha256 == sha256 and e.kind is not EventKind.STATUS_RELAYED]
        if not own:
            raise BundleError(f"the ledger has no events for SHA-256 {sha256}")
        doc_id = next((e.document_id for e in own if e.document_id), "")
        if doc_id:  # the statuses relayed about it are filed under its DocumentId
            found = reader.find([sha256, doc_id])
        return sha256, doc_id, found
    found = reader.find([ref])
    shas = sorted({e.sha256 for _, e in found.events if e.kind is EventKind.RECEIVED and e.document_id == ref})
    if not shas:
        raise BundleError(f"the ledger has no received document with DocumentId {ref!r}")
    if len(shas) > 1:
        raise BundleError(
            f"DocumentId {ref!r} names {len(shas)} different originals; export one by SHA-256: {', '.join(shas)}"
        )
    return shas[0], ref, found


def _reception(events: list[tuple[int, LedgerEvent]], sha256: str) -> tuple[list[tuple[int, LedgerEvent]], str]:
    """The events of the latest reception of the document (it may have been received, and judged, more than once).

    Returns them (with the statuses relayed about it) and the SHA-256 of the receipt their verdict names ("" when
    there is none). A reception is its last ``received`` event before the last verdict, that verdict, and what
    follows them (archived, delivered).
    """
    own = [(i, e) for i, e in events if e.sha256 == sha256 and e.kind is not EventKind.STATUS_RELAYED]
    statuses = [(i, e) for i, e in events if e.kind is EventKind.STATUS_RELAYED]
    judged = [(i, e) for i, e in own if e.kind in {EventKind.VERIFIED, EventKind.REJECTED}]
    if not judged:
        return sorted(own + statuses), ""
    last_index, verdict = judged[-1]
    receipt_sha = verdict.detail.get("receipt_sha256", "")
    received = [i for i, e in own if e.kind is EventKind.RECEIVED and i < last_index]
    start = received[-1] if received else last_index
    chosen = [
        (i, e)
        for i, e in own
        if i == start
        or (
            (e.kind is EventKind.VERIFIED or e.kind is EventKind.REJECTED)
            and i > start
            and e.detail.get("receipt_sha256", "") == receipt_sha
        )
        or (e.kind in {EventKind.ARCHIVED, EventKind.DELIVERED} and i > last_index)
    ]
    return sorted(chosen + statuses), receipt_sha


def _stored_receipt(store: ObjectStore, receipt_sha: str, sha256: str) -> bytes:
    """A receipt kept as an object: too large for the ledger (by its own hash), or written before receipts were."""
    if receipt_sha:
        try:
            return store.get(receipt_key(receipt_sha))
        except ObjectNotFound:
            pass
    return store.get(report_key(sha256))


def export_bundle(
    store: ObjectStore,
    ledger: Ledger | LogReader,
    doc_ref: str,
    *,
    seal_key: SigningKey,
    at: datetime | None = None,
) -> bytes:
    """The evidence bundle (zip bytes) of the document ``doc_ref``: a DocumentId or the original's SHA-256.

    Reads the stored log twice (once to find the document's events and receipt, once for their proofs), one
    segment at a time. Uses the newest stored tree head, which must cover all of the document's events
    (``BundleError`` when the hub has not sealed them yet: try again after its next seal). ``seal_key`` is the hub's
    seal key: it signs the manifest. ``at`` is the export time written in the manifest (default: now).
    """
    reader = ledger.reader() if isinstance(ledger, Ledger) else ledger
    sha256, doc_id, found = _resolve(reader, doc_ref)
    chosen, receipt_sha = _reception(found.events, sha256)
    indexed = dict(chosen)
    indices = sorted(indexed)
    head = reader.covering_head(indices[-1])
    if head is None:
        raise BundleError(
            f"the ledger has no signed tree head covering leaf {indices[-1]} yet; retry after the hub's next seal"
        )
    archived = [e for e in indexed.values() if e.kind is EventKind.ARCHIVED and e.sha256 == sha256]
    key = archived[-1].detail.get("key", original_key(sha256)) if archived else original_key(sha256)
    try:
        original = store.get(key)
        receipt = found.receipts.get(receipt_sha) or _stored_receipt(store, receipt_sha, sha256)
    except ObjectNotFound as exc:
        if exc.key == report_key(sha256):
            raise BundleError(
                f"the receipt the ledger names ({receipt_sha or 'none'}) is in no segment nor at {exc.key}: "
                "it was changed or removed"
            ) from exc
        raise BundleError(f"{exc.key} is missing from the store") from exc
    if hashlib.sha256(original).hexdigest() != sha256:
        raise BundleError(f"{key} does not hash to the document's SHA-256: the stored original was changed")
    try:
        Receipt.from_bytes(receipt)
    except ReceiptError as exc:
        raise BundleError(
            f"the receipt of {sha256} is not one written by storage.archive.Archive ({exc}); "
            "a bundle needs the report with its evidence"
        ) from exc
    proofs = reader.inclusion_proofs(indices, head.size)
    events = {
        "format": BUNDLE_FORMAT,
        "tree_size": head.size,
        "events": [
            {"index": index, "event": indexed[index].to_json(), "proof": [p.hex() for p in proofs[index]]}
            for index in indices
        ],
    }
    chain = (seal_key.certificate, *getattr(seal_key, "chain", ()))
    files: list[tuple[str, bytes]] = [
        (ORIGINAL, original),
        (REPORT, receipt),
        (EVENTS, _canonical(events)),
        (TREE_HEAD, head.to_bytes()),
    ]
    if head.timestamp is not None:
        files.append((TIMESTAMP, head.timestamp))
    files.append((HUB_CHAIN, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)))
    files.append((README, _README_TEXT.format(format=BUNDLE_FORMAT, sha256=sha256, doc_id=doc_id or "-").encode()))
    manifest = _canonical(
        {
            "format": BUNDLE_FORMAT,
            "document": {"sha256": sha256, "document_id": doc_id},
            "exported_at": _time(at or datetime.now(UTC)),
            "files": [
                {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in files
            ],
        }
    )
    signature = _canonical(
        {
            "algorithm": seal_key.algorithm,
            "signature": _b64(seal_key.sign(_SIGNED_CONTEXT + manifest)),
        }
    )
    data, _ = _write_zip([(MANIFEST, manifest), (MANIFEST_SIG, signature), *files])
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{what} is not valid base64") from exc


# --- the report ---------------------------------------------------------------------------------------------


class CheckStatus(enum.StrEnum):
    """The outcome of one check."""

    PASSED = "PASSED"
    FAILED = "FAILED"
    #: Not a failure, but something the auditor should know (e.g. no time-stamp).
    WARNING = "WARNING"


@dataclass(frozen=True, slots=True)
class BundleCheck:
    """One check: what was checked, the outcome, and the detail (why not, or what was found); ``file`` if any."""

    what: str
    status: CheckStatus
    detail: str
    file: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of one check."""
        return {"what": self.what, "status": self.status.value, "detail": self.detail, "file": self.file}


@dataclass(frozen=True, slots=True)
class BundleReport:
    """Every check made on a bundle, in order; ``passed`` only when none failed."""

    checks: tuple[BundleCheck, ...]
    document_sha256: str = ""
    document_id: str = ""
    document_indication: str = ""

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings allowed) and there was something to check."""
        return bool(self.checks) and all(c.status is not CheckStatus.FAILED for c in self.checks)

    @property
    def failures(self) -> tuple[BundleCheck, ...]:
        """The failed checks."""
        return tuple(c for c in self.checks if c.status is CheckStatus.FAILED)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``lienthong audit verify --json``."""
        return {
            "passed": self.passed,
            "document": {
                "sha256": self.document_sha256,
                "document_id": self.document_id,
                "indication": self.document_indication,
            },
            "checks": [c.to_json() for c in self.checks],
        }

    def to_text(self) -> str:
        """A report a person can read: one line per check, then the verdict."""
        title = self.document_id or "(no DocumentId)"
        lines = [f"Evidence bundle of {title}, SHA-256 {self.document_sha256 or '?'}"]
        for check in self.checks:
            where = f" [{check.file}]" if check.file else ""
            lines.append(f"  {check.status.value:<7} {check.what}{where}: {check.detail}")
        failed = len(self.failures)
        if self.passed:
            lines.append(f"RESULT: PASSED ({len(self.checks)} checks)")
        else:
            lines.append(f"RESULT: FAILED ({failed} of {len(self.checks)} checks failed)")
        return "\n".join(lines)


class _Failed(Exception):
    """Raised inside a check to fail it with a message."""


class _Warning(Exception):
    """Raised inside a check to end it with a warning."""


class _Step:
    """One check in progress: append to ``detail`` for the PASSED text; an exception fails it (never escapes)."""

    def __init__(self, checks: _Checks, what: str, file: str | None) -> None:
        self._checks = checks
        self._what = what
        self._file = file
        self.detail: list[str] = []

    def __enter__(self) -> list[str]:
        return self.detail

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> bool:
        if exc is None:
            self._checks.add(self._what, CheckStatus.PASSED, "; ".join(self.detail) or "ok", self._file)
            return False
        if not isinstance(exc, Exception):
            return False  # KeyboardInterrupt and friends go on
        if isinstance(exc, _Failed):
            status, text = CheckStatus.FAILED, str(exc)
        elif isinstance(exc, _Warning):
            status, text = CheckStatus.WARNING, str(exc)
        else:  # hostile input must yield a failed check naming the problem, never a traceback
            status, text = CheckStatus.FAILED, f"{type(exc).__name__}: {exc}"
        self._checks.add(self._what, status, text, self._file)
        return True


class _Checks:
    """Collects checks in order."""

    def __init__(self) -> None:
        self.items: list[BundleCheck] = []

    def add(self, what: str, status: CheckStatus, detail: str, file: str | None = None) -> None:
        self.items.append(BundleCheck(what, status, detail, file))

    def step(self, what: str, file: str | None = None) -> _Step:
        return _Step(self, what, file)

    @property
    def last_failed(self) -> bool:
        return bool(self.items) and self.items[-1].status is CheckStatus.FAILED


# --- reading the zip ------------------------------------------------------------------------------------------

_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error, NotImplementedError)


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    name = info.filename
    try:
        with archive.open(info) as member:
            content = member.read(info.file_size + 1)  # never more than declared (+1 to notice a lie)
    except _ZIP_ERRORS as exc:
        raise _Failed(f"entry {name} cannot be read: {exc}") from exc
    if len(content) != info.file_size:
        raise _Failed(f"entry {name} is not the {info.file_size} bytes it declares")
    return content


def _open_entries(data: bytes, max_bytes: int) -> dict[str, bytes]:
    """Every entry, refusing unsafe names, compression (zip bombs), and sizes beyond ``max_bytes`` in all."""
    if len(data) > max_bytes:
        raise _Failed(f"the bundle is {len(data)} bytes, more than the {max_bytes} allowed")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise _Failed(f"not a readable zip: {exc}") from exc
    entries: dict[str, bytes] = {}
    with archive:
        infos = archive.infolist()
        if len(infos) > DEFAULT_MAX_ENTRIES:
            raise _Failed(f"{len(infos)} entries, more than the {DEFAULT_MAX_ENTRIES} a bundle may have")
        total = 0
        for info in infos:
            name = info.filename
            if not _NAME.match(name) or name in entries:
                raise _Failed(f"entry name {name!r} is not a plain, unique file name (no folders, no '..')")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise _Failed(f"entry {name} is compressed; bundle entries are stored as they are")
            total += info.file_size
            if total > max_bytes:
                raise _Failed(f"entry {name} declares {info.file_size} bytes: more than {max_bytes} in all")
            entries[name] = _read_entry(archive, info)
    return entries


def _read_zip(data: bytes, max_bytes: int, checks: _Checks) -> dict[str, bytes] | None:
    """The entries of a bundle zip, checked for safety and for being exactly what the exporter writes."""
    entries: dict[str, bytes] = {}
    with checks.step("zip archive is readable and safe", "bundle") as ok:
        entries = _open_entries(data, max_bytes)
        ok.append(f"{len(entries)} entries, {sum(map(len, entries.values()))} bytes")
    if checks.last_failed:
        return None
    with checks.step("zip layout is exactly what the exporter writes", "bundle") as ok:
        rebuilt, regions = _write_zip(list(entries.items()))
        if rebuilt != data:
            differs = (i for i, (a, b) in enumerate(zip(rebuilt, data, strict=False)) if a != b)
            position = next(differs, min(len(rebuilt), len(data)))
            where = next((r.label for r in regions if r.start <= position < r.end), "the end of the zip")
            raise _Failed(f"byte {position} (in {where}) differs from the canonical layout: the bundle was changed")
        ok.append("headers, dates, directory and end record are canonical")
    return entries


# --- verification -------------------------------------------------------------------------------------------


@dataclass
class _Bundle:
    """What verification has established so far (fields stay empty when their check failed)."""

    entries: dict[str, bytes]
    manifest: dict[str, Any] | None = None
    exported_at: datetime | None = None
    sha256: str = ""
    document_id: str = ""
    head: SignedTreeHead | None = None
    events: list[tuple[int, LedgerEvent]] = field(default_factory=list)
    receipt: Receipt | None = None


def _load_json(entries: dict[str, bytes], name: str) -> Any:
    if name not in entries:
        raise _Failed(f"{name} is missing")
    try:
        return json.loads(entries[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Failed(f"{name} is not JSON: {exc}") from exc


def _parse_manifest(entries: dict[str, bytes]) -> dict[str, Any]:
    manifest = _load_json(entries, MANIFEST)
    if not isinstance(manifest, dict) or set(manifest) != {"format", "document", "exported_at", "files"}:
        raise _Failed("not a bundle manifest (fields format, document, exported_at, files)")
    if manifest["format"] != BUNDLE_FORMAT:
        raise _Failed(f"format {manifest['format']!r} is not {BUNDLE_FORMAT}")
    if _canonical(manifest) != entries[MANIFEST]:
        raise _Failed("not in canonical form (sorted keys, no spaces): it was edited")
    files, document = manifest["files"], manifest["document"]
    if not isinstance(document, dict) or set(document) != {"sha256", "document_id"}:
        raise _Failed("document must name exactly sha256 and document_id")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and set(f) == {"name", "sha256", "size"} for f in files
    ):
        raise _Failed("files must be a list of {name, sha256, size}")
    listed = [str(f["name"]) for f in files]
    present = [n for n in entries if n not in {MANIFEST, MANIFEST_SIG}]
    if sorted(listed) != sorted(present) or len(listed) != len(set(listed)):
        raise _Failed(f"lists {sorted(listed)}, the zip holds {sorted(present)}")
    missing = [n for n in _REQUIRED if n not in present]
    if missing:
        raise _Failed(f"required files missing: {', '.join(missing)}")
    return manifest


def _check_manifest(bundle: _Bundle, checks: _Checks) -> None:
    with checks.step("manifest lists every file", MANIFEST) as ok:
        manifest = _parse_manifest(bundle.entries)
        bundle.exported_at = _parse_time(manifest["exported_at"])
        bundle.sha256 = str(manifest["document"]["sha256"])
        bundle.document_id = str(manifest["document"]["document_id"])
        bundle.manifest = manifest
        ok.append(f"{len(manifest['files'])} files, exported {manifest['exported_at']}")
    if bundle.manifest is None:
        return
    for item in bundle.manifest["files"]:
        name = str(item["name"])
        with checks.step("file hash matches the manifest", name) as ok:
            content = bundle.entries[name]
            digest = hashlib.sha256(content).hexdigest()
            if digest != item["sha256"] or len(content) != item["size"]:
                raise _Failed(f"SHA-256 {digest} ({len(content)} bytes) is not the manifest's {item['sha256']}")
            ok.append(f"SHA-256 {digest}")


def _check_hub_seal(bundle: _Bundle, anchors: Sequence[x509.Certificate], checks: _Checks) -> None:
    entries = bundle.entries
    # A signature that fails means either file changed: the check names both.
    with checks.step("manifest signature by the hub's seal key", f"{MANIFEST} + {MANIFEST_SIG}") as ok:
        if bundle.exported_at is None:
            raise _Failed("the manifest could not be read, so its signature cannot be checked")
        try:
            chain = x509.load_pem_x509_certificates(entries[HUB_CHAIN])
        except (KeyError, ValueError) as exc:
            raise _Failed(f"{HUB_CHAIN} is missing or holds no certificates: {exc}") from exc
        sig = _load_json(entries, MANIFEST_SIG)
        if not isinstance(sig, dict) or set(sig) != {"algorithm", "signature"}:
            raise _Failed("not a manifest signature (fields algorithm, signature)")
        try:
            cert = verify_sealed(
                _SIGNED_CONTEXT + entries[MANIFEST],
                signature=_unb64(sig["signature"], "signature"),
                algorithm=str(sig["algorithm"]),
                certificates=[c.public_bytes(serialization.Encoding.DER) for c in chain],
                anchors=anchors,
                at=bundle.exported_at,
            )
        except SealError as exc:
            raise _Failed(str(exc)) from exc
        ok.append(f"signed by {cert.subject.rfc4514_string()}, a trusted hub seal certificate")


def _check_tree_head(
    bundle: _Bundle,
    anchors: Sequence[x509.Certificate],
    tsa_anchors: Sequence[x509.Certificate],
    checks: _Checks,
) -> None:
    entries = bundle.entries
    with checks.step("tree head signature", TREE_HEAD) as ok:
        if TREE_HEAD not in entries:
            raise _Failed(f"{TREE_HEAD} is missing")
        try:
            head = SignedTreeHead.from_bytes(entries[TREE_HEAD])
            cert = verify_tree_head_signature(head, anchors)
        except (LedgerError, SealError) as exc:
            raise _Failed(str(exc)) from exc
        bundle.head = head
        ok.append(f"size {head.size}, root {head.root.hex()}, sealed {head.time.isoformat()}")
        ok.append(f"by {cert.subject.rfc4514_string()}")
    if bundle.head is not None:
        _check_head_timestamp(bundle.head, entries, tsa_anchors, checks)


def _check_head_timestamp(
    head: SignedTreeHead, entries: dict[str, bytes], tsa_anchors: Sequence[x509.Certificate], checks: _Checks
) -> None:
    if head.timestamp is None:
        if TIMESTAMP in entries:
            checks.add("tree head time-stamp", CheckStatus.FAILED, f"{TIMESTAMP} is present but the head has none")
        else:
            checks.add("tree head time-stamp", CheckStatus.WARNING, "the tree head is not time-stamped", TREE_HEAD)
        return
    with checks.step("tree head time-stamp (RFC 3161)", TIMESTAMP) as ok:
        if entries.get(TIMESTAMP) != head.timestamp:
            raise _Failed(f"{TIMESTAMP} is missing or is not the token in {TREE_HEAD}")
        try:
            token = verify_tree_head_timestamp(head, tsa_anchors)
        except SealError as exc:
            raise _Failed(str(exc)) from exc
        ok.append(f"{token.gen_time.isoformat()} by {token.tsa_subject}, over SHA-256 of the head's signature")


def _event_items(bundle: _Bundle) -> list[Any]:
    obj = _load_json(bundle.entries, EVENTS)
    if not isinstance(obj, dict) or set(obj) != {"format", "tree_size", "events"} or obj["format"] != BUNDLE_FORMAT:
        raise _Failed("not a bundle's events file (fields format, tree_size, events)")
    if bundle.head is not None and obj["tree_size"] != bundle.head.size:
        raise _Failed(f"the proofs are to a tree of {obj['tree_size']}, the tree head has {bundle.head.size}")
    items = obj["events"]
    if not isinstance(items, list) or not items:
        raise _Failed("no events")
    return items


def _prove_event(item: Any, head: SignedTreeHead | None) -> tuple[int, LedgerEvent]:
    if not isinstance(item, dict) or set(item) != {"index", "event", "proof"}:
        raise _Failed("not an event entry (fields index, event, proof)")
    event = LedgerEvent.from_json(item["event"])
    index, proof = item["index"], item["proof"]
    if not isinstance(index, int) or not isinstance(proof, list):
        raise _Failed("index must be a number and proof a list")
    if head is None:
        raise _Failed("no verified tree head to prove the event against")
    try:
        merkle.verify_inclusion(event.leaf_hash(), index, head.size, [bytes.fromhex(str(p)) for p in proof], head.root)
    except merkle.ProofError as exc:
        raise _Failed(str(exc)) from exc
    return index, event


def _check_events(bundle: _Bundle, checks: _Checks) -> None:
    items: list[Any] = []
    with checks.step("ledger events are listed", EVENTS) as ok:
        items = _event_items(bundle)
        ok.append(f"{len(items)} events")
    for position, item in enumerate(items):
        label = item.get("index", position) if isinstance(item, dict) else position
        with checks.step(f"ledger event {label} is in the signed log", EVENTS) as ok:
            index, event = _prove_event(item, bundle.head)
            bundle.events.append((index, event))
            facts = "".join(f", {k}={v}" for k, v in event.detail.items() if k != "receipt_sha256")
            ok.append(f"{event.kind.value} by {event.actor} at {event.time.isoformat()}: {event.verdict}{facts}")


def _check_original(bundle: _Bundle, checks: _Checks) -> None:
    with checks.step("original bytes are the document the events name", ORIGINAL) as ok:
        if ORIGINAL not in bundle.entries:
            raise _Failed(f"{ORIGINAL} is missing")
        digest = hashlib.sha256(bundle.entries[ORIGINAL]).hexdigest()
        if digest != bundle.sha256:
            raise _Failed(f"SHA-256 {digest} is not the document's {bundle.sha256 or '(unknown)'}")
        for index, event in bundle.events:
            # A relayed status is another message (its own SHA-256) about this document (its DocumentId).
            status = event.kind is EventKind.STATUS_RELAYED
            if (event.document_id != bundle.document_id) if status else (event.sha256 != digest):
                raise _Failed(f"ledger event {index} ({event.kind.value}) is about another document")
        if not any(e.kind is EventKind.RECEIVED for _, e in bundle.events):
            raise _Failed("no proven 'received' event for this document")
        ok.append(f"SHA-256 {digest}, named by {len(bundle.events)} proven events")


def _check_receipt(bundle: _Bundle, checks: _Checks) -> None:
    with checks.step("verification report is the one the ledger names", REPORT) as ok:
        if REPORT not in bundle.entries:
            raise _Failed(f"{REPORT} is missing")
        receipt = Receipt.from_bytes(bundle.entries[REPORT])
        if receipt.sha256 != bundle.sha256:
            raise _Failed(f"the report is for {receipt.sha256}, not {bundle.sha256}")
        digest = hashlib.sha256(bundle.entries[REPORT]).hexdigest()
        judged = [e for _, e in bundle.events if e.kind in {EventKind.VERIFIED, EventKind.REJECTED}]
        if not judged:
            raise _Failed("no proven 'verified' or 'rejected' event names the report")
        if any(e.detail.get("receipt_sha256") != digest for e in judged):
            raise _Failed(f"its SHA-256 {digest} is not the one the ledger's verdict event names")
        if any(e.verdict != receipt.verdict for e in judged):
            raise _Failed(f"the ledger records the verdict {judged[0].verdict}, the report says {receipt.verdict}")
        bundle.receipt = receipt
        ok.append(f"hub verdict {receipt.verdict}, sender {receipt.sender}, received {receipt.received_at.isoformat()}")


def _check_times(bundle: _Bundle, checks: _Checks) -> None:
    with checks.step("times are in order", EVENTS) as ok:
        head = bundle.head
        received = [e.time for _, e in bundle.events if e.kind is EventKind.RECEIVED]
        if head is None or not received:
            raise _Failed("needs a verified tree head and a received event")
        late = [(i, e) for i, e in bundle.events if e.time > head.time + DEFAULT_TIME_SKEW]
        if late:
            index, event = late[0]
            raise _Failed(
                f"ledger event {index} is dated {event.time.isoformat()}, "
                f"after the head that seals it ({head.time.isoformat()})"
            )
        if bundle.receipt is not None and bundle.receipt.received_at != min(received):
            raise _Failed("the report's received-at time is not the ledger's")
        ok.append(f"received {min(received).isoformat()}, sealed {head.time.isoformat()}")


def _offline_ocsp(responses: Sequence[bytes]) -> Callable[[str, bytes], bytes]:
    """An OCSP 'fetcher' answering from the bundle's stored responses (matched by serial number)."""

    def fetch(_url: str, request_der: bytes) -> bytes:
        serial = ocsp.load_der_ocsp_request(request_der).serial_number
        for der in responses:
            try:
                response = ocsp.load_der_ocsp_response(der)
                if any(single.serial_number == serial for single in response.responses):
                    return der
            except ValueError:
                continue
        raise LookupError(f"the bundle holds no OCSP response for serial {serial:x}")

    return fetch


def _verdict(report: VerificationReport) -> str:
    return report.indication.value + (f"/{report.subindication.value}" if report.subindication else "")


def _reverify_policy(receipt: Receipt, anchors: Sequence[x509.Certificate]) -> TrustPolicy:
    """The policy the hub's verdicts are re-judged under: the auditor's anchors, the bundle's chain and answers."""
    stored = receipt.report
    chain = stored.chain() if stored is not None else []
    crls = stored.crls() if stored is not None else []
    responses = stored.ocsp_der if stored is not None else ()
    # Revocation is required whenever the hub kept evidence: the auditor re-judges with the same answers. So
    # is it when the hub found none and said so (TRY_LATER): the auditor cannot know more.
    required = bool(crls or responses) or (stored is not None and stored.subindication == SubIndication.TRY_LATER)
    return TrustPolicy(
        anchors=tuple(anchors),
        intermediates=tuple(chain),
        crls=tuple(crls),
        revocation=RevocationPolicy.REQUIRE if required else RevocationPolicy.IF_AVAILABLE,
        ocsp=_offline_ocsp(responses) if responses else None,
    )


def _check_document(bundle: _Bundle, anchors: Sequence[x509.Certificate], checks: _Checks) -> VerificationReport | None:
    result: VerificationReport | None = None
    receipt = bundle.receipt
    with checks.step("document signature, re-verified at the time the hub received it", ORIGINAL) as ok:
        if receipt is None or ORIGINAL not in bundle.entries:
            raise _Failed("needs the original and a verified report")
        policy = _reverify_policy(receipt, anchors)
        result = Verifier(policy).verify(bundle.entries[ORIGINAL], at=receipt.received_at)
        if not result.passed:
            raise _Failed(f"{_verdict(result)}: " + "; ".join(result.errors))
        signer = result.signer.subject if result.signer is not None else "?"
        ok.append(f"{_verdict(result)}, signed by {signer}, at {receipt.received_at.isoformat()}")
        ok.extend(f"revocation: {r.cert_subject} {r.status} ({r.source})" for r in result.revocation)
    if result is None or receipt is None:
        return result
    with checks.step("the hub's verdict is reproduced", REPORT) as ok:
        stored = receipt.report
        if stored is not None and stored.verdict != _verdict(result):
            if result.passed and stored.subindication == SubIndication.SIG_CONSTRAINTS_FAILURE:
                # The directory pins the hub applied are not in the bundle: the auditor cannot re-judge them.
                raise _Warning(
                    f"the hub recorded {stored.verdict} under its agency directory, which the bundle does not "
                    "carry; the signature itself is valid"
                )
            raise _Failed(f"the hub recorded {stored.verdict}, re-verification gives {_verdict(result)}")
        ok.append(f"the hub recorded {receipt.verdict}" + (f" ({stored.verdict})" if stored and receipt.reason else ""))
    _check_pdfs(bundle, receipt, policy, checks)
    return result


def _check_pdfs(bundle: _Bundle, receipt: Receipt, policy: TrustPolicy, checks: _Checks) -> None:
    """Re-check the PDF attachments' signatures offline, at the hub's receipt time: each verdict must be the hub's.

    Nothing to check when the receipt records none (the hub refused the document before looking at them).
    """
    recorded = receipt.report.pdfs if receipt.report is not None else None
    if recorded is None:
        return
    again: tuple[PdfReport, ...] = ()
    with checks.step("PDF attachments of the original are the ones the report judged", ORIGINAL) as ok:
        message = parse(bundle.entries[ORIGINAL], max_bytes=DEFAULT_MAX_BUNDLE_BYTES).message
        attachments = message.attachments if isinstance(message, Edoc) else ()
        again = PdfVerifier(policy).verify_attachments(attachments, at=receipt.received_at)
        found, named = [(r.name, r.sha256) for r in again], [(r.name, r.sha256) for r in recorded]
        if found != named:
            raise _Failed(f"the original holds PDFs {found}, the report judged {named}")
        ok.append(f"{len(again)} PDF attachment(s)")
    for stored, fresh in zip(recorded, again, strict=False):
        with checks.step(f"PDF {stored.name}: signatures re-checked at the time the hub received it", ORIGINAL) as ok:
            if fresh.to_json() != stored.to_json():
                differ = sorted(k for k, v in fresh.to_json().items() if stored.to_json().get(k) != v)
                raise _Failed(
                    f"the hub recorded {stored.verdict}, re-checking gives {fresh.verdict} "
                    f"(differs in {', '.join(differ)})"
                )
            ok.extend(fresh.describe())


def verify_bundle(
    data: bytes,
    trust_anchors: Sequence[x509.Certificate],
    *,
    tsa_anchors: Sequence[x509.Certificate] | None = None,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
) -> BundleReport:
    """Check an evidence bundle offline and report every check (see the module docstring for what covers what).

    ``trust_anchors``: the auditor's anchors for the hub's seal certificate (``hub-cert.pem``) and for the
    document signers' PKI. ``tsa_anchors``: anchors for the time-stamp authority (default: ``trust_anchors``).
    The document is re-verified at the time the hub received it, with the CRLs and OCSP responses the hub used
    (revocation required when there are any). Never raises on bad input: problems are failed checks.
    """
    checks = _Checks()
    entries = _read_zip(bytes(data), max_bytes, checks)
    if entries is None:
        return BundleReport(tuple(checks.items))
    bundle = _Bundle(entries)
    _check_manifest(bundle, checks)
    _check_hub_seal(bundle, trust_anchors, checks)
    _check_tree_head(bundle, trust_anchors, trust_anchors if tsa_anchors is None else tsa_anchors, checks)
    _check_events(bundle, checks)
    _check_original(bundle, checks)
    _check_receipt(bundle, checks)
    _check_times(bundle, checks)
    result = _check_document(bundle, trust_anchors, checks)
    return BundleReport(
        tuple(checks.items),
        document_sha256=bundle.sha256,
        document_id=bundle.document_id,
        document_indication=_verdict(result) if result is not None else "",
    )
