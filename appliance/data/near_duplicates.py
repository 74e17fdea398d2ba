"""Near-duplicate records: MinHash signatures of each record's word 3-shingles, locality-sensitive hashing over bands
of the signature to propose candidate pairs, and the exact Jaccard similarity of the shingles to decide.

32 bands of 4 rows propose a pair whose similarity is 0.8 with probability 1 - (1 - 0.8^4)^32 > 0.9999999, so at
the lint's threshold the exact check, not chance, decides. Records sharing a system prompt and templates are
proposed often; the share of equal signature values (an estimate of the similarity, within 0.04 at 0.8) sets
aside those 0.2 below the threshold before the exact check. The hashes are seeded, so a dataset's report is the
same on every run.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

BANDS, ROWS = 32, 4
_SEED = 1


def _permutations(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_SEED)
    a = rng.integers(1, 2**32, count, dtype=np.uint64).astype(np.uint32) | np.uint32(1)  # odd: a bijection mod 2^32
    b = rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32)
    return a, b


def _mixed(ids: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: consecutive numbers become well-spread hashes (a bijection)."""
    h = ids.astype(np.uint32)
    with np.errstate(over="ignore"):
        h ^= h >> 16
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> 13
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> 16
    return h


def _hashes(shingles: set[str], number: dict[str, int]) -> np.ndarray:
    """32-bit hashes of a record's shingles: each distinct shingle numbered as the dataset first meets it (a record's
    shingles in sorted order, so the numbering does not follow Python's per-process string hashing) and the
    number mixed; a dataset's report is the same on every run, at a dictionary lookup a shingle."""
    ids = (number.setdefault(s, len(number)) for s in sorted(shingles))
    return _mixed(np.fromiter(ids, dtype=np.int64, count=len(shingles)))


def signature(hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The MinHash of a set of 32-bit hashes: for each permutation h -> a*h + b (mod 2^32), the least image."""
    if not len(hashes):
        return np.full(len(a), np.iinfo(np.uint32).max, dtype=np.uint32)
    with np.errstate(over="ignore"):
        return (hashes[:, None] * a[None, :] + b[None, :]).min(axis=0)


def pairs(shingle_sets: dict[str, set[str]], threshold: float, skip: set[str] = frozenset()) -> list[list[str]]:
    """[earlier id, later id] for every two records (in the order given, those in `skip` left out) whose shingle
    sets have a Jaccard similarity of at least `threshold`."""
    a, b = _permutations(BANDS * ROWS)
    ids = [rid for rid in shingle_sets if rid not in skip]
    if not ids:
        return []
    number: dict[str, int] = {}
    signatures = np.stack([signature(_hashes(shingle_sets[rid], number), a, b) for rid in ids])
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    out = []
    for i, rid in enumerate(ids):
        keys = [(band, signatures[i, band * ROWS:(band + 1) * ROWS].tobytes()) for band in range(BANDS)]
        candidates = sorted({j for key in keys for j in buckets.get(key, ())})
        if candidates:
            estimate = (signatures[candidates] == signatures[i]).mean(axis=1)
            mine = shingle_sets[rid]
            for j in (c for c, e in zip(candidates, estimate, strict=True) if e >= threshold - 0.2):
                theirs = shingle_sets[ids[j]]
                union = len(mine | theirs)
                if union and len(mine & theirs) / union >= threshold:
                    out.append([ids[j], rid])
        for key in keys:
            buckets[key].append(i)
    return out
