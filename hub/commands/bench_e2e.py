"""``lienthong bench e2e``: documents from publish to inbox on the durable embedded stack, one and two workers.

For each worker count a fresh hub starts in a temporary folder (SeaweedFS and Apache Kafka with their data in it,
worker processes), exactly as ``lienthong up`` runs it. Then:

- **baseline**: the same 5 KB documents through the same broker with no hub: produced to a scratch topic and
  read back (the broker's own pipe, the ceiling of any hub on it);
- **throughput**: every document published at once; documents/s from the first publish to the last delivery
  (a document counts when all of its recipients have it);
- **latency**: documents offered at a steady rate (100/s by default); per document, the time from its publish to
  its last delivery on the broker (the records' own timestamps, so the measuring consumer's delays do not count);
- **memory**: the workers' resident memory before and after, and with ``--long N`` sampled over N documents;
- **CPU per document**: during the throughput run, the user + system CPU of each process (workers, broker, store
  and this bench, librdkafka's threads included) from ``/proc``, and the rate that CPU alone would allow on this
  machine's cores (what bounds the figure).

Documents are the demo's valid ones (about 5 KB, 1-3 recipients, some on the axis), all signed in advance. The bench's
own clients (load generator, watcher, baseline) are librdkafka's (``confluent-kafka``), whose C threads cost a
fraction of a pure-Python client's CPU, so the bench does not measure itself as much as the hub.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from adapters.kafka import KafkaConnection
from hub.demo import DemoDocument, create_demo_material, demo_documents
from hub.embedded.kafka import create_topics
from hub.records import H_SHA256, INBOUND, PRODUCER_BATCH_BYTES, PRODUCER_LINGER_MS
from hub.up import Hub, demo_settings_on_free_ports, running
from schemas.errors import HubError

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

__all__ = ["register_bench", "run"]

DEFAULT_DOCS = 2000
DEFAULT_RATE = 100.0
DEFAULT_RATE_SECONDS = 20.0
# librdkafka takes a subscription starting with ``^`` as a regular expression, any other as a topic name.
_OUTPUTS = [r"^lienthong\.inbox\..*", "lienthong.axis.outbound"]
_AXIS = "000.00.00.G22"
_BASELINE_TOPIC = "bench.baseline"
_GENERATE_CHUNK = 250


def register_bench(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench e2e``."""
    sub = group.add_parser("e2e", help="documents/s and latency from publish to inbox on the durable embedded stack")
    sub.add_argument("--docs", type=int, default=DEFAULT_DOCS, help="documents for the throughput run")
    sub.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated (default 1,2)")
    sub.add_argument("--rate", type=float, default=DEFAULT_RATE, help="documents/s offered in the latency run")
    sub.add_argument("--rate-seconds", type=float, default=DEFAULT_RATE_SECONDS, help="length of the latency run")
    sub.add_argument("--long", type=int, default=0, metavar="N", help="also stream N documents, sampling memory")
    sub.add_argument("--quick", action="store_true", help="small counts (for tests)")
    sub.add_argument("--json", action="store_true", help="print one JSON object on one line instead of tables")
    sub.set_defaults(func=run)


@dataclass
class _Run:
    """What one worker count measured."""

    workers: int
    baseline_docs_per_s: float
    docs: int
    docs_per_s: float
    ratio_to_baseline: float
    offered_per_s: float
    latency_docs: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rss_mb_before: float
    rss_mb_after: float
    cpu_ms_per_doc: dict[str, float]  # per process group of the throughput run, and their "total"
    cpu_bound_docs_per_s: float  # 1000 × cores / total: the rate the machine's CPU alone allows
    memory_samples: list[tuple[int, float]] = field(default_factory=list)  # (documents so far, worker RSS MB)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- documents ------------------------------------------------------------------------------------------------


def _generate_chunk(folder: str, start: int, count: int) -> list[DemoDocument]:
    material = create_demo_material(Path(folder))  # loads what the parent created
    return [d for d in demo_documents(material, count, start_number=start, invalid_every=10**9) if d.expect]


