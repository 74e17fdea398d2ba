"""Content digests: sha256 of files, and of a folder as a canonical manifest.

Round-trip rule: a folder's digest depends only on its files' POSIX paths relative to the folder and
their bytes, so moving or copying the folder never changes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def manifest_digest(entries: Iterable[tuple[str, str]]) -> str:
    """Digest of (relative POSIX path, sha256) pairs, independent of their order."""
    h = hashlib.sha256()
    for relpath, digest in sorted(entries):
        h.update(relpath.encode("utf-8") + b"\0" + digest.encode("ascii") + b"\n")
    return h.hexdigest()


def folder_digest(root: Path) -> str:
    """manifest_digest of every regular file under root."""
    return manifest_digest((p.relative_to(root).as_posix(), sha256_file(p)) for p in folder_files(root))


def folder_files(root: Path) -> list[Path]:
    """Every regular file under root, sorted by relative POSIX path."""
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
