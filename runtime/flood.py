"""Per-connection memory cap for the runtime's ROUTER socket (multipart floods).

libzmq delivers a multipart message only when its last frame has arrived, and
ZMQ_MAXMSGSIZE caps one frame, not the message: a peer sending one message of 1,000 frames
of 1 MiB makes libzmq buffer 1 GiB before the server sees its first frame. Nothing in the
ZeroMQ API limits that, so this guard measures it from outside:

    held(peer) = bytes the kernel handed to libzmq on that TCP connection
                 (tcp_info.tcpi_bytes_received - bytes still in the receive queue)
               - wire bytes of the messages the server has received from it

`held` is what libzmq buffers for the peer: an incomplete message plus complete ones not
yet read. When it exceeds `max_peer_buffer_bytes` the guard shuts the connection down
(`shutdown(2)` on libzmq's descriptor: libzmq sees the end of the stream, drops the
connection and frees the half-received message). Connections come from the socket's
monitor (ACCEPTED carries the descriptor); each message's descriptor comes from the
message itself (ZMQ_SRCFD), so the accounting is per connection.

Linux (tcp_info) and TCP only: ipc:// endpoints are local files, guarded by their
permissions. Wire overheads are exact for the NULL and CURVE mechanisms; ZMTP heartbeat
commands (a client's ZMQ_HEARTBEAT_IVL) are not counted, so such a client drifts by ~10
bytes per ping: negligible against the cap for days of pings.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import socket
import struct
import termios
from collections.abc import Callable
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

__all__ = ["PeerGuard", "wire_bytes"]

log = logging.getLogger("zshot.runtime.flood")

_TCP_INFO_LEN = 232
_BYTES_RECEIVED = struct.Struct("=Q")  # tcp_info.tcpi_bytes_received (Linux >= 4.1)
_BYTES_RECEIVED_OFFSET = 128
_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED


def wire_bytes(nbytes: int, curve: bool) -> int:
    """Bytes one frame of `nbytes` occupies on a ZMTP 3 connection (NULL or CURVE)."""
    if curve:
        # A MESSAGE command: name (1 + 7) + nonce 8 + box (MAC 16 + flags 1 + data)
        nbytes += 33
    return nbytes + (2 if nbytes <= 255 else 9)


@dataclass
class _Peer:
    sock: socket.socket  # a dup of libzmq's descriptor: reads counters, never data
    consumed: int = 0


class PeerGuard:
    """Watches every TCP connection of one ROUTER socket; see the module docstring.

    The serving loop calls `consumed(fd, nbytes)` for each message it receives and
    `check()` regularly (it is cheap: two system calls per connection).
    """

    def __init__(self, sock: zmq.Socket[bytes], max_bytes: int, *, curve: bool) -> None:
        """Start monitoring `sock` (before it binds, so no connection is missed)."""
        self.max_bytes = max_bytes
        self.curve = curve
        self.monitor = sock.get_monitor_socket(_EVENTS)
        self.peers: dict[int, _Peer] = {}
        self.dropped = 0
        self._trim = _malloc_trim()

    def consumed(self, fd: int, nbytes: int) -> None:
        """The server received `nbytes` wire bytes (see `wire_bytes`) from connection `fd`."""
        peer = self.peers.get(fd)
        if peer is not None:
            peer.consumed += nbytes

    def check(self) -> list[int]:
        """Track new and closed connections; shut down those over the cap. Returns their fds."""
        self._events()
        over: list[int] = []
        for fd, peer in self.peers.items():
            held = _read_bytes(peer.sock) - peer.consumed
            if held > self.max_bytes:
                over.append(fd)
                log.warning(
                    "connection fd %d holds %.1f MiB in ZeroMQ buffers (max_peer_buffer_bytes "
                    "%.1f MiB): a multipart flood; connection closed",
                    fd,
                    held / 2**20,
                    self.max_bytes / 2**20,
                )
                try:
                    peer.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for fd in over:
            self._forget(fd)
            self.dropped += 1
        if over and self._trim is not None:
            self._events()  # let libzmq notice before the memory is handed back
            self._trim(0)
        return over

    def close(self) -> None:
        """Stop monitoring; forget every connection."""
        for fd in list(self.peers):
            self._forget(fd)
        self.monitor.close(linger=0)

    def _events(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            fd = int(event["value"])
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._forget(fd)
                try:
                    copy = os.dup(fd)
                except OSError:
                    continue  # already closed again
                try:
                    dup = socket.socket(fileno=copy)
                except OSError:  # the number was reused by something else: not ours
                    os.close(copy)
                    continue
                if dup.family not in (socket.AF_INET, socket.AF_INET6):
                    dup.close()  # our duplicate only; libzmq's descriptor stays open
                    continue  # ipc:// (a unix socket): no tcp_info
                self.peers[fd] = _Peer(dup)
            else:
                self._forget(fd)

    def _forget(self, fd: int) -> None:
        peer = self.peers.pop(fd, None)
        if peer is not None:
            peer.sock.close()


def _read_bytes(s: socket.socket) -> int:
    """Bytes libzmq has read from this TCP connection (0 if the kernel cannot tell)."""
    try:
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
        queued = struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0
    if len(info) < _BYTES_RECEIVED_OFFSET + 8:
        return 0
    return int(_BYTES_RECEIVED.unpack_from(info, _BYTES_RECEIVED_OFFSET)[0]) - int(queued)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim (hands freed heap back to the OS), or None elsewhere."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
