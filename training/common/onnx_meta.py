"""The annotation of an exported ONNX graph with the manifest's essentials (`annotate`:
graph name, doc strings on the model and every input and output, `metadata_props` from
runtime.artifact's `onnx_metadata`) and an onnxruntime session for checks (`ort_session`).
Without torch (onnx only), so that adding a graph to an existing artifact
(training/common/fused_graph.py) needs no torch; re-exported by
training/common/onnx_export.py, where every exporter takes them from.
"""

from __future__ import annotations

from typing import Any

from runtime.artifact import GRAPH_NAMES, io_docs, onnx_metadata

__all__ = ["annotate", "ort_session"]


def annotate(model: bytes, spec: Any, kind: str) -> bytes:
    """The model with graph name, doc strings and the manifest's essentials as metadata."""
    import onnx  # lazy: onnx is needed only when exporting

    proto = onnx.load_model_from_string(model)
    proto.graph.name = GRAPH_NAMES[kind]
    what = "context encoder" if kind == "encoder" else "policy"
    what = "recurrent policy step" if kind == "step" else what
    what = "fused step (encoder + posterior update + policy)" if kind == "fused" else what
    task = {
        "conditioned": f"descriptor {spec.descriptor_dim}",
        "recurrent": f"hidden {spec.hidden_dim}",
    }.get(spec.kind, f"latent {spec.latent_dim}")
    proto.doc_string = (
        f"zshot {what} of artifact {spec.name}: obs {spec.obs_dim}, act {spec.act_dim}, "
        f"{task}, {spec.control_hz:g} Hz; manifest.json beside this file "
        "states the rest (docs/INTERFACES.md)"
    )
    proto.graph.doc_string = proto.doc_string
    docs = io_docs(spec, kind)  # type: ignore[arg-type]
    for value in (*proto.graph.input, *proto.graph.output):
        value.doc_string = docs[value.name]
    del proto.metadata_props[:]
    for key, val in onnx_metadata(spec, kind).items():  # type: ignore[arg-type]
        proto.metadata_props.add(key=key, value=val)
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString())


def ort_session(model: bytes) -> Any:
    """A one-thread CPU onnxruntime session of serialised ONNX `model` bytes."""
    import onnxruntime as ort  # lazy: only for the parity check

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
