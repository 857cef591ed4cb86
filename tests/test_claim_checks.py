"""Large documents through the running hub as claim checks, with the real clients (issue 13, parts 2 and 3).

One hub (real Kafka + SeaweedFS, one worker process, the VXP facade) for the module. Documents of 1, 20 and 120 MB
are built and signed streaming to disk, sent by ``lienthong send --credentials A.json`` (uploaded through the
facade, published as claim checks) and fetched by ``lienthong receive --credentials B.json --save DIR``.

The memory bound, ``MAX_RSS``: 192 MiB (VmHWM) for the worker and for the facade once they have handled the 120 MB
document. Measured here: the worker peaks at ~98 MiB whatever the size (interpreter, faust, Kafka clients, lxml,
cryptography; it streams 1 MiB reads), the facade at ~133 MiB (77 idle; a streamed upload holds up to a few 8 MiB
S3 parts and aiohttp's buffers). Either one holding the 120 MB document whole would start from its idle size plus
120 MB and pass 192 MiB. The growth while handling the 120 MB document after the 20 MB one is bounded too
(``MAX_GROWTH``, 48 MiB; measured 0 and 22 MiB): memory must not follow the document.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from adapters.dms import BAD_CLAIM_CHECK, ClientError, VxpEndpoint
from adapters.kafka import KafkaConnection
from adapters.vxp import VxpClient, VxpCode
from hub.access import issue_credentials
from hub.commands._large import file_chunks, opener
from hub.commands.bench_large import attachment_for, write_large_document
from hub.records import H_REASON, ClaimCheck, inbox_topic, outbox_topic, status_topic
from signer.sign import sign_stream
from storage.objectstore import original_key
from tests.support.hub_fixtures import Outputs, Stack

SENDER = "000.01.00.H41"  # A
RECIPIENT = "000.00.00.H41"  # B: the example document's only recipient
SIZES = (1_000_000, 20_000_000, 120_000_000)
MAX_RSS = 192 * 2**20
MAX_GROWTH = 48 * 2**20


@pytest.fixture(name="stack", scope="module")
def shared_stack(module_stack: Stack) -> Stack:
    """One running hub for the whole module."""
    return module_stack


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the module's documents, credentials and received files."""
    return tmp_path_factory.mktemp("claims")


@pytest.fixture(scope="module")
def credentials(stack: Stack, folder: Path) -> dict[str, Path]:
    """A.json and B.json, as ``lienthong agency credentials ORGANID --json`` writes them."""
    files = {}
    for organ in (SENDER, RECIPIENT):
        path = folder / f"{organ}.json"
        path.write_text(json.dumps(issue_credentials(stack.settings, organ)), encoding="utf-8")
        files[organ] = path
    return files


@pytest.fixture(scope="module")
def documents(stack: Stack, folder: Path) -> Iterator[dict[int, Path]]:
    """One signed document per size from A to B, written and signed streaming to disk (deleted afterwards)."""
    key = stack.material.keys[SENDER]
    chain = stack.material.chains[SENDER]
    out = {}
    for size in SIZES:
        unsigned, signed = folder / f"unsigned-{size}.xml", folder / f"signed-{size}.xml"
        write_large_document(unsigned, attachment_for(size), sender=SENDER)
        with signed.open("wb") as handle:
            for chunk in sign_stream(opener(unsigned), key, chain=chain):
                handle.write(chunk)
        unsigned.unlink()
        out[size] = signed
    yield out
    for path in out.values():
        path.unlink(missing_ok=True)


def _lienthong(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *argv], capture_output=True, text=True, timeout=300, check=False
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in file_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def _peak_rss(pid: int | None) -> int:
    """VmHWM (peak resident set) of process ``pid``, in bytes."""
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def _pids(stack: Stack) -> dict[str, int | None]:
    facade = stack.hub.vxp_facade
    assert facade is not None
    pids = {f"worker-{n}": w.pid for n, w in enumerate(stack.hub.worker_processes)}
    return {**pids, "facade": facade.pid}


def _delivered_shas(outputs: Outputs) -> set[str]:
    return {h.get("lienthong-sha256", b"").decode() for h, _ in outputs.records.get(inbox_topic(RECIPIENT), [])}


