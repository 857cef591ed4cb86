"""``lienthong bench ...``: throughput benchmarks, each printed against a raw-crypto baseline of the same run.

``bench`` is a group: ``bench verify`` and ``bench sign`` live here; later benchmarks (``bench archive``,
``bench e2e``) register through ``_BENCH_MODULES``, each module exposing ``register_bench(subparsers)``.

Documents are built with ``schemas.build_document`` (a 5 KB công văn and a 200 KB one carrying a base64
attachment), signed by a throwaway PKI from ``signer.devpki``; verification runs the full policy (path,
CRL revocation required, directory pins) exactly as the hub does, at a fixed instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hub.commands._common import warn
from schemas import build_document
from schemas.examples import example_edoc
from signer import devpki
from signer.keys import PemKey
from signer.policy import TrustPolicy
from signer.sign import sign_document
from signer.verify import Verifier

__all__ = ["DEFAULT_SECONDS", "register"]

#: Long enough for a stable rate on a busy laptop, short enough to run in CI.
DEFAULT_SECONDS = 2.0
#: Document sizes measured (bytes, approximately) and whether the document carries an attachment.
SIZES: tuple[tuple[str, int, bool], ...] = (("5 KB", 5_000, False), ("200 KB", 200_000, True))

# Modules adding ``bench <name>``; each defines ``register_bench(subparsers)``.
_BENCH_MODULES: tuple[str, ...] = (
    "hub.commands.bench_parse",
    "hub.commands.bench_archive",
    "hub.commands.bench_e2e",
    "hub.commands.bench_vxp",
    "hub.commands.bench_large",
)

_SENDER = "000.00.00.G22"
_AT = datetime(2026, 6, 1, tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` group with ``verify`` and ``sign``."""
    parser = subparsers.add_parser("bench", help="throughput benchmarks (documents/s and ratio to raw crypto)")
    group = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, func, help_text in (
        ("verify", _run_verify, "verify 5 KB and 200 KB documents: full policy, single process and all cores"),
        ("sign", _run_sign, "sign 5 KB and 200 KB documents with an RSA-2048 PEM key"),
    ):
        sub = group.add_parser(name, help=help_text)
        sub.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measuring time per row")
        sub.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the pool rows")
        sub.set_defaults(func=func)
    for module in _BENCH_MODULES:
        importlib.import_module(module).register_bench(group)


# --- the workload (built once per process, from picklable bytes) -------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """Everything a worker needs, as bytes (certificates and keys do not pickle)."""

    key_pem: bytes
    leaf_pem: bytes
    chain_pem: bytes
    crls_der: tuple[bytes, ...]
    pins: tuple[tuple[str, str], ...]
    unsigned: tuple[bytes, ...]  # one per SIZES entry
    signed: tuple[bytes, ...]


