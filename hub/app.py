"""The faust-streaming app: topics, agents and the worker's services.

Agents, in the order a document meets them:

- ``intake`` (every ``lienthong.outbox.<OrganId>``, and ``lienthong.axis.inbound``): reads the priority and forwards
  the record's value to the urgent or the bulk work lane, so Priority 3–4 documents never queue behind bulk traffic.
  The lane record's key is the outbox's owner: the sender as Kafka authenticated it (only that agency may write its
  outbox), whatever key the agency gave; headers only the hub may write are dropped. A record of the axis connector
  has no owner: it gets no key and ``lienthong-origin: axis`` instead (``hub.process`` takes its From/OrganId);
- ``urgent`` / ``bulk`` (``lienthong.work.*``): the ``DocumentProcessor`` stages (dedup, verify, archive, route)
  in a thread, then the deliveries, statuses and dead letters are produced and acknowledged before the input
  offset may be committed (at-least-once), with the in-doubt check (``hub.guard``) making each delivery exactly
  once; the ledger events of the document go to ``lienthong.ledger`` as one record;
- ``retry`` (``lienthong.work.retry``): documents held for lack of current revocation data (``hub.hold``), processed
  like the lanes' once due or once the revocation service's CRLs changed; a record not yet due goes back to the end
  of the topic after ``_REQUEUE_AFTER`` seconds, so no hold stops its partition. Workers rebuild their verifier
  whenever the revocation service (``hub.revocation``, CRLs fetched and kept fresh on a thread) has new CRLs;
- ``ledger`` (``lienthong.ledger``, one partition, so one writer): appends events to the Merkle ledger, writes a
  segment per batch before the batch's offsets are committed, and seals a tree head every few seconds;
- ``directory`` (``lienthong.directory``, one partition, so one worker): one ledger event per applied signed
  directory record, and the refused ones counted. Every worker also follows the topic itself (``_follow_directory``)
  and applies the records that verify; no document is processed before it has read the topic to its end.

Failures of our own (object store or broker unavailable) are retried with backoff, never skipped: the record is
not acknowledged until its work is done. A worker with records waiting that handles none for a minute exits to be
restarted (``hub.watchdog``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from hub.access import topic_plan
from hub.deadletter import H_REPLAY_OF
from hub.directory import Directory
from hub.guard import DeliveryGuard
from hub.hold import Hold, requeued
from hub.ledger_mac import ledger_key, ledger_output, mac_refusal
from hub.metrics import HubMetrics
from hub.process import DocumentProcessor, Outcome
from hub.records import (
    AXIS_INBOUND,
    AXIS_OUTBOUND,
    DEADLETTER,
    DIRECTORY,
    H_INPUT,
    H_ORIGIN,
    LEDGER,
    ORIGIN_AXIS,
    OUTBOX_PREFIX,
    PRODUCER_BATCH_BYTES,
    PRODUCER_LINGER_MS,
    WORK_BULK,
    WORK_RETRY,
    WORK_URGENT,
    InboundRecord,
    OutboundRecord,
    outbox_owner,
    outbox_topic,
    without_hub_headers,
)
from hub.revocation import RevocationService
from hub.settings import HubSettings
from hub.signed_directory import Change, DirectoryState, RecordRefused, load_admin_certificates
from hub.transport import broker_url
from hub.trust import ConfigError, load_certificates, trust_policy
from hub.watchdog import StallWatch
from schemas.errors import HubError
from signer.policy import OcspFetcher, TrustPolicy
from signer.timestamp import TimestampError
from signer.verify import Verifier
from storage.ledger import (
    DEFAULT_TIME_SKEW,
    Ledger,
    SourcePosition,
    TimestampAuthority,
    create_seal_identity,
    decode_ledger_record,
)
from storage.objectstore import ObjectStore
from storage.s3 import S3ObjectStore

__all__ = ["HubWorker", "timestamp_authority"]

log = logging.getLogger("lienthong")

T = TypeVar("T")

_REPLAY_HEADERS = frozenset({H_REPLAY_OF})  # the one hub header an outbox record may carry (an operator's replay)

_RETRY_FIRST = 0.2  # seconds before the first retry of our own failure
_RETRY_MAX = 5.0  # the longest wait between retries
_LEDGER_BATCH = 2000  # events per ledger batch (one segment write per batch)
_LEDGER_WITHIN = 0.5  # seconds a ledger batch waits to fill
_INTAKE_CONCURRENCY = 8  # records forwarded at once: a forward waits for the broker's ack
_STAGE_THREADS = 16  # documents processed at once off the event loop (they wait on S3 most of the time)
_LAG_INTERVAL = 2.0  # seconds between consumer-lag readings
_RESUBSCRIBE_AFTER = 3.0  # seconds faust waits before subscribing to new outboxes (its default is 45)
_OUTBOXES = OUTBOX_PREFIX + "*"  # the lag metric's label for all outboxes together
_EXIT_STALLED = 75  # EX_TEMPFAIL: the supervisor (lienthong up, systemd) starts the worker again
_RETRY_CONCURRENCY = 4  # held records looked at at once (each may wait up to _REQUEUE_AFTER for its time)
_REQUEUE_AFTER = 10.0  # seconds a held record not yet due waits before it is put back (the partition moves on)
_HOLD_POLL = 0.5  # seconds between looks at the clock and the revocation data while a held record waits


class _NoTimestamp(HubError):
    """No acceptable time-stamp for a tree head this time; ``reason`` (unreachable, invalid) labels the metric."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def timestamp_authority(settings: HubSettings) -> TimestampAuthority | None:
    """The TSA at ``tsa_url`` as the ledger's time-stamper (None when unset); ConfigError without ``tsa_trust``.

    Each token is verified as it arrives, before the head that carries it is stored: the TSA's chain to
    ``tsa_trust``, its critical timeStamping usage, the imprint (SHA-256 of the head's signature) and this request's
    nonce (``request_timestamp``), and a time no older than the head (within ``DEFAULT_TIME_SKEW``), so that
    ``ledger verify`` will accept it. Any failure raises ``_NoTimestamp``.
    """
    if not settings.tsa_url:
        return None
    if not settings.tsa_trust:
        raise ConfigError("tsa_url is set but tsa_trust names no anchor for the TSA (its root certificate, PEM)")
    from adapters.http_clients import HttpClientError, request_timestamp  # noqa: PLC0415 - network code when asked

    url = settings.tsa_url
    anchors = [cert for path in settings.tsa_trust for cert in load_certificates(path)]

    def stamp(signature: bytes) -> bytes:
        asked_at = datetime.now(UTC)  # after the head's own time
        try:
            token = request_timestamp(url, signature, anchors=anchors)
        except HttpClientError as exc:
            raise _NoTimestamp("unreachable", f"the TSA cannot be reached: {exc}") from exc
        except TimestampError as exc:
            raise _NoTimestamp("invalid", f"the TSA at {url} gave no acceptable token: {exc}") from exc
        if token.gen_time + DEFAULT_TIME_SKEW < asked_at:
            when = token.gen_time.isoformat()
            raise _NoTimestamp("invalid", f"the TSA at {url} dates its token {when}: its clock is behind")
        return token.token_der

    return stamp


