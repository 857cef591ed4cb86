"""Shared fixtures: the test PKI and the real servers (OpenSSL OCSP/TSA, SoftHSM2, S3)."""

import pytest

pytest_plugins = [
    "tests.support.pki_fixtures",
    "tests.support.server_fixtures",
    "tests.support.signing",
    "tests.support.s3_fixtures",
    "tests.support.broker_fixtures",
    "tests.support.hub_fixtures",
    "tests.support.demo_fixtures",
]


#: The files whose tests use the session's running demo (``tests.support.demo_fixtures``): one test process runs them
#: all, so that the demo starts once and the tests that read it as it was left run before those adding traffic.
RUNNING_DEMO_FILES = frozenset(
    {"tests/test_dashboard.py", "tests/test_first_run.py", "tests/test_report.py", "tests/test_tsa_heads.py"}
)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own; only with pytest-xdist (`make test`)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile``, with the running demo's files as one: each file (or that set) stays on one process."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only under pytest-xdist

    class _FilesAndDemo(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "running-demo" if path in RUNNING_DEMO_FILES else path

    return _FilesAndDemo(config, log)
