"""``lienthong bench large``: validate, verify and sign 1, 20 and 120 MB documents: MB/s and peak RSS.

Each command runs as the real CLI (``hub.cli``) in a child process of its own, so its peak RSS (the child's
``VmHWM`` as it exits; ``os.wait4``'s ``ru_maxrss`` where there is no /proc, which on Linux may carry the
forking parent's high-water mark) is the command's and nothing else's: interpreter and imports included. Its MB/s is
timed inside the child around the command only (interpreter start-up excluded). The baseline, in the same child
and run, is SHA-256 of the same file read in the same 1 MiB chunks: the ratio says what reading XML, checking it
and canonicalising it costs on top of reading and hashing the bytes at all.

``write_large_document`` builds the documents (the tests use it too): an edXML document whose one attachment has
the asked size, written to disk as it is generated, base64 in 76-column lines as DMS libraries write it. Sizes are
the documents' (a 120 MB document carries an 89 MB attachment; 120 MB of attachment would be 162 MB of document,
over the default ``max_document_bytes``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas import build_document
from schemas.examples import example_edoc
from signer import devpki

__all__ = ["LargeRun", "attachment_for", "register_bench", "run_command", "write_large_document"]

#: Base64 in 76-column lines: 77 bytes of document per 57 bytes of attachment.
_GROWTH = 77 / 57
_SENDER = "000.00.00.G22"
_MARK = b"AAECAwQF"  # the base64 of the 6-byte placeholder attachment, replaced by the streamed one
# 57 bytes make one 76-column line of base64; 16,384 lines per block keep the writer's memory at ~1.3 MB.
_LINE_BYTES = 57
_BLOCK_LINES = 16_384


def attachment_for(document_bytes: int) -> int:
    """The attachment size that makes ``write_large_document`` write a document of about ``document_bytes``."""
    return max(int((document_bytes - 4_000) / _GROWTH), 1)


def write_large_document(path: Path, attachment_bytes: int, *, sender: str = _SENDER, line: bool = True) -> int:
    """Write a valid unsigned edXML document with one attachment of ``attachment_bytes`` to ``path``; its size.

    Streams to disk (memory stays ~1 MB whatever the size). The content is a repeating pattern of all byte
    values; ``line=False`` writes the base64 as one line, as some libraries do.
    """
    template = build_document(example_edoc(sender=sender, attachment_bytes=6))
    head, mark, tail = template.partition(b">" + _MARK + b"<")
    if not mark:  # the builder changed its layout: fail loudly rather than write a wrong document
        raise ValueError("the example document's attachment was not found")
    pattern = bytes(range(256)) * (_LINE_BYTES * _BLOCK_LINES // 256 + 1)
    block = pattern[: _LINE_BYTES * _BLOCK_LINES]
    encoded = base64.encodebytes(block) if line else base64.b64encode(block)
    with path.open("wb") as out:
        out.write(head + b">" + (b"\n" if line else b""))
        left = attachment_bytes
        while left >= len(block):
            out.write(encoded)
            left -= len(block)
        if left:
            last = block[:left]
            out.write(base64.encodebytes(last) if line else base64.b64encode(last))
        out.write(b"<" + tail)
    return path.stat().st_size


@dataclass(frozen=True, slots=True)
class LargeRun:
    """One command run in a child process: its exit code, peak RSS, time in the command and hash baseline."""

    code: int
    max_rss_bytes: int
    seconds: float
    sha256_seconds: float
    stdout: str  # what the command printed (the child's own result line removed)
    stderr: str


# The child: time the command in-process (no start-up, no imports), then SHA-256 of the file in the same chunks.
_CHILD = """
import hashlib, json, sys, time
from pathlib import Path
from hub.cli import build_parser
from hub.commands._large import file_chunks
argv, file = json.loads(sys.argv[1]), sys.argv[2]
args = build_parser().parse_args(argv)
start = time.perf_counter()
code = args.func(args)
seconds = time.perf_counter() - start
start = time.perf_counter()
digest = hashlib.sha256()
for chunk in file_chunks(Path(file)):
    digest.update(chunk)
hashed = time.perf_counter() - start
try:  # this process's own high-water mark since exec (wait4's ru_maxrss may carry the forking parent's)
    status = Path("/proc/self/status").read_text()
    hwm = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
except (OSError, StopIteration, ValueError):
    hwm = 0
