"""The person's side of a command run by the appliance service: connect, hand over the terminal, then do
what only the person may do, as the person: open the files they named, write the files they asked for, keep
their session file.

The service gets the person's stdin, stdout and stderr as open descriptors, so output, progress and password
prompts behave as in-process. Ctrl-C (SIGINT), SIGTERM and SIGHUP are forwarded; the exit status is the
command's. Nothing here trusts the service with a path: files are opened here and passed as descriptors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import tarfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

from appliance.control import wire

# What the service may learn of the person's environment: how to draw on their terminal, nothing that
# chooses a home, a database, a key or a policy.
FORWARDED_ENV = ("TERM", "COLUMNS", "LINES", "NO_COLOR", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
LOST = 70


class Client:
    def __init__(self, socket_path: Path, env: Mapping[str, str], session_file: Path):
        self.socket_path = socket_path
        self.env = env
        self.session_file = session_file
        self._writes: dict[str, tuple[Path, Path, bool]] = {}  # handle -> (temporary file, target, exclusive)
        self._sock: socket.socket | None = None
        self.argv: list[str] = []

    # --- one command -------------------------------------------------------------------------------------
    def run(self, argv: list[str]) -> int:
        self.argv = list(argv)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            _say(f"error: cannot reach the appliance service at {self.socket_path}: {exc.strerror} "
                 "(is appliance-control.socket running, and are you in its group?)")
            return 7
        self._sock = sock
        hello = {"hello": wire.PROTOCOL, "argv": argv, "env": {k: self.env[k] for k in FORWARDED_ENV if k in self.env},
                 "token": self.env.get("APPLIANCE_TOKEN") or None, "session": self._read_session(),
                 "cwd": os.getcwd()}
        previous = {s: signal.signal(s, self._forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        terminal = [fd if _is_open(fd) else os.open(os.devnull, os.O_RDWR) for fd in (0, 1, 2)]
        try:
            wire.send(sock, hello, terminal)
            return self._serve(sock)
        except (wire.ProtocolError, OSError) as exc:
            _say(f"error: the connection to the appliance service failed: {exc}")
            return LOST
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            for handle in list(self._writes):
                self._discard(handle)
            sock.close()

    def _forward(self, signum, frame) -> None:
        with contextlib.suppress(OSError, wire.ProtocolError):
            wire.send(self._sock, {"signal": signal.Signals(signum).name})

    def _serve(self, sock: socket.socket) -> int:
        while True:
            message, fds = wire.recv(sock)
            if message is None:
                _say("error: the appliance service ended the command before it finished (see its log)")
                return LOST
            for fd in fds:
                os.close(fd)
            if message.get("op") == "exit":
                if message.get("message"):
                    _say(f"error: {message['message']}")
                return int(message.get("code", LOST))
            request_id = message.get("id")
            try:
                reply, out_fds = self._handle(message)
                reply = {"re": request_id, "ok": True, **reply}
            except _Refusal as exc:
                reply, out_fds = {"re": request_id, "ok": False, "error": str(exc)}, []
            try:
                wire.send(sock, reply, out_fds)
            finally:
                for fd in out_fds:
                    os.close(fd)

    def _handle(self, message: dict) -> tuple[dict, list[int]]:
        op = message.get("op")
        if op == "read":
            return {}, [self._open_file(str(message.get("path", "")))]
        if op == "tree":
            return self._open_tree(str(message.get("path", "")))
        if op == "write":
            return self._open_write(str(message.get("path", "")), bool(message.get("exclusive")),
                                    int(message.get("mode", 0o600)) & 0o644)
        if op == "commit":
            self._commit(str(message.get("handle")))
            return {}, []
        if op == "discard":
            self._discard(str(message.get("handle")))
            return {}, []
        if op == "session.save":
            self._save_session(message.get("data"))
            return {}, []
        if op == "session.clear":
            self.session_file.unlink(missing_ok=True)
            return {}, []
        if op in ("personal.enroll", "personal.sign"):
            return self._personal(op, message), []
        raise _Refusal(f"unknown request {op!r}")

    # --- files, opened as the person -----------------------------------------------------------------------
    def _open_file(self, path: str) -> int:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise _Refusal(f"{path}: {_reason(exc)}") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise _Refusal(f"{path}: is a folder, not a file" if stat.S_ISDIR(mode) else f"{path}: not a regular file")
        os.set_blocking(fd, True)
        return fd

    def _open_tree(self, path: str) -> tuple[dict, list[int]]:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise _Refusal(f"{path}: {_reason(exc)}") from None
        if stat.S_ISREG(info.st_mode):
            return {"kind": "file"}, [self._open_file(path)]
        if not stat.S_ISDIR(info.st_mode):
            raise _Refusal(f"{path}: not a file or a folder")
        members = _readable_members(Path(path))
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        threading.Thread(target=_write_tar, args=(Path(path), members, write_end), daemon=True).start()
        return {"kind": "dir"}, [read_end]

    def _open_write(self, path: str, exclusive: bool, mode: int) -> tuple[dict, list[int]]:
        target = Path(path)
        if not target.parent.is_dir():
            raise _Refusal(f"{path}: folder {target.parent} does not exist")
        if exclusive and target.exists():
            raise _Refusal(f"{path}: already exists; choose a new file")
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise _Refusal(f"{path}: cannot write: {_reason(exc)}") from None
        os.fchmod(fd, mode)  # what was asked for (0600, or 0644 for a public key), whatever the umask
        handle = uuid.uuid4().hex
        self._writes[handle] = (tmp, target, exclusive)
        return {"handle": handle}, [fd]

    def _commit(self, handle: str) -> None:
        tmp, target, exclusive = self._writes.pop(handle)
        try:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if exclusive:
                os.link(tmp, target)
                tmp.unlink()
            else:
                os.replace(tmp, target)
        except FileExistsError:
            tmp.unlink(missing_ok=True)
            raise _Refusal(f"{target}: already exists; choose a new file") from None
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _Refusal(f"{target}: cannot write: {_reason(exc)}") from None

    def _discard(self, handle: str) -> None:
        entry = self._writes.pop(handle, None)
        if entry:
            entry[0].unlink(missing_ok=True)

    # --- the person's own signing key ------------------------------------------------------------------------
    def _personal(self, op: str, message: dict) -> dict:
        import base64

        from appliance.errors import ApplianceError
        from appliance.keys.personal import LocalPersonalKeys

        keys = LocalPersonalKeys(self.env, self.argv)
        user = str(message.get("user", ""))
        try:
            if op == "personal.enroll":
                return keys.enroll(user)
            return keys.sign(user, base64.b64decode(str(message.get("payload", "")), validate=True))
        except (ApplianceError, ValueError) as exc:
            raise _Refusal(str(exc)) from None

    # --- the session file ----------------------------------------------------------------------------------
    def _read_session(self) -> dict | None:
        import json

        try:
            data = json.loads(self.session_file.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _save_session(self, data) -> None:
        import json

        from appliance.fsutil import atomic_write_bytes

        if not isinstance(data, dict):
            raise _Refusal("session data is not an object")
        try:
            self.session_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write_bytes(self.session_file, json.dumps(data).encode())
        except OSError as exc:
            raise _Refusal(f"{self.session_file}: cannot write the session: {_reason(exc)}") from None


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


class _Refusal(Exception):
    """Something the person's process cannot do for the service; reported to the service as an error."""


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _readable_members(root: Path) -> list[Path]:
    """Every entry under root, checked readable by the person before anything is sent, so a refusal names the
    file instead of cutting the stream. A link to a file inside the folder is sent as that file (the service takes
    no link); a link leaving the folder, or to a folder, refuses the upload."""
    members = []
    top = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        here = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            path = here / name
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(top):
                    raise _Refusal(f"{path}: link {path.relative_to(root).as_posix()!r} points outside the folder")
                if not target.is_file():
                    raise _Refusal(f"{path}: a link to a folder; copy the folder instead")
                members.append(path)
                continue
            if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
                raise _Refusal(f"{path}: Permission denied")
            if not (path.is_dir() or path.is_file()):
                raise _Refusal(f"{path}: not a regular file")
            members.append(path)
    return members


def _raise(exc: OSError) -> None:
    raise _Refusal(f"{exc.filename}: {_reason(exc)}")


def _write_tar(root: Path, members: list[Path], fd: int) -> None:
    with contextlib.suppress(OSError, tarfile.TarError), os.fdopen(fd, "wb") as out, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in members:  # a link (checked inside the folder) goes as the file it names
            tar.add(path.resolve() if path.is_symlink() else path, arcname=path.relative_to(root).as_posix(),
                    recursive=False)


def _say(line: str) -> None:
    os.write(2, (line + "\n").encode())
