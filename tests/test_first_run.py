"""A first run as a new administrator meets it (issue 14, part 5): each stumble, as its exact message or behaviour.

The README's commands run as written against the session's running demo (``running_demo``), from a folder where
``data`` is the demo's data and ``.venv/bin/lienthong`` runs this checkout; servers that are missing are closed
free ports, so nothing is started for them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from hub.cli import main
from hub.commands._common import lienthong_command
from hub.commands.audit import _original_of
from hub.demo import create_demo_material, demo_documents
from hub.embedded._process import free_port
from schemas import parse
from schemas.model import Edoc
from signer import devpki
from storage.archive import Archive
from storage.bundle import BundleError
from storage.ledger import Ledger, LogReader, create_seal_identity
from storage.objectstore import MemoryObjectStore
from tests.support.demo_fixtures import DEMO_DOCS, RunningDemo
from tests.support.pki_fixtures import FIXED_NOW, TestPki
from tests.support.signing import signed_by

ROOT = Path(__file__).resolve().parents[1]
AGENCY = "000.01.00.H41"


# --- commands printed as they can be typed ------------------------------------------------------------------------


def test_the_command_is_printed_by_its_path_when_path_does_not_find_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as .venv/bin/lienthong off PATH, lienthong names itself so; with that folder on PATH, as lienthong."""
    script = tmp_path / ".venv" / "bin" / "lienthong"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert lienthong_command() == ".venv/bin/lienthong"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert lienthong_command() == "lienthong"


def test_the_licence_is_an_spdx_string_for_a_setuptools_that_reads_it() -> None:
    """pyproject.toml gives the licence as an SPDX string and asks for setuptools >= 77, which takes it unwarned."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"]
    assert not [c for c in project["project"].get("classifiers", []) if c.startswith("License ::")]


# --- a missing server: one line, what to do, a non-zero exit ------------------------------------------------------


@pytest.fixture(scope="module")
def hub_down(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A folder whose settings and agency credentials name closed ports: (folder, Kafka port, S3 port)."""
    folder = tmp_path_factory.mktemp("hub-down")
    kafka, s3 = free_port(), free_port()
    (folder / "data").mkdir()
    (folder / "data" / "settings.yaml").write_text(
        f"kafka_bootstrap: 127.0.0.1:{kafka}\ns3_endpoint: 127.0.0.1:{s3}\n"
        "axis_url: http://127.0.0.1:9/vxp\naxis_system_id: hub\naxis_secret: not-a-secret\n"
        f"ledger_key: {'k' * 32}\ns3_access_key: hub\ns3_secret_key: not-a-secret\n",
        encoding="utf-8",
    )
    (folder / "agency.json").write_text(
        json.dumps(
            {
                "organ_id": AGENCY,
                "kafka": {
                    "bootstrap.servers": f"127.0.0.1:{kafka}",
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": f"lienthong-agency-{AGENCY}",
                    "sasl.password": "not-a-password",
                },
            }
        ),
        encoding="utf-8",
    )
    create_seal_identity(folder)
    return folder, kafka, s3


_START = "is the hub running? Start it with `.venv/bin/lienthong up --data data`"
_HUB_COMMANDS = {
    "send": ["send", "doc.xml", "--credentials", "agency.json"],
    "receive": ["receive", "--credentials", "agency.json", "--timeout", "5"],
    "status": [
        "status",
        "doc.xml",
        "--code",
        "03",
        "--credentials",
        "agency.json",
        "--key",
        "k.pem",
        "--cert",
        "c.pem",
    ],
    "deadletter list": ["deadletter", "list"],
    "deadletter replay": ["deadletter", "replay", "--all"],
    "agency list": ["agency", "list"],
    "agency add": ["agency", "add", "000.05.00.H41", "--name", "Sở Xây dựng"],
    "agency credentials": ["agency", "credentials", AGENCY],
    "acl plan": ["acl", "plan", "--apply"],
    "worker": ["worker", "--settings", "data/settings.yaml"],
    "vxp-facade": ["vxp-facade"],
    "axis-connector": ["axis-connector"],
}


