"""The zshot runtime wire protocol (docs/PROTOCOL.md): header, message types, error codes,
the JSON of the handshake, and the encodings of the binary payloads. Its Python client,
`RuntimeClient`, is runtime.client; the server is runtime.server.

Transport: ZeroMQ, ROUTER on the server, DEALER on each client. A message is

    frame 0   header, 36 bytes, little-endian: magic "ZSHT", version u16, type u16,
              session u64, seq u64, send time i64 (ns), flags u32
    frame 1.. payload: raw little-endian float32 arrays (or the few fixed binary fields
              listed per message type; JSON only in hello and reload)

Replies echo the request's session and seq; their type is the request type | 0x8000, or
0xFFFF (ERROR: frame 1 = u32 code, frame 2 = UTF-8 message). Pydantic validates JSON only at
handshake; nothing on the per-step path allocates more than the numpy arrays it returns.

Like runtime.client (what `hardware_bridge` imports from `runtime`), numpy, pyzmq and
pydantic only.
"""

from __future__ import annotations

import enum
import struct
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import zmq
from pydantic import BaseModel, ConfigDict, Field

from runtime.kinds import ARTIFACT_KINDS, ArtifactKind

__all__ = [
    "ARTIFACT_KINDS",
    "FLAG_STOCHASTIC",
    "HEADER",
    "HIST_EDGES_US",
    "MAGIC",
    "MODES",
    "PROTOCOL_VERSION",
    "REPLY_BIT",
    "STATS_FIELDS",
    "U32",
    "U64",
    "UPDATES",
    "ArtifactKind",
    "ErrorCode",
    "Header",
    "HelloReply",
    "HelloRequest",
    "MsgType",
    "ProtocolError",
    "endpoint_problem",
    "f32_frame",
    "pack_header",
    "unpack_header",
]

MAGIC = b"ZSHT"
PROTOCOL_VERSION = 2  # 2: artifact kinds (docs/PROTOCOL.md `## Changes of the wire`)
HEADER = struct.Struct("<4sHHQQqI")  # magic, version, type, session, seq, send_ns, flags
assert HEADER.size == 36
REPLY_BIT = 0x8000
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

# STEP request flag: draw the policy's `noise` input from N(0, I) (a stochastic action)
# instead of zeros (the deterministic action).
FLAG_STOCHASTIC = 0x1


class MsgType(enum.IntEnum):
    """Request types; a reply's type is `type | REPLY_BIT`, an error reply's is ERROR."""

    HELLO = 1
    STEP = 2
    OBSERVE = 3
    RESET_TASK = 4
    RESET_EPISODE = 5
    SET_MODE = 6
    GET_STATE = 7
    RELOAD = 8
    STATS = 9
    BYE = 10
    ERROR = 0xFFFF


class ErrorCode(enum.IntEnum):
    """Codes carried by ERROR replies (docs/PROTOCOL.md lists when each is sent)."""

    BAD_HEADER = 1
    BAD_VERSION = 2
    UNKNOWN_TYPE = 3
    BAD_FRAMES = 4
    BAD_PAYLOAD = 5
    NON_FINITE = 6
    UNKNOWN_SESSION = 7
    STALE_SEQUENCE = 8
    TOO_MANY_SESSIONS = 9
    HANDSHAKE_MISMATCH = 10
    BAD_ARTIFACT = 11
    TOO_LARGE = 12
    BUSY = 13
    NO_TASK = 14
    INTERNAL = 99


# STATS reply frame 1: float64 values in this order. Latencies are the server's service
# time (request received -> reply handed to ZeroMQ) for the asking session, in microseconds.
STATS_FIELDS: tuple[str, ...] = (
    "requests",
    "errors",
    "steps",
    "context_count",
    "mean_us",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "max_us",
    "kind",
)
# ("kind": the served artifact's kind, as its index in ARTIFACT_KINDS.)
# STATS reply frame 2: uint64 histogram counts; bin k holds [edge[k-1], edge[k]) µs, bin 0
# is < edge[0], the last bin is >= edge[-1]. Edges: 2^(k/8) µs, k = 0..160 (1 µs .. ~1 s),
# i.e. 9 % wide bins, so percentiles read off it are within 9 %.
HIST_EDGES_US: tuple[float, ...] = tuple(2.0 ** (k / 8.0) for k in range(161))


def endpoint_problem(endpoint: str, *, bind: bool = False) -> str | None:
    """Why `endpoint` is not a usable ZeroMQ endpoint (None: it is one).

    Accepted: `tcp://HOST:PORT` (PORT 1..65535; `*` or 0 when binding; HOST a name, an IPv4
    address, `[IPv6]`, `*` or an interface), `ipc://PATH`, `inproc://NAME`.
    """
    scheme, sep, rest = endpoint.partition("://")
    usage = "expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
    if not sep or not rest or any(c.isspace() for c in endpoint):
        return f"{endpoint!r} is not an endpoint ({usage})"
    if scheme in ("ipc", "inproc"):
        return None
    if scheme != "tcp":
        return f"{endpoint!r} is not an endpoint: transport {scheme!r} unsupported ({usage})"
    addr = rest.split(";")[-1]  # "tcp://src;dst": the address used is the last one
    host, colon, port = addr.rpartition(":")
    if not colon or not host or host in ("[", "[]"):
        return f"{endpoint!r} is not an endpoint: no HOST:PORT ({usage})"
    if port == "*" or (port == "0" and bind):
        return None if bind else f"{endpoint!r}: port * only when binding"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{endpoint!r}: port {port!r} is not a port number (1..65535)"
    return None


