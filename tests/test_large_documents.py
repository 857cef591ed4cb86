"""Large documents (1, 20 and 120 MB) through ``lienthong sign|validate|verify``, in bounded memory.

The documents are built once per module, streamed to disk (``bench_large.write_large_document``); every command
runs as a child process of its own, the way a user runs it, and its peak RSS is measured (the child's VmHWM).

The RSS bound, ``MAX_RSS``: 128 MiB for any command on the 120 MB document. The CLI process alone (interpreter,
lxml, cryptography, every command module) measures ~70 MiB whatever the document; streaming adds 1 MiB chunks,
256 KiB of expat text buffer and the skeleton (~10 KB here). 128 MiB leaves room for allocator noise and is still
below the document's own size, so any code path that holds the document whole (or a tree of it: 4-6x) fails it.
The growth from the 1 MB to the 120 MB document is bounded separately (``MAX_GROWTH``): memory must not follow
the attachment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.commands._large import file_chunks
from hub.commands.bench_large import LargeRun, attachment_for, run_command, write_large_document
from hub.commands.sign import _write
from schemas import InvalidDocument
from schemas._parse import parse_stream
from schemas._stream import memory_chunks
from signer.report import Indication, SubIndication
from signer.sign import sign_stream
from signer.verify import Verifier
from tests.support import require_tool
from tests.support.pki_fixtures import FIXED_NOW, TestPki
from tests.support.signing import key_of, organ_of, policy_for
from tests.test_interop import EXC_C14N, RSA, SHA256, TEMPLATE, _isolated_env

MAX_RSS = 128 * 2**20
MAX_GROWTH = 32 * 2**20
SIZES = (1_000_000, 20_000_000, 120_000_000)
CTE = "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"


@dataclass(frozen=True)
class Signed:
    """One document of a size: unsigned, signed by ``lienthong sign``, and each command's run on it."""

    unsigned: Path
    signed: Path
    runs: dict[str, LargeRun]


def _verify_argv(pki_dir: Path, path: Path) -> list[str]:
    return [
        "verify",
        str(path),
        "--json",
        "--trust",
        str(pki_dir / "root.pem"),
        "--crl",
        str(pki_dir / "crl.pem"),
        "--crl",
        str(pki_dir / "root-crl.pem"),
        "--at",
        FIXED_NOW.isoformat(),
    ]


@pytest.fixture(scope="module")
def documents(pki: TestPki, pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Signed]]:
    """Each size written, signed, validated and verified by the CLI, once for the module (then deleted)."""
    folder = tmp_path_factory.mktemp("large")
    out: dict[int, Signed] = {}
    for size in SIZES:
        unsigned, signed = folder / f"unsigned-{size}.xml", folder / f"signed-{size}.xml"
        write_large_document(unsigned, attachment_for(size), sender=organ_of(pki.agency_rsa))
        key = ["--key", str(pki_dir / "agency-rsa.key"), "--cert", str(pki_dir / "agency-rsa.pem")]
        key += ["--chain", str(pki_dir / "chain.pem")]
        runs = {"sign": run_command(["sign", str(unsigned), str(signed), *key], unsigned)}
        runs["validate"] = run_command(["validate", "--json", str(signed)], signed)
        runs["verify"] = run_command(_verify_argv(pki_dir, signed), signed)
        out[size] = Signed(unsigned, signed, runs)
    yield out
    shutil.rmtree(folder, ignore_errors=True)


