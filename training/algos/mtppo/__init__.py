"""Multi-task PPO with a one-hot task id: Yu, Quillen, He, Julian, Hausman, Finn, Levine
(2019), "Meta-World: A Benchmark and Evaluation for Multi-Task and Meta Reinforcement
Learning", CoRL, arXiv 1910.10897 (its MT-PPO baseline: one PPO policy over (s, one-hot task
id), Schulman et al. 2017, arXiv 1707.06347).

networks.py: the Gaussian policy and the value function, both of (s, d); losses.py: their
PPO terms over episodes (training/common/ppo.py); trainer.py: on-policy collection over
the train tasks and updates; export.py: the `conditioned` artifact (policy.onnx: obs,
descriptor, noise -> action), as MT-SAC's.
"""
