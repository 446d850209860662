"""`zshot config KIND [FILE] [--set k=v ...]`: print the effective config, or the error."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import yaml

from zshot.config import CONFIG_KINDS, add_set_argument, config_model_for, load_config


def main(argv: Sequence[str]) -> int:
    """Validate a config and print it with every default filled in, as YAML."""
    parser = argparse.ArgumentParser(
        prog="zshot config",
        description="Show the effective config: defaults in code, overridden by FILE, then by --set.",
    )
    parser.add_argument("kind", choices=sorted(CONFIG_KINDS), help="which config model")
    parser.add_argument("file", nargs="?", help="YAML file overriding the defaults")
    add_set_argument(parser, help="override one key (dotted path), e.g. --set sac.lr=1e-3")
    args = parser.parse_args(list(argv))
    cfg = load_config(config_model_for(args.kind), args.file, args.overrides)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    return 0
