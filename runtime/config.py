"""Runtime (server) configuration. Defaults live here; `configs/serve/*.yaml` override."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from zshot.config import StrictModel


class ServeConfig(StrictModel):
    """How `zshot serve` runs."""

    model_config = ConfigDict(allow_inf_nan=False)

    bind: str = "tcp://127.0.0.1:5555"
    """ZeroMQ endpoint. Loopback by default; anything else needs CurveZMQ keys or --insecure."""
    intra_op_threads: int = Field(default=1, ge=1, le=64)
    """onnxruntime intra-op threads. One: batch-1 MLPs gain nothing from more, and jitter grows."""
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    """onnxruntime execution providers in order of preference; add CUDAExecutionProvider (opt-in)."""
    max_message_bytes: int = Field(default=1 << 20, ge=1024)
    """ZMQ_MAXMSGSIZE: larger messages are dropped by libzmq before they reach Python."""
    max_sessions: int = Field(default=64, ge=1)
    """Concurrent robot sessions served; a hello beyond this gets an error reply."""
    allow_spinning: bool = False
    """onnxruntime thread spinning. Off: a spinning pool burns a core the controller needs."""
    curve_secret_key: str | None = None
    """Server CurveZMQ secret key file (`zshot keys generate`); enables encryption + auth."""
    curve_allowed_clients: str | None = None
    """Directory of client public key files (*.key) allowed to connect (zmq.auth allow-list)."""
    insecure: bool = False
    """Allow binding beyond loopback without CurveZMQ. Only on an isolated network."""
    session_idle_s: float = Field(default=3600.0, gt=0)
    """A session not heard from for this long is forgotten (a robot that vanished)."""
    poll_interval_s: float = Field(default=0.05, gt=0, le=1.0)
    """Server loop wake-up when idle: bounds shutdown, expiry and reload-reply latency."""
    encode_chunk: int = Field(default=1024, ge=1)
    """Rows per encoder call when an observe batch is large (bounds one call's memory)."""
    default_mode: Literal["explore", "exploit"] = "explore"
    """Mode of a new session: explore = z drawn from the posterior once per episode (PEARL)."""
    default_update: Literal["step", "episode"] = "episode"
    """When a new session's z follows the posterior: every transition, or episode starts."""
    seed: int | None = None
    """Seed for z draws and stochastic actions (per session: seed + session number)."""
    sched_fifo_priority: int | None = Field(default=None, ge=1, le=99)
    """Run the serving thread under SCHED_FIFO at this priority (Linux, needs CAP_SYS_NICE):
    on a loaded controller it stops ms-long scheduling stalls. None: normal scheduling."""
    cpu_affinity: list[int] | None = None
    """Pin the serving thread to these CPUs (Linux), e.g. an isolated core. None: any."""
    max_peer_buffer_bytes: int = Field(default=8 << 20, ge=64 << 10)
    """Most bytes libzmq may buffer for one TCP connection (a message being received plus
    unread ones): above it the connection is closed (a multipart flood; runtime/flood.py).
    At least two largest requests (2 x (2 x max_message_bytes + header))."""
    flood_check_s: float = Field(default=0.005, gt=0, le=1.0)
    """How often the serving loop measures what each connection holds in libzmq."""
    max_sessions_per_peer: int = Field(default=4, ge=1)
    """Sessions one peer may hold (a peer: a CurveZMQ client key, else one connection). A
    hello beyond it closes that peer's longest-idle session."""
    evict_idle_s: float = Field(default=10.0, ge=0)
    """With max_sessions open, a hello closes the longest-idle session if it has been idle
    this long (a killed client's session); otherwise the hello is refused."""
    reload_root: str | None = None
    """RELOAD is off unless set: then a session may reload artifacts under this directory
    only (symlinks resolved). With CurveZMQ only clients in `reload_clients` may."""
    reload_clients: str | None = None
    """Directory of public keys (*.key) of clients allowed to RELOAD when CurveZMQ is on."""

    @field_validator("bind")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        from runtime.protocol import endpoint_problem

        problem = endpoint_problem(v, bind=True)
        if problem is not None:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _buffer_holds_requests(self) -> ServeConfig:
        need = 2 * (2 * self.max_message_bytes + 4096)
        if self.max_peer_buffer_bytes < need:
            raise ValueError(
                f"max_peer_buffer_bytes={self.max_peer_buffer_bytes} must hold two of the "
                f"largest requests (>= {need} with max_message_bytes={self.max_message_bytes})"
            )
        return self
