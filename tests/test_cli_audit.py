"""``lienthong audit export|verify`` and ``lienthong ledger verify`` end to end on a real embedded store."""

from __future__ import annotations

import io
import json
import shutil
import time
from datetime import timedelta

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from minio.error import S3Error

from hub.cli import main
from hub.embedded.s3 import EmbeddedS3
from signer.policy import RevocationPolicy, TrustPolicy
from signer.verify import Verifier
from storage.archive import Archive
from storage.ledger import Ledger, create_seal_identity, segment_key
from tests.support.pki_fixtures import FIXED_NOW
from tests.support.s3_fixtures import unique_bucket, weed_executable
from tests.support.signing import policy_for, signed_by

pytestmark = pytest.mark.servers

DOC_ID = "000.00.00.G22,2026/05/30,7/QD-UBND"
REVOKED_DOC_ID = "000.00.00.R01,2026/05/30,8/QD-UBND"


def _server(data_dir):
    """The embedded hub's S3 server on ``data_dir/s3`` (what `lienthong up` runs)."""
    return EmbeddedS3(data_dir / "s3", weed=weed_executable(), log_path=data_dir / "weed-test.log")


def _replace_behind_the_hubs_back(data_dir, key, change):
    """Put a changed copy of ``key`` as a new version with a plain S3 client, as someone holding the keys could."""
    with _server(data_dir) as server:
        client = server.store("lienthong").client
        response = client.get_object("lienthong", key)
        changed = change(response.read())
        response.close()
        response.release_conn()
        for attempt in range(3):  # weed mini answers a write just after its start with InternalError now and then
            try:
                client.put_object("lienthong", key, io.BytesIO(changed), len(changed))
                break
            except S3Error as exc:
                if exc.code != "InternalError" or attempt == 2:
                    raise
                time.sleep(0.5)


@pytest.fixture(scope="module")
def hub_data(pki, tmp_path_factory):
    """A hub data folder: seal identity, one accepted and one revoked document archived and sealed; hub stopped."""
    data_dir = tmp_path_factory.mktemp("hub-data")
    seal = create_seal_identity(data_dir, now=FIXED_NOW - timedelta(days=30))
    with _server(data_dir) as server:
        store = server.store("lienthong")
        ledger = Ledger.open(store)
        archive = Archive(store, ledger, clock=lambda: FIXED_NOW + timedelta(seconds=1))
        good = signed_by(pki.agency_rsa)
        report = Verifier(policy_for(pki)).verify(good, at=FIXED_NOW)
        record = archive.record(good, report, sender="000.00.00.G22", doc_id=DOC_ID, received_at=FIXED_NOW)
        archive.delivered(record.sha256, DOC_ID, "000.00.00.H41", at=FIXED_NOW + timedelta(seconds=2))
        revoked = signed_by(pki.revoked)
        policy = TrustPolicy(
            anchors=(pki.root.cert,), crls=(pki.crl, pki.root_crl), revocation=RevocationPolicy.REQUIRE
        )
        archive.record(
            revoked,
            Verifier(policy).verify(revoked, at=FIXED_NOW),
            sender="000.00.00.R01",
            doc_id=REVOKED_DOC_ID,
            received_at=FIXED_NOW,
            reason="REVOKED",
        )
        ledger.seal(seal, at=FIXED_NOW + timedelta(minutes=5))
    (data_dir / "root.pem").write_bytes(pki.root.cert_pem())
    return data_dir, record.sha256, seal


def _json_lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_export_then_verify(hub_data, tmp_path, capsys):
    """Export by SHA-256 with the hub stopped, then verify with the anchors: both exit 0, the report says PASSED."""
    data_dir, sha256, _ = hub_data
    out = tmp_path / "bundle.zip"
    assert main(["audit", "export", sha256, "--out", str(out), "--data", str(data_dir)]) == 0
    assert str(out) in capsys.readouterr().out
    trust = ["--trust", str(data_dir / "root.pem"), "--trust", str(data_dir / "hub-cert.pem")]
    assert main(["audit", "verify", str(out), *trust]) == 0
    text = capsys.readouterr().out
    assert "RESULT: PASSED" in text
    assert "delivered by hub" in text
    assert main(["audit", "verify", str(out), *trust, "--json"]) == 0
    (line,) = _json_lines(capsys)
    assert line["passed"] is True
    assert line["document"]["document_id"] == DOC_ID


