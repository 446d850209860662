"""Every YAML in configs/ validates against the model of its folder; bad input is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from zshot.config import (
    CONFIG_KINDS,
    ConfigError,
    StrictModel,
    apply_overrides,
    config_model_for,
    load_config,
    override_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
YAMLS = sorted(p for p in CONFIGS.rglob("*.y*ml"))


def test_there_are_configs_to_check() -> None:
    assert YAMLS, "configs/ holds no YAML files"


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_yaml_in_configs_loads(path: Path) -> None:
    kind = path.relative_to(CONFIGS).parts[0]
    assert kind in CONFIG_KINDS, f"{path}: folder {kind!r} has no model in CONFIG_KINDS"
    load_config(config_model_for(kind), path)


class Inner(StrictModel):
    lr: float = Field(3e-4, gt=0)
    layers: list[int] = Field(default_factory=lambda: [64, 64])


class Outer(StrictModel):
    seed: int = 0
    sac: Inner = Field(default_factory=Inner)


def test_defaults_live_in_code() -> None:
    assert load_config(Outer) == Outer()


def test_yaml_overrides_only_what_it_names(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("sac:\n  lr: 0.001\n")
    cfg = load_config(Outer, f)
    assert cfg.sac.lr == 0.001 and cfg.sac.layers == [64, 64] and cfg.seed == 0


def test_set_overrides_win_over_yaml(tmp_path: Path) -> None:
    f = tmp_path / "a.yaml"
    f.write_text("seed: 3\n")
    cfg = load_config(Outer, f, ["seed=7", "sac.layers=[8, 8, 8]"])
    assert cfg.seed == 7 and cfg.sac.layers == [8, 8, 8]


def test_override_config_revalidates_a_loaded_config() -> None:
    cfg = Outer(seed=3)
    assert override_config(cfg, [], "run") is cfg
    out = override_config(cfg, ["sac.lr=0.01"], "run")
    assert out.sac.lr == 0.01 and out.seed == 3 and cfg.sac.lr == 3e-4  # cfg untouched
    with pytest.raises(ConfigError, match=r"run \+ --set sac.lr=-1.*sac.lr"):
        override_config(cfg, ["sac.lr=-1"], "run")


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    f = tmp_path / "typo.yaml"
    f.write_text("sac:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Outer, f)
    msg = str(info.value)
    assert "sac.lrr" in msg and "typo.yaml" in msg and "unknown key" in msg


def test_out_of_range_value_names_key_and_file(tmp_path: Path) -> None:
    f = tmp_path / "neg.yaml"
    f.write_text("sac:\n  lr: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Outer, f)
    assert "sac.lr" in str(info.value) and "neg.yaml" in str(info.value)


def test_unknown_key_from_set_is_named() -> None:
    with pytest.raises(ConfigError, match=r"--set seedd=1.*seedd"):
        load_config(Outer, None, ["seedd=1"])


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1"])
def test_malformed_set_is_rejected(bad: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        apply_overrides({}, [bad])


def test_non_mapping_yaml_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml.*mapping"):
        load_config(Outer, f)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(Outer, tmp_path / "nope.yaml")


def test_set_into_a_value_is_rejected() -> None:
    with pytest.raises(ConfigError, match="seed is a value"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


keys = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


@given(st.lists(st.tuples(st.lists(keys, min_size=1, max_size=3), st.integers()), max_size=6))
def test_override_then_read_back(items: list[tuple[list[str], int]]) -> None:
    # Property: after applying overrides, each override's own path reads back its value,
    # unless a later override replaced it or a prefix of it.
    data: dict = {}
    applied = []
    for path, value in items:
        try:
            data = apply_overrides(data, [".".join(path) + f"={value}"])
        except ConfigError:
            continue  # a prefix already holds a value: rejected, data unchanged
        applied = [(p, v) for p, v in applied if p[: len(path)] != path]
        applied.append((path, value))
    for path, value in applied:
        node = data
        for part in path:
            node = node[part]
        assert node == value
