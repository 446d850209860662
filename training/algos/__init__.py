"""One package per algorithm; `training.registry` names them (`zshot algos` lists them).

An algorithm imports `training.common` and `training.config`, never another algorithm,
except `offline_pearl`, which builds on `pearl`'s networks, optimizers and learner step.
"""
