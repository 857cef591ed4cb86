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


#: Files that take minutes (most of it waiting on servers) run first, so that none is left for the end of a
#: two-process run while the other process idles. Measured with ``--durations=0``; the rest keep their order.
LONG_FILES = (
    "tests/test_hub_faults.py",
    "tests/test_cluster.py",
    "tests/test_axis_connector.py",
    *sorted(RUNNING_DEMO_FILES),
    "tests/test_hub_e2e.py",
    "tests/test_up_demo.py",
    "tests/test_kafka_tls.py",
    "tests/test_access.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first; the tests marked ``demo_traffic`` last, after every test that reads the demo as it was left."""
    rank = {path: n for n, path in enumerate(LONG_FILES)}
    items.sort(
        key=lambda item: (
            item.get_closest_marker("demo_traffic") is not None,
            rank.get(item.nodeid.split("::", 1)[0], len(rank)),
        )
    )


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own; only with pytest-xdist (`make test`)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile``, with the running demo's files as one: each file (or that set) stays on one process.

    Files are handed out in the collection's order (``pytest_collection_modifyitems``), not by their test counts.
    """
    if config.getvalue("dist") != "loadfile":
        return None
    config.option.loadscopereorder = False
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only under pytest-xdist

    class _FilesAndDemo(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "running-demo" if path in RUNNING_DEMO_FILES else path

    return _FilesAndDemo(config, log)
