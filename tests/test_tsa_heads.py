"""Time-stamped tree heads: with ``tsa_url``, each head carries a real ``openssl ts`` token, and audits check it.

One hub for the module (``start_stack`` with the session's ``tsa_server``), sealing every second; the tests build on
each other in file order. The last test reads the session's running ``lienthong up --demo`` instead of a new demo.
"""

from __future__ import annotations

import hashlib
import io
import re
import urllib.request
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from adapters.dms import HubClient
from adapters.http_clients import request_timestamp
from hub.cli import main
from hub.embedded.tsa import TSA_CERT_FILE, TSA_CHAIN_FILE, TSA_KEY_FILE, EmbeddedTsa
from hub.settings import HubSettings
from hub.up import wait_until
from schemas import build_document
from schemas.examples import example_edoc
from signer.sign import sign_document
from storage.ledger import HEADS_PREFIX, EventKind, Ledger, SignedTreeHead, verify_tree_head
from storage.objectstore import ObjectStore
from tests.support.demo_fixtures import RunningDemo
from tests.support.hub_fixtures import Outputs, Stack, start_stack
from tests.support.pki_fixtures import TestPki
from tests.support.server_fixtures import TsaServer

pytestmark = pytest.mark.servers

SENDER = "000.00.00.H41"
RECIPIENT = "000.01.00.H41"
SEAL_INTERVAL = 1.0  # seconds between the hub's seals
WAIT = 60.0  # the longest any outcome may take (the broker and the store share 2 cores with other tests)


@pytest.fixture(scope="module")
def tsa_hub(tmp_path_factory: pytest.TempPathFactory, tsa_server: TsaServer) -> Iterator[Stack]:
    """The module's hub: tree heads time-stamped by the test TSA, checked against its root."""
    root = tmp_path_factory.mktemp("tsa-heads")
    anchor = root / "tsa-root.pem"
    anchor.write_bytes(tsa_server.anchor.public_bytes(Encoding.PEM))
    stack = start_stack(root / "data", seal_interval=SEAL_INTERVAL, tsa_url=tsa_server.url, tsa_trust=(anchor,))
    try:
        yield stack
    finally:
        stack.hub.stop()


@pytest.fixture(scope="module")
def sent(tsa_hub: Stack) -> list[str]:
    """The SHA-256 of the documents sent while the TSA answers (the bundle tests export the first)."""
    return [_send(tsa_hub, n) for n in (1, 2, 3)]


def test_every_sealed_head_carries_a_token_that_verifies(
    tsa_hub: Stack, sent: list[str], tsa_server: TsaServer
) -> None:
    """Every stored head has an RFC 3161 token by the TSA, over its signature, dated at (not before) its sealing."""
    store = _store(tsa_hub)
    assert wait_until(
        lambda: bool(_heads(store)) and _heads(store)[-1].size >= _ledger_size(store) > 0, timeout=WAIT, every=0.25
    )
    seal_anchor = x509.load_pem_x509_certificate(tsa_hub.settings.seal_cert_path.read_bytes())
    for head in _heads(store):
        token = verify_tree_head(head, [seal_anchor], tsa_anchors=[tsa_server.anchor], require_timestamp=True)
        assert token is not None
        assert token.tsa_subject.startswith("CN=lienthong Test TSA")
        assert token.digest == hashlib.sha256(head.signature).digest()
        assert head.time - timedelta(seconds=2) <= token.gen_time <= head.time + timedelta(minutes=1)
    data = str(tsa_hub.settings.data_dir)
    assert main(["ledger", "verify", "--data", data, "--tsa-trust", str(_anchor_file(tsa_hub))]) == 0


def test_tsa_down_no_head_without_token_and_documents_still_delivered(
    tsa_hub: Stack, sent: list[str], tsa_server: TsaServer
) -> None:
    """With the TSA down, documents are delivered and no head is stored; back up, heads with tokens cover them."""
    store = _store(tsa_hub)
    outputs = Outputs(tsa_hub.connection)
    outputs.skip_existing()
    tsa_server.server.stop()
    try:
        sealed_before = _heads(store)[-1].size
        sha = _send(tsa_hub, 10)
        assert outputs.wait_for(lambda o: _delivered(o, sha), timeout=WAIT)
        # Its events are stored, in segments, and two seal intervals passed without a token.
        assert wait_until(lambda: _ledger_size(store) > sealed_before, timeout=WAIT, every=0.25)
        assert wait_until(lambda: _tsa_errors(tsa_hub) >= 2, timeout=WAIT, every=0.25)
        assert all(head.timestamp is not None for head in _heads(store))
        assert _heads(store)[-1].size == sealed_before
    finally:
        tsa_server.server.start()
        outputs.close()
    assert wait_until(lambda: _heads(store)[-1].size >= _ledger_size(store) > sealed_before, timeout=WAIT, every=0.25)
    assert all(head.timestamp is not None for head in _heads(store))


