"""`zshot artifact`: tools for an exported artifact directory.

    zshot artifact fuse DIR [--force]   add the fused posterior step graph (fused.onnx)

`fuse` builds the graph from DIR's own encoder.onnx and policy.onnx (onnx.compose, no
torch), checks it bit for bit against encoder + posterior update + policy, writes it and
names it in manifest.json (the manifest's sha256 changes; the other files do not).
docs/PROTOCOL.md "Artifact kinds" says what the runtime does with it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """`zshot artifact ...`; returns the exit code (2: a bad directory or argument)."""
    p = argparse.ArgumentParser(prog="zshot artifact", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    fuse = sub.add_parser(
        "fuse",
        help="add the fused posterior step graph (encoder + update + policy in one call)",
        description="Add fused.onnx to a posterior artifact: one onnxruntime call per STEP.",
    )
    fuse.add_argument("dir", help="an exported posterior artifact directory")
    fuse.add_argument("--force", action="store_true", help="rebuild an existing fused graph")
    args = p.parse_args(list(argv))

    from runtime.artifact import ArtifactError
    from training.common.fused_graph import add_fused

    try:
        old, new = add_fused(args.dir, force=args.force)
    except (ArtifactError, ValueError, RuntimeError, OSError) as exc:
        print(f"zshot artifact fuse: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.dir}/fused.onnx; manifest.json sha256 {old[:12]} -> {new[:12]} "
        "(clients that pin the old hash need the new one)"
    )
    return 0