@pytest.mark.parametrize("name", list(_HUB_COMMANDS))
def test_a_command_whose_broker_is_down_says_so_in_one_line(
    name: str,
    hub_down: tuple[Path, int, int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the hub stopped, each command that needs the broker prints one line naming it and how to start the hub."""
    folder, kafka, _ = hub_down
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", [str(folder / ".venv" / "bin" / "lienthong")])
    assert main(_HUB_COMMANDS[name]) != 0
    out, err = capsys.readouterr()
    reached = f"lienthong {name}: cannot reach the hub's Kafka broker at 127.0.0.1:{kafka} (connection refused)"
    also = ", or check bootstrap.servers in agency.json" if name in {"send", "receive", "status"} else ""
    assert (out, err) == ("", f"{reached}: {_START}{also}\n")


@pytest.mark.parametrize("name", ["audit export", "ledger verify"])
def test_an_s3_endpoint_that_is_down_is_named_in_one_line(
    name: str, hub_down: tuple[Path, int, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Audit export and ledger verify from an --endpoint that does not answer say which, and what to check."""
    folder, _, s3 = hub_down
    monkeypatch.chdir(folder)
    store = ["--endpoint", f"127.0.0.1:{s3}", "--access-key", "a", "--secret-key", "b"]
    seal = ["--seal-key", "hub-key.pem", "--seal-cert", "hub-cert.pem"]
    argv = ["audit", "export", "DOC", "--out", "b.zip", *store, *seal] if name == "audit export" else None
    argv = argv or ["ledger", "verify", *store, "--trust", "hub-cert.pem"]
    assert main(argv) != 0
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        (
            f"lienthong {name}: cannot reach the S3 store at 127.0.0.1:{s3} (connection refused): "
            "check --endpoint HOST:PORT (and --secure for HTTPS)\n"
        ),
    )


def test_a_missing_data_folder_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without DATA/settings.yaml, deadletter list says to start the hub there, as the user can type it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / ".venv" / "bin" / "lienthong")])
    assert main(["deadletter", "list"]) == 1
    assert capsys.readouterr().err == (
        "lienthong deadletter list: no data/settings.yaml: start the hub once with "
        "`.venv/bin/lienthong up --data data`, or pass --data DIR\n"
    )


# --- progress -----------------------------------------------------------------------------------------------------


