"""Files a person names on the command line: read and written with that person's own permissions, wherever
the command runs.

In-process (the home belongs to the person running the command) they are plain paths. Through the control
socket the appliance service never opens a path a person named: it asks the person's `appliance` process
(`control/client.py`), which opens the file as the person and hands over the open descriptor (a regular file),
a pipe carrying a tar stream (a folder), or a new file next to the destination that it renames into place
only when the command succeeds. `name` is always what the person typed, so every message names their file.

Library code takes these objects (or a plain `Path`, wrapped by `as_input`), so one implementation of each
command serves both transports.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from appliance.errors import InputError

_CHUNK = 1 << 20
MAX_SECRET_FILE = 4096  # a password or passphrase file is read no further


class Channel(Protocol):
    """The service's side of a person's connection: ask their process to open something as them."""

    def request(self, op: str, **fields) -> tuple[dict, list[int]]: ...


class InputFile:
    """A regular file a person named. `open()` gives a fresh binary, seekable stream each time."""

    def __init__(self, name: str):
        self.name = name

    @property
    def basename(self) -> str:
        return Path(self.name).name

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    def open(self) -> BinaryIO:  # pragma: no cover - implemented below
        raise NotImplementedError

    def size(self) -> int:
        with self.open() as fh:
            return fh.seek(0, os.SEEK_END)

    def read_bytes(self) -> bytes:
        with self.open() as fh:
            return fh.read()

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.open() as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def first_line(self, what: str) -> str:
        """The first line as UTF-8 text (a password or passphrase file, at most MAX_SECRET_FILE bytes); InputError
        naming the file otherwise."""
        with self.open() as fh:
            data = fh.read(MAX_SECRET_FILE + 1)
        if len(data) > MAX_SECRET_FILE:
            raise InputError(f"{self.name}: over {MAX_SECRET_FILE} bytes: not a {what} file")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"{self.name}: {what} file is not UTF-8 text") from None
        if not lines or not lines[0]:
            raise InputError(f"{self.name}: {what} file is empty")
        return lines[0]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class LocalFile(InputFile):
    def __init__(self, path: Path | str, name: str | None = None):
        super().__init__(name or str(path))
        self.path = Path(path)

    def open(self) -> BinaryIO:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise InputError(f"{self.name}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{self.name}: is a folder, not a file") from None
        except OSError as exc:
            raise InputError(f"{self.name}: cannot read: {exc.strerror}") from None
        if not os.path.isfile(self.path):
            fh.close()
            raise InputError(f"{self.name}: not a regular file")
        return fh


class PeerFile(InputFile):
    """A file opened by the person's own process and passed over the control socket."""

    def __init__(self, name: str, channel: Channel):
        super().__init__(name)
        self._channel = channel

    def open(self) -> BinaryIO:
        import stat

        _, fds = self._channel.request("read", path=self.name)
        if not stat.S_ISREG(os.fstat(fds[0]).st_mode):  # the person's process is theirs to change: checked here too
            os.close(fds[0])
            raise InputError(f"{self.name}: not a regular file")
        return os.fdopen(fds[0], "rb")


class MemoryFile(InputFile):
    """Bytes that never touched a disk (a file uploaded to the console)."""

    def __init__(self, name: str, data: bytes):
        super().__init__(name)
        self._data = data

    def open(self) -> BinaryIO:
        import io

        return io.BytesIO(self._data)

    def size(self) -> int:
        return len(self._data)


def as_input(value: InputFile | Path | str) -> InputFile:
    return value if isinstance(value, InputFile) else LocalFile(value)


class InputTree:
    """A file or folder a person named (a model to import, an artifact copy to verify). `local()` gives a
    path this process may read: the original in-process, a private copy under `tmp_dir` otherwise. `origin`
    is the absolute path on the person's side, for the records."""

    def __init__(self, name: str, origin: str | None = None):
        self.name = name
        self.origin = origin or name

    @property
    def basename(self) -> str:
        return Path(self.name.rstrip("/")).name or "input"

    @contextlib.contextmanager
    def local(self, tmp_dir: Path) -> Iterator[Path]:  # pragma: no cover - implemented below
        raise NotImplementedError
        yield

    def __str__(self) -> str:
        return self.name


class LocalTree(InputTree):
    def __init__(self, path: Path | str, name: str | None = None):
        super().__init__(name or str(path), str(Path(path).resolve()))
        self.path = Path(path)

    @contextlib.contextmanager
    def local(self, tmp_dir: Path) -> Iterator[Path]:
        if not self.path.exists():
            raise InputError(f"{self.name}: no such file or directory")
        yield self.path


