"""RL²: Duan, Schulman, Chen, Bartlett, Sutskever, Abbeel (2016), "RL²: Fast Reinforcement
Learning via Slow Reinforcement Learning", arXiv 1611.02779; Wang, Kurth-Nelson, Tirumala,
Soyer, Leibo, Munos, Blundell, Kumaran, Botvinick (2016), "Learning to reinforcement
learn", arXiv 1611.05763.

A GRU policy reads (s_t, a_{t-1}, r_{t-1}, d_{t-1}); its hidden state runs through a
*trial* of `rl2.episodes_per_trial` episodes of one task and is reset only for a new task,
so adaptation happens in its memory, with no gradient at test time. It is trained by PPO
(training/common/ppo.py; the paper used TRPO) on whole trials, one return across the
trial's episodes (exploring in an early episode pays in a later one); `rl2.bptt` truncates
backpropagation through time to chunks starting from the rollout's hidden state.

networks.py: the recurrent policy (the exported step) and the recurrent value function;
losses.py: their PPO terms over trial sequences; trainer.py: trials, updates, few-shot
evaluation, checkpoints; agent.py: the run as a `RecurrentAgent`; export.py: the
`recurrent` artifact (step.onnx).
"""
