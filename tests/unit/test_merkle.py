"""RFC 6962 known-answer vectors (the Certificate Transparency reference leaves and roots)."""

import hashlib

import pytest

from appliance.audit import merkle

pytestmark = pytest.mark.unit

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]
ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
INCLUSION = [  # (leaf index, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
HASHES = [merkle.leaf_hash(d) for d in LEAVES]


def test_empty_root_is_sha256_of_nothing():
    assert merkle.root_of([]) == hashlib.sha256(b"").digest() == merkle.Frontier().root()


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size):
    assert merkle.root_of(HASHES[:size]).hex() == ROOTS[size - 1]
    frontier = merkle.Frontier()
    for h in HASHES[:size]:
        frontier.append(h)
    assert frontier.root().hex() == ROOTS[size - 1]


def _stored(leaves):
    """The perfect subtrees a log stores as it appends, keyed (level, index)."""
    nodes = {(0, i): h for i, h in enumerate(leaves)}
    frontier = merkle.Frontier()
    for h in leaves:
        for level, idx, node in frontier.append(h):
            nodes[(level, idx)] = node
    return nodes


@pytest.mark.parametrize("index, size, path", INCLUSION)
def test_reference_inclusion_proofs(index, size, path):
    nodes = _stored(HASHES[:size])
    got = merkle.inclusion_path(index, size, lambda lv, i: nodes[(lv, i)])
    assert [h.hex() for h in got] == path
    assert merkle.verify_inclusion(HASHES[index], index, size, got, bytes.fromhex(ROOTS[size - 1]))


def test_frontier_matches_the_recursive_definition_for_every_size():
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(70)]
    frontier = merkle.Frontier()
    bulk = merkle.Frontier()
    for n, h in enumerate(leaves, start=1):
        frontier.append(h)
        assert frontier.root() == merkle.root_of(leaves[:n]), n
    bulk.extend(leaves)
    assert bulk.root() == frontier.root() and bulk.size == 70


def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not():
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(37)]
    nodes = _stored(leaves)
    for size in range(1, 38):
        root = merkle.root_of(leaves[:size])
        for index in range(size):
            path = merkle.inclusion_path(index, size, lambda lv, i: nodes[(lv, i)])
            assert merkle.verify_inclusion(leaves[index], index, size, path, root)
            other = leaves[(index + 1) % size]
            if other != leaves[index]:
                assert not merkle.verify_inclusion(other, index, size, path, root)
        assert not merkle.verify_inclusion(leaves[0], size, size, [], root)