class PeerTree(InputTree):
    """A file (its descriptor) or a folder (a tar stream the person's process writes into a pipe)."""

    def __init__(self, name: str, channel: Channel, origin: str | None = None):
        super().__init__(name, origin)
        self._channel = channel

    @contextlib.contextmanager
    def local(self, tmp_dir: Path) -> Iterator[Path]:
        reply, fds = self._channel.request("tree", path=self.name)
        tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        holder = Path(tempfile.mkdtemp(prefix="upload-", dir=tmp_dir))
        target = holder / self.basename
        try:
            with os.fdopen(fds[0], "rb") as stream:
                if reply.get("kind") == "file":
                    with open(target, "xb") as out:
                        shutil.copyfileobj(stream, out, _CHUNK)
                else:
                    target.mkdir(mode=0o700)
                    _extract(stream, target, self.name)
            yield target
        finally:
            shutil.rmtree(holder, ignore_errors=True)


MAX_MEMBERS = 200_000  # entries in one uploaded folder
DISK_RESERVE = 2 << 30  # bytes an upload always leaves free on the home's filesystem (the gateway, training)


def _extract(stream: BinaryIO, target: Path, name: str) -> None:
    """Unpack a person's tar stream into `target`: folders and regular files only, written 0700/0600 and owned by
    this process, never past the free space the home keeps (DISK_RESERVE). Anything else refuses the whole upload:
    absolute or escaping names, any link (the person's client sends a link inside the folder as the file it names),
    sparse members (a few bytes that unpack into a large file), devices, more than MAX_MEMBERS entries."""
    root = target.resolve()

    def inside(rel: str) -> Path:
        path = (root / rel).resolve(strict=False)
        if rel.startswith("/") or not path.is_relative_to(root) or path == root:
            raise InputError(f"{name}: {rel!r} would land outside the folder")
        return path

    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise InputError(f"{name}: more than {MAX_MEMBERS} entries")
                path = inside(member.name)
                if member.issym() or member.islnk():
                    raise InputError(f"{name}: {member.name!r} is a link; links are not accepted in an upload")
                if member.issparse():
                    raise InputError(f"{name}: {member.name!r} is a sparse file; send it whole")
                if member.isdir():
                    path.mkdir(mode=0o700, parents=True, exist_ok=True)
                elif member.isfile():
                    free = shutil.disk_usage(root).free
                    if member.size > free - DISK_RESERVE:
                        raise InputError(f"{name}: {member.name!r} ({member.size:,} bytes) would leave less than "
                                         f"{DISK_RESERVE >> 30} GiB free on the appliance's disk")
                    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    if path.parent.is_symlink() or not path.parent.resolve().is_relative_to(root):
                        raise InputError(f"{name}: {member.name!r} would land outside the folder")
                    source = tar.extractfile(member)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(source, out, _CHUNK)
                else:
                    raise InputError(f"{name}: {member.name!r} is not a file or a folder")
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"{name}: could not be read whole ({exc})") from None


def as_tree(value: InputTree | Path | str) -> InputTree:
    return value if isinstance(value, InputTree) else LocalTree(value)


class OutputFile:
    """A file a person asked for (`--out`): written whole or not at all. `open()` yields a binary stream;
    the file appears under `name` only when the block ends without an exception."""

    def __init__(self, name: str, *, exclusive: bool = False, mode: int = 0o600):
        self.name = name
        self.exclusive = exclusive  # refuse to replace an existing file
        self.mode = mode

    @property
    def basename(self) -> str:
        return Path(self.name).name

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:  # pragma: no cover - implemented below
        raise NotImplementedError
        yield

    def write_bytes(self, data: bytes) -> None:
        with self.open() as fh:
            fh.write(data)

    def __str__(self) -> str:
        return self.name


class LocalOutput(OutputFile):
    def __init__(self, path: Path | str, name: str | None = None, **kw):
        super().__init__(name or str(path), **kw)
        self.path = Path(path)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        parent = self.path.parent
        if not parent.is_dir():
            raise InputError(f"{self.name}: folder {parent} does not exist")
        if self.exclusive and self.path.exists():
            raise InputError(f"{self.name}: already exists; choose a new file")
        tmp = parent / f".{self.path.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.mode)
        except OSError as exc:
            raise InputError(f"{self.name}: cannot write: {exc.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, self.mode)
            _commit(tmp, self.path, self.exclusive, self.name)
        finally:
            tmp.unlink(missing_ok=True)


def _commit(tmp: Path, target: Path, exclusive: bool, name: str) -> None:
    if exclusive:
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise InputError(f"{name}: already exists; choose a new file") from None
    else:
        os.replace(tmp, target)


class PeerOutput(OutputFile):
    """Written through a descriptor the person's process created next to the destination; it renames the file
    into place on `commit` and deletes it otherwise."""

    def __init__(self, name: str, channel: Channel, **kw):
        super().__init__(name, **kw)
        self._channel = channel

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        reply, fds = self._channel.request("write", path=self.name, exclusive=self.exclusive, mode=self.mode)
        handle = reply["handle"]
        done = False
        try:
            with os.fdopen(fds[0], "wb") as fh:
                yield fh
                fh.flush()
            self._channel.request("commit", handle=handle)
            done = True
        finally:
            if not done:
                with contextlib.suppress(Exception):
                    self._channel.request("discard", handle=handle)


def as_output(value: OutputFile | Path | str, **kw) -> OutputFile:
    return value if isinstance(value, OutputFile) else LocalOutput(value, **kw)
