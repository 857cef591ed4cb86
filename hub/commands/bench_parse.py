"""``lienthong bench parse``: edXML parse-and-check throughput at 5 KB and 1 MB.

The baseline, measured in the same run, is a bare ``lxml.etree.fromstring`` of the same bytes: the ratio says
what the safety checks, the structure checks, the model and the value rules cost on top of reading the XML at all.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from lxml import etree

from hub.commands._common import warn
from schemas import build_document, parse
from schemas.examples import example_edoc

__all__ = ["register_bench"]

#: (label, Vietnamese content characters, attachment bytes): a plain công văn and one with a 750 KB PDF.
_DOCUMENTS = (("5 KB", 1_300, 0), ("1 MB", 0, 760_000))


def register_bench(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench parse``."""
    sub = group.add_parser("parse", help="parse and check 5 KB and 1 MB edXML documents (documents/s)")
    sub.add_argument("--seconds", type=float, default=2.0, help="measuring time per row")
    sub.set_defaults(func=run)


def _rate(task: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        task()
        count += 1
    return count / elapsed


def run(args: argparse.Namespace) -> int:
    """Print documents/s for each size, with the ratio to a bare lxml parse of the same bytes."""
    print(f"{'document':>10} {'bytes':>10} {'parse docs/s':>14} {'lxml docs/s':>13} {'cost x lxml':>12} {'MB/s':>8}")
    for number, (label, padding, attachment) in enumerate(_DOCUMENTS, 1):
        warn(f"bench parse: measuring {label} ({number}/{len(_DOCUMENTS)}, 2 × {args.seconds:g} s)")
        data = build_document(example_edoc(content_padding=padding, attachment_bytes=attachment))
        ours = _rate(partial(parse, data), args.seconds)
        bare = _rate(partial(etree.fromstring, data), args.seconds)
        print(
            f"{label:>10} {len(data):>10,} {ours:>14,.0f} {bare:>13,.0f} {bare / ours:>11.1f}x "
            f"{ours * len(data) / 1e6:>8.0f}",
            flush=True,
        )
    return 0
