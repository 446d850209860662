"""The `zshot` command lists its subcommands and refuses unbuilt ones."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zshot.cli import COMMANDS, main

RESERVED = ["train", "export", "eval", "collect", "serve", "keys", "trials", "demo"]


def test_help_lists_every_reserved_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in RESERVED:
        assert f"  {name} " in out


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zshot", "--help"], capture_output=True, text=True, check=True
    )
    assert "serve" in out.stdout


def test_unknown_command_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fly"]) == 2
    assert "unknown command 'fly'" in capsys.readouterr().err


def test_unbuilt_command_says_so_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    unbuilt = [name for name, cmd in COMMANDS.items() if not cmd.built]
    for name in unbuilt:
        assert main([name]) != 0
        assert "not built yet" in capsys.readouterr().err


def test_every_built_target_exists() -> None:
    import importlib

    for name, cmd in COMMANDS.items():
        if cmd.built:
            module, _, func = cmd.target.partition(":")
            assert callable(getattr(importlib.import_module(module), func)), name


def test_config_command_prints_effective_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "serve", "--set", "intra_op_threads=2"]) == 0
    assert "intra_op_threads: 2" in capsys.readouterr().out


def test_config_command_reports_bad_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "serve", "--set", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
