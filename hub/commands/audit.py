"""``lienthong audit export DOC --out BUNDLE.zip`` and ``lienthong audit verify BUNDLE.zip --trust PEM...``.

``export`` reads the hub's store and writes the evidence bundle of one document (a DocumentId or the SHA-256 of
the original). With ``--data DIR`` (the embedded hub's folder) it reads through the running hub's S3 endpoint
(``DIR/settings.yaml``), or, with the hub stopped, starts its own private ``weed mini`` over ``DIR/s3`` whose
credentials may only read, for the duration of the command; it signs the bundle's manifest with the hub's seal
key in ``DIR``. With ``--endpoint`` it reads any S3 store (credentials from ``--access-key``/``--secret-key`` or
``LIENTHONG_S3_ACCESS_KEY``/``LIENTHONG_S3_SECRET_KEY``) and needs ``--seal-key``/``--seal-cert``.

``verify`` needs nothing but the bundle and the auditor's anchors: exit 0 only when every check passed, 1 when
one failed, 2 for unusable arguments. ``--json`` prints one JSON object on one line.

Also here, for ``lienthong ledger``: ``add_store_arguments`` and ``opened_store``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509

from hub.commands._common import emit_json, lienthong_command, require_server, server_command, shown_path, warn
from hub.settings import HubSettings
from hub.trust import ConfigError, load_certificates
from schemas.errors import HubError
from signer.keys import PemKey, SigningKeyError
from signer.path import untrusted_roots
from storage.bundle import DEFAULT_MAX_BUNDLE_BYTES, BundleCheck, BundleError, BundleReport, CheckStatus
from storage.bundle import export_bundle as build_bundle
from storage.bundle import verify_bundle as check_bundle
from storage.ledger import SEAL_CERT_FILE, SEAL_KEY_FILE, EventKind, LedgerCorrupt, LogReader
from storage.objectstore import ObjectStore, StoreUnavailable

__all__ = [
    "EMBEDDED_BUCKET",
    "UsageError",
    "add_store_arguments",
    "data_dir",
    "load_anchors",
    "opened_store",
    "register",
]

#: The embedded hub keeps its objects in bucket ``lienthong`` of the ``weed mini`` over ``DIR/s3``.
EMBEDDED_BUCKET = "lienthong"
_EMBEDDED_S3_DIR = "s3"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_WEED_METADATA_DIR = "filerldb2"  # where weed mini keeps its filer metadata: a store lives here


class UsageError(HubError):
    """The command line points at something unusable (exit 2); the message says what to fix."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` group with ``export`` and ``verify``."""
    parser = subparsers.add_parser("audit", help="evidence bundles: export one document's evidence, verify a bundle")
    group = parser.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    export = group.add_parser(
        "export",
        help="write the evidence bundle (zip) of one document",
        description="DOC is a DocumentId or the SHA-256 (hex) of the original. Exit 0 when the bundle is written.",
    )
    export.add_argument("doc", metavar="DOC", help="DocumentId, or SHA-256 of the original bytes")
    export.add_argument("--out", required=True, type=Path, metavar="BUNDLE.zip", help="where to write the bundle")
    add_store_arguments(export)
    export.add_argument("--seal-key", type=Path, metavar="PEM", help="the hub's seal key (default: DIR/hub-key.pem)")
    export.add_argument("--seal-cert", type=Path, metavar="PEM", help="its certificate (default: DIR/hub-cert.pem)")
    export.set_defaults(func=run_export)

    verify = group.add_parser(
        "verify",
        help="check an evidence bundle offline",
        description="Exit 0 only when every check passed (1: a check failed, 2: unusable arguments).",
    )
    verify.add_argument("bundle", type=Path, metavar="BUNDLE.zip")
    verify.add_argument(
        "--trust",
        required=True,
        action="append",
        type=Path,
        metavar="PEM",
        help="trust anchor: the hub's hub-cert.pem and the agencies' root (repeat)",
    )
    verify.add_argument(
        "--tsa-trust",
        action="append",
        type=Path,
        default=[],
        metavar="PEM",
        help="trust anchor for the time-stamp authority (default: the --trust anchors)",
    )
    verify.add_argument("--json", action="store_true", help="one JSON object on one line")
    verify.set_defaults(func=run_verify)


# --- shared with `lienthong ledger` ------------------------------------------------------------------------------


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data DIR`` (the embedded hub's folder) or ``--endpoint HOST:PORT --bucket B`` (any S3 store)."""
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help=f"the embedded hub's data folder (default: {HubSettings().data_dir}); works with or without the hub",
    )
    parser.add_argument("--endpoint", metavar="HOST:PORT", help="read an S3 store instead of --data")
    parser.add_argument("--bucket", default=HubSettings().s3_bucket, help="the S3 bucket (with --endpoint)")
    parser.add_argument("--access-key", help="S3 access key (default: $LIENTHONG_S3_ACCESS_KEY)")
    parser.add_argument("--secret-key", help="S3 secret key (default: $LIENTHONG_S3_SECRET_KEY)")
    parser.add_argument("--secure", action="store_true", help="use HTTPS to reach --endpoint")


