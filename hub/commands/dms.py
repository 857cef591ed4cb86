"""``lienthong send|receive|status``: a DMS's three verbs, on the topic contract (``adapters.dms.HubClient``)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.kafka import KafkaConnection
from hub.commands._common import (
    ServerUnreachable,
    emit_json,
    expand_files,
    hub_settings,
    require_kafka,
    server_command,
    server_remedy,
    start_hub_hint,
    warn,
)
from hub.commands.sign import add_key_arguments, load_key
from schemas.errors import HubError

if TYPE_CHECKING:
    from adapters.dms import HubClient

__all__ = ["add_connection_arguments", "connection", "register"]

DEFAULT_DATA = Path("data")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``send``, ``receive`` and ``status``."""
    send = subparsers.add_parser("send", help="publish signed documents or statuses to the hub")
    send.add_argument("files", nargs="+", metavar="FILE|DIR", help="signed edXML files, or dirs of *.xml")
    send.add_argument("--as", dest="organ_id", metavar="ORGANID", help="our OrganId (default: the credentials')")
    add_connection_arguments(send)
    send.set_defaults(func=run_send)

    receive = subparsers.add_parser("receive", help="print or save documents and statuses as they arrive")
    receive.add_argument("--agency", dest="organ_id", metavar="ORGANID", help="whose inbox and statuses to read")
    receive.add_argument("--save", type=Path, metavar="DIR", help="write each record to DIR/<topic>/<offset>.xml")
    receive.add_argument("--from-beginning", action="store_true", help="start at the oldest record, not the newest")
    receive.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds without a record")
    receive.add_argument("--group", help="consumer group dms.<ORGANID>.* (default dms.<ORGANID>.default)")
    add_connection_arguments(receive)
    receive.set_defaults(func=run_receive)

    status = subparsers.add_parser("status", help="build, sign and send a status about a received document")
    status.add_argument("document", type=Path, metavar="DOC", help="the received document (its file)")
    status.add_argument("--code", required=True, choices=["01", "02", "03", "04", "05", "06", "13", "15", "16"])
    status.add_argument("--as", dest="organ_id", metavar="ORGANID", help="our OrganId (default: the credentials')")
    status.add_argument("--description", default="", help="free text (the reason, for 02)")
    add_key_arguments(status)
    add_connection_arguments(status)
    status.set_defaults(func=run_status)


def add_connection_arguments(parser: argparse.ArgumentParser, *, agency: bool = True) -> None:
    """``--credentials`` (an agency's), or ``--data`` (the hub's own settings); ``--bootstrap`` and ``--json``."""
    if agency:
        parser.add_argument(
            "--credentials",
            type=Path,
            metavar="FILE",
            help="the agency's credentials (lienthong agency credentials ORGANID --json); else the hub's, from --data",
        )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, metavar="DIR", help="the hub's data folder (its settings.yaml)"
    )
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="the hub's Kafka (default: from the settings)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def connection(args: argparse.Namespace) -> KafkaConnection:
    """The Kafka connection of ``--data``'s settings (the hub's own principal), ``--bootstrap`` overriding.

    ``ServerUnreachable`` when its broker does not answer.
    """
    settings = hub_settings(args.data)
    kafka = settings.kafka
    if args.bootstrap:
        return require_kafka(replace(kafka, bootstrap=args.bootstrap), "check --bootstrap HOST:PORT")
    return require_kafka(kafka, server_remedy(settings, "kafka_bootstrap", external=settings.kafka_external))


def agency_connection(args: argparse.Namespace) -> tuple[KafkaConnection, str]:
    """The connection and OrganId of ``--credentials`` (or of ``--data`` with ``--as``/``--agency``).

    ``ServerUnreachable`` when the broker does not answer.
    """
    if args.credentials is None:
        if not args.organ_id:
            raise HubError("give --credentials FILE (an agency's), or the OrganId with --data")
        return connection(args), args.organ_id
    try:
        credentials = json.loads(args.credentials.read_text(encoding="utf-8"))
        kafka = KafkaConnection.from_credentials(credentials)
    except (OSError, ValueError) as exc:
        raise HubError(f"{args.credentials}: {exc}") from exc
    organ_id = str(credentials.get("organ_id") or "")
    if args.organ_id and args.organ_id != organ_id:
        raise HubError(
            f"{args.credentials} are the credentials of {organ_id or 'the administrator'}, not {args.organ_id}"
        )
    if not organ_id:
        raise HubError(f"{args.credentials} are not an agency's credentials")
    if args.bootstrap:
        return require_kafka(replace(kafka, bootstrap=args.bootstrap), "check --bootstrap HOST:PORT"), organ_id
    remedy = f"{start_hub_hint(args.data)}, or check bootstrap.servers in {args.credentials}"
    return require_kafka(kafka, remedy), organ_id


