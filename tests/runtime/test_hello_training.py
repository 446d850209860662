"""The HELLO reply's facts from the manifest's `training` mapping: the plug descriptor version
of an artifact told plug descriptors and the ε of a goal-conditioned one, so the robot side
can check what it sends (docs/PROTOCOL.md `### HELLO`). Additive keys: an older client
ignores them, a reply without them parses as None."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.config import ServeConfig
from runtime.model import LoadedModel
from runtime.protocol import HelloReply
from runtime.server import _training_facts
from tests.runtime.conftest import start_server
from tests.runtime.kinds_fixture import make_kind_artifact


@pytest.mark.parametrize(
    ("training", "version", "eps"),
    [
        ({}, None, None),
        ({"plug_descriptor_version": 2}, 2, None),
        ({"plug_descriptor_version": 1, "task_input": "descriptor"}, 1, None),
        ({"goal": {"epsilon": 1.0, "names": ["x_mm"]}}, None, 1.0),
        ({"goal": {"epsilon": 0.05}}, None, 0.05),
    ],
)
def test_the_facts_are_the_manifests(training: dict[str, Any], version: Any, eps: Any) -> None:
    assert _training_facts(training) == {"plug_descriptor_version": version, "goal_epsilon": eps}


@given(
    version=st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=3), st.lists(st.integers(), max_size=2)),
    goal=st.one_of(
        st.none(),
        st.text(max_size=3),
        st.fixed_dictionaries({"epsilon": st.one_of(st.none(), st.booleans(), st.text(max_size=3),
                                                    st.floats(allow_nan=True, allow_infinity=True))}),
    ),
)  # fmt: skip
def test_a_fact_of_the_wrong_type_is_left_out_and_the_reply_still_parses(
    version: Any, goal: Any
) -> None:
    facts = _training_facts({"plug_descriptor_version": version, "goal": goal})
    assert facts["plug_descriptor_version"] is None
    eps = facts["goal_epsilon"]
    assert eps is None or (isinstance(eps, float) and eps > 0 and eps < float("inf"))
    if eps is not None:
        assert eps == goal["epsilon"]
    # the reply with these facts is valid JSON a client parses back
    reply = _reply(**facts)
    assert HelloReply.model_validate_json(reply.model_dump_json()) == reply


def _reply(**kw: Any) -> HelloReply:
    base = {
        "session_id": 1, "protocol_version": 2, "obs_dim": 1, "act_dim": 1, "latent_dim": 0,
        "transition_dim": 3, "obs_names": ["a"], "action_names": ["b"], "action_low": [-1.0],
        "action_high": [1.0], "control_hz": 10.0, "artifact_sha256": "0" * 64,
        "artifact_name": "x", "mode": "explore", "update": "episode",
    }  # fmt: skip
    return HelloReply.model_validate({**base, **kw})


def test_a_reply_without_the_keys_parses_as_none() -> None:
    """What a runtime from before these keys sends."""
    reply = _reply()
    data = json.loads(reply.model_dump_json())
    del data["plug_descriptor_version"], data["goal_epsilon"]
    again = HelloReply.model_validate(data)
    assert again.plug_descriptor_version is None and again.goal_epsilon is None


@pytest.mark.parametrize(
    ("training", "version", "eps"),
    [({"plug_descriptor_version": 2}, 2, None), ({"goal": {"epsilon": 1.5}}, None, 1.5), ({}, None, None)],
)  # fmt: skip
def test_the_served_hello_carries_them(
    tmp_path: Path, training: dict[str, Any], version: Any, eps: Any
) -> None:
    _, w = make_kind_artifact(tmp_path / "a", "conditioned", {"training": training}, width=4)
    r = start_server(LoadedModel.load(tmp_path / "a", ServeConfig()), w)  # type: ignore[arg-type]
    try:
        info = r.client().hello()
        assert (info.plug_descriptor_version, info.goal_epsilon) == (version, eps)
    finally:
        for c in r.clients:
            c.close()
        r.server.stop()
