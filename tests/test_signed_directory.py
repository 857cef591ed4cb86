"""Signed directory records (hub.signed_directory): signing, verification, staleness and every refusal reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.directory import Agency, Route
from hub.settings import HubSettings
from hub.signed_directory import (
    Action,
    DirectoryState,
    RecordRefused,
    admin_signing_key,
    certificate_fingerprint,
    create_admin_identity,
    load_admin_certificates,
    sign_record,
)
from signer.keys import PemKey
from storage.ledger import EventKind, LedgerEvent, create_self_signed_identity
from storage.ledger._events import format_time

PIN_A = "a" * 64
PIN_B = "b" * 64
T0 = datetime.now(UTC)  # within the administrator certificate's validity (signatures are checked at issued_at)
AGENCY = Agency("000.01.00.H41", "Sở Nội vụ", Route.LOCAL, frozenset({PIN_A}))


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> PemKey:
    """The administrator key a hub generates in DATA/admin."""
    folder = tmp_path_factory.mktemp("admin")
    return create_self_signed_identity(folder / "key.pem", folder / "cert.pem", common_name="test admin")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> PemKey:
    """A fresh key with a self-signed certificate the hub does not trust."""
    folder = tmp_path_factory.mktemp("stranger")
    return create_self_signed_identity(folder / "key.pem", folder / "cert.pem", common_name="attacker")


def state_of(admin: PemKey) -> DirectoryState:
    """A worker's empty directory trusting ``admin``."""
    return DirectoryState([admin.certificate])


def refused(state: DirectoryState, key: str, value: bytes | None) -> str:
    """The reason ``state`` refuses the record (and that it changed nothing)."""
    before = (state.directory, dict(state.applied))
    with pytest.raises(RecordRefused) as caught:
        state.apply(key, value)
    assert (state.directory, state.applied) == before
    return caught.value.reason


def test_a_signed_record_is_applied_and_becomes_a_ledger_event(admin: PemKey) -> None:
    """A record signed by a trusted administrator sets the agency; its ledger event names the change."""
    state = state_of(admin)
    value = sign_record(admin, AGENCY.id, AGENCY, T0)
    change = state.apply(AGENCY.id, value)
    assert state.directory.get(AGENCY.id) == AGENCY
    assert change.action is Action.SET
    assert change.signer == certificate_fingerprint(admin.certificate)
    event = change.ledger_event(T0 + timedelta(seconds=1))
    assert event.kind is EventKind.DIRECTORY_CHANGED
    assert event.sha256 == change.sha256
    assert dict(event.detail) == {"organ_id": AGENCY.id, "issued_at": format_time(T0), "signer": change.signer}
    assert LedgerEvent.from_bytes(event.to_bytes()) == event


def test_a_signed_removal_removes(admin: PemKey) -> None:
    """A signed removal record removes the agency (removals are records, not tombstones)."""
    state = state_of(admin)
    state.apply(AGENCY.id, sign_record(admin, AGENCY.id, AGENCY, T0))
    change = state.apply(AGENCY.id, sign_record(admin, AGENCY.id, None, T0 + timedelta(seconds=1)))
    assert change.action is Action.REMOVE
    assert state.directory.get(AGENCY.id) is None


def test_an_old_record_replayed_cannot_roll_back_a_pin(admin: PemKey) -> None:
    """A validly signed record not newer than the last applied for its OrganId is refused as stale."""
    state = state_of(admin)
    old = sign_record(admin, AGENCY.id, AGENCY, T0)
    state.apply(AGENCY.id, old)
    repinned = Agency(AGENCY.id, AGENCY.name, AGENCY.route, frozenset({PIN_B}))
    state.apply(AGENCY.id, sign_record(admin, AGENCY.id, repinned, T0 + timedelta(minutes=1)))
    assert refused(state, AGENCY.id, old) == "stale"
    same_time = sign_record(admin, AGENCY.id, AGENCY, T0 + timedelta(minutes=1))
    assert refused(state, AGENCY.id, same_time) == "stale"
    assert state.directory.pins()[AGENCY.id] == {PIN_B}
    assert state.next_issued_at(AGENCY.id, now=T0) == T0 + timedelta(minutes=1, microseconds=1)


def test_a_record_signed_by_an_unknown_key_is_refused(admin: PemKey, stranger: PemKey) -> None:
    """A record signed by a key whose certificate is not in admin_certs is refused as unknown_key."""
    assert refused(state_of(admin), AGENCY.id, sign_record(stranger, AGENCY.id, AGENCY, T0)) == "unknown_key"