def open_store(settings: HubSettings) -> S3ObjectStore:
    """The archive bucket, with a connection for every stage thread and the ledger's."""
    return settings.open_store(max_connections=_STAGE_THREADS + 2)


def build_policy(
    settings: HubSettings,
    directory: Directory,
    *,
    revocation: RevocationService | None = None,
    ocsp: OcspFetcher | None = None,
) -> TrustPolicy:
    """The verification policy of the settings, with the directory's pins.

    With ``revocation``: its current CRLs (fetched and from files) and ``ocsp`` (one client shared across rebuilds,
    so its cache survives them); without it, the CRL files and a new OCSP client, as ``lienthong verify`` does.
    """
    policy = trust_policy(
        anchors=settings.trust,
        intermediates=settings.intermediates,
        crls=settings.crls if revocation is None else (),  # the service holds the files' CRLs too
        revocation=settings.revocation,
        ocsp=settings.ocsp and revocation is None,
        pins=directory.pins(),
    )
    if revocation is None:
        return policy
    return dataclasses.replace(policy, crls=revocation.current_crls(), ocsp=ocsp)


class HubWorker:
    """One worker process: the faust app plus the object store, directory, verifier, ledger and metrics."""

    def __init__(self, settings: HubSettings, *, metrics: HubMetrics | None = None) -> None:
        self.settings = settings
        self._ledger_key = ledger_key(settings)  # first: a worker that cannot sign its ledger records does not start
        self.metrics = metrics or HubMetrics.create()
        self.store: ObjectStore = open_store(settings)
        # Workers start from lienthong.directory (the YAML file only seeds it, on the first ``lienthong up``).
        self.directory_state = DirectoryState(load_admin_certificates(settings))
        self.directory = self.directory_state.directory
        self._directory_ready = asyncio.Event()  # set once the topic was read to its end offsets at start
        self._directory_read = 0  # the next offset the follower reads
        self._directory_verdicts: dict[int, Change | RecordRefused] = {}  # by offset, for the ``directory`` agent
        self._directory_progress = asyncio.Condition()
        self.seal = create_seal_identity(settings.data_dir)
        self._tsa = timestamp_authority(settings)
        self._tsa_trouble: str | None = None  # the reason of the last failed time-stamp, until one succeeds
        # CRLs fetched from distribution points and kept fresh on a thread; cached CRLs are loaded before it starts.
        self.revocation = RevocationService.from_settings(
            settings, self.store, on_refusal=lambda reason: self.metrics.crl_refused.labels(reason.value).inc()
        )
        self.revocation.start()
        self._ocsp: OcspFetcher | None = None
        if settings.ocsp:
            from adapters.http_clients import ocsp_fetcher  # noqa: PLC0415 - network code only when asked for

            self._ocsp = ocsp_fetcher()
        self._revocation_version = -1  # the service's version the verifier was built with
        self._revocation_changed_at = time.time()  # held records queued before this are retried at once
        self._use_directory(self.directory)
        self.guard = DeliveryGuard(settings.kafka)
        self.ledger: Ledger | None = None
        self._stopping = False  # set when the worker stops: every later ledger batch is sealed at once
        self._in_flight: dict[str, asyncio.Lock] = {}
        self._stall = StallWatch()  # records waiting but none handled: leave, to be restarted (hub.watchdog)
        self._topics: dict[str, faust.TopicT] = {}
        self._threads = ThreadPoolExecutor(max_workers=_STAGE_THREADS, thread_name_prefix="lienthong-stage")
        # The ledger is not thread-safe and has one writer: every ledger call runs on this one thread.
        self._ledger_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lienthong-ledger")
        self.app = self._build_app()

    # --- the faust app ---------------------------------------------------------------------------------------

    def _build_app(self) -> faust.App:  # noqa: C901 - the agents are defined in one place, in flow order
        settings = self.settings
        app = faust.App(
            settings.consumer_group,
            broker=broker_url(settings.kafka_bootstrap),
            broker_credentials=settings.kafka.faust_credentials(),
            store="memory://",
            autodiscover=False,
            topic_allow_declare=False,  # topics are pre-created with explicit partitions (``lienthong up``)
            topic_disable_leader=True,
            # Not faust's exactly_once: its transactions hide aborted records only from read_committed consumers,
            # and the hub cannot choose how each agency's DMS reads its inbox. hub.guard gives exactly-once to all.
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            broker_commit_interval=1.0,
            # A revoked partition's records still being handled finish, and their offsets are committed, before
            # the rebalance goes on: otherwise their outputs could land after the next owner's in-doubt check had
            # read the output topics, and be produced twice. (A worker killed mid-record is what hub.guard is for.)
            stream_wait_empty=True,
            web_enabled=False,  # ``lienthong up`` serves /metrics for every worker
            producer_acks=-1,
            producer_linger_ms=PRODUCER_LINGER_MS,
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
        )
        # Every agency's outbox; faust cannot subscribe by pattern, so outboxes of agencies added later are added
        # to this topic's list (``_subscribe_outboxes``) and faust resubscribes.
        outboxes = _OutboxTopic(app, topics=[AXIS_INBOUND, *(outbox_topic(a.id) for a in self.directory)], **_RAW)
        self._outboxes = outboxes
        app.topics._resubscribe_sleep_lock_seconds = _RESUBSCRIBE_AFTER  # type: ignore[attr-defined]  # noqa: SLF001
        urgent = _raw_topic(app, WORK_URGENT)
        bulk = _raw_topic(app, WORK_BULK)
        ledger = _raw_topic(app, LEDGER)
        lanes = {WORK_URGENT: urgent, WORK_BULK: bulk}
        retry = _raw_topic(app, WORK_RETRY)

        @app.agent(outboxes, name="intake", concurrency=_INTAKE_CONCURRENCY)
        async def intake(stream: faust.StreamT[bytes]) -> None:
            await _each_acked_after(stream, lambda event: self._forward(_record(event), lanes), self._stall)

        async def work(stream: faust.StreamT[bytes], lane: str) -> None:
            await _each_acked_after(stream, lambda event: self._handle(_record(event)), self._stall)
            log.info("%s lane stopped", lane)

        @app.agent(urgent, name="urgent", concurrency=4)
        async def urgent_lane(stream: faust.StreamT[bytes]) -> None:
            await work(stream, "urgent")

        @app.agent(bulk, name="bulk", concurrency=16)
        async def bulk_lane(stream: faust.StreamT[bytes]) -> None:
            await work(stream, "bulk")

        @app.agent(retry, name="retry", concurrency=_RETRY_CONCURRENCY)
        async def retry_lane(stream: faust.StreamT[bytes]) -> None:
            await _each_acked_after(stream, lambda event: self._retry_held(_record(event)), self._stall)
            log.info("retry lane stopped")

        @app.agent(ledger, name="ledger")
        async def ledger_writer(stream: faust.StreamT[bytes]) -> None:
            # take_events (faust-streaming's Stream, not in its StreamT stub): the records with their offsets.
            async for batch in stream.take_events(_LEDGER_BATCH, within=_LEDGER_WITHIN):  # type: ignore[attr-defined]
                records = [_record(e) for e in batch]
                await self._retry("ledger", functools.partial(self._on_ledger_thread, self._append_ledger, records))

        @app.agent(_raw_topic(app, DIRECTORY), name="directory")
        async def directory_changes(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await self._record_directory_change(_record(event))

        @app.timer(interval=settings.seal_interval_seconds)  # type: ignore[untyped-decorator]
        async def seal() -> None:
            if self.ledger is not None:  # only the worker that owns the ledger partition seals
                await self._retry("seal", lambda: self._on_ledger_thread(self._seal))

        @app.timer(interval=_LAG_INTERVAL)  # type: ignore[untyped-decorator]
        async def consumer_lag() -> None:
            self._record_lag()
            self._check_revocation()  # with no document flowing, new CRLs still reach the verifier and the metric

        @app.task  # type: ignore[untyped-decorator]
        async def follow_directory() -> None:
            await self._follow_directory()

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def seal_on_stop(_sender: Any, **_: Any) -> None:
            # After the last commit: a stopped hub leaves a signed tree head over everything it recorded. The ledger
            # agent may still append its last batch after this; it then seals too (``_stopping``).
            self._stopping = True
            await asyncio.to_thread(self.revocation.stop, 2)
            if self.ledger is not None:
                try:
                    await self._on_ledger_thread(self._seal)
                except (HubError, OSError) as exc:
                    log.warning("no final tree head (the next start seals): %s", exc)

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(_sender: Any, assigned: set[Any], **_: Any) -> None:
            await self._note_assignment(assigned)

        return app

    async def _forward(self, record: InboundRecord, lanes: dict[str, faust.TopicT]) -> None:
        """Intake: put the record on its lane, keyed by its outbox's owner; a record forwarded before a crash is not.

        The value and the agency's own headers travel untouched; the key becomes the authenticated sender. A record
        from the axis connector gets no key and the origin header only the intake sets.
        """
        headers = [*without_hub_headers(record.headers, keep=_REPLAY_HEADERS)]
        if record.topic == AXIS_INBOUND:
            key = None
            headers.append((H_ORIGIN, ORIGIN_AXIS))
        else:
            sender = outbox_owner(record.topic)
            assert sender is not None  # the intake reads outboxes and the axis's inbound topic only
            key = sender.encode()
        lane = self.processor.lane(record)
        cause = record.source
        in_doubt = await self.guard.in_doubt(record.topic, record.partition, record.offset)
        since_ms = record.timestamp_ms
        if in_doubt and await self.guard.already_delivered(lane, cause, since_ms=since_ms, topics=list(lanes)):
            return
        headers.append((H_INPUT, cause.encode()))
        send = functools.partial(lanes[lane].send, key=key, value=record.value, headers=headers)
        await self._retry("intake", lambda: _sent(send()))
        if in_doubt:
            self.guard.note_delivered(lane, cause)

    # --- one document ----------------------------------------------------------------------------------------

    async def _handle(self, record: InboundRecord) -> None:
        await self._directory_ready.wait()  # documents read before the directory would all be UNKNOWN_SENDER
        self._check_revocation()
        # Two copies of one document in flight at once (a sender's resend) must not both pass the dedup check.
        sha = hashlib.sha256(record.value or b"").hexdigest()
        lock = self._in_flight.setdefault(sha, asyncio.Lock())
        try:
            async with lock:
                await self._handle_one(record)
        finally:
            if not lock.locked():
                self._in_flight.pop(sha, None)

    async def _handle_one(self, record: InboundRecord) -> None:
        started = time.perf_counter()
        outcome = await self._retry("process", lambda: self._run(self._process, record))
        self.metrics.stage_seconds.labels("process").observe(time.perf_counter() - started)
        in_doubt = await self.guard.in_doubt(record.topic, record.partition, record.offset)
        # All outputs of the document at once (different topics): they share producer batches and one wait.
        # The ledger record (events and receipt) is an output like the others: once per input record, so that a
        # replay after a crash does not record the document twice (the ledger no longer remembers every event).
        ledger_record = outcome.ledger_record(self._ledger_key)
        outputs = (*outcome.records, *(() if ledger_record is None else (ledger_record,)))
        sends = [self._deliver(out, record, in_doubt=in_doubt) for out in outputs]
        await asyncio.gather(*sends)
        self._count(outcome, record)

    async def _deliver(self, out: OutboundRecord, source: InboundRecord, *, in_doubt: bool) -> None:
        cause = source.source  # the work record this output answers: one output per topic per cause
        if in_doubt and await self.guard.already_delivered(
            out.topic, cause, since_ms=source.timestamp_ms, topics=self._output_topics()
        ):
            log.info("skipping the output of %s to %s: produced before a restart", cause, out.topic)
            return
        headers = [*out.headers, (H_INPUT, cause.encode())]
        topic = self._topics.get(out.topic)
        if topic is None:  # one faust Topic per output topic: building one costs more than the send
            topic = self._topics[out.topic] = _raw_topic(self.app, out.topic)
        await self._retry("deliver", lambda: _sent(topic.send(key=out.key, value=out.value, headers=headers)))
        if in_doubt:
            self.guard.note_delivered(out.topic, cause)

    # --- held documents (hub.hold) ----------------------------------------------------------------------------

    async def _retry_held(self, record: InboundRecord) -> None:
        """A record of ``lienthong.work.retry``: process it when due (or new revocation data came), else requeue it.

        A record not yet due waits at most ``_REQUEUE_AFTER`` seconds from when it was queued, then goes back to the
        end of the topic, so one long hold never stops the partition. Both ways, its outputs are produced once
        (``_deliver``'s in-doubt check) before it is acknowledged.
        """
        await self._directory_ready.wait()
        if await self._due(record):
            await self._handle(record)
            return
        in_doubt = await self.guard.in_doubt(record.topic, record.partition, record.offset)
        await self._deliver(requeued(record), record, in_doubt=in_doubt)

    async def _due(self, record: InboundRecord) -> bool:
        """True once ``record`` is due or the revocation data changed since it was queued; False: requeue it."""
        hold = Hold.of(record)
        if hold is None:  # not written by a worker of this version: processed, which holds it properly again
            return True
        queued = record.timestamp_ms / 1000
        while True:
            self._check_revocation()
            now = time.time()
            if now >= hold.retry_at.timestamp() or self._revocation_changed_at > queued:
                return True
            if now >= queued + _REQUEUE_AFTER:
                return False
            await asyncio.sleep(min(_HOLD_POLL, max(0.0, hold.retry_at.timestamp() - now)))

    def _check_revocation(self) -> None:
        """Rebuild the verifier when the revocation service's CRLs changed; keep the nextUpdate metric current."""
        if self.revocation.version != self._revocation_version:
            self._use_directory(self.directory)
            self._revocation_changed_at = time.time()
        if (stale_at := self.revocation.earliest_next_update) is not None:
            self.metrics.crl_next_update.set(stale_at.timestamp())

    def _process(self, record: InboundRecord) -> Outcome:
        try:
            return self.processor.process(record)
        except (HubError, OSError):
            raise  # our store or network: retried by the caller
        except Exception as exc:  # a bug of ours must not stop the hub: park the record, replayable
            log.exception("internal error on %s", record.source)
            return self.processor.internal_error(record, exc)

    def _output_topics(self) -> list[str]:
        topics, _ = topic_plan(self.settings, self.directory)
        return [
            t
            for t in topics
            if t.startswith(("lienthong.inbox.", "lienthong.status."))
            or t in (AXIS_OUTBOUND, DEADLETTER, LEDGER, WORK_RETRY)
        ]

    def _count(self, outcome: Outcome, record: InboundRecord) -> None:
        self.metrics.documents.labels("route", outcome.outcome, outcome.reason).inc()
        self.metrics.count_route(
            outcome.outcome,
            sender=outcome.sender,
            recipients=outcome.recipients,
            status_code=outcome.status_code,
            known=self._known_agencies,
        )
        self.metrics.bytes_in.inc(len(record.value or b""))
        if outcome.outcome == "rejected":
            self.metrics.dead_letters.labels(outcome.reason).inc()
        for warning in outcome.warnings:
            self.metrics.edxml_warnings.labels(outcome.sender, warning.code).inc()
        if record.timestamp_ms:
            self.metrics.end_to_end_seconds.observe(max(0.0, time.time() - record.timestamp_ms / 1000))

    # --- the ledger ------------------------------------------------------------------------------------------

    def _append_ledger(self, records: Sequence[InboundRecord]) -> None:
        if self.ledger is None:
            self.ledger = Ledger.open(self.store)
        for record in records:
            refusal = mac_refusal(self._ledger_key, record.value, record.headers)
            if refusal is not None:  # not a worker's: forged, or produced without the key. Never appended.
                self.metrics.ledger_refused.labels(refusal).inc()
                log.warning("ledger record %s refused (%s): not produced by a hub worker", record.source, refusal)
                continue
            events, receipts = decode_ledger_record(record.value or b"")
            # A record at or before the last stored position is a batch read again after a crash: skipped.
            position = SourcePosition(record.topic, record.partition, record.offset)
            self.ledger.append_many(events, receipts=receipts, position=position)
        self.ledger.flush()
        self.metrics.ledger_size.set(self.ledger.size)
        if self._stopping:  # a batch that arrived after the stop's seal is sealed too
            self._seal()

    def _seal(self) -> None:
        """Sign (and, with ``tsa_url``, time-stamp) a tree head over everything stored; nothing new keeps the last.

        Without an acceptable time-stamp no head is stored: the next seal interval tries again, and the ledger writer
        goes on appending meanwhile (documents never wait for sealing: their ledger records are outputs like others).
        """
        if self.ledger is None or not self.ledger.size:
            return
        try:
            head = self.ledger.seal(self.seal, at=datetime.now(UTC), tsa=self._tsa)
        except _NoTimestamp as exc:
            self.metrics.tsa_errors.labels(exc.reason).inc()
            if self._tsa_trouble != exc.reason:  # one line when the trouble starts, not one per interval
                log.warning("tree head not sealed: %s; retrying every %g s", exc, self.settings.seal_interval_seconds)
            self._tsa_trouble = exc.reason
            return
        if self._tsa_trouble is not None:
            log.warning("time-stamped tree heads again (%s)", self.settings.tsa_url)
            self._tsa_trouble = None
        self.metrics.ledger_last_seal.set(head.time.timestamp())
        self.metrics.ledger_last_seal_size.set(head.size)

    def _record_lag(self) -> None:
        """``lienthong_consumer_lag{topic}``: records on this worker's partitions not yet committed."""
        consumer = self.app.consumer
        lag = dict.fromkeys((_OUTBOXES, WORK_URGENT, WORK_BULK, WORK_RETRY, LEDGER), 0)
        committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})  # faust has no public reader
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            topic = _OUTBOXES if tp.topic.startswith(OUTBOX_PREFIX) else tp.topic
            if topic in lag and high is not None and high >= 0:
                lag[topic] += max(0, high - (committed.get(tp) or 0))
        for topic, records in lag.items():
            self.metrics.consumer_lag.labels(topic).set(records)
        # Each held document has one record on the retry topic, committed once it is requeued or processed.
        self.metrics.held_documents.set(lag[WORK_RETRY])
        waiting = {topic: n for topic, n in lag.items() if topic != LEDGER and n}
        if self._stall.stalled(sum(waiting.values()), time.monotonic()):
            log.error(
                "no record handled for %g s while %s wait on this worker's partitions: exiting to be restarted",
                self._stall.after,
                ", ".join(f"{n} on {topic}" for topic, n in sorted(waiting.items())),
            )
            logging.shutdown()
            os._exit(_EXIT_STALLED)

    # --- directory and assignments ---------------------------------------------------------------------------

    def _use_directory(self, directory: Directory) -> None:
        """Verify with ``directory``'s pins and route by it from now on; read the outboxes of new agencies."""
        self.directory = directory
        self._known_agencies = frozenset(agency.id for agency in directory)  # the metrics' agency labels
        self._subscribe_outboxes(directory)
        self._revocation_version = self.revocation.version  # read first: a change during the build is seen next
        self.verifier = Verifier(build_policy(self.settings, directory, revocation=self.revocation, ocsp=self._ocsp))
        self.processor = DocumentProcessor(
            settings=self.settings,
            store=self.store,
            verifier=self.verifier,
            directory=lambda: self.directory,
            seal=self.seal,
            observe=self.revocation.observe_der,
        )

    def _subscribe_outboxes(self, directory: Directory) -> None:
        """Add the outboxes of agencies the intake does not read yet; faust resubscribes a few seconds later."""
        outboxes: faust.TopicT | None = getattr(self, "_outboxes", None)  # None while the app is being built
        if outboxes is None:
            return
        new = [outbox_topic(a.id) for a in directory if outbox_topic(a.id) not in outboxes.topics]
        if new:
            log.info("reading the outboxes of %s", ", ".join(new))
            topics = [*outboxes.topics, *new]
            # The agent's actors read clones of the topic (faust's Channel.clone): each needs the new list.
            clones = [c for c in self.app.topics if isinstance(c, _OutboxTopic)]
            for channel in (outboxes, *clones):
                channel.topics = list(topics)
            self.app.topics._flag_changes()  # type: ignore[attr-defined]  # noqa: SLF001 - faust has no public way

    async def _follow_directory(self) -> None:
        """Read ``lienthong.directory`` from the start, then keep up, applying only the records that verify.

        Each record's verdict is kept for the ``directory`` agent (``_record_directory_change``). Documents wait
        (``_directory_ready``) until the records on the topic at start are read. A lost broker connection resumes
        where the reading stopped.
        """
        while True:
            await self._retry("directory", self._read_directory)

    async def _read_directory(self) -> None:
        partition = TopicPartition(DIRECTORY, 0)
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **self.settings.kafka.options())
        await consumer.start()
        try:
            consumer.assign([partition])
            consumer.seek(partition, self._directory_read)
            end = (await consumer.end_offsets([partition]))[partition]
            while True:
                if self._directory_read >= end and not self._directory_ready.is_set():
                    log.info("directory read: %d agencies", len(self.directory_state.directory))
                    self._directory_ready.set()
                batches = await consumer.getmany(timeout_ms=1000)
                for message in (m for messages in batches.values() for m in messages):
                    self._directory_verdicts[message.offset] = self._apply_directory_record(
                        (message.key or b"").decode(), message.value
                    )
                    self._directory_read = message.offset + 1
                if self.directory_state.directory is not self.directory:  # one new verifier per batch of records
                    self._use_directory(self.directory_state.directory)
                async with self._directory_progress:
                    self._directory_progress.notify_all()
        finally:
            await consumer.stop()

    def _apply_directory_record(self, organ_id: str, value: bytes | None) -> Change | RecordRefused:
        try:
            return self.directory_state.apply(organ_id, value)
        except RecordRefused as exc:
            return exc

    async def _record_directory_change(self, record: InboundRecord) -> None:
        """The ``directory`` agent: one ledger event per applied record; a refused one is logged and counted."""
        async with self._directory_progress:  # the follower decides: it read the records before this one
            await self._directory_progress.wait_for(lambda: self._directory_read > record.offset)
        organ_id = (record.key or b"").decode()
        verdict = self._directory_verdicts.pop(record.offset, None)
        if verdict is None:  # compacted away before this worker's follower read it: a later record replaced it
            log.info("directory record %r at offset %d was superseded before it was read", organ_id, record.offset)
            return
        if isinstance(verdict, RecordRefused):
            log.warning(
                "refused directory record %r at offset %d (%s): %s", organ_id, record.offset, verdict.reason, verdict
            )
            self.metrics.directory_refused.labels(verdict.reason).inc()
            return
        log.info("directory: %s %s (issued %s)", verdict.action.value, organ_id, verdict.issued_at.isoformat())
        event = verdict.ledger_event(datetime.now(UTC))
        in_doubt = await self.guard.in_doubt(record.topic, record.partition, record.offset)
        await self._deliver(ledger_output(self._ledger_key, [event]), record, in_doubt=in_doubt)

    async def _note_assignment(self, assigned: set[Any]) -> None:
        work = [
            (tp.topic, tp.partition)
            for tp in assigned
            if tp.topic in (WORK_URGENT, WORK_BULK, WORK_RETRY, DIRECTORY, AXIS_INBOUND)
            or tp.topic.startswith(OUTBOX_PREFIX)
        ]
        if work:
            ready = self.guard.expect(work)  # first, before any await: records of these partitions wait for it
            try:
                await self._retry("in-doubt look-up", lambda: self.guard.assigned(self.settings.consumer_group, work))
            finally:
                self.guard.looked_up(ready)

    # --- plumbing --------------------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def _on_ledger_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._ledger_thread, fn, *args)

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        delay = _RETRY_FIRST
        while True:
            try:
                return await attempt()
            except (TimeoutError, HubError, OSError, KafkaError) as exc:
                if isinstance(exc, HubError) and exc.__class__.__name__ in {"DocumentRejected", "InvalidDocument"}:
                    raise
                log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
                self.metrics.documents.labels(what, "retry", type(exc).__name__).inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)