def test_export_by_document_id_while_the_hub_runs(hub_data, tmp_path, capsys):
    """With the hub's own S3 server running on the folder, export by DocumentId reads through its endpoint."""
    data_dir = tmp_path / "data"
    shutil.copytree(hub_data[0], data_dir)
    out = tmp_path / "bundle.zip"
    with _server(data_dir) as server:
        keys = {"s3_access_key": server.access_key, "s3_secret_key": server.secret_key}
        settings = {"s3_endpoint": server.endpoint, **keys}
        (data_dir / "settings.yaml").write_text(yaml.safe_dump(settings))  # as `lienthong up` writes
        assert main(["audit", "export", DOC_ID, "--out", str(out), "--data", str(data_dir)]) == 0
    capsys.readouterr()
    trust = ["--trust", str(data_dir / "root.pem"), "--trust", str(data_dir / "hub-cert.pem")]
    assert main(["audit", "verify", str(out), *trust, "--json"]) == 0


def test_a_revoked_document_exports_and_fails_verification_with_the_reason(hub_data, tmp_path, capsys):
    """The rejected (revoked) document's bundle exports; verify exits 1 and names REVOKED."""
    data_dir, _, _ = hub_data
    out = tmp_path / "revoked.zip"
    assert main(["audit", "export", REVOKED_DOC_ID, "--out", str(out), "--data", str(data_dir)]) == 0
    capsys.readouterr()
    trust = ["--trust", str(data_dir / "root.pem"), "--trust", str(data_dir / "hub-cert.pem")]
    assert main(["audit", "verify", str(out), *trust]) == 1
    text = capsys.readouterr().out
    assert "FAILED  document signature" in text
    assert "TOTAL_FAILED/REVOKED" in text


def test_ledger_verify(hub_data, capsys):
    """`ledger verify --data DIR` trusts DIR/hub-cert.pem by default and finds the log consistent."""
    data_dir, _, _ = hub_data
    assert main(["ledger", "verify", "--data", str(data_dir), "--json"]) == 0
    (line,) = _json_lines(capsys)
    assert line["ok"] is True
    assert line["size"] == 7
    assert line["heads"] == 1
    assert main(["ledger", "verify", "--data", str(data_dir)]) == 0
    assert "OK" in capsys.readouterr().out


def test_ledger_verify_names_a_changed_segment(hub_data, tmp_path, capsys):
    """A segment replaced by a new version behind the hub's back: exit 1 and the first inconsistency names it."""
    data_dir = tmp_path / "data"
    shutil.copytree(hub_data[0], data_dir)
    _replace_behind_the_hubs_back(
        data_dir, segment_key(0, 7), lambda data: data.replace(b'"verdict":"delivered"', b'"verdict":"destroyed"')
    )
    assert main(["ledger", "verify", "--data", str(data_dir), "--json"]) == 1
    (line,) = _json_lines(capsys)
    assert line["ok"] is False
    assert segment_key(0, 7) in line["problem"]["message"]
    assert line["problem"]["where"].startswith("ledger/heads/000000000007.json")


def test_export_names_a_changed_original(hub_data, tmp_path, capsys):
    """An original replaced by a new version no longer hashes to its name: export refuses, exit 1, naming it."""
    data_dir = tmp_path / "data"
    shutil.copytree(hub_data[0], data_dir)
    sha256 = hub_data[1]
    _replace_behind_the_hubs_back(
        data_dir, f"originals/{sha256}", lambda data: data.replace(b"Van phong", b"Van fong", 1) + b" "
    )
    assert main(["audit", "export", sha256, "--out", str(tmp_path / "x.zip"), "--data", str(data_dir)]) == 1
    assert "stored original was changed" in capsys.readouterr().err


