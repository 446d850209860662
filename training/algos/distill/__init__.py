"""Privileged-teacher distillation for insertion: DAgger (Ross, Gordon, Bagnell (2011), "A
Reduction of Imitation Learning and Structured Prediction to No-Regret Online Learning",
AISTATS, arXiv 1011.0686) against the sim's servo told the true socket pose, the student
conditioned on the pose as in "Learning by Cheating" (Chen, Zhou, Koltun, Krähenbühl (2019),
CoRL, arXiv 1912.12294), and a context encoder trained to estimate that pose from what a
robot measures.

trainer.py: the losses (bc_loss, nll_loss), the DAgger rounds and the run; the artifact is
PEARL's `posterior` kind (training/algos/pearl/export.py), with PEARL's networks.
"""
