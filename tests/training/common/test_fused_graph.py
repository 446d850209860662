"""training/common/fused_graph.py: the posterior update graph is NaturalPosterior.add_one
bit for bit (accepting exactly what it accepts), and `zshot artifact fuse` adds the fused
graph to an existing artifact (no torch needed)."""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from runtime.posterior import NaturalPosterior

pytest.importorskip("onnx")

BAD = [0.0, -0.0, np.nan, np.inf, -np.inf, -1.0, 1e-30, 1e-45, 3e38]


@cache
def _update_session(latent_dim: int) -> Any:
    from training.common.fused_graph import update_model
    from training.common.onnx_meta import ort_session

    return ort_session(update_model(latent_dim).SerializeToString())


def _factor(L: int) -> st.SearchStrategy[np.ndarray]:
    return arrays(
        np.float32,
        (L,),
        elements=st.one_of(st.floats(-100, 100, width=32), st.sampled_from(BAD)),
    )


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([1, 3, 5]), st.data())
def test_the_update_graph_is_add_one_bit_for_bit(L: int, data: st.DataObject) -> None:
    """Over a sequence of factors (good ones, and NaN/Inf/0/negative/denormal entries in mu
    and var), the graph's factor_ok is add_one's accept, its totals after an accepted
    factor are add_one's bit for bit, and z is mean_row's float32."""
    sess = _update_session(L)
    prior_mean = data.draw(arrays(np.float64, (L,), elements=st.floats(-3, 3)))
    prior_var = data.draw(arrays(np.float64, (L,), elements=st.floats(0.01, 100)))
    post = NaturalPosterior(prior_mean, prior_var)
    prec, eta = post.rows()
    n = data.draw(st.integers(1, 8))
    for _ in range(n):
        var = np.abs(data.draw(_factor(L))) if data.draw(st.booleans()) else data.draw(_factor(L))
        mu = data.draw(_factor(L))
        nprec, neta, z, ok = sess.run(
            ["next_precision", "next_eta", "z", "factor_ok"],
            {"mu": mu[None, :], "var": var[None, :], "precision": prec, "eta": eta},
        )
        with np.errstate(all="ignore"):
            try:
                post.add_one(mu[None, :], var[None, :])
                accepted = True
            except ValueError:
                accepted = False
        assert ok.shape == (1, 1) and bool(ok[0, 0]) == accepted, (mu, var)
        if accepted:
            assert nprec.tobytes() == post.precision[None, :].tobytes()
            assert neta.tobytes() == post.eta[None, :].tobytes()
            assert z.tobytes() == post.mean_row().tobytes()
            prec, eta = nprec, neta
        else:  # the state add_one kept is the graph's inputs
            assert prec.tobytes() == post.precision[None, :].tobytes()


def test_rows_and_lists_stay_one_state() -> None:
    """NaturalPosterior's fused-graph storage (rows / set_rows) and its list path agree:
    either update after the other sees the same totals."""
    a, b = NaturalPosterior.standard(3), NaturalPosterior.standard(3)
    sess = _update_session(3)
    rng = np.random.default_rng(0)
    for i in range(20):
        mu = rng.normal(size=(1, 3)).astype(np.float32)
        var = rng.uniform(0.1, 3, size=(1, 3)).astype(np.float32)
        a.add_one(mu, var)
        if i % 3:
            prec, eta = b.rows()
            nprec, neta, _, ok = sess.run(
                None, {"mu": mu, "var": var, "precision": prec, "eta": eta}
            )
            assert ok[0, 0]
            b.set_rows(nprec, neta)
        else:
            b.add_one(mu, var)
        assert a.count == b.count == i + 1
        assert a.precision.tobytes() == b.precision.tobytes()
        assert a.eta.tobytes() == b.eta.tobytes()
        assert a.mean_row().tobytes() == b.mean_row().tobytes()
    b.reset()
    assert b.count == 0 and b.rows()[0].tobytes() == np.ones((1, 3)).tobytes()


@pytest.fixture
def fixture_artifact(tmp_path: Path) -> Path:
    from tests.runtime.onnx_fixture import make_artifact

    make_artifact(tmp_path / "art", seed=3)
    return tmp_path / "art"


def test_zshot_artifact_fuse_adds_one_files_entry(
    fixture_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.artifact import load_artifact
    from zshot.cli import main

    before = json.loads((fixture_artifact / "manifest.json").read_text())
    old = load_artifact(fixture_artifact)
    assert main(["artifact", "fuse", str(fixture_artifact)]) == 0
    assert "fused.onnx" in capsys.readouterr().out
    after = json.loads((fixture_artifact / "manifest.json").read_text())
    fused = after["files"].pop("fused")
    assert after == before and fused["path"] == "fused.onnx"  # one entry more, nothing else
    new = load_artifact(fixture_artifact, check_graphs=True)
    assert new.sha256 != old.sha256 and set(new.manifest.files) == {"encoder", "policy", "fused"}
    # Again: refused with one line; --force rebuilds the same bytes.
    assert main(["artifact", "fuse", str(fixture_artifact)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has a fused graph already" in err
    assert main(["artifact", "fuse", str(fixture_artifact), "--force"]) == 0
    assert load_artifact(fixture_artifact).sha256 == new.sha256


def test_zshot_artifact_fuse_refuses_with_one_line(
    tmp_path: Path, fixture_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.runtime.kinds_fixture import make_kind_artifact
    from zshot.cli import main

    make_kind_artifact(tmp_path / "weights", "weights")
    (tmp_path / "junk").mkdir()
    shutil.copy(fixture_artifact / "manifest.json", tmp_path / "junk")  # graphs missing
    for target, why in [
        (tmp_path / "nowhere", "not a directory"),
        (tmp_path / "weights", "only posterior artifacts fuse"),
        (tmp_path / "junk", "missing"),
    ]:
        assert main(["artifact", "fuse", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err, err
    assert not (tmp_path / "weights" / "fused.onnx").exists()


def test_a_fused_graph_that_differs_is_not_written(fixture_artifact: Path) -> None:
    """check_fused compares bit for bit: a policy with other weights fails it."""
    from runtime.artifact import load_artifact
    from tests.runtime.onnx_fixture import RandomWeights
    from training.common.fused_graph import check_fused, fused_bytes

    art = load_artifact(fixture_artifact)
    enc = art.encoder_path.read_bytes()
    pol = art.policy_path.read_bytes()
    other = RandomWeights(6, 3, 4, 16, seed=4).policy_onnx()
    check_fused(fused_bytes(enc, pol, art.manifest), enc, pol, art.manifest)
    with pytest.raises(RuntimeError, match="differs"):
        check_fused(fused_bytes(enc, other, art.manifest), enc, pol, art.manifest)
