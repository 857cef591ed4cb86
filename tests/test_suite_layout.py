"""How the suite is split over test processes (`make test`): the running demo's files stay together."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LONG_FILES, RUNNING_DEMO_FILES

ROOT = Path(__file__).resolve().parent.parent


def test_every_file_using_the_running_demo_is_scheduled_with_the_others():
    """A test file that uses `running_demo` is in RUNNING_DEMO_FILES, else its traffic could precede a pristine read."""
    using = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").glob("test_*.py")
        if path.name != Path(__file__).name and "running_demo" in path.read_text(encoding="utf-8")
    }
    assert using == RUNNING_DEMO_FILES


def test_the_long_files_run_first_and_exist():
    """Every file named as long exists: a renamed file would silently lose its early start."""
    assert all((ROOT / path).is_file() for path in LONG_FILES)
