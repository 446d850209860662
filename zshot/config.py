"""Config loading: defaults live in code (pydantic models), YAML files and `--set` override.

Every config model derives from `StrictModel`, which rejects unknown keys, so a typo in a
YAML file is an error naming the key and the file rather than a silently ignored setting.

    cfg = load_config(TrainConfig, "configs/train/insertion.yaml", ["sac.lr=1e-3"])

Files under `configs/<kind>/` are validated by the model registered for `<kind>` in
`CONFIG_KINDS` (tests/zshot/test_configs.py loads every one of them).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "CONFIG_KINDS",
    "PROFILE_NAMES",
    "ConfigError",
    "ProfileName",
    "StrictModel",
    "add_profile_argument",
    "add_set_argument",
    "apply_overrides",
    "config_model_for",
    "load_config",
    "load_yaml_mapping",
    "override_config",
    "profile_override",
]


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors; values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


M = TypeVar("M", bound=BaseModel)

# configs/<kind>/*.yaml -> "module:Model". Lazy strings so that loading a runtime config
# never imports training (and torch).
CONFIG_KINDS: dict[str, str] = {
    "train": "training.config:TrainConfig",
    "collect": "training.config:CollectConfig",
    "serve": "runtime.config:ServeConfig",
    "trials": "hardware_bridge.config:TrialsConfig",
    "sim": "sim.config:InsertionEnvConfig",
    "terrain": "sim.terrain_config:TerrainEnvConfig",
}


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the file and the key."""


def config_model_for(kind: str) -> type[BaseModel]:
    """The pydantic model that validates files under `configs/<kind>/`."""
    try:
        target = CONFIG_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(CONFIG_KINDS))
        raise ConfigError(f"unknown config kind {kind!r}; known kinds: {known}") from None
    module_name, _, attr = target.partition(":")
    model = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{target} is not a pydantic model")
    return model


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set sac.lr=3e-4")
    parts = key.split(".")
    if any(not part for part in parts):
        raise ConfigError(f"--set {item!r}: empty component in key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from None
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `a.b.c=value` applied (value parsed as YAML)."""
    out: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        parts, value = _parse_override(item)
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {item!r}: {where} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: `source: key.path: message (got value)`."""
    lines = [f"invalid config ({source}):"]
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "<top level>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the defaults in code)"
        got = err.get("input")
        shown = "" if err["type"] in ("extra_forbidden", "missing") else f" (got {got!r})"
        lines.append(f"  {source}: {loc}: {msg}{shown}")
    return "\n".join(lines)


def add_set_argument(
    parser: argparse.ArgumentParser,
    help: str = "override one config key (dotted path), e.g. --set seed=1; repeatable",
    dest: str = "overrides",
) -> None:
    """The `--set KEY=VALUE` option every config-reading CLI takes (repeatable; the values
    go to `load_config` / `override_config`)."""
    parser.add_argument(
        "--set", dest=dest, action="append", default=[], metavar="KEY=VALUE", help=help
    )


ProfileName = Literal["known", "oda", "hard"]
"""The insertion benchmark profiles (sim.config.PROFILES holds what each draws); the type of
every config's `profile` key."""
PROFILE_NAMES: tuple[str, ...] = get_args(ProfileName)


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    """The `--profile known|oda|hard` switch of eval, trials, sim baseline, train and collect
    (checked by `profile_override`, which names a bad value in one line)."""
    parser.add_argument(
        "--profile",
        metavar="|".join(PROFILE_NAMES),
        help="insertion benchmark profile: known (no socket error), oda (a fresh unobserved "
        "±1 mm every episode), hard (±2 mm / ±3° per task)",
    )


def profile_override(profile: str | None, key: str = "profile") -> list[str]:
    """`--set` entries for a `--profile` value ([] for None); ConfigError naming a bad one."""
    if profile is None:
        return []
    if profile not in PROFILE_NAMES:
        raise ConfigError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILE_NAMES)}")
    return [f"{key}={profile}"]


def override_config(cfg: M, overrides: Sequence[str], source: str) -> M:
    """`cfg` with `--set` overrides applied and validated again (a run's or artifact's stored
    config, say). Raises `ConfigError` naming `source`, the overrides and the offending key."""
    if not overrides:
        return cfg
    try:
        return type(cfg).model_validate(apply_overrides(cfg.model_dump(mode="json"), overrides))
    except ValidationError as exc:
        where = f"{source} + --set " + " ".join(overrides)
        raise ConfigError(format_validation_error(exc, where)) from None


def load_config(
    model: type[M],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> M:
    """Defaults from `model`, overridden by the YAML file at `path`, then by `overrides`.

    Raises `ConfigError` naming the file (or `--set`) and the offending key.
    """
    data = load_yaml_mapping(path) if path is not None else {}
    merged = apply_overrides(data, overrides)
    source = str(path) if path is not None else "defaults"
    if overrides:
        source += " + --set " + " ".join(overrides)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