def test_bench_parse_shows_each_step_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """Bench parse writes a line to stderr before each measurement, the table to stdout."""
    assert main(["bench", "parse", "--seconds", "0.05"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "bench parse: measuring 5 KB (1/2, 2 × 0.05 s)",
        "bench parse: measuring 1 MB (2/2, 2 × 0.05 s)",
    ]
    assert "parse docs/s" in out


# --- which original a DocumentId means ------------------------------------------------------------------------------


def _ledger_with(pki: TestPki, documents: int, seal_folder: Path) -> tuple[MemoryObjectStore, str, list[str]]:
    """A sealed in-memory ledger with ``documents`` documents under one DocumentId and a status 03 answering them."""
    doc_id = "000.00.00.G22,2026/05/30,7/QD-UBND"
    store = MemoryObjectStore()
    ledger = Ledger.open(store)
    archive = Archive(store, ledger, clock=lambda: FIXED_NOW)
    shas = []
    for n in range(documents):
        record = archive.record(
            signed_by(pki.agency_rsa, attachment_bytes=n),
            None,
            sender="000.00.00.G22",
            doc_id=doc_id,
            received_at=FIXED_NOW + timedelta(seconds=n),
            reason="MALFORMED",
        )
        shas.append(record.sha256)
    status = archive.record(
        b"a status", None, sender=AGENCY, doc_id=doc_id, received_at=FIXED_NOW + timedelta(minutes=1), reason="X"
    )
    archive.status_relayed(status.sha256, doc_id, reporter=AGENCY, recipient="000.00.00.G22", status_code="03")
    shas.append(status.sha256)
    ledger.seal(create_seal_identity(seal_folder, now=FIXED_NOW - timedelta(days=1)), at=FIXED_NOW + timedelta(hours=1))
    return store, doc_id, shas


def test_a_document_id_its_statuses_share_means_the_document(pki: TestPki, tmp_path: Path) -> None:
    """Audit export of a DocumentId that a status also carries exports the document, not the status."""
    store, doc_id, (document, _) = _ledger_with(pki, 1, tmp_path)
    assert _original_of(store, LogReader.open(store), doc_id) == document


def test_a_document_id_of_several_documents_lists_each_labelled(pki: TestPki, tmp_path: Path) -> None:
    """Two documents under one DocumentId: the error labels each original (document or status NN) and its sender."""
    store, doc_id, (first, second, status) = _ledger_with(pki, 2, tmp_path)
    with pytest.raises(BundleError) as raised:
        _original_of(store, LogReader.open(store), doc_id)
    assert str(raised.value) == (
        f"DocumentId {doc_id!r} names 2 documents; export one by SHA-256: "
        f"{first} (document from 000.00.00.G22, received 2026-06-01 00:00:00 UTC); "
        f"{second} (document from 000.00.00.G22, received 2026-06-01 00:00:01 UTC); "
        f"{status} (status 03 from {AGENCY}, received 2026-06-01 00:01:00 UTC)"
    )


# --- the demo and the README, against the session's running demo -----------------------------------------------------


def test_the_demo_names_five_agencies_and_shows_five(running_demo: RunningDemo) -> None:
    """The demo says five agencies, four here and one through the axis, and lists deliveries to all five."""
    expected = running_demo.summary_line("deliveries").split()[3]
    assert (
        f"demo: sending {DEMO_DOCS} documents between 5 agencies (4 served by this hub, 000.00.00.G22 through the "
        f"national axis) ({expected} deliveries expected)"
    ) in running_demo.output.splitlines()
    lines = running_demo.output.splitlines()
    start = lines.index(running_demo.summary_line("deliveries"))
    rows = [line.split()[0] for line in lines[start + 1 : start + 6]]
    assert rows == ["000.00.00.H41", "000.01.00.H41", "000.02.00.H41", "000.03.00.H41", "000.00.00.G22"]
    assert lines[start + 5].split()[1:4] == ["via", "the", "axis"]


def test_the_demo_tells_sending_time_from_the_time_until_all_is_handled(running_demo: RunningDemo) -> None:
    """Sending time (until the broker's last ack) and the time until every document was handled are two figures."""
    sent = re.fullmatch(
        rf"  documents sent        {DEMO_DOCS} in (\S+) s \(until the broker acknowledged the last one\)",
        running_demo.summary_line("documents sent"),
    )
    handled = re.fullmatch(
        r"  all handled after     (\S+) s from the first send, each delivered or refused "
        r"\((\S+) documents/s end to end\)",
        running_demo.summary_line("all handled after"),
    )
    assert sent
    assert handled
    assert float(sent.group(1)) <= float(handled.group(1))
    seconds = float(handled.group(1))  # printed to 0.1 s: the rate was computed from the unrounded time
    assert DEMO_DOCS / (seconds + 0.05) - 0.05 <= float(handled.group(2)) <= DEMO_DOCS / (seconds - 0.05) + 0.05
    assert f"demo: sent {DEMO_DOCS}/{DEMO_DOCS}" in running_demo.output  # progress while sending


def test_the_ledger_command_of_the_summary_runs_as_printed(running_demo: RunningDemo) -> None:
    """The summary's ledger line is a command that runs as printed, from where the demo was started."""
    command = running_demo.summary_line("ledger").split(None, 1)[1]
    assert command.endswith(f"ledger verify --data {shlex.quote(str(running_demo.data))}")
    done = subprocess.run(command, shell=True, capture_output=True, text=True, env=_env(), check=False)  # noqa: S602
    assert done.returncode == 0, done.stderr
    assert "OK: every segment and tree head is consistent" in done.stdout


def _env() -> dict[str, str]:
    """This checkout first on the import path (a subprocess's ``-m hub`` is this hub)."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _document_id(path: Path) -> str:
    """The DocumentId of the edXML document in ``path``."""
    message = parse(path.read_bytes()).message
    assert isinstance(message, Edoc)
    return message.document_id


def _readme_block(after: str) -> list[str]:
    """The command lines of the README's first ``sh`` block after the line ``after``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rest = text[text.index(after) :]
    block = rest[rest.index("```sh\n") + 6 : rest.index("\n```", rest.index("```sh\n"))]
    return [line for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def admin_shell(running_demo: RunningDemo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout-like folder: ``data`` is the demo's; ``. .venv/bin/activate`` puts this hub's lienthong on PATH."""
    folder = tmp_path_factory.mktemp("checkout")
    (folder / "data").symlink_to(running_demo.data)
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\nexport PATH\n', encoding="utf-8")
    (bin_dir / "lienthong").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m hub "$@"\n', encoding="utf-8")
    (bin_dir / "lienthong").chmod(0o755)
    return folder


def _typed(folder: Path, lines: list[str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each of ``lines`` typed at once, each in its own shell in ``folder`` after ``. .venv/bin/activate``."""
    shells = {
        line: subprocess.Popen(
            ["bash", "-c", f". .venv/bin/activate && {line}"],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for line in lines
    }
    done = {}
    for line, shell in shells.items():
        out, err = shell.communicate(timeout=120)
        done[line] = subprocess.CompletedProcess(shell.args, shell.returncode, out, err)
        assert shell.returncode == 0, f"{line}\n{out[-2000:]}\n{err[-2000:]}"
    return done


def _step(line: str) -> int:
    """When a README line can run: 0 at once, 1 after receive saved documents, 2 after export wrote the bundle."""
    if "bundle.zip --trust" in line:
        return 2
    return 1 if "received/" in line or "DOCUMENTID" in line else 0


@pytest.mark.demo_traffic  # sends a document and a status, adds an agency
def test_the_readme_commands_after_make_demo_work_as_written(admin_shell: Path) -> None:
    """Each command of the README's "After make demo" block runs as written (DOCUMENTID from receive's output)."""
    lines = _readme_block("### After `make demo`")
    assert lines[0] == ". .venv/bin/activate"
    received = admin_shell / "received" / f"lienthong.inbox.{AGENCY}" / "00000000.xml"
    outputs: dict[str, str] = {}
    for step in range(3):  # the lines of a step do not depend on each other: typed at once, in separate shells
        typed = [line for line in lines[1:] if _step(line) == step]
        if step == 1:
            document_id = shlex.quote(_document_id(received))
            typed = [line.replace("DOCUMENTID", document_id) for line in typed]
        outputs |= {line.split()[1]: done.stdout for line, done in _typed(admin_shell, typed).items()}
    assert len(outputs) == len(lines) - 2  # every line ran (audit export and verify share a key)
    assert "OK: every segment and tree head is consistent" in outputs["ledger"]
    assert "TOTAL_PASSED" in outputs["verify"]  # the document's KeyInfo carries its issuing CA: no --untrusted
    assert "RESULT: PASSED" in outputs["audit"]
    # The bundle holds the document itself, though its statuses carry the same DocumentId.
    with zipfile.ZipFile(io.BytesIO((admin_shell / "bundle.zip").read_bytes())) as bundle:
        assert hashlib.sha256(bundle.read("original.xml")).digest() == hashlib.sha256(received.read_bytes()).digest()


@pytest.mark.demo_traffic  # sends a document and a status, adds an agency
def test_the_readme_credentials_commands_work_as_written(admin_shell: Path, running_demo: RunningDemo) -> None:
    """Adding an agency, issuing its credentials and receiving with them work as written; send with a demo agency's."""
    since, until = FIXED_NOW - timedelta(days=1), FIXED_NOW + timedelta(days=3650)
    root = devpki.make_root("Their Root", not_before=since, not_after=until)
    leaf = devpki.make_leaf(root, "Sở Xây dựng", organ_id="000.05.00.H41", not_before=since, not_after=until)
    (admin_shell / "their-cert.pem").write_bytes(leaf.cert.public_bytes(serialization.Encoding.PEM))
    material = create_demo_material(running_demo.data / "demo")
    documents = demo_documents(material, 10, start_number=9_000_001)
    (admin_shell / "signed.xml").write_bytes(
        next(d for d in documents if d.sender == AGENCY and d.expect == "delivered").data
    )
    add, issue, *use = _readme_block("The operator adds an agency")
    assert [add.split()[1:3], issue.split()[1:3]] == [["agency", "add"], ["agency", "credentials"]]
    _typed(admin_shell, [add])
    _typed(admin_shell, [issue])
    # Only the new agency holds the key its pin names: the document is sent as a demo agency instead.
    demo_credentials = f"data/demo/agencies/{AGENCY}/credentials.json"
    _typed(
        admin_shell,
        [line.replace("000.05.00.H41.json", demo_credentials) if " send " in line else line for line in use],
    )
    assert (admin_shell / "000.05.00.H41.json").stat().st_mode & 0o777 == 0o600
