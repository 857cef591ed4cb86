"""``lienthong sign`` and ``lienthong verify``: files in, one verdict per file out, exit codes."""

from __future__ import annotations

import json

import pytest
import yaml

from hub.cli import main
from hub.commands.verify import TRY_LATER_HINT
from signer import devpki
from tests.support.pki_fixtures import FIXED_NOW
from tests.support.signing import unsigned
from tests.test_interop import ECDSA, RSA, xmlsec1_sign

AT = FIXED_NOW.isoformat()


def _verify(capsys, *args: str) -> tuple[int, list[dict]]:
    code = main(["verify", *args])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return code, lines


@pytest.fixture
def directory_file(pki, tmp_path):
    """A directory YAML pinning both agency leaves to their OrganIds."""
    path = tmp_path / "directory.yaml"
    agencies = [
        {
            "id": "000.00.00.G22",
            "name": "VPCP",
            "route": "local",
            "cert_spki_sha256": [devpki.spki_sha256(pki.agency_rsa.cert)],
        },
        {
            "id": "000.00.00.H41",
            "name": "Nghe An",
            "route": "axis",
            "cert_spki_sha256": [devpki.spki_sha256(pki.agency_ec.cert)],
        },
    ]
    path.write_text(yaml.safe_dump({"agencies": agencies}), encoding="utf-8")
    return path


def test_sign_then_verify_json(pki_dir, tmp_path, capsys, directory_file):
    """A document signed by `lienthong sign` verifies with `lienthong verify --json` and exit 0."""
    src = tmp_path / "in.xml"
    src.write_bytes(unsigned("000.00.00.G22"))
    out = tmp_path / "out.xml"
    key, cert, chain = (str(pki_dir / n) for n in ("agency-rsa.key", "agency-rsa.pem", "chain.pem"))
    assert main(["sign", str(src), str(out), "--key", key, "--cert", cert, "--chain", chain]) == 0
    code, lines = _verify(
        capsys,
        str(out),
        "--trust",
        str(pki_dir / "root.pem"),
        "--crl",
        str(pki_dir / "crl.pem"),
        "--crl",
        str(pki_dir / "root-crl.pem"),
        "--at",
        AT,
        "--directory",
        str(directory_file),
        "--json",
    )
    assert code == 0
    assert len(lines) == 1
    line = lines[0]
    assert line["file"] == str(out)
    assert line["indication"] == "TOTAL_PASSED"
    assert line["signer"]["organ_id"] == "000.00.00.G22"
    assert "Van phong Bo A" in line["signer"]["subject"]
    assert line["algorithms"]["signature"].endswith("rsa-sha256")
    assert line["errors"] == []


def test_verify_dir_of_xmlsec1_documents(pki, pki_dir, tmp_path, capsys, directory_file):
    """A DIR of xmlsec1-signed documents (plus a tampered one) gives one sorted line per file and exit 1."""
    docs = tmp_path / "docs"
    docs.mkdir()
    xmlsec1_sign(tmp_path, pki_dir, "agency-rsa", "000.00.00.G22", RSA, docs / "a-rsa.xml")
    xmlsec1_sign(tmp_path, pki_dir, "agency-ec", "000.00.00.H41", ECDSA, docs / "b-ec.xml")
    tampered = (docs / "a-rsa.xml").read_bytes().replace("Kính gửi".encode(), "Kính chào".encode(), 1)
    (docs / "c-tampered.xml").write_bytes(tampered)
    (docs / "ignored.txt").write_text("not a document")
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "root.pem").write_bytes((pki_dir / "root.pem").read_bytes())
    (trust / "root-crl.pem").write_bytes((pki_dir / "root-crl.pem").read_bytes())  # skipped: not a certificate
    code, lines = _verify(
        capsys,
        str(docs),
        "--trust",
        str(trust),
        "--crl",
        str(pki_dir / "crl.der"),
        "--crl",
        str(pki_dir / "root-crl.pem"),
        "--at",
        AT,
        "--directory",
        str(directory_file),
        "--json",
    )
    assert [(line["file"].rsplit("/", 1)[-1], line["indication"], line["subindication"]) for line in lines] == [
        ("a-rsa.xml", "TOTAL_PASSED", None),
        ("b-ec.xml", "TOTAL_PASSED", None),
        ("c-tampered.xml", "TOTAL_FAILED", "HASH_FAILURE"),
    ]
    assert code == 1


