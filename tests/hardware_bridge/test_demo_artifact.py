"""The committed demo artifact (hardware_bridge/demo_artifact/): a real train + export of a
committed config, and `zshot demo` runs end to end on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardware_bridge.cli import DEMO_ARTIFACT

pytest.importorskip("pybullet")

REPO = Path(__file__).resolve().parents[2]


def _manifest() -> dict:
    return json.loads((DEMO_ARTIFACT / "manifest.json").read_text())


def test_demo_artifact_is_a_train_and_export_of_a_committed_config() -> None:
    """The manifest names the training config; it must be the committed YAML unchanged (so the
    README's regenerate commands reproduce it), and the files must match their checksums."""
    pytest.importorskip("torch")
    import hashlib

    from training.config import TrainConfig
    from zshot.config import load_config

    m = _manifest()
    training = m["training"]
    readme = (DEMO_ARTIFACT / "README.md").read_text()
    config_path = next(
        (REPO / w.strip("`")) for w in readme.split() if w.strip("`").startswith("configs/train/")
    )
    committed = load_config(TrainConfig, config_path).model_dump(mode="json")
    # Validated again, so keys added to TrainConfig since the export take their defaults
    # (a new key must default to the old behaviour); every key it recorded must match.
    recorded = TrainConfig.model_validate(training["config"]).model_dump(mode="json")
    assert recorded == committed, f"artifact not trained on {config_path} as committed"
    # all iterations, or fewer when the config's wall-clock budget (max_minutes) ended it
    assert 0 < training["iteration"] <= committed["iterations"]
    if committed["max_minutes"] is None:
        assert training["iteration"] == committed["iterations"]
    assert training["updates"] == training["iteration"] * committed["updates_per_iteration"]
    for entry in m["files"].values():
        digest = hashlib.sha256((DEMO_ARTIFACT / entry["path"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], entry["path"]
    # small enough to commit
    assert sum(f.stat().st_size for f in DEMO_ARTIFACT.iterdir()) < 1_000_000


def test_zshot_demo_on_the_committed_artifact(tmp_path: Path, capsys) -> None:
    """The demo path, shortened to 1 plug x (1 + 1) episodes, against the shipped artifact."""
    from hardware_bridge.cli import demo_main

    rc = demo_main([
        "--out", str(tmp_path), "--set", "plugs=[Metal-peg-rd]",
        "--set", "adapt_episodes=1", "--set", "eval_episodes=1",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    data = json.loads((tmp_path / "trials.json").read_text())
    assert [p["plug"] for p in data["plugs"]] == ["Metal-peg-rd"]
    assert _manifest()["name"] in out and "zshot demo: done" in out
    assert len(list((tmp_path / "recordings").glob("episode_*.h5"))) == 2


def test_demo_defaults_equal_the_demo_config() -> None:
    """An installed wheel has no configs/ folder: demo_main then uses TrialsConfig's defaults,
    which must be what configs/trials/demo.yaml says."""
    from hardware_bridge.cli import DEMO_CONFIG
    from hardware_bridge.config import TrialsConfig
    from zshot.config import load_config

    assert load_config(TrialsConfig, DEMO_CONFIG) == TrialsConfig()
