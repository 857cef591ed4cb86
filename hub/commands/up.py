"""``lienthong up``: run the whole hub on this machine; ``--demo`` also feeds it a stream of signed documents."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

from adapters.kafka import KafkaConnection
from hub.trust import ConfigError
from schemas.errors import HubError

__all__ = ["register", "run"]

DEFAULT_DEMO_DOCS = 500


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``up`` sub-command."""
    parser = subparsers.add_parser(
        "up",
        help="run the whole hub on this machine (object store, broker, workers, metrics)",
        description="Everything listens on 127.0.0.1. Data in --data survives a restart. Ctrl-C stops it.",
    )
    parser.add_argument("--data", type=Path, default=Path("data"), metavar="DIR", help="where everything is kept")
    parser.add_argument("--directory", type=Path, metavar="FILE", help="agency directory YAML")
    parser.add_argument("--trust", type=Path, action="append", metavar="PEM|DIR", help="trust anchors")
    parser.add_argument(
        "--untrusted", type=Path, action="append", metavar="PEM", help="intermediate certificates (not anchors)"
    )
    parser.add_argument("--crl", type=Path, action="append", metavar="FILE", help="a CRL (PEM or DER); repeatable")
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="settings YAML (LIENTHONG_* env wins); default DATA/settings.yaml from the last run, if any",
    )
    parser.add_argument("--demo", action="store_true", help="create a demo PKI and directory and send documents")
    parser.add_argument("--docs", type=int, default=DEFAULT_DEMO_DOCS, help="documents the demo sends")
    parser.add_argument("--exit-when-done", action="store_true", help="stop after the demo's summary")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--kafka-port", type=int, help="the embedded broker's port (default 9092)")
    parser.add_argument("--s3-port", type=int, help="the embedded object store's port (default 9000)")
    parser.add_argument("--http-port", type=int, help="metrics and dashboard (default 6066)")
    parser.add_argument("--vxp-port", type=int, help="the VXP facade, http://127.0.0.1:PORT/vxp (default 8080)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the hub, run the demo if asked, then wait for Ctrl-C (or exit when done)."""
    from hub.settings import HubSettings  # noqa: PLC0415
    from hub.up import (  # noqa: PLC0415
        Hub,
        demo_axis_simulator,
        demo_tsa,
        running,
        uses_demo_axis,
        with_demo,
        with_demo_axis,
        with_demo_tsa,
    )

    # A restart without --settings picks up what the last run wrote (its directory, trust anchors, options).
    previous = args.data / "settings.yaml"
    settings_file = args.settings or (previous if previous.is_file() else None)
    try:
        settings = HubSettings.load(
            settings_file,
            data_dir=args.data,
            directory_file=args.directory,
            trust=tuple(args.trust) if args.trust else None,
            intermediates=tuple(args.untrusted) if args.untrusted else None,
            crls=tuple(args.crl) if args.crl else None,
            kafka_bootstrap=f"127.0.0.1:{args.kafka_port}" if args.kafka_port else None,
            s3_endpoint=f"127.0.0.1:{args.s3_port}" if args.s3_port else None,
            http_port=args.http_port,
            vxp_port=args.vxp_port,
        )
        simulate_axis = args.demo and (not settings.axis_url or uses_demo_axis(settings))
        if args.demo:
            settings = with_demo_axis(with_demo(settings))
        settings = with_demo_tsa(settings, demo=args.demo)  # a restart without --demo keeps its TSA too
    except ConfigError as exc:
        print(f"lienthong up: {exc}", file=sys.stderr)
        return 2
    if settings.directory_file is None or not settings.trust:
        print("lienthong up: give --directory FILE and --trust PEM|DIR (or --demo to create both)", file=sys.stderr)
        return 2
    hub = Hub(settings, workers=args.workers, progress=lambda line: print(f"· {line}", flush=True))
    try:
        with contextlib.ExitStack() as stack:
            if simulate_axis:
                stack.enter_context(demo_axis_simulator(settings))
                print(f"· national axis (simulated, lienthong axis-sim): {settings.axis_url}", flush=True)
            stack.enter_context(demo_tsa(settings, lambda line: print(f"· {line}", flush=True)))
            addresses = stack.enter_context(running(hub))
            print(
                f"lienthong hub is up: Kafka {addresses.kafka}, S3 {addresses.s3}, "
                f"metrics and dashboard http://{addresses.http}/, VXP {addresses.vxp}  (Ctrl-C stops it)",
                flush=True,
            )
            if args.demo:
                run_demo(hub.settings, args.docs)  # with the secrets the start generated
            if args.exit_when_done:
                return 0
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        print("stopping…", flush=True)
        return 0
    except HubError as exc:  # a server that would not start: its message names it and quotes its log
        print(f"lienthong up: {exc}", file=sys.stderr)
        return 1


def demo_connection(settings: object, organ_id: str) -> KafkaConnection:
    """How demo agency ``organ_id`` connects: its own credentials (issued on first use, kept in its demo folder)."""
    from hub.access import issue_credentials  # noqa: PLC0415
    from hub.settings import HubSettings, write_private  # noqa: PLC0415

    assert isinstance(settings, HubSettings)
    path = settings.data_dir / "demo" / "agencies" / organ_id / "credentials.json"
    if not path.is_file():  # rotate: a user left by an earlier demo whose folder was removed gets a new password
        write_private(path, json.dumps(issue_credentials(settings, organ_id, rotate=True), ensure_ascii=False))
    return KafkaConnection.from_credentials(json.loads(path.read_text(encoding="utf-8")))


def _status_from(data: bytes) -> str:
    """The From/OrganId of a status message ('' for anything else)."""
    from schemas import parse  # noqa: PLC0415
    from schemas.model import StatusMessage  # noqa: PLC0415

    try:
        message = parse(data).message
    except HubError:
        return ""
    return message.sender.organ_id if isinstance(message, StatusMessage) else ""


def run_demo(settings: object, count: int) -> dict[str, object]:  # noqa: C901, PLR0912, PLR0915 - one linear story
    """Send ``count`` demo documents (a tenth invalid on purpose), send statuses back, print a summary."""
    from kafka import KafkaConsumer  # noqa: PLC0415

    from adapters.dms import HubClient  # noqa: PLC0415
    from hub.commands._common import lienthong_command, shown_path  # noqa: PLC0415
    from hub.demo import (  # noqa: PLC0415
        DEMO_AGENCIES,
        create_demo_material,
        demo_documents,
        demo_status,
        describe_demo_agencies,
    )
    from hub.settings import HubSettings  # noqa: PLC0415

    assert isinstance(settings, HubSettings)
    material = create_demo_material(settings.data_dir / "demo")
    start_number = int(time.time()) % 1_000_000 * 10  # fresh DocumentIds on every run
    documents = list(demo_documents(material, count, start_number=start_number))
    watcher = KafkaConsumer(auto_offset_reset="latest", **settings.kafka.options())
    watcher.subscribe(pattern=r"^lienthong\.(inbox\..*|status\..*|axis\.outbound|deadletter)$")
    watcher.poll(timeout_ms=2000)  # join now, so that nothing sent below is missed
    expected = sum(len(d.recipients) for d in documents if d.expect == "delivered")
    print(f"demo: sending {count} documents between {describe_demo_agencies()} ({expected} deliveries expected)")
    started = time.monotonic()
    clients = {oid: HubClient(demo_connection(settings, oid), organ_id=oid) for oid in {d.sender for d in documents}}
    step = max(1, count // 10)
    for first in range(0, count, step):
        by_sender: dict[str, list[bytes]] = {}
        for document in documents[first : first + step]:
            by_sender.setdefault(document.sender, []).append(document.data)
        for sender, batch in by_sender.items():
            clients[sender].send_many(batch)
        print(f"demo: sent {min(first + step, count)}/{count}", flush=True)
    for client in clients.values():
        client.close()
    sending = time.monotonic() - started  # the broker acknowledged them all; the hub goes on checking and routing
    delivered: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    received_docs: list[tuple[str, bytes]] = []
    rejections_expected = sum(1 for d in documents if d.expect != "delivered")
    axis_agencies = {oid for oid, (_, route) in DEMO_AGENCIES.items() if route == "axis"}
    from_axis = 0  # statuses the axis agencies sent back through the (simulated) national axis
    deadline = time.monotonic() + max(60.0, count / 5)
    last_report = 0.0
    while time.monotonic() < deadline:
        for records in watcher.poll(timeout_ms=500).values():
            for record in records:
                headers = {k: bytes(v or b"") for k, v in record.headers or ()}
                if record.topic == "lienthong.deadletter":
                    rejected[headers.get("lienthong-reason", b"?").decode()] += 1
                elif record.topic.startswith("lienthong.status."):
                    statuses["hub 02 rejected" if headers.get("lienthong-reason") else "hub/recipient status"] += 1
                    from_axis += _status_from(record.value or b"") in axis_agencies
                else:
                    delivered[record.topic.removeprefix("lienthong.inbox.")] += 1
                    if record.topic.startswith("lienthong.inbox.") and len(received_docs) < 20:  # noqa: PLR2004
                        received_docs.append((record.topic.removeprefix("lienthong.inbox."), record.value or b""))
        done = sum(delivered.values())
        if time.monotonic() - last_report > 2:  # noqa: PLR2004
            print(f"demo: {done}/{expected} delivered, {sum(rejected.values())} rejected", flush=True)
            last_report = time.monotonic()
        if done >= expected and sum(rejected.values()) >= rejections_expected:
            break
    elapsed = time.monotonic() - started
    # Recipients answer: status 03 (accepted) for the first documents they received.
    sent_statuses: set[bytes] = set()
    for recipient, data in received_docs:
        client = HubClient(demo_connection(settings, recipient), organ_id=recipient)
        status = demo_status(material, data, by=recipient, code="03")
        client.send(status)
        sent_statuses.add(status)
        client.close()
    relayed_deadline = time.monotonic() + 30
    relayed = 0  # only the recipients' own statuses, byte for byte (not the hub's late 01/02 answers)
    # Each document for an axis agency comes back with its 01 and 03 through the axis (the simulator answers).
    axis_expected = 2 * sum(n for organ_id, n in delivered.items() if organ_id == "lienthong.axis.outbound")
    while time.monotonic() < relayed_deadline and (
        relayed < len(sent_statuses) or (settings.axis_url and from_axis < axis_expected)
    ):
        for records in watcher.poll(timeout_ms=500).values():
            for r in records:
                if r.topic.startswith("lienthong.status."):
                    relayed += r.value in sent_statuses
                    from_axis += _status_from(r.value or b"") in axis_agencies
    watcher.close()
    summary = {
        "documents": count,
        "deliveries": sum(delivered.values()),
        "rejected": dict(rejected),
        "statuses_relayed": relayed,
        "statuses_from_axis": from_axis,
        "sending_seconds": round(sending, 1),
        "seconds": round(elapsed, 1),
        "documents_per_second": round(count / elapsed, 1) if elapsed else None,
    }
    print("\ndemo summary")
    print(f"  documents sent        {count} in {sending:.1f} s (until the broker acknowledged the last one)")
    if sum(delivered.values()) >= expected and sum(rejected.values()) >= rejections_expected:
        print(
            f"  all handled after     {elapsed:.1f} s from the first send, each delivered or refused "
            f"({summary['documents_per_second']} documents/s end to end)"
        )
    else:
        print(f"  still in progress     after {elapsed:.1f} s, when the demo stopped waiting")
    print(f"  deliveries            {sum(delivered.values())} of {expected} expected")
    for organ_id, n in sorted(delivered.items()):
        via_axis = organ_id == "lienthong.axis.outbound"
        label = f"{', '.join(sorted(axis_agencies))} via the axis" if via_axis else organ_id
        print(f"    {label:<26} {n}")
    print(f"  rejected              {sum(rejected.values())} (each answered with status 02 naming the reason)")
    for reason, n in rejected.most_common():
        print(f"    {reason:<26} {n}")
    print(f"  recipient statuses    {relayed} of {len(sent_statuses)} relayed back to the senders (status 03)")
    if settings.axis_url:
        print(f"  from the national axis {from_axis} statuses (01/03) of {axis_expected} expected")
    print(f"  ledger                {lienthong_command()} ledger verify --data {shown_path(settings.data_dir)}")
    return summary