def test_large_documents_go_from_send_to_receive_byte_for_byte(
    stack: Stack, documents: dict[int, Path], credentials: dict[str, Path], folder: Path
) -> None:
    """1, 20 and 120 MB documents: send (claim checks through the facade) to receive --save, byte for byte."""
    shas = {size: _sha256_file(path) for size, path in documents.items()}
    outputs = Outputs(stack.connection)
    outputs.skip_existing()
    before = {name: _peak_rss(pid) for name, pid in _pids(stack).items()}
    small = [str(documents[s]) for s in SIZES[:-1]]
    sent = _lienthong("send", "--credentials", str(credentials[SENDER]), *small)
    assert sent.returncode == 0, sent.stderr
    assert outputs.wait_for(lambda o: {shas[s] for s in SIZES[:-1]} <= _delivered_shas(o), timeout=60)
    middle = {name: _peak_rss(pid) for name, pid in _pids(stack).items()}
    sent = _lienthong("send", "--credentials", str(credentials[SENDER]), str(documents[SIZES[-1]]))
    assert sent.returncode == 0, sent.stderr
    assert outputs.wait_for(lambda o: shas[SIZES[-1]] in _delivered_shas(o), timeout=90)
    after = {name: _peak_rss(pid) for name, pid in _pids(stack).items()}
    statuses = [h for h, _ in outputs.records.get(status_topic(SENDER), []) if h.get("lienthong-sha256")]
    assert not [h for h in statuses if h.get(H_REASON)], statuses  # no refusal among A's statuses

    save = folder / "received"
    received = _lienthong(
        "receive", "--credentials", str(credentials[RECIPIENT]), "--save", str(save),
        "--from-beginning", "--timeout", "5", "--group", f"dms.{RECIPIENT}.claims", "--json",
    )  # fmt: skip
    assert received.returncode == 0, received.stderr
    saved = {_sha256_file(p): p for p in (save / inbox_topic(RECIPIENT)).glob("*.xml")}
    for size, path in documents.items():
        assert shas[size] in saved, f"the {size // 1_000_000} MB document was not saved"
        assert saved[shas[size]].stat().st_size == path.stat().st_size
    assert not list(save.rglob("*.part")), "a temporary download was left behind"

    # B's VXP mailbox serves the same claim-checked document, streamed back by downloadEdoc.
    vxp = _endpoint(credentials[RECIPIENT])
    client = VxpClient(vxp.endpoint, vxp.system_id, vxp.secret)
    wanted = f"{SENDER}_{shas[SIZES[1]][:32]}_{RECIPIENT}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and wanted not in {i["docId"] for i in client.received("edoc")["data"]}:
        time.sleep(0.5)
    status, body = client.download_edoc(wanted)
    client.close()
    assert (status, hashlib.sha256(body).hexdigest()) == (200, shas[SIZES[1]])

    print("peak RSS (MiB) before / after 1+20 MB / after 120 MB:")
    for name, peak in after.items():
        print(f"  {name}: {before[name] >> 20} / {middle[name] >> 20} / {peak >> 20}")
        assert peak < MAX_RSS, f"{name} peaked at {peak >> 20} MiB"
        assert peak - middle[name] < MAX_GROWTH, f"{name} grew {(peak - middle[name]) >> 20} MiB"


def _publish(credentials: Path, value: bytes) -> None:
    """Publish ``value`` on A's outbox with A's own Kafka credentials, as any Kafka client could."""
    connection = KafkaConnection.from_credentials(json.loads(credentials.read_text(encoding="utf-8")))
    producer = KafkaProducer(acks="all", **connection.options())
    try:
        producer.send(outbox_topic(SENDER), key=SENDER.encode(), value=value).get(timeout=30)
    finally:
        producer.close()


def _status_reasons(outputs: Outputs) -> list[tuple[str, str]]:
    """(reason, status text) of each hub status on A's status topic."""
    return [
        (h.get(H_REASON, b"").decode(), value.decode("utf-8", "replace"))
        for h, value in outputs.records.get(status_topic(SENDER), [])
    ]


@pytest.mark.parametrize("fault", ["missing", "truncated", "altered"])
def test_bad_claim_check_is_refused_never_delivered(
    stack: Stack, documents: dict[int, Path], credentials: dict[str, Path], fault: str
) -> None:
    """A claim check whose object is missing, truncated or altered: a 02 BAD_CLAIM_CHECK to A, nothing to B."""
    data = documents[SIZES[0]].read_bytes()  # 1 MB: above the claim-check size, so it takes the streamed path
    sha = hashlib.sha256(data).hexdigest()
    key = f"claims/{SENDER}/{fault}-{sha}"
    store = stack.settings.open_store(max_connections=2)
    if fault == "truncated":
        store.put(key, data[:-1000])
    elif fault == "altered":
        store.put(key, data[:-5000] + bytes([data[-5000] ^ 1]) + data[-4999:])
    outputs = Outputs(stack.connection)
    outputs.skip_existing()
    _publish(credentials[SENDER], ClaimCheck(key, sha, len(data)).to_bytes())
    assert outputs.wait_for(lambda o: any(r == "BAD_CLAIM_CHECK" for r, _ in _status_reasons(o)), timeout=60)
    words = {"missing": "no object", "truncated": f"has {len(data) - 1000} bytes", "altered": "SHA-256"}
    assert any(words[fault] in text for r, text in _status_reasons(outputs) if r == "BAD_CLAIM_CHECK")
    outputs.poll(1.0)
    assert outputs.records.get(inbox_topic(RECIPIENT), []) == []


