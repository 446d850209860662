"""PEARL: Rakelly, Zhou, Quillen, Finn, Levine (2019), "Efficient Off-Policy Meta-Reinforcement
Learning via Probabilistic Context Variables", ICML, arXiv 1903.08254.

losses.py: the posterior, the loss terms and the learner step; trainer.py: meta-training
(Algorithm 1); export.py: the `posterior` artifact (encoder.onnx + policy.onnx).
"""
