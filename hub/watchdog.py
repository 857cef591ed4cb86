"""A worker that has records waiting on its partitions but handles none is stuck: it should leave and be restarted.

faust-streaming's consumer can stop handing records to agents after a rebalance without an error (records fetched
under an older generation are skipped; paused partitions not resumed). Nothing is lost then, since those records are
not committed, but nothing moves either, and no log line says so. ``StallWatch`` notices it from what the worker
knows: the records not yet committed on its partitions, the records in hand, and when the last one finished. The
worker then exits at once (as a crash would, which ``hub.guard`` makes safe) and its supervisor starts it again.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_STALL_SECONDS", "StallWatch"]

#: Longer than any rebalance or broker fail-over seen in the fault tests (records in hand meanwhile do not count:
#: a retried store or broker is work), short enough that a stuck worker delays documents by about a minute.
DEFAULT_STALL_SECONDS = 60.0


@dataclass
class StallWatch:
    """Counts records in hand and says when records have waited ``after`` seconds with none in hand or finished."""

    after: float = DEFAULT_STALL_SECONDS
    in_hand: int = 0
    _since: float | None = None  # when the worker was last idle, busy or finishing a record

    def started(self) -> None:
        """A record is being handled."""
        self.in_hand += 1

    def finished(self, now: float) -> None:
        """A record was handled (or its handling ended): progress."""
        self.in_hand -= 1
        self._since = now

    def stalled(self, waiting: int, now: float) -> bool:
        """Whether ``waiting`` uncommitted records have had no record in hand or finished for ``after`` seconds."""
        if waiting == 0 or self.in_hand > 0 or self._since is None:
            self._since = now
            return False
        return now - self._since >= self.after
