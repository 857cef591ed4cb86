"""The in-doubt window of ``hub.guard``: which records a restarted worker must check before producing again."""

from __future__ import annotations

import asyncio

from adapters.kafka import KafkaConnection
from hub.guard import DeliveryGuard


def _doubt(guard: DeliveryGuard, partition: int, offset: int) -> bool:
    return asyncio.run(guard.in_doubt("lienthong.work.bulk", partition, offset))


def _guard() -> DeliveryGuard:
    guard = DeliveryGuard(KafkaConnection("127.0.0.1:1"))
    guard.assign("lienthong.work.bulk", 0, committed=10, end=20)
    return guard


def test_records_between_the_commit_and_the_end_at_assignment_are_in_doubt() -> None:
    """Offsets in [committed, end) are in doubt; earlier and later ones are not."""
    guard = _guard()
    assert [_doubt(guard, 0, n) for n in (9, 10, 19, 20)] == [False, True, True, False]
    assert not _doubt(guard, 1, 15)  # another partition had nothing in doubt


def test_a_record_past_the_window_does_not_end_the_doubt_of_those_still_in_flight() -> None:
    """Concurrent actors take one partition's records out of order: offset 25 first, then 15 is still in doubt."""
    guard = _guard()
    assert not _doubt(guard, 0, 25)
    assert _doubt(guard, 0, 15)


def test_a_reassignment_with_nothing_uncommitted_clears_the_window() -> None:
    """A partition assigned again with its commit at its end has nothing in doubt."""
    guard = _guard()
    guard.assign("lienthong.work.bulk", 0, committed=20, end=20)
    assert not _doubt(guard, 0, 15)


def test_records_of_a_new_assignment_wait_until_its_window_is_known() -> None:
    """A record handed out while the assignment is being looked up is judged against the window found then."""

    async def scenario() -> bool:
        guard = DeliveryGuard(KafkaConnection("127.0.0.1:1"))
        ready = guard.expect([("lienthong.work.bulk", 0)])
        check = asyncio.ensure_future(guard.in_doubt("lienthong.work.bulk", 0, 15))
        await asyncio.sleep(0.01)
        assert not check.done()  # held back
        guard.assign("lienthong.work.bulk", 0, committed=10, end=20)
        guard.looked_up(ready)
        return await check

    assert asyncio.run(scenario()) is True
