"""The in-doubt window of ``hub.guard``: which records a restarted worker must check before producing again."""

from __future__ import annotations

from adapters.kafka import KafkaConnection
from hub.guard import DeliveryGuard


def _guard() -> DeliveryGuard:
    guard = DeliveryGuard(KafkaConnection("127.0.0.1:1"))
    guard.assign("lienthong.work.bulk", 0, committed=10, end=20)
    return guard


def test_records_between_the_commit_and_the_end_at_assignment_are_in_doubt() -> None:
    """Offsets in [committed, end) are in doubt; earlier and later ones are not."""
    guard = _guard()
    assert [guard.in_doubt("lienthong.work.bulk", 0, n) for n in (9, 10, 19, 20)] == [False, True, True, False]
    assert not guard.in_doubt("lienthong.work.bulk", 1, 15)  # another partition had nothing in doubt


def test_a_record_past_the_window_does_not_end_the_doubt_of_those_still_in_flight() -> None:
    """Concurrent actors take one partition's records out of order: offset 25 first, then 15 is still in doubt."""
    guard = _guard()
    assert not guard.in_doubt("lienthong.work.bulk", 0, 25)
    assert guard.in_doubt("lienthong.work.bulk", 0, 15)


def test_a_reassignment_with_nothing_uncommitted_clears_the_window() -> None:
    """A partition assigned again with its commit at its end has nothing in doubt."""
    guard = _guard()
    guard.assign("lienthong.work.bulk", 0, committed=20, end=20)
    assert not guard.in_doubt("lienthong.work.bulk", 0, 15)