def _documents(folder: Path, count: int, start: int) -> list[DemoDocument]:
    """``count`` valid signed demo documents, numbered from ``start``, signed on every core."""
    chunks = range(start, start + count, _GENERATE_CHUNK)
    out: list[DemoDocument] = []
    with ProcessPoolExecutor() as pool:
        jobs = [pool.submit(_generate_chunk, str(folder), s, min(_GENERATE_CHUNK, start + count - s)) for s in chunks]
        for job in jobs:
            out.extend(job.result())
            _progress(f"  signed {len(out):,}/{count:,} documents")
    return out


def _deliveries(document: DemoDocument) -> list[str]:
    return ["lienthong.axis.outbound" if r == _AXIS else f"lienthong.inbox.{r}" for r in document.recipients]


# --- the measurements -----------------------------------------------------------------------------------------


class _Watcher:
    """Reads the inboxes and the axis topic; records when each document's last delivery reached the broker."""

    def __init__(self, connection: KafkaConnection) -> None:
        self._consumer = KafkaConsumer(auto_offset_reset="latest", group_id=None, **connection.options())
        self._consumer.subscribe(pattern=_OUTPUTS)
        self._consumer.poll(timeout_ms=3000)  # join and take positions before anything is sent
        self.remaining: dict[str, int] = {}
        self.done_ms: dict[str, int] = {}

    def expect(self, documents: Sequence[DemoDocument]) -> None:
        """Count each document's deliveries from now on."""
        for document in documents:
            self.remaining[_sha(document.data)] = len(_deliveries(document))

    def poll(self, timeout_ms: int = 200) -> None:
        for records in self._consumer.poll(timeout_ms=timeout_ms, max_records=5000).values():
            for record in records:
                sha = dict(record.headers or ()).get(H_SHA256, b"").decode()
                if sha in self.remaining:
                    self.remaining[sha] -= 1
                    self.done_ms[sha] = max(self.done_ms.get(sha, 0), record.timestamp)
                    if self.remaining[sha] == 0:
                        del self.remaining[sha]

    def wait(self, timeout: float, on_tick: Callable[[], None] | None = None) -> bool:
        """Poll until every expected delivery arrived (True) or ``timeout`` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        while self.remaining and time.monotonic() < deadline:
            self.poll()
            if on_tick is not None:
                on_tick()
        return not self.remaining

    def close(self) -> None:
        self._consumer.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _publish(producer: KafkaProducer, documents: Sequence[DemoDocument]) -> dict[str, int]:
    """Publish ``documents``; return each one's publish time (ms, the record's timestamp)."""
    sent = dict(_send(producer, document) for document in documents)
    producer.flush()
    return sent


def _send(producer: KafkaProducer, document: DemoDocument) -> tuple[str, int]:
    """Publish one document as its sender would; its SHA-256 and publish time (ms, the record's timestamp)."""
    now = int(time.time() * 1000)
    producer.send(INBOUND, key=document.sender.encode(), value=document.data, timestamp_ms=now)
    return _sha(document.data), now


def _producer(connection: KafkaConnection) -> KafkaProducer:
    return KafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=PRODUCER_LINGER_MS,
        batch_size=PRODUCER_BATCH_BYTES,
        **connection.options(),
    )


def _baseline(connection: KafkaConnection, documents: Sequence[DemoDocument]) -> float:
    """Documents/s through the broker alone: produce to a scratch topic, consume them back."""
    create_topics(connection, {_BASELINE_TOPIC: 4})
    consumer = KafkaConsumer(_BASELINE_TOPIC, auto_offset_reset="earliest", group_id=None, **connection.options())
    consumer.poll(timeout_ms=2000)
    producer = _producer(connection)
    started = time.monotonic()
    for document in documents:
        producer.send(_BASELINE_TOPIC, key=document.sender.encode(), value=document.data)
    producer.flush()
    got = 0
    deadline = time.monotonic() + 120
    while got < len(documents) and time.monotonic() < deadline:
        got += sum(len(r) for r in consumer.poll(timeout_ms=200, max_records=5000).values())
    elapsed = time.monotonic() - started
    producer.close()
    consumer.close()
    return got / elapsed


