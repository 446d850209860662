"""Offline PEARL: PEARL's context encoder trained from a fixed multi-task dataset, with an
advantage-weighted actor (AWAC: Nair, Gupta, Dalal, Levine (2020), "AWAC: Accelerating Online
Reinforcement Learning with Offline Datasets", arXiv 2006.09359) and an AWAC or IQL critic
(Kostrikov, Nair, Levine (2021), "Offline Reinforcement Learning with Implicit Q-Learning",
arXiv 2110.06169), as in ODA (Zhao et al. 2022, "Offline Meta-Reinforcement Learning for
Industrial Insertion", arXiv 2110.04276).

losses.py: the offline loss terms, the update and task inference.
"""
