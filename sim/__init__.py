"""zshot sim: PyBullet insertion environments with the Gymnasium API.

Registered ids (importing `sim` registers them; nothing heavier than gymnasium is imported
until an env is made):

* `zshot/Insertion-v0`: `sim.insertion:InsertionEnv` with the default task (UK-AC-plug);
* `zshot/Insertion-<plug>-v0`: the same env fixed to one of the 9 named plugs.
"""

from __future__ import annotations

from sim.plugs import NAMED_PLUGS

__all__ = ["ENV_IDS", "register_envs"]

ENV_IDS: list[str] = ["zshot/Insertion-v0"] + [f"zshot/Insertion-{n}-v0" for n in NAMED_PLUGS]


def register_envs() -> None:
    """Register every id in `ENV_IDS` with Gymnasium (idempotent)."""
    import gymnasium as gym

    if "zshot/Insertion-v0" in gym.registry:
        return
    gym.register(id="zshot/Insertion-v0", entry_point="sim.insertion:InsertionEnv")
    for name in NAMED_PLUGS:
        gym.register(
            id=f"zshot/Insertion-{name}-v0",
            entry_point="sim.insertion:InsertionEnv",
            kwargs={"plug": name},
        )


register_envs()

# The locomotion family (sim/terrain.py) registers its own ids; importing it is cheap
# (pybullet is imported only when an env is made).
from sim.terrain import register_terrain_envs  # noqa: E402

register_terrain_envs()
