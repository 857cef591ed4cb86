"""RFC 9162 Merkle proofs: every leaf provable, every prefix consistent, any tampering detected."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(f"event-{i}".encode()) for i in range(257)]


def test_known_small_trees() -> None:
    """Roots of 0, 1, 2 and 3 leaves follow the RFC 9162 definition exactly."""
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert root_hash([a]) == a == hashlib.sha256(b"\x00a").digest()
    assert root_hash([a, b]) == node_hash(a, b)
    assert root_hash([a, b, c]) == node_hash(node_hash(a, b), c)


@pytest.mark.parametrize("size", range(1, 258))
def test_every_leaf_of_every_size_is_provable(size: int) -> None:
    """For logs of size 1..257, the inclusion proof of every leaf verifies against the root."""
    leaves = LEAVES[:size]
    root = root_hash(leaves)
    for index in range(size):
        verify_inclusion(leaves[index], index, size, inclusion_proof(index, leaves), root)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 257).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_between_any_two_sizes(sizes: tuple[int, int]) -> None:
    """A consistency proof between any two sizes verifies, and fails against a changed old root."""
    old, new = sizes
    proof = consistency_proof(old, LEAVES[:new])
    old_root, new_root = root_hash(LEAVES[:old]), root_hash(LEAVES[:new])
    verify_consistency(old, new, old_root, new_root, proof)
    if old < new:
        with pytest.raises(ProofError):
            verify_consistency(old, new, leaf_hash(b"forged"), new_root, proof)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 257).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))), st.data())
def test_tampered_leaf_or_node_is_detected(where: tuple[int, int], data: st.DataObject) -> None:
    """Changing the leaf, any proof node, or the root makes inclusion verification fail."""
    index, size = where
    leaves = LEAVES[:size]
    proof = inclusion_proof(index, leaves)
    root = root_hash(leaves)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"tampered"), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, proof, leaf_hash(b"other root"))
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        forged = list(proof)
        forged[position] = bytes(32)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, forged, root)


def test_leaf_cannot_pose_as_node() -> None:
    """Domain separation: a node's preimage submitted as a leaf does not hash to the node."""
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)
