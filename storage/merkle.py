"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, inclusion and consistency proofs. Pure.

Leaves are hashed as ``SHA-256(0x00 || leaf)`` and nodes as ``SHA-256(0x01 || left || right)`` so that a leaf can
never be passed off as a node (domain separation). The tree over ``n`` leaves splits at the largest power of two
smaller than ``n`` (RFC 9162, section 2.1.1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from schemas.errors import HubError

__all__ = [
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(HubError):
    """A Merkle proof does not prove what it claims (the log or the proof was changed)."""


def leaf_hash(leaf: bytes) -> bytes:
    """The hash of one log entry."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _skip_left_edges(fn: int, sn: int) -> tuple[int, int]:
    """Shift both indices right until ``fn`` is odd or zero (the RFC 9162 verification step)."""
    while not fn & 1 and fn != 0:
        fn >>= 1
        sn >>= 1
    return fn, sn


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash over already-hashed leaves (``EMPTY_ROOT`` for none)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_hash(leaf_hashes[:k]), root_hash(leaf_hashes[k:]))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path proving leaf ``index`` is in the tree over ``leaf_hashes`` (RFC 9162, 2.1.3.1)."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf {index} is not in a tree of {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaf_hashes[:k]), root_hash(leaf_hashes[k:])]
    return [*inclusion_proof(index - k, leaf_hashes[k:]), root_hash(leaf_hashes[:k])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` ``leaf`` sits at ``index`` in the tree of ``size`` with ``root``.

    Raises ``ProofError`` naming what failed (RFC 9162, 2.1.3.2).
    """
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _skip_left_edges(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the tree head's root")


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of ``old_size`` is a prefix of the tree over ``leaf_hashes`` (RFC 9162, 2.1.4.1)."""
    n = len(leaf_hashes)
    if not 0 < old_size <= n:
        raise ValueError(f"no consistency proof from size {old_size} to {n}")
    return _subproof(old_size, leaf_hashes, complete=True)


def _subproof(m: int, leaves: Sequence[bytes], *, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_hash(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete=complete), root_hash(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], complete=False), root_hash(leaves[:k])]


def _consistency_path(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> list[bytes]:
    """The proof with the old root prepended where RFC 9162 implies it; empty when sizes are equal and match."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"sizes {old_size} → {new_size} cannot be consistent")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("equal sizes with different roots")
        return []
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node on the path
        path.insert(0, old_root)
    if not path:
        raise ProofError("empty consistency proof")
    return path


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``old_size``/``old_root`` is a prefix of ``new_size``/``new_root`` (RFC 9162, 2.1.4.2).

    Raises ``ProofError`` when it is not.
    """
    path = _consistency_path(old_size, new_size, old_root, new_root, proof)
    if not path:
        return
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _skip_left_edges(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the older tree head's root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the newer tree head's root")
