"""Class-data sharing for the broker's JVMs: the first JVM writes an archive on exit, the next ones map it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hub.embedded._cds import archive_flags, keep_archive
from hub.embedded.kafka import kafka_classpath
from tests.support.broker_fixtures import require_kafka


def _jars(tmp_path: Path) -> Path:
    """A folder of links to Kafka's jars: the archives made here stay out of the shared one."""
    require_kafka()
    real = Path(kafka_classpath().removesuffix("/*"))
    jars = tmp_path / "jars"
    jars.mkdir()
    for jar in real.glob("*.jar"):
        (jars / jar.name).symlink_to(jar)
    return jars


def _run(java: str, flags: list[str], jars: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [java, *flags, *extra, "-cp", f"{jars}/*", "kafka.tools.StorageTool", "random-uuid"]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.servers
def test_the_first_jvm_writes_the_archive_and_the_next_maps_it(tmp_path: Path) -> None:
    """First run: an archive is written and kept; second run: it maps it (-Xshare:on fails the JVM if it cannot)."""
    java = shutil.which("java")
    assert java is not None
    jars = _jars(tmp_path)
    flags, writing = archive_flags(java, jars, "format")
    assert writing is not None
    first = _run(java, flags, jars)
    assert first.returncode == 0, first.stderr
    keep_archive(writing, exited_cleanly=True)
    archives = list((jars / "cds").glob("format-*.jsa"))
    assert len(archives) == 1
    assert not list((jars / "cds").glob("*.tmp"))
    flags, writing = archive_flags(java, jars, "format")
    assert writing is None
    assert flags[-1] == f"-XX:SharedArchiveFile={archives[0]}"
    second = _run(java, flags, jars, "-Xshare:on")
    assert second.returncode == 0, second.stderr + second.stdout


def test_an_archive_of_a_killed_jvm_is_dropped(tmp_path: Path) -> None:
    """A JVM killed while writing may leave part of an archive: it is deleted, never put in place."""
    writing = tmp_path / "broker-abc.jsa.0123456789ab.tmp"
    writing.write_bytes(b"partial")
    keep_archive(writing, exited_cleanly=False)
    assert list(tmp_path.iterdir()) == []


def test_a_complete_archive_is_moved_in_place_and_none_is_ignored(tmp_path: Path) -> None:
    """A clean exit's archive takes the final name; no archive to keep is no error."""
    writing = tmp_path / "broker-abc.jsa.0123456789ab.tmp"
    writing.write_bytes(b"archive")
    keep_archive(writing, exited_cleanly=True)
    assert [p.name for p in tmp_path.iterdir()] == ["broker-abc.jsa"]
    keep_archive(None, exited_cleanly=True)

