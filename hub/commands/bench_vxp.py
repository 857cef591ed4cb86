"""``lienthong bench vxp``: documents/s through the VXP facade, against Kafka-direct on the same hub in the same run.

A fresh hub (``lienthong up`` as it runs: SeaweedFS, Apache Kafka, one worker, the facade) starts in a temporary
folder. Agency A sends agency B signed 5 KB demo documents two ways, each measured from the first send to the last
document B holds:

- **Kafka-direct** (the baseline): A publishes to its outbox with the SDK (``adapters.dms``), B reads its inbox;
- **VXP facade**: A calls sendEdoc, B polls getReceivedEdocList, fetches each document with getEdoc and marks it
  with updateStatus ``done`` (the whole DMS loop, as VXP.md describes it), with ``--clients`` connections each side.

Both go through the same worker (verification, archive, routing); the ratio says what the facade costs on top.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from hub.commands._common import warn

__all__ = ["register_bench", "run"]

DEFAULT_DOCS = 300
DEFAULT_CLIENTS = 4
_SENDER, _RECIPIENT = "000.01.00.H41", "000.02.00.H41"
_TIMEOUT = 300.0  # seconds a run may take before the bench gives up


def register_bench(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench vxp``."""
    sub = group.add_parser("vxp", help="documents/s through the VXP facade vs Kafka-direct (5 KB, same hub, same run)")
    sub.add_argument("--docs", type=int, default=DEFAULT_DOCS, help="documents per run")
    sub.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="VXP connections on each side")
    sub.set_defaults(func=run)


def _documents(material: object, count: int, first: int) -> list[bytes]:
    from hub.demo import DemoMaterial  # noqa: PLC0415
    from schemas import build_document  # noqa: PLC0415
    from schemas.examples import example_edoc  # noqa: PLC0415
    from signer.sign import sign_document  # noqa: PLC0415

    assert isinstance(material, DemoMaterial)
    day = datetime.now(UTC).date()
    key = material.keys[_SENDER]
    return [
        sign_document(
            build_document(
                example_edoc(sender=_SENDER, recipients=(_RECIPIENT,), number=n, notation="LT-BENCH", day=day)
            ),
            key,
        )
        for n in range(first, first + count)
    ]


def _kafka_direct(settings: object, documents: Sequence[bytes]) -> float:
    """Seconds from A's first publish to B's reading the last document on its inbox."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    from adapters.dms import HubClient  # noqa: PLC0415
    from hub.commands.up import demo_connection  # noqa: PLC0415
    from hub.records import inbox_topic  # noqa: PLC0415

    sender = HubClient(demo_connection(settings, _SENDER), organ_id=_SENDER)
    inbox = TopicPartition(inbox_topic(_RECIPIENT), 0)
    reader = KafkaConsumer(group_id=None, enable_auto_commit=False, **demo_connection(settings, _RECIPIENT).options())
    reader.assign([inbox])
    reader.seek_to_end(inbox)
    reader.position(inbox)
    wanted = {hashlib.sha256(d).digest() for d in documents}
    started = time.perf_counter()
    sender.send_many(documents)
    deadline = time.monotonic() + _TIMEOUT
    while wanted and time.monotonic() < deadline:
        for records in reader.poll(timeout_ms=200).values():
            wanted -= {hashlib.sha256(r.value or b"").digest() for r in records}
    elapsed = time.perf_counter() - started
    sender.close()
    reader.close()
    if wanted:
        raise TimeoutError(f"Kafka-direct: {len(wanted)} documents never reached the inbox")
    return elapsed


def _facade(endpoint: str, secrets: dict[str, str], documents: Sequence[bytes], clients: int) -> float:
    """Seconds from A's first sendEdoc to B's marking the last document done (list → getEdoc → updateStatus)."""
    from adapters.vxp import VxpClient  # noqa: PLC0415

    wanted = {hashlib.sha256(d).hexdigest() for d in documents}
    lock = threading.Lock()
    local = threading.local()

    def client(system_id: str) -> VxpClient:
        if getattr(local, system_id, None) is None:
            setattr(local, system_id, VxpClient(endpoint, system_id, secrets[system_id]))
        made: VxpClient = getattr(local, system_id)
        return made

    def send(data: bytes) -> None:
        reply = client(_SENDER).send_edoc(data, sender=_SENDER)
        if reply["status"] != "OK":
            raise RuntimeError(f"sendEdoc refused: {reply}")

    def take(doc_id: str) -> None:
        recipient = client(_RECIPIENT)
        reply = recipient.get_edoc(doc_id)
        data = base64.b64decode(reply["data"])
        recipient.update_status(doc_id, "done")
        with lock:
            wanted.discard(hashlib.sha256(data).hexdigest())

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as senders, ThreadPoolExecutor(clients) as takers:
        sent = [senders.submit(send, d) for d in documents]
        poller = VxpClient(endpoint, _RECIPIENT, secrets[_RECIPIENT])
        deadline = time.monotonic() + _TIMEOUT
        while wanted and time.monotonic() < deadline:
            _raise_failed(sent)
            items = poller.received("edoc").get("data", [])
            list(takers.map(take, [item["docId"] for item in items]))
            if not items:  # a DMS polls every few seconds; this one, as often as the hub can answer in time
                time.sleep(0.2)
        for future in sent:
            future.result()
        poller.close()
    elapsed = time.perf_counter() - started
    if wanted:
        raise TimeoutError(f"VXP facade: {len(wanted)} documents never reached B's mailbox")
    return elapsed


def _raise_failed(futures: Sequence[Future[None]]) -> None:
    """Stop the run at the first send that failed (rather than wait for documents that will never come)."""
    for future in futures:
        if future.done() and future.exception() is not None:
            raise RuntimeError("a sendEdoc failed") from future.exception()


def _vxp_secret(settings: object, organ_id: str) -> str:
    """The agency's VXP secret, from the credentials the demo issued it (``demo_connection`` writes them once)."""
    from hub.commands.up import demo_connection  # noqa: PLC0415
    from hub.settings import HubSettings  # noqa: PLC0415

    assert isinstance(settings, HubSettings)
    demo_connection(settings, organ_id)
    path = settings.data_dir / "demo" / "agencies" / organ_id / "credentials.json"
    secret: str = json.loads(path.read_text(encoding="utf-8"))["vxp"]["secret"]
    return secret