def data_dir(args: argparse.Namespace) -> Path:
    """The data folder named by ``--data`` (or the hub's default)."""
    return Path(args.data) if args.data is not None else HubSettings().data_dir


@contextmanager
def opened_store(args: argparse.Namespace) -> Iterator[ObjectStore]:
    """The store the arguments name, open for the duration of the ``with`` block (UsageError if unusable)."""
    if args.endpoint:
        if args.data is not None:
            raise UsageError("give either --data or --endpoint, not both")
        yield _remote_store(args)
        return
    yield from _embedded_store(data_dir(args))


def _remote_store(args: argparse.Namespace) -> ObjectStore:
    from storage.s3 import S3ObjectStore  # noqa: PLC0415 - the minio client only when a store is needed

    access = args.access_key or os.environ.get("LIENTHONG_S3_ACCESS_KEY")
    secret = args.secret_key or os.environ.get("LIENTHONG_S3_SECRET_KEY")
    if not access or not secret:
        raise UsageError(
            "--endpoint needs credentials: --access-key/--secret-key or LIENTHONG_S3_ACCESS_KEY/_SECRET_KEY"
        )
    require_server("the S3 store", args.endpoint, "check --endpoint HOST:PORT (and --secure for HTTPS)")
    return S3ObjectStore.connect(args.endpoint, access, secret, args.bucket, secure=args.secure, create_bucket=False)


def _embedded_store(directory: Path) -> Iterator[ObjectStore]:
    import socket  # noqa: PLC0415 - only when a store is needed

    from hub.embedded.s3 import EmbeddedS3  # noqa: PLC0415
    from storage.s3 import S3ObjectStore  # noqa: PLC0415

    root = directory / _EMBEDDED_S3_DIR
    if not (root / _WEED_METADATA_DIR).is_dir():
        raise UsageError(
            f"{directory} holds no hub data (no store in {root}); "
            f"pass the folder given to `{lienthong_command()} up --data`"
        )
    settings = HubSettings.load(directory / "settings.yaml") if (directory / "settings.yaml").is_file() else None
    if settings is not None:
        host, _, port = settings.s3_endpoint.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
        except OSError:
            pass  # the hub is stopped: read the folder with a private server below
        else:
            # The hub runs and holds the folder (SeaweedFS locks it): read through its own S3 endpoint.
            yield S3ObjectStore.connect(
                settings.s3_endpoint,
                settings.s3_access_key,
                settings.s3_secret_key,
                EMBEDDED_BUCKET,
                create_bucket=False,
            )
            return
    # A private server whose credentials may only read and list: an audit must never write, whatever bug might
    # try. No fsync rule: it writes nothing.
    with (
        tempfile.TemporaryDirectory(prefix="lienthong-audit-") as scratch,
        EmbeddedS3(root, log_path=Path(scratch) / "weed.log", read_only=True, fsync=False) as server,
    ):
        yield server.store(EMBEDDED_BUCKET)


def load_anchors(paths: list[Path]) -> list[x509.Certificate]:
    """Every certificate in the given PEM (or DER) files; UsageError naming a file that holds none."""
    try:
        return [cert for path in paths for cert in load_certificates(path)]
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


