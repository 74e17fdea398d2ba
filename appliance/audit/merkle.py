"""RFC 6962 / 9162 Merkle tree hashing: leaf = H(0x00 || data), node = H(0x01 || left || right).

Pure functions over hashes; storage lives in log.py. Trees are over leaf indexes 0..size-1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n > 1), where RFC 6962 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: list[bytes]) -> bytes:
    """MTH over leaf hashes, by the RFC's recursive definition (reference implementation for tests)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


class Frontier:
    """Incremental tree head: the roots of the perfect subtrees covering the leaves appended so far.

    Appending is amortised O(1); `root()` is O(log n). Produces exactly the RFC 6962 root.
    """

    __slots__ = ("size", "_stack")

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []  # one hash per set bit of size, largest subtree first

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the perfect subtrees it completed as (level, index, hash), level >= 1."""
        completed = []
        node, index, level = leaf, self.size, 0
        while index & 1:
            node = node_hash(self._stack.pop(), node)
            index >>= 1
            level += 1
            completed.append((level, index, node))
        self._stack.append(node)
        self.size += 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> None:
        stack = self._stack
        size = self.size
        for node in leaves:
            index = size
            while index & 1:
                node = hashlib.sha256(b"\x01" + stack.pop() + node).digest()
                index >>= 1
            stack.append(node)
            size += 1
        self.size = size

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            acc = node_hash(left, acc)
        return acc


def subtree_hash(start: int, end: int, perfect: Callable[[int, int], bytes]) -> bytes:
    """MTH of leaves [start, end), from `perfect(level, index)`: the stored hash of an aligned perfect subtree."""
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        return perfect(n.bit_length() - 1, start // n)
    k = split_point(n)
    return node_hash(subtree_hash(start, start + k, perfect), subtree_hash(start + k, end, perfect))


def inclusion_path(index: int, size: int, perfect: Callable[[int, int], bytes], start: int = 0) -> list[bytes]:
    """RFC 6962 PATH(index, D[start:start+size]): sibling hashes from the leaf up to the root."""
    if size <= 1:
        return []
    k = split_point(size)
    if index < k:
        return inclusion_path(index, k, perfect, start) + [subtree_hash(start + k, start + size, perfect)]
    return inclusion_path(index - k, size - k, perfect, start + k) + [subtree_hash(start, start + k, perfect)]


def verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does `path` prove `leaf` is at `index` in the tree of `size` with `root`?"""
    if index >= size:
        return False
    fn, sn, acc = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            acc = node_hash(sibling, acc)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            acc = node_hash(acc, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and acc == root
