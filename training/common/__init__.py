"""Parts every algorithm shares: networks, replay, datasets, tasks (docs/INTERFACES.md).

Nothing here imports `training.algos` or `training.registry`.
"""
