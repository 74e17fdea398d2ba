"""Writing without half-written state: stage under the home's tmp/, then rename into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.errors import StorageError

DIR_MODE = 0o700
FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> None:
    """Create path (and parents) if needed and set it to 0700."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)
    except OSError as exc:
        raise StorageError(f"{path}: cannot create directory: {exc.strerror or exc}") from None


@contextmanager
def staged_dir(tmp_root: Path, final: Path) -> Iterator[Path]:
    """Yield an empty private folder; on success it is renamed to `final`, on failure removed."""
    if final.exists():
        raise StorageError(f"{final}: already exists")
    ensure_private_dir(tmp_root)
    ensure_private_dir(final.parent)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=tmp_root))
    try:
        yield stage
        os.chmod(stage, DIR_MODE)
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Write data to path through a temporary file in the same folder, fsynced, then renamed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def private_tree(root: Path) -> None:
    """Set every folder under root to 0700 and every file to 0600."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, DIR_MODE)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), FILE_MODE)
