"""zshot sim: PyBullet insertion environments with the Gymnasium API.

Registered ids (importing `sim` registers them; nothing heavier than gymnasium is imported
until an env is made):

* `zshot/Insertion-v0`: `sim.insertion:InsertionEnv` with the default task (UK-AC-plug);
* `zshot/Insertion-<plug>-v0`: the same env fixed to one of the 9 named plugs;
* `zshot/InsertionGoal-v0`: `sim.insertion_goal:InsertionGoalEnv`, the goal-reaching variant
  (goal = a plug pose, inserted included; Dict observation, sparse reward).

Every id's `spec.max_episode_steps` is the env's own limit with its default config (the
envs also truncate themselves, so the TimeLimit wrapper gym.make adds never cuts earlier).

pybullet's C module prints "pybullet build time: ..." on stderr when imported; importing
`sim` imports it once with stderr pointed at /dev/null, so no command shows the banner.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from sim.plugs import NAMED_PLUGS

__all__ = ["ENV_IDS", "make_insertion_env", "register_envs"]


def _import_pybullet_quietly() -> None:
    """Import pybullet with fd 2 on /dev/null (its import banner); errors still raise."""
    if "pybullet" in sys.modules or importlib.util.find_spec("pybullet") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import pybullet  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_pybullet_quietly()

ENV_IDS: list[str] = [
    "zshot/Insertion-v0",
    *(f"zshot/Insertion-{n}-v0" for n in NAMED_PLUGS),
    "zshot/InsertionGoal-v0",
]


def register_envs() -> None:
    """Register every id in `ENV_IDS` with Gymnasium (idempotent)."""
    import gymnasium as gym

    from sim.config import InsertionEnvConfig

    if "zshot/Insertion-v0" in gym.registry:
        return
    limit = InsertionEnvConfig().max_steps
    gym.register(
        id="zshot/Insertion-v0",
        entry_point="sim.insertion:InsertionEnv",
        max_episode_steps=limit,
    )
    for name in NAMED_PLUGS:
        gym.register(
            id=f"zshot/Insertion-{name}-v0",
            entry_point="sim.insertion:InsertionEnv",
            kwargs={"plug": name},
            max_episode_steps=limit,
        )
    gym.register(
        id="zshot/InsertionGoal-v0",
        entry_point="sim.insertion_goal:InsertionGoalEnv",
        max_episode_steps=limit,
    )


def make_insertion_env(config: Any = None, **kwargs: Any) -> Any:
    """`InsertionEnv` whose `config` may also be a mapping (an `InsertionEnvConfig` dump):
    the entry point of the EnvSpec a collected Minari dataset records, so that
    `MinariDataset.recover_environment()` rebuilds the collection's env."""
    from sim.config import InsertionEnvConfig
    from sim.insertion import InsertionEnv

    if config is not None and not isinstance(config, InsertionEnvConfig):
        config = InsertionEnvConfig.model_validate(config)
    return InsertionEnv(config=config, **kwargs)


register_envs()

# The locomotion family (sim/terrain.py) registers its own ids; importing it is cheap
# (pybullet is imported only when an env is made).
from sim.terrain import register_terrain_envs  # noqa: E402

register_terrain_envs()
