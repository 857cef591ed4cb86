"""The stall watch: a worker with records waiting but none in hand or finished for a while is stuck."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.watchdog import StallWatch


def test_records_waiting_with_nothing_handled_for_the_whole_period_is_a_stall():
    """Records wait, none is taken for `after` seconds: stalled; one second less: not yet."""
    watch = StallWatch(after=120)
    assert not watch.stalled(waiting=5, now=1000)
    assert not watch.stalled(waiting=5, now=1119)
    assert watch.stalled(waiting=5, now=1120)


def test_an_idle_worker_is_never_stalled():
    """Nothing waiting: however long, no stall; the clock starts at the last look that saw nothing waiting."""
    watch = StallWatch(after=120)
    for now in range(0, 10_000, 60):
        assert not watch.stalled(waiting=0, now=now)
    assert not watch.stalled(waiting=3, now=10_000)
    assert not watch.stalled(waiting=3, now=9960 + 119)
    assert watch.stalled(waiting=3, now=9960 + 120)


def test_a_record_in_hand_for_long_is_not_a_stall_and_its_end_restarts_the_clock():
    """A record retried for minutes (a store down) is work, not a stall; the clock starts again when it ends."""
    watch = StallWatch(after=120)
    watch.started()
    assert not watch.stalled(waiting=50, now=0)
    assert not watch.stalled(waiting=50, now=3600)
    watch.finished(now=3601)
    assert not watch.stalled(waiting=49, now=3700)
    assert watch.stalled(waiting=49, now=3721)


@given(st.lists(st.tuples(st.sampled_from(["start", "finish", "look"]), st.integers(0, 3), st.integers(0, 300))))
def test_a_stall_is_reported_exactly_after_a_full_period_without_progress(steps):
    """Any order of events: stalled iff records wait, none is in hand, and nothing was idle, busy or done for 120 s."""
    watch = StallWatch(after=120)
    now = 0
    calm: int | None = None  # the last time the worker was seen idle or busy, or finished a record
    for action, waiting, elapsed in steps:
        now += elapsed
        if action == "start":
            watch.started()
        elif action == "finish" and watch.in_hand:
            watch.finished(now)
            calm = now
        elif action == "look":
            expected = waiting > 0 and watch.in_hand == 0 and calm is not None and now - calm >= 120
            assert watch.stalled(waiting, now) == expected
            if waiting == 0 or watch.in_hand or calm is None:
                calm = now