def _seal_key(args: argparse.Namespace) -> PemKey:
    directory = data_dir(args)
    key_path = args.seal_key or (directory / SEAL_KEY_FILE if not args.endpoint else None)
    cert_path = args.seal_cert or (directory / SEAL_CERT_FILE if not args.endpoint else None)
    if key_path is None or cert_path is None:
        raise UsageError("with --endpoint, pass the hub's --seal-key and --seal-cert (they sign the bundle manifest)")
    try:
        return PemKey.load(Path(key_path).read_bytes(), Path(cert_path).read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read the hub's seal key or certificate: {exc}") from exc
    except SigningKeyError as exc:
        raise UsageError(f"the hub's seal key cannot be used: {exc}") from exc


# --- export ------------------------------------------------------------------------------------------------------


@server_command("audit export")
def run_export(args: argparse.Namespace) -> int:
    """Write the bundle; exit 0, 1 when the document cannot be exported, 2 for unusable arguments or store."""
    try:
        seal_key = _seal_key(args)
        with opened_store(args) as store:
            reader = LogReader.open(store)
            data = build_bundle(store, reader, _original_of(store, reader, args.doc), seal_key=seal_key)
    except (BundleError, LedgerCorrupt) as exc:
        print(f"lienthong audit export: {exc}", file=sys.stderr)
        return 1
    except (UsageError, StoreUnavailable, HubError) as exc:
        print(f"lienthong audit export: {exc}", file=sys.stderr)
        return 2
    try:
        args.out.write_bytes(data)
    except OSError as exc:
        print(f"lienthong audit export: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: evidence bundle of {args.doc} ({len(data)} bytes)", flush=True)
    return 0


def _original_of(store: ObjectStore, reader: LogReader, doc: str) -> str:
    """What to export for ``doc``: the document's SHA-256 when ``doc`` is a DocumentId that also names statuses.

    A status answering a document carries its DocumentId, so the ledger files both under it. When exactly one of
    the originals is a document, that is the one meant (its bundle holds the statuses relayed about it); when
    several are, ``BundleError`` lists each, labelled, to choose from by SHA-256.
    """
    ref = doc.strip()
    if _HEX64.fullmatch(ref.lower()):
        return ref
    events = [e for _, e in reader.find([ref]).events if e.document_id == ref]
    received = {e.sha256: e for e in events if e.kind is EventKind.RECEIVED}
    if len(received) < 2:  # noqa: PLR2004 - one original (or none: the bundle says so)
        return ref
    relayed = {e.sha256: e.verdict for e in events if e.kind is EventKind.STATUS_RELAYED}  # verdict: its code
    archived = {e.sha256: e.detail.get("key", "") for e in events if e.kind is EventKind.ARCHIVED}
    codes = {sha: relayed.get(sha) or _status_code(store, archived.get(sha)) for sha in received}
    documents = [sha for sha in received if not codes[sha]]
    if len(documents) == 1:
        return documents[0]
    labels = []
    for sha, event in sorted(received.items(), key=lambda item: item[1].time):
        what = "document" if sha in documents else f"status {codes[sha]}"
        labels.append(f"{sha} ({what} from {event.actor}, received {event.time:%Y-%m-%d %H:%M:%S} UTC)")
    listed = "; ".join(labels)
    raise BundleError(f"DocumentId {ref!r} names {len(documents)} documents; export one by SHA-256: {listed}")


def _status_code(store: ObjectStore, key: str | None) -> str:
    """The StatusCode of the archived original under ``key`` ("" for a document, or when it cannot be read)."""
    from schemas import parse  # noqa: PLC0415
    from schemas.model import StatusMessage  # noqa: PLC0415

    if not key:
        return ""
    try:
        message = parse(store.get(key)).message
    except HubError:
        return ""
    return message.status_code if isinstance(message, StatusMessage) else ""


# --- verify ------------------------------------------------------------------------------------------------------


def _unreadable(path: Path, reason: str) -> BundleReport:
    return BundleReport((BundleCheck("bundle file is readable", CheckStatus.FAILED, reason, str(path)),))


def run_verify(args: argparse.Namespace) -> int:
    """Check the bundle; exit 0 only when every check passed (1: one failed, 2: unusable anchors)."""
    try:
        anchors = load_anchors(args.trust)
        tsa_anchors = load_anchors(args.tsa_trust) if args.tsa_trust else None
    except UsageError as exc:
        print(f"lienthong audit verify: {exc}", file=sys.stderr)
        return 2
    path: Path = args.bundle
    try:
        size = path.stat().st_size
        if size > DEFAULT_MAX_BUNDLE_BYTES:
            report = _unreadable(path, f"{size} bytes: more than the {DEFAULT_MAX_BUNDLE_BYTES} a bundle may have")
        else:
            report = check_bundle(path.read_bytes(), anchors, tsa_anchors=tsa_anchors)
    except OSError as exc:
        report = _unreadable(path, f"cannot read it: {exc.strerror or exc}")
    if args.json:
        emit_json({"file": str(path), **report.to_json()})
    else:
        print(report.to_text(), flush=True)
        for hint in _missing_anchor_hints(report):
            warn(f"lienthong audit verify: {hint}")
    return 0 if report.passed else 1


def _missing_anchor_hints(report: BundleReport) -> list[str]:
    """One line per certificate chain that ended at a root missing from ``--trust``: which, and what to add."""
    hints: dict[str, str] = {}
    for check in report.failures:
        for root in untrusted_roots([check.detail]):
            if check.file and check.file.startswith("original"):
                hints[root] = (
                    f"the document signer's certificate chain ends at {root}, which is not among the --trust anchors: "
                    "if it is the agencies' root you trust, add --trust ROOT.pem "
                    f"(after the demo: --trust {shown_path(Path('data/demo/trust/root.pem'))})"
                )
            else:
                hints.setdefault(
                    root,
                    f"the hub's seal certificate {root} is not among the --trust anchors: "
                    "add --trust DATA/hub-cert.pem (in the data folder of the hub that exported the bundle)",
                )
    return list(hints.values())
