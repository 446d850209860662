"""The plug descriptor (zshot/plug_descriptor.py): the training side (from sim's validated
PlugSpec, through the insertion task source) and the robot side (the raw YAML file, as
`zshot trials --plug-descriptors` reads it) give the same vector for every shipped and
procedural plug; it ignores the pins' order and where the layout sits, tells plugs
apart, and names what is wrong with a bad spec."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.plugs import list_plugs, load_plug
from training.common.tasks import insertion_descriptor
from training.plug_family import plug_paths
from zshot.plug_descriptor import (
    PLUG_DESCRIPTOR_DIM,
    PLUG_DESCRIPTOR_NAMES,
    PlugDescriptorError,
    plug_descriptor,
    plug_descriptor_of,
)

ALL_PLUGS = [*list_plugs(), *plug_paths()]


@pytest.mark.parametrize("ref", ALL_PLUGS, ids=lambda r: Path(r).stem)
def test_train_side_and_bridge_side_give_the_same_vector(ref: str) -> None:
    from sim.tasks import InsertionTask

    bridge = plug_descriptor_of(ref)  # the YAML file as written
    train = insertion_descriptor(InsertionTask(plug=ref))  # sim's PlugSpec, dumped
    assert len(bridge) == PLUG_DESCRIPTOR_DIM == len(PLUG_DESCRIPTOR_NAMES)
    assert train == bridge
    assert all(math.isfinite(v) for v in bridge)


def test_different_plugs_get_different_descriptors() -> None:
    vectors = {tuple(round(v, 9) for v in plug_descriptor_of(r)) for r in ALL_PLUGS}
    assert len(vectors) == len(ALL_PLUGS)


def test_the_entries_mean_what_their_names_say() -> None:
    us = dict(zip(PLUG_DESCRIPTOR_NAMES, plug_descriptor_of("US-AC-plug"), strict=True))
    spec = load_plug("US-AC-plug")
    assert us["pins/4"] == len(spec.pins) / 4
    assert us["clearance/0.3mm"] == pytest.approx(spec.clearance / 0.3)
    assert us["friction"] == pytest.approx(spec.friction)
    assert us["frac_box"] + us["frac_round"] + us["frac_polygon"] == pytest.approx(1.0)
    peg = dict(zip(PLUG_DESCRIPTOR_NAMES, plug_descriptor_of("Metal-peg-rd"), strict=True))
    assert peg["frac_round"] == 1.0 and peg["max_pin_distance/30mm"] == 0.0


def _spec(pins: list[dict[str, float | str]]) -> dict[str, object]:
    return {"name": "p", "pins": pins, "clearance": 0.2, "friction": 0.5}


pin_st = st.fixed_dictionaries(
    {
        "shape": st.sampled_from(["box", "cylinder"]),
        "width": st.floats(0.5, 10),
        "depth": st.floats(0.5, 10),
        "diameter": st.floats(0.5, 10),
        "length": st.floats(2, 30),
        "x": st.floats(-20, 20),
        "y": st.floats(-20, 20),
        "yaw": st.floats(-180, 180),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    pins=st.lists(pin_st, min_size=1, max_size=6),
    shift=st.tuples(st.floats(-30, 30), st.floats(-30, 30)),
    seed=st.integers(0, 1000),
)
def test_invariant_to_pin_order_and_to_moving_the_whole_layout(
    pins: list[dict[str, float | str]], shift: tuple[float, float], seed: int
) -> None:
    import random

    base = plug_descriptor(_spec(pins))
    moved = [{**p, "x": float(p["x"]) + shift[0], "y": float(p["y"]) + shift[1]} for p in pins]
    shuffled = list(moved)
    random.Random(seed).shuffle(shuffled)
    again = plug_descriptor(_spec(shuffled))
    assert again == pytest.approx(base, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(grow=st.floats(1.1, 3.0), pins=st.lists(pin_st, min_size=1, max_size=4))
def test_bigger_sections_give_bigger_size_entries(
    grow: float, pins: list[dict[str, float | str]]
) -> None:
    keys = ("width", "depth", "diameter")
    big = [{**p, **{k: float(p[k]) * grow for k in keys}} for p in pins]
    a = dict(zip(PLUG_DESCRIPTOR_NAMES, plug_descriptor(_spec(pins)), strict=True))
    b = dict(zip(PLUG_DESCRIPTOR_NAMES, plug_descriptor(_spec(big)), strict=True))
    for key in ("mean_minor/10mm", "mean_major/10mm", "min_minor/10mm", "area/100mm2"):
        assert b[key] > a[key]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x"}, "`pins` must be a non-empty list"),
        (_spec([{"shape": "box", "width": 1.0, "length": 3.0}]), "`depth` must be a finite"),
        (_spec([{"shape": "star", "length": 3.0}]), "unknown pin shape 'star'"),
        (_spec([{"shape": "cylinder", "diameter": "big", "length": 3}]), "`diameter`"),
    ],
)
def test_a_bad_spec_is_named(spec: dict[str, object], message: str) -> None:
    with pytest.raises(PlugDescriptorError, match=message):
        plug_descriptor(spec)


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlugDescriptorError, match="no such plug spec file"):
        plug_descriptor_of(tmp_path / "none.yaml")
    with pytest.raises(PlugDescriptorError, match="not a shipped name"):
        plug_descriptor_of("No-such-plug")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(["a", "list"]))
    with pytest.raises(PlugDescriptorError, match="top level must be a mapping"):
        plug_descriptor_of(bad)
    pins = tmp_path / "pins.yaml"
    pins.write_text(yaml.safe_dump({"name": "q", "pins": [{"shape": "box", "length": 2}]}))
    with pytest.raises(PlugDescriptorError, match=str(pins)):
        plug_descriptor_of(pins)