def _same_but_signature(unsigned: Path, signed: Path) -> bool:
    """Whether ``signed`` is ``unsigned`` plus one ds:Signature before the header's end tag, and nothing else.

    Compared chunk by chunk: neither file is read whole.
    """
    head = unsigned.open("rb").read(64_000)
    cut = head.index(b"</edXML:edXMLHeader>")
    extra = signed.stat().st_size - unsigned.stat().st_size
    with signed.open("rb") as handle:
        if handle.read(cut) != head[:cut]:
            return False
        fragment = handle.read(extra)
        if not (
            fragment.startswith(b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">')
            and fragment.endswith(b"</Signature>")
        ):
            return False
        with unsigned.open("rb") as original:
            original.seek(cut)
            for chunk in iter(lambda: handle.read(2**20), b""):
                if original.read(len(chunk)) != chunk:
                    return False
            return original.read(1) == b""


@pytest.mark.parametrize("size", SIZES, ids=[f"{s // 1_000_000}MB" for s in SIZES])
def test_cli_signs_validates_and_verifies(documents: dict[int, Signed], size: int) -> None:
    """sign, validate and verify succeed; the signed file is the original plus the Signature, byte for byte."""
    doc = documents[size]
    for name, run in doc.runs.items():
        assert run.code == 0, (name, run.stderr[-500:])
    assert _same_but_signature(doc.unsigned, doc.signed)
    assert json.loads(doc.runs["validate"].stdout)["valid"] is True
    verdict = json.loads(doc.runs["verify"].stdout)
    assert (verdict["indication"], verdict["signer"]["organ_id"]) == ("TOTAL_PASSED", "000.00.00.G22")


def test_peak_rss_stays_bounded_at_120_mb(documents: dict[int, Signed]) -> None:
    """Each command's peak RSS on the 120 MB document is under MAX_RSS, and grew by under MAX_GROWTH from 1 MB."""
    small, large = documents[SIZES[0]].runs, documents[SIZES[-1]].runs
    for name, run in large.items():
        assert run.max_rss_bytes < MAX_RSS, (name, run.max_rss_bytes / 2**20)
        assert run.max_rss_bytes - small[name].max_rss_bytes < MAX_GROWTH, (name, run.max_rss_bytes / 2**20)


def test_xmlsec1_signed_large_document_verifies(pki_dir: Path, documents: dict[int, Signed], tmp_path: Path) -> None:
    """A 20 MB document signed by the xmlsec1 CLI is TOTAL_PASSED and valid through the streaming commands."""
    tool = require_tool("xmlsec1")
    template, out = tmp_path / "template.xml", tmp_path / "xmlsec1.xml"
    signature = TEMPLATE.format(method=RSA, digest=SHA256, c14n=EXC_C14N).encode()
    data = documents[SIZES[1]].unsigned.read_bytes()
    template.write_bytes(data.replace(b"</edXML:edXMLHeader>", signature + b"</edXML:edXMLHeader>", 1))
    del data
    keys = f"{pki_dir / 'agency-rsa.key'},{pki_dir / 'agency-rsa.pem'},{pki_dir / 'ca.pem'}"
    subprocess.run(
        [tool, "--sign", "--privkey-pem", keys, "--output", str(out), str(template)],
        check=True,
        capture_output=True,
        env=_isolated_env(tmp_path),
        timeout=120,
    )
    run = run_command(_verify_argv(pki_dir, out), out)
    assert json.loads(run.stdout)["indication"] == "TOTAL_PASSED", run.stdout
    assert run.max_rss_bytes < MAX_RSS


@pytest.fixture(scope="module")
def signed_20mb(documents: dict[int, Signed]) -> bytes:
    """The 20 MB signed document's bytes (the attacks below edit them)."""
    return documents[SIZES[1]].signed.read_bytes()


def _verify(pki: TestPki, data: bytes) -> tuple[Indication, SubIndication | None, tuple[str, ...]]:
    report = Verifier(policy_for(pki), clock=lambda: FIXED_NOW).verify_stream(lambda: memory_chunks(data))
    return report.indication, report.subindication, report.errors


def _refusal(data: bytes) -> InvalidDocument:
    with pytest.raises(InvalidDocument) as caught:
        parse_stream(memory_chunks(data))
    return caught.value


def test_streamed_verify_passes_and_catches_a_changed_subject(pki: TestPki, signed_20mb: bytes) -> None:
    """The intact 20 MB document passes through verify_stream; one changed word in its Subject is HASH_FAILURE."""
    assert _verify(pki, signed_20mb)[0] is Indication.TOTAL_PASSED
    forged = signed_20mb.replace(b"<edXML:Subject>", b"<edXML:Subject>X", 1)
    assert _verify(pki, forged)[:2] == (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE)


def test_attacks_on_a_large_document_are_refused_the_same_way(pki: TestPki, signed_20mb: bytes) -> None:
    """DTD, entity, XSW shapes and a wrong namespace are refused through the streaming path with today's reasons."""
    declaration, _, rest = signed_20mb.partition(b"\n")
    dtd = declaration + b'\n<!DOCTYPE edXML [<!ENTITY a "aaaa">]>\n' + rest
    assert _refusal(dtd).reason == "DTD_FORBIDDEN"
    assert _verify(pki, dtd)[:2] == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE)
    entity = signed_20mb.replace(b"<edXML:Subject>", b"<edXML:Subject>&xxe;", 1)
    assert _refusal(entity).reason == "MALFORMED"
    start = signed_20mb.index(b"<Signature ")
    end = signed_20mb.index(b"</Signature>") + len(b"</Signature>")
    signature, unsigned = signed_20mb[start:end], signed_20mb[:start] + signed_20mb[end:]
    moved = unsigned.replace(b"</edXML:edXMLBody>", signature + b"</edXML:edXMLBody>", 1)
    indication, sub, errors = _verify(pki, moved)
    assert (indication, sub) == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE)
    assert "must be a child of /edXML/edXMLEnvelope/edXMLHeader" in errors[0]
    twice = signed_20mb.replace(b"</edXML:AttachmentEncoded>", signature + b"</edXML:AttachmentEncoded>", 1)
    assert "2 ds:Signature elements" in _verify(pki, twice)[2][0]
    nested = signed_20mb.replace(b"</edXML:edXMLBody>", b"<edXML:edXMLHeader/></edXML:edXMLBody>", 1)
    assert _verify(pki, nested)[:2] == (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE)
    wrong = signed_20mb.replace(b"http://www.mic.gov.vn/TBT/QCVN_102_2016", b"urn:not-edxml")
    assert _refusal(wrong).reason == "WRONG_NAMESPACE"
    assert _verify(pki, wrong)[:2] == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE)


