"""Hindsight experience replay over SAC: Andrychowicz, Wolski, Ray, Schneider, Fong,
Welinder, McGrew, Tobin, Abbeel, Zaremba (2017), "Hindsight Experience Replay", NeurIPS,
arXiv 1707.01495 (the `future` strategy, k relabelled goals per real one), on soft
actor-critic (Haarnoja et al. 2018, twin-Q form) with the goal as the networks' task input.

networks.py: pi(a | s, g), twin Q(s, a, g), their targets, log alpha; losses.py: the SAC
loss terms on a relabelled batch (training/common/goals.py `sample_her`, the sparse reward
of zshot/goal.py recomputed for each substituted goal) and the learner step; trainer.py: the
shared goal loop (training/common/goal_trainer.py). `her.relabel_k: 0` is plain SAC on the
same sparse reward (the baseline). Export: a `conditioned` artifact whose descriptor is the
goal (training/common/goal_export.py).
"""
