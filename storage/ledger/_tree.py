"""RFC 9162 trees computed from a stream of leaf hashes in O(log n) memory: the frontier and proof ranges.

A tree over ``n`` leaves splits at the largest power of two below ``n``, so every left subtree is complete and its
leaf count is a bit of ``n``: the tree is determined by the hashes of the complete subtrees in the binary
decomposition of ``n`` (its right edge, the *frontier*), folded right to left. Appending a leaf merges the
equal-sized subtrees at the end, like a binary counter. A proof is a list of subtree hashes over ranges of leaves
that depend only on the index and the sizes; ``range_hashes`` computes any set of such ranges in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from storage import merkle


class Frontier:
    """The right edge of the tree over the leaves appended so far: ``popcount(size)`` hashes, largest first."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of {size} leaves has {size.bit_count()} hashes, not {len(hashes)}")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Leaves appended."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The complete subtrees of the right edge, left to right."""
        return tuple(self._hashes)

    def copy(self) -> Frontier:
        """An independent copy."""
        return Frontier(self._size, self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf: it merges with as many complete subtrees as ``size`` has trailing one bits."""
        hashes = self._hashes
        hashes.append(leaf_hash)
        n = self._size
        while n & 1:
            right = hashes.pop()
            hashes[-1] = merkle.node_hash(hashes[-1], right)
            n >>= 1
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append each leaf in order."""
        for leaf in leaf_hashes:
            self.append(leaf)

    def root(self) -> bytes:
        """The tree hash over every leaf appended (``merkle.EMPTY_ROOT`` for none)."""
        if not self._hashes:
            return merkle.EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = merkle.node_hash(left, root)
        return root


Range = tuple[int, int]


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The leaf ranges ``[lo, hi)`` whose tree hashes make leaf ``index``'s audit path in a tree of ``size``."""
    ranges: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()  # RFC 9162 lists the path from the leaf up
    return ranges


def consistency_ranges(old: int, new: int) -> list[Range]:
    """The leaf ranges whose tree hashes make the RFC 9162 consistency proof from ``old`` to ``new`` leaves."""
    ranges: list[Range] = []
    lo, hi, m, complete = 0, new, old, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def range_hashes(ranges: Iterable[Range], leaf_hashes: Iterable[bytes]) -> dict[Range, bytes]:
    """The tree hash of each range, reading ``leaf_hashes`` (leaf 0 first) once and only as far as needed.

    Memory: one frontier per range open at a time. Raises ``ValueError`` when the leaves end before a range does.
    """
    todo = sorted({r for r in ranges if r[0] < r[1]}, reverse=True)  # popped from the end: by first leaf
    if not todo:
        return {}
    last = max(hi for _, hi in todo)
    open_ranges: list[tuple[Range, Frontier]] = []
    done: dict[Range, bytes] = {}
    index = -1
    for index, leaf in enumerate(leaf_hashes):
        while todo and todo[-1][0] == index:
            open_ranges.append((todo.pop(), Frontier()))
        still: list[tuple[Range, Frontier]] = []
        for span, frontier in open_ranges:
            frontier.append(leaf)
            if span[1] == index + 1:
                done[span] = frontier.root()
            else:
                still.append((span, frontier))
        open_ranges = still
        if index + 1 >= last:
            break
    if open_ranges or todo:
        raise ValueError(f"the leaves end at {index + 1}, before leaf {last}")
    return done