print(json.dumps({"code": code, "seconds": seconds, "sha256_seconds": hashed, "max_rss_bytes": hwm}))
"""


def run_command(argv: list[str], file: Path, *, env: dict[str, str] | None = None) -> LargeRun:
    """Run ``lienthong ARGV`` in a child process; measure its peak RSS and its time in the command."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, arguments as a list
            [sys.executable, "-c", _CHILD, json.dumps(argv), str(file)], stdout=out, stderr=err, env=env
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's rusage (RUSAGE_CHILDREN mixes them all)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    return LargeRun(
        code=int(result.get("code", child.returncode or 1)),
        max_rss_bytes=int(result.get("max_rss_bytes") or usage.ru_maxrss * 1024),  # ru_maxrss: kilobytes
        seconds=float(result.get("seconds", 0.0)),
        sha256_seconds=float(result.get("sha256_seconds", 0.0)),
        stdout="\n".join(lines[:-1] if result else lines),
        stderr=stderr,
    )


def register_bench(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench large``."""
    sub = group.add_parser("large", help="validate, verify, sign 1/20/120 MB documents: MB/s and peak RSS")
    sub.add_argument("--sizes", default="1,20,120", help="document sizes in MB (10^6 bytes), comma-separated")
    sub.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print MB/s and peak RSS of each command at each size, with SHA-256 of the same bytes as the baseline."""
    sizes = [int(float(text) * 1_000_000) for text in args.sizes.split(",") if text.strip()]
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-large-") as folder:
        work = Path(folder)
        print("preparing: a throwaway PKI ...", flush=True)
        key, cert, root = _pki(work)
        print(
            "\nlienthong bench large  (each command a child process: MB/s timed in the command, peak RSS of the "
            "process; baseline: SHA-256 of the same file, same chunks, same child)"
        )
        header = f"{'document':>9} {'command':<9} {'MB/s':>8} {'SHA-256 MB/s':>13} {'SHA-256 ×':>10} {'peak RSS':>10}"
        print(header)
        print("-" * len(header))
        failed = False
        for size in sizes:
            unsigned, signed = work / f"unsigned-{size}.xml", work / f"signed-{size}.xml"
            write_large_document(unsigned, attachment_for(size))
            commands = (
                ("sign", ["sign", str(unsigned), str(signed), "--key", str(key), "--cert", str(cert)], unsigned),
                ("validate", ["validate", str(signed)], signed),
                ("verify", ["verify", str(signed), "--trust", str(root), "--revocation", "none"], signed),
            )
            for name, argv, file in commands:
                if not file.exists():  # signing failed: nothing to validate or verify
                    continue
                run_ = run_command(argv, file)
                megabytes = file.stat().st_size / 1e6
                failed |= run_.code != 0
                rate = megabytes / run_.seconds if run_.seconds else 0.0
                baseline = megabytes / run_.sha256_seconds if run_.sha256_seconds else 0.0
                ratio = f"{baseline / rate:>9.1f}×" if rate else f"{'-':>10}"
                verdict = "" if run_.code == 0 else f"  FAILED (exit {run_.code}): {run_.stderr.strip()[-200:]}"
                print(
                    f"{megabytes:>6.0f} MB {name:<9} {rate:>8.0f} {baseline:>13.0f} {ratio} "
                    f"{run_.max_rss_bytes / 2**20:>7.0f} MiB{verdict}",
                    flush=True,
                )
            unsigned.unlink()
            signed.unlink(missing_ok=True)
    return 1 if failed else 0


def _pki(work: Path) -> tuple[Path, Path, Path]:
    """A root, an issuing CA and an agency leaf for the sender; (key, certificate with chain, root) PEM files."""
    nb, na = datetime(2025, 1, 1, tzinfo=UTC), datetime(2035, 1, 1, tzinfo=UTC)
    root = devpki.make_root("Bench Root CA", not_before=nb, not_after=na)
    ca = devpki.make_ca(root, "Bench Issuing CA", not_before=nb, not_after=na)
    leaf = devpki.make_leaf(ca, "Bench Agency", organ_id=_SENDER, not_before=nb, not_after=na)
    paths = work / "key.pem", work / "cert.pem", work / "root.pem"
    paths[0].write_bytes(leaf.key_pem())
    paths[1].write_bytes(leaf.cert_pem() + ca.cert_pem())
    paths[2].write_bytes(root.cert_pem())
    return paths
