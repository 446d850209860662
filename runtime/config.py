"""Runtime (server) configuration. Defaults live here; `configs/serve/*.yaml` override."""

from __future__ import annotations

from pydantic import Field

from zshot.config import StrictModel


class ServeConfig(StrictModel):
    """How `zshot serve` runs."""

    bind: str = "tcp://127.0.0.1:5555"
    """ZeroMQ endpoint. Loopback by default; anything else needs CurveZMQ keys or --insecure."""
    intra_op_threads: int = Field(1, ge=1, le=64)
    """onnxruntime intra-op threads. One: batch-1 MLPs gain nothing from more, and jitter grows."""
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    """onnxruntime execution providers in order of preference; add CUDAExecutionProvider (opt-in)."""
    max_message_bytes: int = Field(1 << 20, ge=1024)
    """ZMQ_MAXMSGSIZE: larger messages are dropped by libzmq before they reach Python."""
    max_sessions: int = Field(64, ge=1)
    """Concurrent robot sessions served; a hello beyond this gets an error reply."""
