"""Shared fixtures: the test PKI and the real servers (OpenSSL OCSP/TSA, SoftHSM2, S3)."""

pytest_plugins = [
    "tests.support.pki_fixtures",
    "tests.support.server_fixtures",
    "tests.support.signing",
    "tests.support.s3_fixtures",
    "tests.support.broker_fixtures",
    "tests.support.hub_fixtures",
    "tests.support.demo_fixtures",
]
