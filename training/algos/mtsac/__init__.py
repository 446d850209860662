"""Multi-task SAC: Yu, Quillen, He, Julian, Hausman, Finn, Levine (2019), "Meta-World: A
Benchmark and Evaluation for Multi-Task and Meta Reinforcement Learning", CoRL, arXiv
1910.10897 (its MT-SAC baseline: one SAC policy and twin Q over (s, one-hot task id); its
MT-MH-SAC: the same with one output head per task), and its task-conditioning variants as
config switches of one trainer:

- `mtsac.task_input: onehot` (default): Yu et al. 2019's MT-SAC.
- `mtsac.task_input: embedding`: Hausman, Springenberg, Wang, Heess, Riedmiller (2018),
  "Learning an Embedding Space for Transferable Robot Skills", ICLR. An embedding
  p(z | t) = N(mu_t, sigma_t) per task id, the policy pi(a | s, z) on a z drawn once per
  collection episode (and per row in the losses, reparameterised), the embedding's entropy
  H[p(z|t)] rewarded with weight `mtsac.embedding_entropy` (the paper's alpha_1) beside the
  policy's own entropy (SAC's alpha: the paper's alpha_3). Simplified: the paper's third
  term, an inference network q(z | trajectory) whose log-likelihood augments the reward
  (alpha_2, the variational bound on the mutual information of z and the trajectory), is
  left out, and the critic is SAC's twin Q told the task's one-hot id (the paper learns its
  Q with Retrace, off-policy, conditioned on the task). The exported policy maps the one-hot
  it is told to the embedding's mean (so a client may also send a mixture of ids).
- `mtsac.task_input: descriptor`: the policy and critic told a fixed-size descriptor
  computed from data a user has (insertion: the plug spec, zshot/plug_descriptor.py; point:
  the goal), so a task outside the training set gets a policy zero-shot.
- `mtsac.heads: per_task` (one-hot only): Yu et al. 2019's MT-MH-SAC, one policy output
  head and one Q head per task on a shared trunk, picked by the one-hot.
- `pcgrad: true` with any of them: PCGrad (Yu et al. 2020, training/common/pcgrad.py) on
  the per-task losses.

networks.py: the policy and twin Q told the task input, the embedding, the multi-head nets;
losses.py: the SAC loss terms, per task for gradient surgery, and the learner step;
trainer.py: collection and updates over the train tasks (training/common/multitask.py's
loop); export.py: the `conditioned` artifact (policy.onnx: obs, descriptor, noise -> action).
"""