async def _each_acked_after(
    stream: faust.StreamT[bytes], handle: Callable[[Any], Awaitable[None]], watch: StallWatch
) -> None:
    """Run ``handle`` on each event of ``stream`` and ack the event only once ``handle`` has returned.

    faust acks an event in its iterator's ``finally``, so an agent stopped while handling one (a worker leaving, a
    rebalance) would ack, and then commit, a record whose outputs were never sent: that record would be lost.
    Acked by hand, a record cut short is read again by whoever takes its partition (``hub.guard`` then keeps its
    outputs to one each).
    """
    manual = stream.noack()  # type: ignore[attr-defined]  # faust-streaming's Stream, not in its StreamT stub
    async for event in manual.events():
        watch.started()
        try:
            await handle(event)
        finally:
            watch.finished(time.monotonic())
        await manual.ack(event)


async def _sent(pending: Awaitable[Any]) -> None:
    """Wait until the broker has acknowledged a send (faust's send returns a future of the ack)."""
    ack = await pending
    await ack


_RAW: Final[dict[str, Any]] = {"key_serializer": "raw", "value_serializer": "raw"}  # documents are never re-serialised


class _OutboxTopic(faust.Topic):
    """The intake's topic: every outbox. Its own class, so that its clones (one per reading actor) can be found."""


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """A topic whose keys and values are bytes as they are (documents are never re-serialised)."""
    return app.topic(name, **_RAW)


def _record(event: Any) -> InboundRecord:
    message = event.message
    headers = tuple((k, v if isinstance(v, bytes) else bytes(v or b"")) for k, v in (message.headers or ()))
    return InboundRecord(
        key=message.key,
        value=message.value,
        headers=headers,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int((message.timestamp or 0) * 1000),
    )
