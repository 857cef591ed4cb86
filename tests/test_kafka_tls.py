"""The hub on a Kafka whose listener is TLS with the operator's CA (SASL_SSL), reached as an external cluster."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.access import issue_credentials
from hub.demo import demo_documents
from hub.embedded.kafka import BrokerTls, EmbeddedKafka
from hub.settings import HubSettings
from hub.trust import ConfigError
from hub.up import Hub
from tests.support.broker_fixtures import require_kafka
from tests.support.hub_fixtures import Stack, start_external_stack

pytestmark = [pytest.mark.servers, pytest.mark.timeout(600)]


def _operator_ca(folder: Path) -> BrokerTls:
    """An operator's CA and a broker certificate for 127.0.0.1 signed by it, as Kafka's PEM keystore wants them."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Operator Kafka CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    keystore = folder / "broker.pem"
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = serialization.Encoding.PEM
    keystore.write_bytes(pkcs8 + cert.public_bytes(pem) + ca.public_bytes(pem))
    keystore.chmod(0o600)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return BrokerTls(keystore, ca_file)


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A TLS broker (the operator's) and a hub that reaches it with kafka_tls and kafka_ca_file."""
    require_kafka()
    folder = tmp_path_factory.mktemp("tls")
    tls = _operator_ca(folder)
    broker = EmbeddedKafka(folder / "kafka", username="operator-hub", password=secrets.token_urlsafe(16), tls=tls)
    broker.start()
    try:
        stack = start_external_stack(folder / "data", broker)
        try:
            yield stack
        finally:
            stack.hub.stop()
    finally:
        broker.stop()


def test_agencies_and_the_hub_speak_sasl_ssl_with_the_operators_ca(tls_stack: Stack) -> None:
    """Over SASL_SSL: credentials name the CA; a document sent with confluent-kafka reaches kafka-python's inbox."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from kafka import KafkaConsumer  # noqa: PLC0415

    document = next(
        d
        for d in demo_documents(tls_stack.material, 40, start_number=90_000)
        if d.expect == "delivered" and "000.00.00.G22" not in d.recipients
    )
    mine = issue_credentials(tls_stack.settings, document.sender)
    theirs = issue_credentials(tls_stack.settings, document.recipients[0])
    assert mine["kafka"]["security.protocol"] == "SASL_SSL"
    assert mine["kafka"]["ssl.ca.location"] == str(tls_stack.settings.kafka_ca_file)
    errors: list[Any] = []
    producer = confluent_kafka.Producer({**mine["kafka"], "acks": "all"})
    producer.produce(mine["topics"]["outbox"], value=document.data, on_delivery=lambda e, _m: errors.append(e))
    producer.flush(30)
    assert errors == [None]
    consumer = KafkaConsumer(
        theirs["topics"]["inbox"],
        group_id=f"dms.{document.recipients[0]}.tls",
        auto_offset_reset="earliest",
        consumer_timeout_ms=120_000,
        **theirs["kafka_python"],
    )
    try:
        got = next(m for m in consumer if m.value == document.data)
    finally:
        consumer.close()
    assert dict(got.headers)["lienthong-sha256"].decode() == hashlib.sha256(document.data).hexdigest()


def test_a_client_that_skips_tls_is_not_served(tls_stack: Stack) -> None:
    """A SASL_PLAINTEXT client on the TLS listener never gets a record acknowledged."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    config = {**tls_stack.settings.kafka.librdkafka(), "security.protocol": "SASL_PLAINTEXT"}
    config.pop("ssl.ca.location", None)
    delivered: list[Any] = []
    producer = confluent_kafka.Producer({**config, "message.timeout.ms": 8000})
    producer.produce("lienthong.deadletter", value=b"x", on_delivery=lambda e, _m: delivered.append(e))
    producer.flush(20)
    assert delivered
    assert delivered[0] is not None


@pytest.mark.parametrize("setting", [{"kafka_tls": True}, {"kafka_ca_file": "operator-ca.pem"}])
def test_tls_settings_with_the_embedded_broker_are_refused_before_anything_starts(
    tmp_path: Path, setting: dict[str, object]
) -> None:
    """kafka_tls or kafka_ca_file without kafka_external: a ConfigError naming both, and no server started."""
    settings = HubSettings.load(data_dir=tmp_path / "data", **setting)
    hub = Hub(settings, workers=1, progress=lambda _line: None)
    with pytest.raises(ConfigError, match="kafka_tls and kafka_ca_file are for your own Kafka cluster"):
        hub.start()
    assert hub.kafka is None
    assert not (tmp_path / "data" / "kafka").exists()
    assert not (tmp_path / "data" / "s3").exists()
