"""`lienthong validate` and `lienthong inspect` as DESIGN.md specifies them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.cli import main
from schemas import build_document, build_status
from schemas.examples import example_edoc, example_status

SAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "samples"


def test_validate_exit_zero_when_all_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """A folder of valid documents and statuses exits 0 with one 'valid' line per file."""
    assert main(["validate", str(SAMPLES)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(list(SAMPLES.glob("*.xml")))
    assert all(": valid " in line for line in out)


def test_validate_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints {file, valid, kind, errors[{path, message}], warnings} per file; one invalid file: exit 1."""
    good = tmp_path / "good.xml"
    good.write_bytes(build_status(example_status(example_edoc())))
    bad = tmp_path / "bad.xml"
    bad.write_bytes(build_document(example_edoc()).replace(b">0</edXML:Priority>", b">8</edXML:Priority>"))
    assert main(["validate", "--json", str(good), str(bad)]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {"file": str(good), "valid": True, "kind": "status", "errors": [], "warnings": []}
    assert second["valid"] is False
    assert second["kind"] is None
    assert second["errors"][0]["path"].endswith("/OtherInfo/Priority")
    assert set(second["errors"][0]) == {"path", "message"}


def test_validate_errors_on_stderr_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json, each problem is one readable line on stderr naming file and path."""
    bad = tmp_path / "bad.xml"
    data = build_document(example_edoc()).replace(b">0</edXML:Priority>", b">8</edXML:Priority>")
    bad.write_bytes(data.replace(b">1</edXML:SteeringType>", b">0</edXML:SteeringType>"))
    assert main(["validate", str(bad), str(tmp_path / "missing.xml")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3
    assert err[0].startswith(f"{bad}: /edXML/")
    assert "cannot read file" in err[2]


def test_inspect_shows_sender_recipients_attachments(capsys: pytest.CaptureFixture[str]) -> None:
    """Inspect prints sender, recipients, subject, attachments with sizes, and the signature state."""
    assert main(["inspect", str(SAMPLES / "other-tool-default-ns.xml")]) == 0
    out = capsys.readouterr().out
    assert "000.00.00.G22" in out
    assert out.count("to:") == 3
    assert "noi-dung.txt  text/plain  24 bytes" in out
    assert "signature:   none" in out


def test_inspect_json_reports_signature_algorithms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Inspect --json names the signature and digest algorithms of a signed document without checking it."""
    sig = (
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>'
        '<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
        '<Reference URI=""><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        "<DigestValue>AA==</DigestValue></Reference></SignedInfo><SignatureValue>AA==</SignatureValue>"
        "</Signature>"
    )
    data = build_document(example_edoc()).replace(b"</edXML:edXMLHeader>", sig.encode() + b"</edXML:edXMLHeader>")
    path = tmp_path / "signed.xml"
    path.write_bytes(data)
    assert main(["inspect", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["signature"]["signature_method"].endswith("rsa-sha256")
    assert summary["signature"]["digest_methods"] == ["http://www.w3.org/2001/04/xmlenc#sha256"]


def test_inspect_invalid_file_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Inspect on a broken file prints the problem on stderr and exits 1."""
    path = tmp_path / "broken.xml"
    path.write_bytes(b"<edXML")
    assert main(["inspect", str(path)]) == 1
    assert "not well-formed" in capsys.readouterr().err