def test_default_revocation_tells_how_to_proceed(pki_dir, tmp_path, capsys):
    """Without revocation data the default `require` yields TRY_LATER with a hint naming --crl/--ocsp/none."""
    src = tmp_path / "in.xml"
    src.write_bytes(unsigned("000.00.00.G22"))
    out = tmp_path / "out.xml"
    key, cert, chain = (str(pki_dir / n) for n in ("agency-rsa.key", "agency-rsa.pem", "chain.pem"))
    assert main(["sign", str(src), str(out), "--key", key, "--cert", cert, "--chain", chain]) == 0
    code, lines = _verify(capsys, str(out), "--trust", str(pki_dir / "root.pem"), "--at", AT, "--json")
    assert code == 1
    assert lines[0]["subindication"] == "TRY_LATER"
    assert TRY_LATER_HINT in lines[0]["errors"]
    assert "--revocation none" in TRY_LATER_HINT
    code, lines = _verify(
        capsys, str(out), "--trust", str(pki_dir / "root.pem"), "--at", AT, "--revocation", "none", "--json"
    )
    assert code == 0, lines


def test_human_output_one_line_per_file(pki_dir, tmp_path, capsys):
    """Without --json, each file gets one readable line with its verdict."""
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<not-edxml/>")
    assert main(["verify", str(bad), "--trust", str(pki_dir / "root.pem"), "--at", AT]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"{bad}: TOTAL_FAILED/FORMAT_FAILURE")


def test_sign_refuses_bad_key_and_signed_input(pki_dir, tmp_path, capsys):
    """`lienthong sign` exits 1 with a message for a mismatched certificate or an already signed input."""
    src = tmp_path / "in.xml"
    src.write_bytes(unsigned("000.00.00.G22"))
    out = tmp_path / "out.xml"
    key, ec_cert = str(pki_dir / "agency-rsa.key"), str(pki_dir / "agency-ec.pem")
    assert main(["sign", str(src), str(out), "--key", key, "--cert", ec_cert]) == 1
    assert "not for this private key" in capsys.readouterr().err
    assert main(["sign", str(src), str(out), "--key", key, "--cert", str(pki_dir / "agency-rsa.pem")]) == 0
    assert (
        main(["sign", str(out), str(tmp_path / "twice.xml"), "--key", key, "--cert", str(pki_dir / "agency-rsa.pem")])
        == 1
    )
    assert "already signed" in capsys.readouterr().err


def test_sign_with_pkcs11_uri(pki_dir, tmp_path, softhsm_token, capsys):
    """`lienthong sign --pkcs11-uri` signs inside SoftHSM2; the result verifies."""
    src = tmp_path / "in.xml"
    src.write_bytes(unsigned("000.00.00.H01"))
    out = tmp_path / "out.xml"
    cert = tmp_path / "hsm.pem"
    cert.write_bytes(softhsm_token.cert.cert_pem())
    assert (
        main(
            [
                "sign",
                str(src),
                str(out),
                "--pkcs11-uri",
                softhsm_token.uri,
                "--cert",
                str(cert),
                "--chain",
                str(pki_dir / "chain.pem"),
            ]
        )
        == 0
    )
    code, lines = _verify(
        capsys, str(out), "--trust", str(pki_dir / "root.pem"), "--at", AT, "--revocation", "none", "--json"
    )
    assert code == 0, lines


def test_unusable_trust_file_exits_2(tmp_path, capsys):
    """A --trust file without certificates is a usage error (exit 2), not a verdict."""
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing")
    doc = tmp_path / "doc.xml"
    doc.write_bytes(b"<a/>")
    assert main(["verify", str(doc), "--trust", str(empty)]) == 2
    assert "not a certificate" in capsys.readouterr().err