def test_usage_errors(hub_data, tmp_path, capsys):
    """Unknown DOC exits 1; a folder without hub data, or an unreadable anchor, exits 2; a non-zip fails (1)."""
    data_dir, _, seal = hub_data
    assert main(["audit", "export", "ab" * 32, "--out", str(tmp_path / "x.zip"), "--data", str(data_dir)]) == 1
    assert "no events" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "hub-key.pem").write_bytes(
        seal.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (empty / "hub-cert.pem").write_bytes(seal.certificate.public_bytes(serialization.Encoding.PEM))
    assert main(["audit", "export", DOC_ID, "--out", str(tmp_path / "x.zip"), "--data", str(empty)]) == 2
    assert "holds no hub data" in capsys.readouterr().err
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"hello")
    assert main(["audit", "verify", str(not_zip), "--trust", str(tmp_path / "missing.pem")]) == 2
    assert "missing.pem" in capsys.readouterr().err
    assert main(["audit", "verify", str(not_zip), "--trust", str(data_dir / "hub-cert.pem")]) == 1
    assert "not a readable zip" in capsys.readouterr().out


def test_the_private_reader_cannot_write(hub_data):
    """The store the commands open over --data has read-only credentials: a write is refused."""
    import argparse  # noqa: PLC0415 - only this test builds arguments by hand

    from hub.commands.audit import opened_store  # noqa: PLC0415
    from storage.objectstore import StoreUnavailable  # noqa: PLC0415

    args = argparse.Namespace(endpoint=None, data=hub_data[0])
    with opened_store(args) as store:
        assert store.exists(f"originals/{hub_data[1]}")
        with pytest.raises(StoreUnavailable):
            store.put("audit-was-here", b"x")
    with opened_store(args) as store:
        assert not store.exists("audit-was-here")


def test_export_and_ledger_verify_from_an_s3_endpoint(pki, weed_server, tmp_path, capsys):
    """With --endpoint/--bucket and credentials (any S3 store), plus --seal-key/--seal-cert, export works too."""
    bucket = unique_bucket("audit")
    seal = create_seal_identity(tmp_path / "seal", now=FIXED_NOW - timedelta(days=30))
    store = weed_server.store(bucket)
    ledger = Ledger.open(store)
    document = signed_by(pki.agency_ec)
    report = Verifier(policy_for(pki)).verify(document, at=FIXED_NOW)
    record = Archive(store, ledger, clock=lambda: FIXED_NOW).record(
        document, report, sender="000.00.00.H41", doc_id=DOC_ID, received_at=FIXED_NOW
    )
    ledger.seal(seal, at=FIXED_NOW + timedelta(minutes=1))
    remote = ["--endpoint", weed_server.endpoint, "--bucket", bucket]
    remote += ["--access-key", weed_server.access_key, "--secret-key", weed_server.secret_key]
    seal_files = [
        "--seal-key",
        str(tmp_path / "seal" / "hub-key.pem"),
        "--seal-cert",
        str(tmp_path / "seal" / "hub-cert.pem"),
    ]
    out = tmp_path / "b.zip"
    assert main(["audit", "export", record.sha256, "--out", str(out), *remote, *seal_files]) == 0
    assert main(["audit", "export", record.sha256, "--out", str(out), *remote]) == 2  # no seal key given
    trust = ["--trust", str(tmp_path / "seal" / "hub-cert.pem")]
    assert main(["ledger", "verify", *remote, *trust]) == 0
    (tmp_path / "root.pem").write_bytes(pki.root.cert_pem())
    capsys.readouterr()
    assert main(["audit", "verify", str(out), *trust, "--trust", str(tmp_path / "root.pem")]) == 0