def run(args: argparse.Namespace) -> int:
    """Start a hub, run both ways, print documents/s and the facade's ratio to Kafka-direct."""
    from hub.demo import create_demo_material  # noqa: PLC0415
    from hub.up import Hub, demo_settings_on_free_ports, running  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="lienthong-bench-vxp-") as folder:
        data = Path(folder) / "data"
        material = create_demo_material(data / "demo")
        hub = Hub(demo_settings_on_free_ports(data), workers=1, progress=lambda line: warn(f"bench vxp:   {line}"))
        warn("bench vxp: starting a hub (object store, broker, one worker, the facade)…")
        with running(hub) as addresses:
            settings = hub.settings
            secrets = {oid: _vxp_secret(settings, oid) for oid in (_SENDER, _RECIPIENT)}
            first = int(time.time()) % 100_000 * 10
            warn(f"bench vxp: signing {2 * args.docs + 20} documents of about 5 KB…")
            warm, direct_docs, facade_docs = (
                _documents(material, 10, first),
                _documents(material, args.docs, first + 10),
                _documents(material, args.docs, first + 10 + args.docs),
            )
            warn("bench vxp: warming up (1/3): 5 documents each way")
            _kafka_direct(settings, warm[:5])  # connections, the worker's caches
            _facade(addresses.vxp, secrets, warm[5:], args.clients)  # the mailbox consumer has joined its group
            warn(f"bench vxp: Kafka-direct (2/3): {args.docs} documents from outbox to inbox")
            direct = _kafka_direct(settings, direct_docs)
            warn(f"bench vxp: VXP facade (3/3): {args.docs} documents, sendEdoc to updateStatus done")
            through = _facade(addresses.vxp, secrets, facade_docs, args.clients)
    size = sum(len(d) for d in facade_docs) // len(facade_docs)
    direct_rate, facade_rate = args.docs / direct, args.docs / through
    print(f"\n{'path':<44} {'docs':>6} {'bytes':>7} {'seconds':>8} {'docs/s':>8} {'x direct':>9}")
    print(
        f"{'Kafka-direct (outbox -> inbox)':<44} {args.docs:>6} {size:>7} {direct:>8.2f} {direct_rate:>8.1f} {1:>8.2f}x"
    )
    label = f"VXP facade (send; list+get+done, {args.clients} clients)"
    print(
        f"{label:<44} {args.docs:>6} {size:>7} {through:>8.2f} {facade_rate:>8.1f} {direct_rate / facade_rate:>8.2f}x"
    )
    return 0
