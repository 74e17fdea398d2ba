"""One person's command inside the appliance service (a forked child of `server.py`, one per connection).

Who the person is comes from the kernel (SO_PEERCRED on the connection), never from what they send; what they
send is the command line, their session (or a control token) and their terminal's descriptors. The command
then runs exactly as in-process (`cli.app.run_command`), with three things routed back to the person's own
process: the files they name, the files they ask for, and their session file.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sys
import threading

from appliance.control import wire
from appliance.errors import InputError, StorageError
from appliance.userfiles import PeerFile, PeerOutput, PeerTree

_SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP}
HELLO_TIMEOUT = 5  # seconds a connection may take to say who it is; a silent one holds a slot no longer


class Channel:
    """Requests to the person's process and their replies; a reader thread also turns the person's Ctrl-C
    (and a vanished client) into a signal to this process."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._lock = threading.Lock()
        self._cv = threading.Condition()
        self._replies: dict[int, tuple[dict, list[int]]] = {}
        self._next = 0
        self._closed = False
        self.finished = False

    def start(self) -> None:
        threading.Thread(target=self._read, name="control-reader", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message, fds = wire.recv(self.sock)
            except (OSError, wire.ProtocolError):
                message, fds = None, []
            if message is None:
                with self._cv:
                    self._closed = True
                    self._cv.notify_all()
                if not self.finished:  # the person's process is gone: stop as Ctrl-C would
                    os.kill(os.getpid(), signal.SIGINT)
                return
            if "signal" in message:
                for fd in fds:
                    os.close(fd)
                sig = _SIGNALS.get(str(message["signal"]))
                if sig is not None and not self.finished:
                    os.kill(os.getpid(), sig)
                continue
            with self._cv:
                self._replies[message.get("re")] = (message, fds)
                self._cv.notify_all()

    def request(self, op: str, **fields) -> tuple[dict, list[int]]:
        with self._lock:
            self._next += 1
            request_id = self._next
            wire.send(self.sock, {"id": request_id, "op": op, **fields})
        with self._cv:
            while request_id not in self._replies and not self._closed:
                self._cv.wait()
            if request_id not in self._replies:
                raise StorageError("the person's appliance process went away")
            message, fds = self._replies.pop(request_id)
        if not message.get("ok"):
            for fd in fds:
                os.close(fd)
            raise InputError(str(message.get("error") or f"{op} refused"))
        return message, fds

    def exit(self, code: int) -> None:
        self.finished = True
        with contextlib.suppress(OSError, wire.ProtocolError):
            wire.send(self.sock, {"op": "exit", "code": code})


class PeerSessionStore:
    """The session the person presented, kept by their own process."""

    def __init__(self, presented: dict | None, channel: Channel):
        self._data = presented if isinstance(presented, dict) else None
        self._channel = channel

    def read(self) -> dict | None:
        return self._data

    def write(self, data: dict) -> None:
        self._channel.request("session.save", data=data)
        self._data = data

    def clear(self) -> None:
        self._channel.request("session.clear")
        self._data = None


class PeerPersonalKeys:
    """The person's signing key, in their own process: the service asks, their client makes or signs (it signs only
    the decision the person's own command line asked for), and the key never comes here."""

    def __init__(self, channel: Channel):
        self._channel = channel

    def enroll(self, user: str) -> dict:
        reply, _ = self._channel.request("personal.enroll", user=user)
        return reply

    def sign(self, user: str, payload: bytes) -> dict:
        import base64

        reply, _ = self._channel.request("personal.sign", user=user, payload=base64.b64encode(payload).decode())
        return reply


class PeerFiles:
    def __init__(self, channel: Channel, cwd: str, os_user: str):
        self._channel = channel
        self._cwd = cwd
        self._os_user = os_user

    def input_file(self, name: str) -> PeerFile:
        return PeerFile(name, self._channel)

    def input_tree(self, name: str) -> PeerTree:
        where = os.path.normpath(os.path.join(self._cwd, name)) if self._cwd.startswith("/") else name
        return PeerTree(name, self._channel, origin=f"{self._os_user}:{where}")

    def output_file(self, name: str, **kw) -> PeerOutput:
        return PeerOutput(name, self._channel, **kw)


def _take_terminal(fds: list[int]) -> None:
    """The person's stdin, stdout and stderr become this process's 0, 1 and 2; no controlling terminal of the
    service's is kept (a password prompt then reads the person's terminal, echo off)."""
    with contextlib.suppress(OSError):
        os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="replace")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True, write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True, write_through=True)


def handle(conn: socket.socket) -> int:
    """Serve one connection; returns the command's exit status (this process then exits with it)."""
    from appliance.cli.app import App, run_command
    from appliance.cli.caller import Caller
    from appliance.context import OsIdentity

    _, uid, _ = wire.peer_credentials(conn)
    conn.settimeout(HELLO_TIMEOUT)
    try:
        hello, fds = wire.recv(conn)
    except (OSError, wire.ProtocolError):
        return 2
    conn.settimeout(None)
    argv = hello.get("argv") if hello else None
    if not hello or hello.get("hello") != 1 or len(fds) != 3 or not isinstance(argv, list) \
            or not all(isinstance(a, str) for a in argv):
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError, wire.ProtocolError):
            wire.send(conn, {"op": "exit", "code": 2})
        return 2
    _take_terminal(fds)
    os.chdir("/")  # nothing the person names is looked up relative to the service's folders
    from appliance.control.client import FORWARDED_ENV

    env = hello.get("env") if isinstance(hello.get("env"), dict) else {}
    for key in FORWARDED_ENV:
        if isinstance(env.get(key), str):
            os.environ[key] = env[key]
    channel = Channel(conn)
    channel.start()
    token = hello.get("token") if isinstance(hello.get("token"), str) else None
    who = OsIdentity.of_peer(uid)
    cwd = hello.get("cwd") if isinstance(hello.get("cwd"), str) else ""
    caller = Caller(who, token, PeerSessionStore(hello.get("session"), channel), PeerFiles(channel, cwd, who.name),
                    remote=True, keys=PeerPersonalKeys(channel))
    code = run_command(argv, App(caller=caller))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    channel.exit(code)
    return code
