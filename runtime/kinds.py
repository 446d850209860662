"""The artifact kinds: how the runtime uses an artifact's graphs (docs/PROTOCOL.md
`## Artifact kinds`). Shared by the manifest schema (runtime.artifact) and the wire
(runtime.protocol), which carries a kind as its index in `ARTIFACT_KINDS`."""

from __future__ import annotations

from typing import Literal

__all__ = ["ARTIFACT_KINDS", "ArtifactKind"]

ArtifactKind = Literal["posterior", "recurrent", "conditioned", "weights"]
ARTIFACT_KINDS: tuple[ArtifactKind, ...] = ("posterior", "recurrent", "conditioned", "weights")
"""In this order: a kind's index is its code on the wire (GET_STATE, STATS)."""
