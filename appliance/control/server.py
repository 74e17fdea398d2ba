"""`appliance service`: the appliance's control socket. It runs as the service account, the only account that
can read the home (database, keys, passphrase, datasets, artifacts); people's `appliance` commands connect to
it and each connection is served by a forked child (`request.py`) that knows its caller from the kernel.

The socket is a SOCK_SEQPACKET Unix socket, mode 0660, group of the service account: handed over by systemd
(`appliance-control.socket`, LISTEN_FDS) or created here. The parent never opens the database after its
start-up check, so every child starts with no connection to share.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

from appliance.control import wire

SD_LISTEN_FDS_START = 3
MAX_COMMANDS = 32  # commands served at once; the next connection is told to retry
MAX_PER_ACCOUNT = 8  # of which one OS account's (a person, or a script of theirs, cannot take every slot)
STOP_GRACE = 30.0  # seconds the commands under way get to stop after SIGINT, when the service stops


def _systemd_socket() -> socket.socket | None:
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
        raise OSError("the socket systemd passed is not a Unix SOCK_SEQPACKET socket (ListenSequentialPacket=)")
    return sock


def _bind(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            probe.connect(str(path))
            probe.close()
            raise OSError(f"{path}: another appliance service is listening there")
        except ConnectionRefusedError:
            path.unlink()  # a stale socket from a service that died
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.bind(str(path))
    os.chmod(path, 0o660)
    return sock


def _log(line: str) -> None:
    print(f"appliance service: {line}", file=sys.stderr, flush=True)


def _command_words(argv) -> str:
    words = [a for a in argv[:3] if isinstance(a, str) and not a.startswith("-")]
    return " ".join(words[:2]) or "(none)"


def serve(socket_path: Path | None, ready=None) -> int:
    """Accept connections until SIGTERM or SIGINT; each one is served by a child. `ready` is called once the
    socket listens (tests)."""
    import appliance.cli  # noqa: F401 - every command module, imported once here rather than in each child

    listener = _systemd_socket()
    if listener is None:
        if socket_path is None:
            raise OSError("no socket: give --socket PATH or start through appliance-control.socket")
        listener = _bind(socket_path)
    listener.listen(64)
    listener.setblocking(False)
    where = listener.getsockname() or socket_path
    _log(f"listening on {where} (pid {os.getpid()}, uid {os.geteuid()})")
    children: dict[int, tuple[float, int]] = {}  # pid -> (started, the caller's uid)
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ready:
        ready()
    while not stopping:
        _reap(children)
        try:
            readable, _, _ = select.select([listener], [], [], 1.0)
        except InterruptedError:
            continue
        if not readable:
            continue
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        conn.setblocking(True)
        try:
            _, uid, _ = wire.peer_credentials(conn)
        except OSError:
            conn.close()
            continue
        mine = sum(1 for _, owner in children.values() if owner == uid)
        if len(children) >= MAX_COMMANDS or mine >= MAX_PER_ACCOUNT:
            busy = (f"your OS account already runs {MAX_PER_ACCOUNT} commands here" if mine >= MAX_PER_ACCOUNT
                    else f"the appliance service is running {MAX_COMMANDS} commands")
            with contextlib.suppress(OSError, wire.ProtocolError):
                _refuse_busy(conn, busy)
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:  # the child: one person's command
            code = 70
            try:
                listener.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                from appliance.control.request import handle

                code = handle(conn)
            except BaseException as exc:  # noqa: BLE001 - a child must never return into the accept loop
                with contextlib.suppress(Exception):
                    _log(f"command failed in pid {os.getpid()}: {type(exc).__name__}: {exc}")
            finally:
                os._exit(code if isinstance(code, int) else 70)
        children[pid] = (time.monotonic(), uid)
        _log(f"connection from uid {uid}: pid {pid}")
        conn.close()
    listener.close()
    if isinstance(socket_path, Path) and socket_path.is_socket():
        socket_path.unlink(missing_ok=True)
    _log(f"stopping: {len(children)} command(s) under way get SIGINT")
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE
    while children and time.monotonic() < deadline:
        _reap(children)
        time.sleep(0.2)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return 0


def _refuse_busy(conn: socket.socket, why: str) -> None:
    conn.settimeout(0.5)  # the accept loop waits for no one: a caller that sends nothing at once just goes
    _, fds = wire.recv(conn)
    for fd in fds:
        os.close(fd)
    wire.send(conn, {"op": "exit", "code": 7, "message": f"{why}; try again shortly"})


def _reap(children: dict[int, tuple[float, int]]) -> None:
    while children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.pop(pid, None)