def _client(args: argparse.Namespace, verb: str) -> HubClient | None:
    """The SDK client of the arguments' agency, or None after one line saying what is missing."""
    from adapters.dms import HubClient, VxpEndpoint  # noqa: PLC0415

    try:
        kafka, organ_id = agency_connection(args)
    except ServerUnreachable:
        raise  # server_command prints it
    except HubError as exc:
        warn(f"lienthong {verb}: {exc}")
        return None
    vxp = None  # the facade's endpoint and secret: large documents travel through it as claim checks
    if args.credentials is not None:
        vxp = VxpEndpoint.from_credentials(json.loads(args.credentials.read_text(encoding="utf-8")))
    return HubClient(kafka, organ_id=organ_id, vxp=vxp)


@server_command("send")
def run_send(args: argparse.Namespace) -> int:
    """Send every file; exit 0 when the broker acknowledged them all."""
    client = _client(args, "send")
    if client is None:
        return 2
    failed = 0
    try:
        for path in expand_files(args.files):
            try:
                receipt = client.send_file(path)
            except (HubError, OSError) as exc:
                warn(f"{path}: not sent: {exc}")
                failed += 1
                continue
            line = {"file": str(path), "sha256": receipt.sha256, "topic": receipt.topic, "offset": receipt.offset}
            if args.json:
                emit_json(line)
            else:
                print(f"{path}: sent {receipt.sha256[:16]} to {receipt.topic}[{receipt.partition}]@{receipt.offset}")
    finally:
        client.close()
    return 1 if failed else 0


@server_command("receive")
def run_receive(args: argparse.Namespace) -> int:
    """Print (or save) records until interrupted or ``--timeout``."""
    client = _client(args, "receive")
    if client is None:
        return 2
    failed = 0
    try:
        for item in client.receive(timeout=args.timeout, from_beginning=args.from_beginning, group=args.group):
            saved = None
            if args.save is not None:
                folder = args.save / item.topic
                folder.mkdir(parents=True, exist_ok=True)
                try:  # a claim check is resolved: the document is fetched and its SHA-256 checked
                    saved = client.save(item, folder / f"{item.offset:08d}.xml")
                except HubError as exc:
                    warn(f"{item.topic}@{item.offset}: not saved: {exc}")
                    failed += 1
                    continue
            line = {
                "kind": item.kind,
                "topic": item.topic,
                "offset": item.offset,
                "document_id": item.document_id,
                "sha256": item.sha256,
                "reason": item.reason or None,
                "bytes": item.claim.size if item.claim else len(item.data),
                "file": str(saved) if saved else None,
            }
            if args.json:
                emit_json(line)
            else:
                why = f" rejected: {item.reason}" if item.reason else ""
                print(
                    f"{item.kind} {item.document_id or '?'} ({len(item.data)} bytes) on {item.topic}{why}", flush=True
                )
    except KeyboardInterrupt:
        return 1 if failed else 0
    except HubError as exc:
        warn(f"lienthong receive: {exc}")
        return 1
    return 1 if failed else 0


@server_command("status")
def run_status(args: argparse.Namespace) -> int:
    """Build, sign and send one status."""
    client = _client(args, "status")
    if client is None:
        return 2
    try:
        key, chain = load_key(args)
        receipt = client.send_status(
            args.document.read_bytes(), args.code, key=key, chain=chain, description=args.description
        )
    except (HubError, OSError, ValueError) as exc:
        print(f"lienthong status: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"status {args.code} sent ({receipt.sha256[:16]}) to {receipt.topic}@{receipt.offset}")
    return 0