def _rss_mb(hub: Hub) -> float:
    """Resident memory of the worker processes, MB."""
    total = 0
    for worker in hub.worker_processes:
        try:
            status = Path(f"/proc/{worker.pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _measure(root: Path, workers: int, args: argparse.Namespace, pool: Iterator[DemoDocument]) -> _Run:
    data = root / f"hub-{workers}"
    hub = Hub(demo_settings_on_free_ports(data), workers=workers, progress=lambda line: _progress(f"  {line}"))
    with running(hub):  # stopped on the way out, also on Ctrl-C and SIGTERM
        connection = hub.settings.kafka  # with the secrets generated at start
        throughput_docs = [next(pool) for _ in range(args.docs)]
        _progress(f"[{workers} worker(s)] baseline: {len(throughput_docs):,} documents through the broker alone")
        baseline = _baseline(connection, throughput_docs)
        watcher = _Watcher(connection)
        producer = _producer(connection)
        _warm(producer, watcher, [next(pool) for _ in range(20)])
        rss_before = _rss_mb(hub)
        _progress(f"[{workers} worker(s)] throughput: publishing {len(throughput_docs):,} documents at once")
        watcher.expect(throughput_docs)
        first = time.time()
        sent = _publish(producer, throughput_docs)
        ok = watcher.wait(max(300.0, len(throughput_docs) / 5), on_tick=_ticker(watcher, len(throughput_docs)))
        if not ok:
            raise HubError(f"{len(watcher.remaining)} documents were not delivered in time")
        last = max(watcher.done_ms[s] for s in sent) / 1000
        rate = len(throughput_docs) / (last - first)
        latencies = _paced(producer, watcher, pool, rate=args.rate, seconds=args.rate_seconds, workers=workers)
        samples = _long_run(producer, watcher, pool, args.long, hub) if args.long else []
        rss_after = _rss_mb(hub)
        producer.close()
        watcher.close()
        return _Run(
            workers=workers,
            baseline_docs_per_s=round(baseline, 1),
            docs=len(throughput_docs),
            docs_per_s=round(rate, 1),
            ratio_to_baseline=round(rate / baseline, 3),
            offered_per_s=args.rate,
            latency_docs=len(latencies),
            p50_ms=round(_percentile(latencies, 0.50), 1),
            p95_ms=round(_percentile(latencies, 0.95), 1),
            p99_ms=round(_percentile(latencies, 0.99), 1),
            rss_mb_before=round(rss_before, 1),
            rss_mb_after=round(rss_after, 1),
            memory_samples=samples,
        )


def _warm(producer: KafkaProducer, watcher: _Watcher, documents: Sequence[DemoDocument]) -> None:
    """A few documents first, so that group joins and connections are not measured."""
    watcher.expect(documents)
    _publish(producer, documents)
    if not watcher.wait(180.0):
        raise HubError("the hub delivered nothing within 180 s of starting: see DATA/logs/worker-*.log")


def _ticker(watcher: _Watcher, total: int) -> Callable[[], None]:
    last = [time.monotonic()]

    def tick() -> None:
        if time.monotonic() - last[0] > 5:  # noqa: PLR2004 - a progress line every five seconds
            _progress(f"  {total - len(watcher.remaining):,}/{total:,} documents delivered")
            last[0] = time.monotonic()

    return tick


def _paced(
    producer: KafkaProducer,
    watcher: _Watcher,
    pool: Iterator[DemoDocument],
    *,
    rate: float,
    seconds: float,
    workers: int,
) -> list[float]:
    """Offer ``rate`` documents/s for ``seconds``; each document's publish-to-last-delivery latency, ms."""
    count = max(1, int(rate * seconds))
    documents = [next(pool) for _ in range(count)]
    _progress(f"[{workers} worker(s)] latency: {count:,} documents at {rate:g}/s")
    watcher.expect(documents)
    sent: dict[str, int] = {}
    started = time.monotonic()
    for n, document in enumerate(documents):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            watcher.poll(timeout_ms=max(1, int(delay * 1000)))
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sha, at = _send(producer, document)
        sent[sha] = at
    producer.flush()
    if not watcher.wait(300.0):
        raise HubError(f"{len(watcher.remaining)} paced documents were not delivered in time")
    return [float(watcher.done_ms[s] - t) for s, t in sent.items()]


def _long_run(
    producer: KafkaProducer, watcher: _Watcher, pool: Iterator[DemoDocument], count: int, hub: Hub
) -> list[tuple[int, float]]:
    """Stream ``count`` documents in slices, sampling the workers' memory after each slice."""
    step = max(1000, count // 20)
    samples = [(0, round(_rss_mb(hub), 1))]
    done = 0
    while done < count:
        documents = [next(pool) for _ in range(min(step, count - done))]
        watcher.expect(documents)
        _publish(producer, documents)
        if not watcher.wait(max(600.0, len(documents) / 2)):
            raise HubError(f"{len(watcher.remaining)} documents of the long run were not delivered in time")
        done += len(documents)
        samples.append((done, round(_rss_mb(hub), 1)))
        _progress(f"  long run: {done:,}/{count:,} documents, workers' memory {samples[-1][1]} MB")
    return samples


def _counts(args: argparse.Namespace) -> None:
    if args.quick:
        args.docs, args.rate_seconds, args.workers = min(args.docs, 200), min(args.rate_seconds, 3.0), "1"


def run(args: argparse.Namespace) -> int:
    """Measure each worker count on its own fresh hub; print a table (or ``--json``)."""
    _counts(args)
    try:
        worker_counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    except ValueError:
        print("--workers takes numbers separated by commas, e.g. 1,2", file=sys.stderr)
        return 2
    if not worker_counts or min(worker_counts) < 1 or args.docs < 1 or args.rate <= 0:
        print("--workers, --docs and --rate must be positive", file=sys.stderr)
        return 2
    per_run = args.docs + 20 + int(args.rate * args.rate_seconds) + args.long
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-e2e-") as folder:
        root = Path(folder)
        _progress(f"preparing: demo PKI and {per_run * len(worker_counts):,} signed 5 KB documents ...")
        shared = root / "demo"
        create_demo_material(shared)
        documents = _documents(shared, per_run * len(worker_counts), start=int(time.time()) % 100_000 * 10_000)
        pool = iter(documents)
        runs = []
        for workers in worker_counts:
            _link_demo(shared, root / f"hub-{workers}" / "demo")
            try:
                runs.append(_measure(root, workers, args, pool))
            except HubError as exc:
                print(f"bench e2e with {workers} worker(s) failed: {exc}", file=sys.stderr)
                return 1
    if args.json:
        print(json.dumps({"benchmark": "e2e", "runs": [asdict(r) for r in runs]}, ensure_ascii=False))
    else:
        _print(runs)
    return 0


def _link_demo(shared: Path, target: Path) -> None:
    """Every hub of the run uses the PKI the documents were signed with."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(shared, target, dirs_exist_ok=True)


def _print(runs: Sequence[_Run]) -> None:
    print(
        "\nlienthong bench e2e  (durable embedded stack: SeaweedFS + Apache Kafka + worker processes; 5 KB signed "
        "documents;\nbaseline: the same documents produced to and consumed from the same broker, no hub, same run)"
    )
    header = (
        f"{'workers':>7}  {'baseline docs/s':>15}  {'hub docs/s':>10}  {'ratio':>6}  "
        f"{'offered/s':>9}  {'p50 ms':>7}  {'p95 ms':>7}  {'p99 ms':>7}  {'RSS MB before→after':>20}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r.workers:>7}  {r.baseline_docs_per_s:>15,.1f}  {r.docs_per_s:>10,.1f}  {r.ratio_to_baseline:>5.2f}×  "
            f"{r.offered_per_s:>9g}  {r.p50_ms:>7,.0f}  {r.p95_ms:>7,.0f}  {r.p99_ms:>7,.0f}  "
            f"{f'{r.rss_mb_before:.0f} → {r.rss_mb_after:.0f}':>20}"
        )
    for r in runs:
        if r.memory_samples:
            print(f"\nworkers' memory over the long run ({r.workers} worker(s)): documents → MB")
            print("  " + ", ".join(f"{n:,} → {mb:.0f}" for n, mb in r.memory_samples))
    best = max(r.docs_per_s for r in runs)
    p99 = min(r.p99_ms for r in runs)
    offered = min(r.offered_per_s for r in runs)
    print("\naims (issue 10)")
    print(f"  {'≥ 500 documents/s sustained':<44} {best:>8,.1f} docs/s {'met' if best >= 500 else 'MISSED'}")  # noqa: PLR2004
    latency = f"p99 < 1 s at {offered:g} documents/s offered"
    verdict = "met" if p99 < 1000 else "MISSED"  # noqa: PLR2004
    if offered < 100:  # noqa: PLR2004 - the aim is stated at 100/s
        verdict += " (the aim is at 100/s)"
    print(f"  {latency:<44} {p99:>8,.0f} ms     {verdict}")