@pytest.mark.parametrize("tenth", range(1, 10))
def test_truncated_large_document_is_malformed(pki: TestPki, signed_20mb: bytes, tenth: int) -> None:
    """Cut at every 10% of its length, the 20 MB document is MALFORMED to validate and FORMAT_FAILURE to verify."""
    cut = signed_20mb[: len(signed_20mb) * tenth // 10]
    assert _refusal(cut).reason == "MALFORMED"
    assert _verify(pki, cut)[:2] == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE)


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"\n</edXML:Content", b"!\n</edXML:Content"), (b"\n</edXML:Content", b"=A\n</edXML:Content")],
    ids=["bad-character", "data-after-padding"],
)
def test_bad_base64_in_the_last_chunk_names_the_attachment(signed_20mb: bytes, old: bytes, new: bytes) -> None:
    """Invalid base64 in the attachment's last megabyte is refused with the element path the tree path names."""
    position = signed_20mb.rindex(old)
    assert len(signed_20mb) - position < 2**20  # in the last chunk read
    bad = signed_20mb[:position] + new + signed_20mb[position + len(old) :]
    problems = [(p.path, p.message) for p in _refusal(bad).problems]
    assert problems == [(CTE, "is not valid base64")]


def test_max_document_bytes_is_enforced_while_streaming(documents: dict[int, Signed], pki_dir: Path) -> None:
    """max_document_bytes (LIENTHONG_MAX_DOCUMENT_BYTES, --max-bytes) caps the commands and parse_stream, unsized."""
    path = documents[SIZES[1]].signed
    env = {**os.environ, "LIENTHONG_MAX_DOCUMENT_BYTES": "10000000"}
    run = run_command(["validate", "--json", str(path)], path, env=env)
    assert run.code == 1
    assert json.loads(run.stdout)["errors"][0]["message"].endswith("the limit is 10000000")
    with pytest.raises(InvalidDocument) as caught:
        parse_stream(file_chunks(path), max_bytes=10_000_000)
    assert caught.value.reason == "TOO_LARGE"
    run = run_command([*_verify_argv(pki_dir, path), "--max-bytes", "10000000"], path)
    assert json.loads(run.stdout)["errors"] == [f"document is {path.stat().st_size} bytes; the limit is 10000000"]
    assert (run.code, json.loads(run.stdout)["subindication"]) == (1, "FORMAT_FAILURE")


def test_sign_writes_nothing_when_the_document_changes_between_passes(pki: TestPki, tmp_path: Path) -> None:
    """If the bytes differ on sign's second pass, the signed stream fails and OUT is never created."""
    original = write_large_document(tmp_path / "doc.xml", 10_000, sender=organ_of(pki.agency_rsa))
    data = (tmp_path / "doc.xml").read_bytes()
    assert len(data) == original
    reads = iter([data, data.replace(b"<edXML:Subject>", b"<edXML:Subject>X", 1)])
    chunks = sign_stream(lambda: memory_chunks(next(reads), 4096), key_of(pki.agency_rsa))
    target = tmp_path / "signed.xml"
    with pytest.raises(InvalidDocument):
        _write(chunks, str(target))
    assert list(tmp_path.iterdir()) == [tmp_path / "doc.xml"]


def test_bench_large_prints_rates_and_rss() -> None:
    """`lienthong bench large --sizes 1` prints MB/s, the SHA-256 baseline and the peak RSS of each command."""
    run = run_command(["bench", "large", "--sizes", "1"], Path(__file__))
    assert run.code == 0, run.stderr[-500:]
    rows = [line for line in run.stdout.splitlines() if " MiB" in line]
    assert [row.split()[2] for row in rows] == ["sign", "validate", "verify"]


def test_base64_on_one_line_is_streamed_too(pki: TestPki, tmp_path: Path) -> None:
    """A 6 MB document whose attachment is one base64 line signs, validates and verifies through the streams."""
    path = tmp_path / "one-line.xml"
    write_large_document(path, attachment_for(6_000_000), sender=organ_of(pki.agency_rsa), line=False)
    data = path.read_bytes()
    assert data.count(b"\n") < 100
    signed = b"".join(sign_stream(lambda: memory_chunks(data), key_of(pki.agency_rsa), chain=pki.agency_rsa.chain))
    assert parse_stream(memory_chunks(signed)).kind == "edoc"
    assert _verify(pki, signed)[0] is Indication.TOTAL_PASSED
