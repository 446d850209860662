"""The fused posterior step graph: encoder + posterior update + policy in ONE onnxruntime
call (docs/PROTOCOL.md "Artifact kinds", optional graph `fused` of a posterior artifact).

    fused.onnx  obs[B, O] f32, transition[B, T] f32, precision[B, L] f64, eta[B, L] f64,
                noise[B, A] f32
            ->  next_precision[B, L] f64, next_eta[B, L] f64, z[B, L] f32,
                factor_ok[B, 1] bool, action[B, A] f32

`precision` / `eta` are the posterior's totals *including* the prior, as
`runtime.posterior.NaturalPosterior` keeps them. The update is the same IEEE double
operations as `NaturalPosterior.add_one`, in the same order per entry:

    prec_i = 1.0 / double(var_i);  eta_i = double(mu_i) / double(var_i)
    next_precision = precision + prec_i;  next_eta = eta + eta_i
    z = float32(next_eta / next_precision)            (the new posterior mean, exploit)

so the state a server keeps stays bit-identical to the unfused path (property test in
tests/training/test_fused_graph.py). `factor_ok` is add_one's check: min(var) > 0 and
sum(prec_i) + sum(eta_i) finite (NaN/Inf in mu, NaN or <= 0 in var reject the factor; the
server then keeps its state and answers the same error as unfused). `action` is the
policy at z (what the server sends when factor_ok).

Built from the artifact's own encoder.onnx and policy.onnx with `onnx.compose` (their
nodes and weights unchanged), so it can be added to an existing artifact (`add_fused`,
`zshot artifact fuse DIR`) as well as written at export time (`fused_bytes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.artifact import (
    FUSED_IO,
    ArtifactError,
    ArtifactSpec,
    add_optional_graph,
    load_artifact,
    verify_graphs,
)
from training.common.onnx_meta import annotate, ort_session

__all__ = ["add_fused", "check_fused", "fused_bytes", "update_model"]


def update_model(latent_dim: int, opset: int = 20, ir_version: int = 10) -> Any:
    """The posterior update alone as an ONNX model: (mu, var f32, precision, eta f64) ->
    (next_precision, next_eta f64, z f32, factor_ok bool), all [batch, L] (factor_ok
    [batch, 1])."""
    import onnx
    from onnx import TensorProto, helper

    L = latent_dim
    f32, f64 = TensorProto.FLOAT, TensorProto.DOUBLE

    def io(name: str, dtype: int, width: int) -> Any:
        return helper.make_tensor_value_info(name, dtype, ["batch", width])

    one = helper.make_tensor("upd_one", f64, [], [1.0])
    zero = helper.make_tensor("upd_zero", f64, [], [0.0])
    axes = helper.make_tensor("upd_axes", TensorProto.INT64, [1], [1])
    n = helper.make_node
    nodes = [
        n("Cast", ["mu"], ["upd_mu64"], to=f64),
        n("Cast", ["var"], ["upd_var64"], to=f64),
        n("Div", ["upd_one", "upd_var64"], ["upd_prec"]),  # 1.0 / var, as add_one
        n("Div", ["upd_mu64", "upd_var64"], ["upd_eta"]),  # mu / var
        n("Add", ["precision", "upd_prec"], ["next_precision"]),
        n("Add", ["eta", "upd_eta"], ["next_eta"]),
        n("Div", ["next_eta", "next_precision"], ["upd_mean"]),
        n("Cast", ["upd_mean"], ["z"], to=f32),
        # The check, in 5 nodes: min(var) > 0 * sum(prec + eta). A NaN or Inf anywhere in
        # the factor makes the sum non-finite, 0 * it NaN and the comparison false (so also
        # for a NaN in var that ReduceMin skips); else it is add_one's min(var) > 0.
        n("Add", ["upd_prec", "upd_eta"], ["upd_both"]),
        n("ReduceSum", ["upd_both", "upd_axes"], ["upd_sum"], keepdims=1),
        n("Mul", ["upd_sum", "upd_zero"], ["upd_nan_or_zero"]),
        # ReduceMin takes its axes as an input from opset 18 on, as an attribute before.
        n("ReduceMin", ["upd_var64", "upd_axes"], ["upd_vmin"], keepdims=1)
        if opset >= 18
        else n("ReduceMin", ["upd_var64"], ["upd_vmin"], keepdims=1, axes=[1]),
        n("Greater", ["upd_vmin", "upd_nan_or_zero"], ["factor_ok"]),
    ]
    graph = helper.make_graph(
        nodes,
        "zshot_posterior_update",
        [io("mu", f32, L), io("var", f32, L), io("precision", f64, L), io("eta", f64, L)],
        [
            io("next_precision", f64, L),
            io("next_eta", f64, L),
            io("z", f32, L),
            helper.make_tensor_value_info("factor_ok", TensorProto.BOOL, ["batch", 1]),
        ],
        initializer=[one, zero, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    onnx.checker.check_model(model)
    return model


def fused_bytes(encoder: bytes, policy: bytes, spec: ArtifactSpec) -> bytes:
    """The fused graph (module docstring) of a posterior artifact's encoder and policy
    ONNX bytes, annotated for `spec` (graph name, doc strings, metadata role `fused`)."""
    import onnx
    from onnx import compose

    if spec.kind != "posterior":
        raise ValueError(f"a fused graph needs a posterior artifact, not kind {spec.kind!r}")
    enc = onnx.load_model_from_string(encoder)
    pol = onnx.load_model_from_string(policy)
    opsets = {m.opset_import[0].version for m in (enc, pol) if m.opset_import}
    if len(opsets) != 1 or enc.ir_version != pol.ir_version:
        raise ValueError(
            f"encoder and policy differ in opset/IR version ({sorted(opsets)}, "
            f"{enc.ir_version}/{pol.ir_version}); re-export the artifact"
        )
    upd = update_model(spec.latent_dim, opset=opsets.pop(), ir_version=enc.ir_version)
    keep = {"rename_inputs": False, "rename_outputs": False}
    enc = compose.add_prefix(enc, "enc/", **keep)
    pol = compose.add_prefix(pol, "pol/", **keep)
    for m in (enc, pol):
        del m.metadata_props[:]
    step = compose.merge_models(
        enc, upd, io_map=[("mu", "mu"), ("var", "var")], outputs=FUSED_IO["outputs"][:4]
    )
    fused = compose.merge_models(
        step,
        pol,
        io_map=[("z", "z")],
        inputs=FUSED_IO["inputs"],
        outputs=FUSED_IO["outputs"],
        name="zshot_fused_step",
    )
    return annotate(fused.SerializeToString(), spec, "fused")


def add_fused(artifact_dir: str | Path, *, force: bool = False) -> tuple[str, str]:
    """Add fused.onnx to an existing posterior artifact (its manifest gains `files.fused`,
    the other files are untouched); returns (old, new) manifest sha256. Refuses
    (ArtifactError, one line) another kind, or an artifact that has one already unless
    `force` (then rebuilt). The graph is checked against the unfused path (`check_fused`)
    before the manifest names it."""
    art = load_artifact(artifact_dir, check_graphs=True)
    m = art.manifest
    if m.kind != "posterior":
        raise ArtifactError(f"{art.root}: kind {m.kind!r}; only posterior artifacts fuse")
    if "fused" in m.files and not force:
        raise ArtifactError(f"{art.root}: has a fused graph already (--force rebuilds it)")
    encoder = art.graph_path("encoder").read_bytes()
    policy = art.graph_path("policy").read_bytes()
    data = fused_bytes(encoder, policy, m)
    check_fused(data, encoder, policy, m)
    new = add_optional_graph(art, "fused", data)
    verify_graphs(new)
    return art.sha256, new.sha256


def check_fused(
    fused: bytes, encoder: bytes, policy: bytes, spec: ArtifactSpec, steps: int = 64, seed: int = 0
) -> None:
    """Run the fused graph and encoder -> NaturalPosterior.add_one -> policy side by side
    over `steps` random transitions (observations and transitions of scale 1 and 10,
    random noise on every other step); raises RuntimeError unless totals, z and actions are
    bit-identical (what lets the server answer the same from either path)."""
    from runtime.posterior import NaturalPosterior

    rng = np.random.default_rng(seed)
    s_f, s_e, s_p = ort_session(fused), ort_session(encoder), ort_session(policy)
    L = spec.latent_dim
    prior_mean = np.asarray(spec.prior_mean or [0.0] * L)
    prior_var = np.asarray(spec.prior_var or [1.0] * L)
    post = NaturalPosterior(prior_mean, prior_var)
    prec, eta = post.rows()
    for step in range(steps):
        scale = 10.0 if step % 4 == 3 else 1.0
        obs = (scale * rng.normal(size=(1, spec.obs_dim))).astype(np.float32)
        tr = (scale * rng.normal(size=(1, spec.transition_dim))).astype(np.float32)
        noise = rng.normal(size=(1, spec.act_dim)).astype(np.float32) * (step % 2)
        nprec, neta, z, ok, action = s_f.run(
            FUSED_IO["outputs"],
            {"obs": obs, "transition": tr, "precision": prec, "eta": eta, "noise": noise},
        )
        mu, var = s_e.run(["mu", "var"], {"transition": tr})
        try:
            with np.errstate(all="ignore"):
                post.add_one(mu, var)
        except ValueError:  # a factor the posterior refuses: the graph must say so too
            same = not ok.any()
        else:
            (want,) = s_p.run(["action"], {"obs": obs, "z": post.mean_row(), "noise": noise})
            prec, eta = nprec, neta
            same = (
                bool(ok.all())
                and prec.tobytes() == post.precision[None, :].tobytes()
                and eta.tobytes() == post.eta[None, :].tobytes()
                and z.tobytes() == post.mean_row().tobytes()
                and action.tobytes() == want.tobytes()
            )
        if not same:
            import onnxruntime

            raise RuntimeError(
                f"the fused graph differs from encoder + posterior update + policy at step "
                f"{step} (onnxruntime {onnxruntime.__version__}); the artifact is left without it"
            )
