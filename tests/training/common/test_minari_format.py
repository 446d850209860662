"""MinariWriter's low-level h5py writes give the bytes of h5py's own calls."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.common.minari_format import MinariWriter, box_space_json, read_minari

SPACE = box_space_json([-1.0, -1.0], [1.0, 1.0])
_names = st.text("abcdefghij_", min_size=1, max_size=8)
_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, width=64),
    st.text(st.characters(blacklist_characters="\x00"), max_size=12),
)
_values = st.one_of(
    _scalars,
    st.lists(st.integers(-100, 100), min_size=1, max_size=4),
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=4),
    st.dictionaries(_names, _scalars, max_size=3),
    st.none(),
)
_info_dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.bool_, np.uint8])


def _write(root: Path, episodes: list[dict[str, Any]], low_level: bool) -> bytes:
    writer = MinariWriter(
        root, dataset_id="zshot/same-v0", observation_space=SPACE, action_space=SPACE
    )
    writer.low_level = low_level
    for ep in episodes:
        writer.add_episode(**ep)
    writer.close()
    return (root / "data" / "main_data.hdf5").read_bytes()


@st.composite
def _episodes(draw: Any) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        t = draw(st.integers(0, 6))
        rng = np.random.default_rng(draw(st.integers(0, 2**31)))
        infos = {
            key: (rng.normal(size=(t + 1, 2)) * 10).astype(dtype)
            for key, dtype in draw(st.dictionaries(_names, _info_dtypes, max_size=4)).items()
        }
        meta = draw(st.dictionaries(_names, _values, max_size=5))
        meta["task"] = draw(st.dictionaries(_names, _values, max_size=4))
        out.append(
            {
                "observations": rng.normal(size=(t + 1, 2)),
                "actions": rng.normal(size=(t, 2)),
                "rewards": rng.normal(size=t),
                "terminations": rng.random(t) < 0.3,
                "truncations": rng.random(t) < 0.3,
                "infos": infos,
                "metadata": meta,
                "seed": draw(st.one_of(st.none(), st.integers(0, 2**31))),
            }
        )
    return out


@settings(max_examples=30, deadline=None)
@given(episodes=_episodes())
def test_low_level_writes_are_byte_for_byte_h5pys_own(episodes: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fast = _write(Path(tmp) / "fast", episodes, True)
        ref = _write(Path(tmp) / "ref", episodes, False)
        assert fast == ref
        got, _ = read_minari(Path(tmp) / "fast" / "data")
    assert len(got) == len(episodes)
    for ep, want in zip(got, episodes, strict=True):
        np.testing.assert_array_equal(ep["observations"], want["observations"].astype(np.float32))
        assert ep["task"] == want["metadata"]["task"]


def test_a_compressed_writer_still_writes_through_h5py(tmp_path: Path) -> None:
    writer = MinariWriter(
        tmp_path,
        dataset_id="zshot/gz-v0",
        observation_space=SPACE,
        action_space=SPACE,
        compression="gzip",
    )
    obs = np.zeros((4, 2))
    writer.add_episode(obs, obs[:3], np.zeros(3), np.zeros(3, bool), np.zeros(3, bool), {}, {})
    assert writer.file["episode_0/observations"].compression == "gzip"
    writer.close()


def test_string_and_nested_info_columns_go_through_h5py_with_the_same_bytes(tmp_path: Path) -> None:
    obs = np.zeros((3, 2))
    names = np.array(["a", "bb", "c"], dtype=object)
    ep = {
        "observations": obs,
        "actions": obs[:2],
        "rewards": np.zeros(2),
        "terminations": np.zeros(2, bool),
        "truncations": np.zeros(2, bool),
        "infos": {"name": names, "x": np.arange(3), "task/plug": np.arange(3.0)},
        "metadata": {"mode": "scripted"},
    }
    assert _write(tmp_path / "fast", [ep], True) == _write(tmp_path / "ref", [ep], False)


def test_a_string_with_a_nul_is_refused_by_both_and_leaves_no_attribute(tmp_path: Path) -> None:
    obs = np.zeros((2, 2))
    for low_level in (True, False):
        writer = MinariWriter(
            tmp_path / str(low_level),
            dataset_id="zshot/nul-v0",
            observation_space=SPACE,
            action_space=SPACE,
        )
        writer.low_level = low_level
        with pytest.raises(ValueError, match="NULL"):
            writer.add_episode(
                obs,
                obs[:1],
                np.zeros(1),
                np.zeros(1, bool),
                np.zeros(1, bool),
                {},
                {"label": "a\x00b"},
            )
        assert "label" not in writer.file["episode_0"].attrs
        writer.abort()
