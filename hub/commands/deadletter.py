"""``lienthong deadletter list|replay``: what the hub refused, and sending it through the hub again."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TYPE_CHECKING

from hub.commands._common import emit_json, server_command, warn
from hub.commands.dms import add_connection_arguments, connection
from schemas.errors import HubError

if TYPE_CHECKING:
    from adapters.kafka import KafkaConnection
    from hub.deadletter import DeadLetter

__all__ = ["register"]

#: Dead letters published per step of a replay: one progress line on stderr each.
REPLAY_STEP = 100


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``deadletter list`` and ``deadletter replay``."""
    parser = subparsers.add_parser("deadletter", help="list or replay the records the hub refused")
    group = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = group.add_parser("list", help="each dead letter: position, reason, sender, problems")
    listing.add_argument("--reason", help="only this reason code (e.g. INTERNAL_ERROR, REVOKED)")
    add_connection_arguments(listing, agency=False)
    listing.set_defaults(func=run_list)

    again = group.add_parser(
        "replay",
        help="publish dead letters' original records to their senders' outboxes again (delivered documents stay once)",
        description="Replays go through every check again. A document already delivered is answered as a duplicate.",
    )
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", type=int, action="append", metavar="N", help="this dead letter (repeatable)")
    which.add_argument("--reason", help="every dead letter with this reason code")
    which.add_argument("--all", action="store_true", help="every dead letter")
    again.add_argument("--dry-run", action="store_true", help="say what would be replayed, send nothing")
    add_connection_arguments(again, agency=False)
    again.set_defaults(func=run_replay)


@server_command("deadletter list")
def run_list(args: argparse.Namespace) -> int:
    """Print every dead letter (optionally of one reason), then a count by reason."""
    from hub.deadletter import read_dead_letters  # noqa: PLC0415 - kafka is imported only when needed

    reasons: Counter[str] = Counter()
    try:
        for letter in read_dead_letters(connection(args), reason=args.reason):
            reasons[letter.reason] += 1
            summary = letter.summary()
            if args.json:
                emit_json(summary)
            else:
                print(f"{letter.position:<20} {letter.reason:<26} {summary['sender'] or '-':<16} {summary['error']}")
    except HubError as exc:
        print(f"lienthong deadletter list: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        total = sum(reasons.values())
        by_reason = ", ".join(f"{r} {n}" for r, n in reasons.most_common())
        print(f"{total} dead letter(s){': ' + by_reason if total else ''}")
    return 0


@server_command("deadletter replay")
def run_replay(args: argparse.Namespace) -> int:
    """Replay the chosen dead letters; exit 1 if an asked-for offset does not exist."""
    from hub.deadletter import read_dead_letters  # noqa: PLC0415

    try:
        kafka = connection(args)
        letters = list(read_dead_letters(kafka, reason=args.reason))
        if args.offset:
            wanted = set(args.offset)
            letters = [letter for letter in letters if letter.offset in wanted]
            missing = wanted - {letter.offset for letter in letters}
            if missing:
                print(f"no dead letter at offset(s) {', '.join(map(str, sorted(missing)))}", file=sys.stderr)
                return 1
        done = letters if args.dry_run else _replay_in_steps(kafka, letters)
    except HubError as exc:
        print(f"lienthong deadletter replay: {exc}", file=sys.stderr)
        return 1
    verb = "would replay" if args.dry_run else "replayed"
    for letter in done:
        if args.json:
            emit_json({"replayed": not args.dry_run, **letter.summary()})
        else:
            sender = (letter.key or b"").decode(errors="replace")
            print(f"{verb} {letter.position} ({letter.reason}) to the outbox of {sender}")
    if not args.json:
        print(f"{len(done)} record(s) {verb}; statuses and deliveries follow on the usual topics")
    return 0


def _replay_in_steps(kafka: KafkaConnection, letters: list[DeadLetter]) -> list[DeadLetter]:
    """Replay ``letters`` ``REPLAY_STEP`` at a time, with a progress line on stderr after each step."""
    from hub.deadletter import replay  # noqa: PLC0415

    done: list[DeadLetter] = []
    for first in range(0, len(letters), REPLAY_STEP):
        done += replay(kafka, letters[first : first + REPLAY_STEP])
        warn(f"deadletter replay: {len(done)}/{len(letters)} published")
    return done
