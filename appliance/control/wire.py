"""Messages on the control socket: one JSON object per SOCK_SEQPACKET datagram, open descriptors beside it
(SCM_RIGHTS). Datagram boundaries keep each message whole with its descriptors; nothing else is parsed."""

from __future__ import annotations

import json
import os
import socket
import struct

MAX_MESSAGE = 200_000  # below the default socket send buffer, so one datagram always fits
MAX_FDS = 8
PROTOCOL = 1


class ProtocolError(Exception):
    """The other side sent something that is not a message of this protocol."""


def send(sock: socket.socket, message: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is over the limit of {MAX_MESSAGE}")
    socket.send_fds(sock, [data], list(fds)) if fds else sock.sendall(data)


def recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """The next message and the descriptors that came with it; (None, []) when the other side closed."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE + 1, MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(data) > MAX_MESSAGE:
        for fd in fds:
            os.close(fd)
        raise ProtocolError("message truncated")
    try:
        message = json.loads(data)
    except ValueError:
        for fd in fds:
            os.close(fd)
        raise ProtocolError("message is not JSON") from None
    if not isinstance(message, dict):
        for fd in fds:
            os.close(fd)
        raise ProtocolError("message is not a JSON object")
    return message, fds


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)