class ProtocolError(ValueError):
    """A message that does not follow the protocol; carries the error code to reply with."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Header(NamedTuple):
    """Decoded header frame (a NamedTuple: built per message, so it must be cheap)."""

    version: int
    msg_type: int
    session: int
    seq: int
    send_ns: int
    flags: int


def pack_header(
    msg_type: int, session: int, seq: int, flags: int = 0, send_ns: int | None = None
) -> bytes:
    """Encode a header frame (36 bytes) with this protocol's magic and version."""
    return HEADER.pack(
        MAGIC,
        PROTOCOL_VERSION,
        msg_type,
        session,
        seq,
        time.time_ns() if send_ns is None else send_ns,
        flags,
    )


def unpack_header(frame: bytes) -> Header:
    """Decode and check a header frame; raises `ProtocolError` (BAD_HEADER / BAD_VERSION)."""
    if len(frame) != HEADER.size:
        raise ProtocolError(
            ErrorCode.BAD_HEADER, f"header frame is {len(frame)} bytes, expected {HEADER.size}"
        )
    magic, version, msg_type, session, seq, send_ns, flags = HEADER.unpack(frame)
    if magic != MAGIC:
        raise ProtocolError(ErrorCode.BAD_HEADER, f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.BAD_VERSION,
            f"protocol version {version} not supported (server speaks {PROTOCOL_VERSION})",
        )
    return Header(version, msg_type, session, seq, send_ns, flags)


class _Json(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HelloRequest(_Json):
    """HELLO payload (JSON): what the client expects; the server refuses a mismatch."""

    protocol_version: int = PROTOCOL_VERSION
    obs_dim: int | None = Field(None, ge=1)
    act_dim: int | None = Field(None, ge=1)
    artifact_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    kind: ArtifactKind | None = None
    """The artifact kind the client can drive (None: any)."""
    client: str = Field("", max_length=200)
    """Free text for the server's log (robot name, bridge version)."""


class HelloReply(BaseModel):
    """HELLO and RELOAD reply payload (JSON): the session and the artifact it is served by.

    Unknown keys are ignored: a newer server may add keys without a protocol version bump.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    session_id: int = Field(ge=1)
    protocol_version: int
    obs_dim: int
    act_dim: int
    latent_dim: int
    transition_dim: int
    obs_names: list[str]
    action_names: list[str]
    action_low: list[float]
    action_high: list[float]
    control_hz: float
    artifact_sha256: str
    artifact_name: str
    mode: Literal["explore", "exploit"]
    update: Literal["step", "episode"]
    kind: ArtifactKind = "posterior"
    """How to drive the artifact (docs/PROTOCOL.md `## Artifact kinds`)."""
    hidden_dim: int = 0
    """Kind recurrent: size of the hidden state the server keeps (GET_STATE shows it)."""
    descriptor_dim: int = 0
    """Kind conditioned: size of the task descriptor RESET_TASK must carry."""
    plug_descriptor_version: int | None = None
    """The artifact's `training.plug_descriptor_version` (a conditioned artifact told plug
    descriptors, zshot/plug_descriptor.py); None when its manifest records none (an older
    server never sends the key: None too)."""
    goal_epsilon: float | None = None
    """A goal-conditioned artifact's `training.goal.epsilon` (the descriptor is a goal, in
    its `descriptor_names` units); None for every other artifact."""


# SET_MODE payload bytes
MODES = {"exploit": 0, "explore": 1}
UPDATES = {"episode": 0, "step": 1}


_LE_F32 = np.dtype("<f4")


def f32_frame(a: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """`a` as a contiguous little-endian float32 array: a payload frame (zmq sends its buffer;
    no copy when it already is one)."""
    return np.ascontiguousarray(a, _LE_F32)  # a dtype object: no string to parse per call


# pyzmq's `Socket.send` is a Python wrapper (routing_id / group of draft sockets) around the
# Cython method: ~0.6 µs more per frame on the project's VM. The per-step paths of the
# server and the client send through the Cython one: `raw_send(sock, data, flags)`.
def _raw_send() -> Callable[..., Any]:
    backend = getattr(zmq.backend, "Socket", None)
    if isinstance(backend, type) and issubclass(zmq.Socket, backend):
        send: Callable[..., Any] = backend.send  # type: ignore[attr-defined]
        return send
    return zmq.Socket.send  # another pyzmq layout: the public method


raw_send = _raw_send()