def test_bundle_passes_audit_verify_and_shows_the_tsa_time(
    tsa_hub: Stack, sent: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``audit verify`` of an exported bundle checks the head's token and prints its time and the TSA."""
    bundle = _export(tsa_hub, sent[0], tmp_path)
    assert main(["audit", "verify", str(bundle), *_trust(tsa_hub), "--tsa-trust", str(_anchor_file(tsa_hub))]) == 0
    line = _stamp_line(capsys.readouterr().out)
    assert line.startswith("PASSED")
    stamped = datetime.fromisoformat(re.search(r": (\S+) by ", line).group(1))  # type: ignore[union-attr]
    sealed = SignedTreeHead.from_bytes(zipfile.ZipFile(bundle).read("tree-head.json")).time
    assert sealed - timedelta(seconds=2) <= stamped <= sealed + timedelta(minutes=1)
    assert "by CN=lienthong Test TSA" in line


def test_bundle_with_an_altered_token_fails_with_the_reason(
    tsa_hub: Stack, sent: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle whose token's TSTInfo was changed (its serial) fails ``audit verify``: the token was altered."""
    bundle = _export(tsa_hub, sent[0], tmp_path)
    altered = tmp_path / "altered.zip"
    _rewrite_token(bundle, altered)
    assert main(["audit", "verify", str(altered), *_trust(tsa_hub), "--tsa-trust", str(_anchor_file(tsa_hub))]) == 1
    line = _stamp_line(capsys.readouterr().out)
    assert line.startswith("FAILED")
    assert "the token was altered" in line


def test_bundle_verified_with_another_tsa_root_fails_with_the_reason(
    tsa_hub: Stack, sent: list[str], pki: TestPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token checked against another root than its TSA's fails ``audit verify`` and ``ledger verify``."""
    bundle = _export(tsa_hub, sent[0], tmp_path)
    other = tmp_path / "other-root.pem"
    other.write_bytes(pki.untrusted_root.cert_pem())
    assert main(["audit", "verify", str(bundle), *_trust(tsa_hub), "--tsa-trust", str(other)]) == 1
    line = _stamp_line(capsys.readouterr().out)
    assert line.startswith("FAILED")
    assert "the TSA certificate is not trusted" in line
    assert main(["ledger", "verify", "--data", str(tsa_hub.settings.data_dir), "--tsa-trust", str(other)]) == 1
    assert "the TSA certificate is not trusted" in capsys.readouterr().out


def test_the_demo_time_stamps_its_heads_and_the_readme_audit_commands_pass(
    running_demo: RunningDemo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``up --demo`` keeps its TSA in its settings; heads and a bundle verify with the demo root as the README says."""
    data = running_demo.data
    settings = HubSettings.load(data / "settings.yaml")
    assert settings.tsa_url
    assert settings.tsa_trust == (data / "demo" / "trust" / "root.pem",)
    store = settings.open_store(max_connections=2)
    head = _heads(store)[-1]
    root = x509.load_pem_x509_certificate((data / "demo" / "trust" / "root.pem").read_bytes())
    seal = x509.load_pem_x509_certificate((data / "hub-cert.pem").read_bytes())
    token = verify_tree_head(head, [seal], tsa_anchors=[root], require_timestamp=True)
    assert token is not None
    assert token.tsa_subject.startswith("CN=lienthong Demo TSA")
    ledger = Ledger.open(store)
    doc = next(e.sha256 for i in range(ledger.size) if (e := ledger.event(i)).kind is EventKind.DELIVERED)
    out = tmp_path / "B.zip"
    assert main(["audit", "export", doc, "--out", str(out), "--data", str(data)]) == 0
    trust = ["--trust", str(data / "hub-cert.pem"), "--trust", str(data / "demo" / "trust" / "root.pem")]
    assert main(["audit", "verify", str(out), *trust, "--tsa-trust", str(data / "demo" / "trust" / "root.pem")]) == 0
    line = _stamp_line(capsys.readouterr().out)
    assert line.startswith("PASSED")
    assert "by CN=lienthong Demo TSA" in line
    assert (
        main(["ledger", "verify", "--data", str(data), "--tsa-trust", str(data / "demo" / "trust" / "root.pem")]) == 0
    )


# --- helpers --------------------------------------------------------------------------------------------------


def _send(stack: Stack, number: int) -> str:
    """Send a signed document from SENDER to RECIPIENT; its SHA-256."""
    edoc = example_edoc(
        sender=SENDER, recipients=(RECIPIENT,), number=number, notation="TSA", day=datetime.now(UTC).date()
    )
    data = sign_document(build_document(edoc), stack.material.keys[SENDER])
    client = HubClient(stack.connection, organ_id=SENDER)
    client.send_many([data])
    client.close()
    return hashlib.sha256(data).hexdigest()


def _delivered(outputs: Outputs, sha: str) -> bool:
    return any(headers.get("lienthong-sha256", b"").decode() == sha for _, headers, _ in outputs.deliveries())


def _store(stack: Stack) -> ObjectStore:
    return stack.settings.open_store(max_connections=2)


def _heads(store: ObjectStore) -> list[SignedTreeHead]:
    """The stored tree heads, by size."""
    return [SignedTreeHead.from_bytes(store.get(key)) for key in sorted(store.list(HEADS_PREFIX))]


def _ledger_size(store: ObjectStore) -> int:
    """Events stored in the ledger's segments (sealed or not)."""
    return Ledger.open(store).size


def _tsa_errors(stack: Stack) -> float:
    """``lienthong_tsa_errors_total`` summed over reasons, from the hub's ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.settings.http_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("lienthong_tsa_errors_total{")
    )


def _anchor_file(stack: Stack) -> Path:
    return stack.settings.tsa_trust[0]


def _trust(stack: Stack) -> list[str]:
    """``--trust`` for the hub's seal certificate and the demo root (the agencies' signatures)."""
    return ["--trust", str(stack.settings.seal_cert_path), "--trust", str(stack.material.trust_dir / "root.pem")]


def _export(stack: Stack, sha: str, where: Path) -> Path:
    out = where / "bundle.zip"
    assert wait_until(
        lambda: main(["audit", "export", sha, "--out", str(out), "--data", str(stack.settings.data_dir)]) == 0,
        timeout=WAIT,
        every=0.25,
    )
    return out


def _stamp_line(output: str) -> str:
    """The report's time-stamp check, from its status on (``PASSED tree head time-stamp ...: detail``)."""
    return next(line.strip() for line in output.splitlines() if "tree head time-stamp" in line)


def _rewrite_token(bundle: Path, out: Path) -> None:
    """Copy ``bundle`` with the head's token (in tree-head.json and tree-head.tst) changed inside its TSTInfo."""
    with zipfile.ZipFile(bundle) as source:
        entries = [(info.filename, source.read(info)) for info in source.infolist()]
    files = dict(entries)
    token = files["tree-head.tst"]
    info = cms.ContentInfo.load(token)
    content = info["content"]["encap_content_info"]["content"]
    tst = tsp.TSTInfo.load(content.contents)
    tst["serial_number"] = tst["serial_number"].native + 1
    info["content"]["encap_content_info"]["content"] = cms.ParsableOctetString(tst.dump(force=True))
    altered = info.dump(force=True)
    head = SignedTreeHead.from_bytes(files["tree-head.json"])
    files["tree-head.json"] = SignedTreeHead(
        head.size, head.root, head.time, head.algorithm, head.signature, head.certificates, altered
    ).to_bytes()
    files["tree-head.tst"] = altered
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for name, _ in entries:
            target.writestr(name, files[name])
    out.write_bytes(buffer.getvalue())


def test_the_demo_tsa_answers_from_a_relative_data_folder(
    tsa_server: TsaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` gives `--data data`: a TSA whose folder is relative still answers with a token that verifies."""
    folder = tmp_path / "data" / "demo" / "tsa"
    folder.mkdir(parents=True)
    for name in (TSA_CERT_FILE, TSA_KEY_FILE, TSA_CHAIN_FILE):
        (folder / name).write_bytes((tsa_server.server.folder / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    server = EmbeddedTsa(Path("data") / "demo" / "tsa").start()
    try:
        token = request_timestamp(server.url, b"a tree head's signature", anchors=[tsa_server.anchor])
    finally:
        server.stop()
    assert token.token_der