def test_a_record_naming_a_trusted_signer_but_signed_by_another_key_is_refused(
    admin: PemKey, stranger: PemKey
) -> None:
    """Claiming the administrator's fingerprint over a stranger's signature fails the signature check."""
    forged = json.loads(sign_record(stranger, AGENCY.id, AGENCY, T0))
    forged["signer"] = certificate_fingerprint(admin.certificate)
    value = json.dumps(forged, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert refused(state_of(admin), AGENCY.id, value) == "bad_signature"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (json.dumps(AGENCY.to_mapping()).encode(), "unsigned"),  # today's bare entry
        (b"", "unsigned"),  # a bare tombstone
        (None, "unsigned"),
        (b"{not json", "malformed"),
        (b"[1]", "malformed"),
    ],
)
def test_unsigned_and_malformed_records_are_refused(admin: PemKey, value: bytes | None, reason: str) -> None:
    """An unsigned entry, a tombstone or something not JSON is refused with its reason."""
    assert refused(state_of(admin), AGENCY.id, value) == reason


def test_a_record_issued_before_the_admin_certificate_is_refused(admin: PemKey) -> None:
    """The signature is checked at issued_at: a record dated before the certificate's validity is refused."""
    assert refused(state_of(admin), AGENCY.id, sign_record(admin, AGENCY.id, AGENCY, T0 - timedelta(days=30))) == (
        "bad_signature"
    )


def test_a_record_under_another_key_is_refused(admin: PemKey) -> None:
    """A record signed for one OrganId published under another key is refused as malformed."""
    assert refused(state_of(admin), "000.99.00.H99", sign_record(admin, AGENCY.id, AGENCY, T0)) == "malformed"


def test_a_reformatted_record_is_refused(admin: PemKey) -> None:
    """The same fields re-serialised with spaces are refused: a record has exactly one encoding."""
    spaced = json.dumps(json.loads(sign_record(admin, AGENCY.id, AGENCY, T0)), sort_keys=True).encode()
    assert refused(state_of(admin), AGENCY.id, spaced) == "malformed"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_to_a_signed_records_bytes_is_refused(admin: PemKey, data: st.DataObject) -> None:
    """Flipping, inserting or deleting any byte of a signed record makes it refused, never applied."""
    value = bytearray(sign_record(admin, AGENCY.id, AGENCY, T0))
    at = data.draw(st.integers(0, len(value) - 1))
    edit = data.draw(st.sampled_from(["flip", "insert", "delete"]))
    if edit == "flip":
        value[at] ^= data.draw(st.integers(1, 255))
    elif edit == "insert":
        value.insert(at, data.draw(st.integers(0, 255)))
    else:
        del value[at]
    with pytest.raises(RecordRefused):
        state_of(admin).apply(AGENCY.id, bytes(value))


def test_the_admin_identity_is_created_once_with_a_private_key(tmp_path: Path) -> None:
    """`lienthong up` creates DATA/admin/key.pem (0600) and cert.pem once; workers trust that cert by default."""
    settings = HubSettings(data_dir=tmp_path)
    create_admin_identity(settings)
    key_bytes = settings.admin_key_path.read_bytes()
    assert settings.admin_key_path.stat().st_mode & 0o777 == 0o600
    create_admin_identity(settings)
    assert settings.admin_key_path.read_bytes() == key_bytes
    (cert,) = load_admin_certificates(settings)
    with admin_signing_key(settings) as key:
        assert key.certificate == cert
        state = DirectoryState([cert])
        state.apply(AGENCY.id, sign_record(key, AGENCY.id, AGENCY, T0))


def test_admin_certs_replace_the_generated_certificate(tmp_path: Path, stranger: PemKey) -> None:
    """With admin_certs set, only those certificates are trusted; a PKCS#11 key needs admin_certs."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    pem = tmp_path / "other.pem"
    pem.write_bytes(stranger.certificate.public_bytes(serialization.Encoding.PEM))
    assert load_admin_certificates(HubSettings(data_dir=tmp_path, admin_certs=(pem,))) == [stranger.certificate]
    with pytest.raises(Exception, match="admin_certs"):
        create_admin_identity(HubSettings(data_dir=tmp_path, admin_pkcs11_uri="pkcs11:object=admin"))
    with pytest.raises(Exception, match="admin_certs"):
        load_admin_certificates(HubSettings(data_dir=tmp_path / "none"))


@pytest.mark.servers
def test_records_signed_on_a_pkcs11_token_are_applied(softhsm_token: Any, tmp_path: Path) -> None:
    """With admin_pkcs11_uri, records are signed inside SoftHSM2 and workers trusting its certificate apply them."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    cert = tmp_path / "admin-token.pem"
    cert.write_bytes(softhsm_token.cert.cert.public_bytes(serialization.Encoding.PEM))
    settings = HubSettings(data_dir=tmp_path, admin_pkcs11_uri=softhsm_token.uri, admin_certs=(cert,))
    create_admin_identity(settings)  # nothing to create: the key is on the token
    assert not settings.admin_key_path.exists()
    agency = Agency("000.01.00.H41", "Sở Tư pháp", Route.LOCAL)
    with admin_signing_key(settings) as key:
        value = sign_record(key, agency.id, agency, datetime.now(UTC))
    state = DirectoryState(load_admin_certificates(settings))
    assert state.apply(agency.id, value).agency == agency
    assert state.directory.get(agency.id) == agency