def _make_spec() -> _Spec:
    nb, na = datetime(2025, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
    root = devpki.make_root("Bench Root CA", not_before=nb, not_after=na)
    ca = devpki.make_ca(root, "Bench Issuing CA", not_before=nb, not_after=na)
    leaf = devpki.make_leaf(ca, "Bench Agency", organ_id=_SENDER, not_before=nb, not_after=na)
    this_update, next_update = _AT - timedelta(days=1), _AT + timedelta(days=30)
    crls = tuple(devpki.make_crl(issuer, [], this_update=this_update, next_update=next_update) for issuer in (ca, root))
    key = PemKey.load(leaf.key_pem(), leaf.cert_pem())
    unsigned = tuple(_document(size, attachment) for _, size, attachment in SIZES)
    return _Spec(
        key_pem=leaf.key_pem(),
        leaf_pem=leaf.cert_pem(),
        chain_pem=leaf.chain_pem(),
        crls_der=tuple(c.public_bytes(serialization.Encoding.DER) for c in crls),
        pins=((_SENDER, devpki.spki_sha256(leaf.cert)),),
        unsigned=unsigned,
        # Only the leaf in KeyInfo (the issuing CA comes from the policy), as agencies commonly send it.
        signed=tuple(sign_document(doc, key) for doc in unsigned),
    )


def _document(size: int, attachment: bool) -> bytes:
    """A valid edXML document of about ``size`` bytes once signed (the signature adds ~2 KB)."""
    base = len(build_document(example_edoc()))
    room = max(size - base - 2_000, 0)
    if attachment:  # base64 grows the attachment by 4/3
        return build_document(example_edoc(attachment_bytes=room * 3 // 4))
    return build_document(example_edoc(content_padding=room // 2))  # Vietnamese text: ~2 bytes a character


class _Workload:
    def __init__(self, spec: _Spec) -> None:
        self.spec = spec
        chain = x509.load_pem_x509_certificates(spec.chain_pem)
        self.key = PemKey.load(spec.key_pem, spec.leaf_pem)
        self.chain = tuple(chain)
        policy = TrustPolicy(
            anchors=(chain[-1],),
            intermediates=tuple(chain[:-1]),
            crls=tuple(x509.load_der_x509_crl(d) for d in spec.crls_der),
            pins={organ: frozenset({pin}) for organ, pin in spec.pins},
        )
        self.verifier = Verifier(policy, clock=lambda: _AT)
        raw_key = self.key.private_key
        assert isinstance(raw_key, rsa.RSAPrivateKey)
        self.raw_key = raw_key
        self.raw_public = raw_key.public_key()
        self.raw_signature = raw_key.sign(b"bench", padding.PKCS1v15(), hashes.SHA256())

    def task(self, name: str, index: int) -> Callable[[], object]:
        if name == "verify":
            doc = self.spec.signed[index]
            return lambda: self.verifier.verify(doc, at=_AT)
        if name == "sign":
            doc = self.spec.unsigned[index]
            return lambda: sign_document(doc, self.key)
        if name == "raw-verify":
            return lambda: self.raw_public.verify(self.raw_signature, b"bench", padding.PKCS1v15(), hashes.SHA256())
        return lambda: self.raw_key.sign(b"bench", padding.PKCS1v15(), hashes.SHA256())


_WORKER: dict[str, _Workload] = {}


def _init_worker(spec: _Spec) -> None:
    _WORKER["w"] = _Workload(spec)


def _count(task: Callable[[], object], seconds: float) -> tuple[int, float]:
    """Run ``task`` repeatedly for ``seconds``; return (calls, elapsed)."""
    task()  # warm caches (path validation, decoded certificates), as in a running hub
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            task()
        calls += 20
        now = time.perf_counter()
        if now >= deadline:
            return calls, now - start


def _pool_task(name: str, index: int, seconds: float) -> tuple[int, float]:
    return _count(_WORKER["w"].task(name, index), seconds)


def _rate_single(work: _Workload, name: str, index: int, seconds: float) -> float:
    calls, elapsed = _count(work.task(name, index), seconds)
    return calls / elapsed


def _rate_pool(pool: ProcessPoolExecutor, workers: int, name: str, index: int, seconds: float) -> float:
    futures = [pool.submit(_pool_task, name, index, seconds) for _ in range(workers)]
    return sum(calls / elapsed for calls, elapsed in (f.result() for f in futures))


def _run(args: argparse.Namespace, name: str) -> int:
    raw = "raw-verify" if name == "verify" else "raw-sign"
    warn(f"bench {name}: preparing a test PKI, documents, {args.workers} worker processes ...")
    spec = _make_spec()
    work = _Workload(spec)
    rows: list[tuple[str, str, int, float, float]] = []
    processes = ("1 process", f"{args.workers} processes")
    labels = [f"{what}, {procs}" for procs in processes for what in (f"raw RSA-2048 {name}", *(s[0] for s in SIZES))]
    steps = iter(enumerate(labels, 1))

    def step() -> None:
        number, what = next(steps)
        warn(f"bench {name}: measuring {what} ({number}/{len(labels)}, {args.seconds:g} s)")

    step()
    raw_single = _rate_single(work, raw, 0, args.seconds)
    for (label, _, _), index in zip(SIZES, range(len(SIZES)), strict=True):
        step()
        rate = _rate_single(work, name, index, args.seconds)
        rows.append((label, processes[0], len(spec.signed[index]), rate, raw_single))
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_init_worker, initargs=(spec,)) as pool:
        step()
        raw_pool = _rate_pool(pool, args.workers, raw, 0, args.seconds)
        for (label, _, _), index in zip(SIZES, range(len(SIZES)), strict=True):
            step()
            rate = _rate_pool(pool, args.workers, name, index, args.seconds)
            rows.append((label, processes[1], len(spec.signed[index]), rate, raw_pool))
    baseline = "RSA-2048 verify" if name == "verify" else "RSA-2048 sign"
    print(f"\nlienthong bench {name}  ({args.seconds:g} s per row; baseline: raw {baseline}, same run)")
    header = f"{'document':<9} {'processes':<12} {'bytes':>8} {'docs/s':>10} {'raw ops/s':>11} {'cost × raw':>11}"
    print(header)
    print("-" * len(header))
    for label, procs, size, rate, baseline_rate in rows:
        print(f"{label:<9} {procs:<12} {size:>8} {rate:>10,.0f} {baseline_rate:>11,.0f} {baseline_rate / rate:>10.1f}×")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    """Benchmark verification."""
    return _run(args, "verify")


def _run_sign(args: argparse.Namespace) -> int:
    """Benchmark signing."""
    return _run(args, "sign")