def test_large_document_with_a_broken_signature_is_refused_and_archived(
    stack: Stack, documents: dict[int, Path], credentials: dict[str, Path]
) -> None:
    """A claim-checked document altered after signing: a 02 naming the signature failure; its original archived."""
    data = bytearray(documents[SIZES[0]].read_bytes())
    middle = len(data) // 2
    spot = data.index(b"A", middle)  # a base64 letter of the attachment: still valid base64, no longer signed
    data[spot] = ord("B")
    sha = hashlib.sha256(data).hexdigest()
    key = f"claims/{SENDER}/{sha}"
    store = stack.settings.open_store(max_connections=2)
    store.put(key, bytes(data))
    outputs = Outputs(stack.connection)
    outputs.skip_existing()
    _publish(credentials[SENDER], ClaimCheck(key, sha, len(data)).to_bytes())
    assert outputs.wait_for(lambda o: any(r for r, _ in _status_reasons(o)), timeout=60)
    reasons = {r for r, _ in _status_reasons(outputs) if r}
    assert reasons, "no refusal"
    assert "BAD_CLAIM_CHECK" not in reasons, reasons
    assert store.exists(original_key(sha))  # the refused original is evidence too, copied on the server
    outputs.poll(1.0)
    assert outputs.records.get(inbox_topic(RECIPIENT), []) == []


def _endpoint(credentials: Path) -> VxpEndpoint:
    endpoint = VxpEndpoint.from_credentials(json.loads(credentials.read_text(encoding="utf-8")))
    assert endpoint is not None
    return endpoint


def _reply(endpoint: VxpEndpoint, method: str, parameters: list[tuple[str, str]], body: bytes = b"") -> Any:
    connection, response = endpoint._request(method, parameters, body=io.BytesIO(body), size=len(body))
    try:
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_agency_cannot_write_another_prefix_or_overwrite(stack: Stack, credentials: dict[str, Path]) -> None:
    """Uploads land in the caller's own claims/<OrganId>/ only, create-only, and only with the declared SHA-256."""
    a, b = _endpoint(credentials[SENDER]), _endpoint(credentials[RECIPIENT])
    body = os.urandom(300_000)
    sha = hashlib.sha256(body).hexdigest()
    _, reply = _reply(a, "PUT", [("sha256", sha), ("key", f"claims/{RECIPIENT}/{sha}")], body)
    assert (reply["status"], reply["ErrorCode"]) == ("FAIL", VxpCode.FORBIDDEN.value), reply
    store = stack.settings.open_store(max_connections=2)
    assert not store.exists(f"claims/{RECIPIENT}/{sha}")

    check = a.upload(io.BytesIO(body), len(body), sha)
    assert check.key == f"claims/{SENDER}/{sha}"
    other = os.urandom(len(body))  # an overwrite: other bytes under the same name
    _, reply = _reply(a, "PUT", [("sha256", sha)], other)
    assert reply["status"] == "FAIL", reply
    assert hashlib.sha256(store.get(check.key)).hexdigest() == sha

    with pytest.raises(ClientError, match=BAD_CLAIM_CHECK):  # B may not read what A uploaded
        b.download(check, stack.settings.data_dir / "never.xml")
    assert not (stack.settings.data_dir / "never.xml").exists()


def test_download_with_a_wrong_sha256_leaves_nothing(stack: Stack, credentials: dict[str, Path], folder: Path) -> None:
    """A download that does not hash to its claim check says BAD_CLAIM_CHECK and leaves no file behind."""
    a = _endpoint(credentials[SENDER])
    body = os.urandom(200_000)
    check = a.upload(io.BytesIO(body), len(body), hashlib.sha256(body).hexdigest())
    target = folder / "wrong" / "doc.xml"
    with pytest.raises(ClientError, match=BAD_CLAIM_CHECK):
        a.download(ClaimCheck(check.key, "0" * 64, check.size), target)
    assert list(target.parent.iterdir()) == []
    assert a.download(check, target).read_bytes() == body
