"""Multi-task SAC with a one-hot task id: Yu, Quillen, He, Julian, Hausman, Finn, Levine
(2019), "Meta-World: A Benchmark and Evaluation for Multi-Task and Meta Reinforcement
Learning", CoRL, arXiv 1910.10897 (its MT-SAC baseline: one SAC policy and twin Q over
(s, one-hot task id)).

networks.py: the policy and twin Q conditioned on the descriptor; losses.py: the SAC loss
terms, per task for gradient surgery (`pcgrad: true` applies training/common/pcgrad.py),
and the learner step; trainer.py: collection and updates over the train tasks; export.py:
the `conditioned` artifact (policy.onnx: obs, descriptor, noise -> action).
"""
