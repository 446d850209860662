"""Distral: Teh, Bapst, Czarnecki, Quan, Kirkpatrick, Hadsell, Heess, Pascanu (2017),
"Distral: Robust Multitask Reinforcement Learning", NeurIPS, arXiv 1707.04175.

Per-task policies pi_i, each trained by RL on its own task with the regularised return

    E_pi_i [ sum_t gamma^t ( r_i - c_KL log(pi_i / pi_0) - c_Ent log pi_i ) ]

(paper eq. 1: a KL to the shared policy pi_0 and an entropy bonus), and the shared policy
pi_0 distilled from them by supervised learning (maximum likelihood of the task policies'
actions at their states, paper eq. 3's pi_0 term). The exported artifact is pi_0, a
`conditioned` artifact told the task's one-hot id.

What this implementation does differently from the paper, and why:
- off-policy and soft actor-critic style (twin soft Q over (s, a, one-hot id), a
  reparameterised policy step, Polyak targets) instead of the paper's A3C / soft
  Q-learning: the same regularised objective, with the rest of our family's machinery
  (training/common/multitask.py's loop and replay, the learner step, PCGrad);
- pi_0 is told the task id (the paper's pi_0 sees only the state): our tasks (hidden goals,
  plugs) cannot be told apart from the observation, so a state-only pi_0 could only be
  their average and would not serve as the exported policy; what the tasks share is pi_0's
  weights (as Divide-and-Conquer's central policy, Ghosh et al. 2018, sees its context);
- pi_0 is distilled on replayed states of each task (actions drawn from pi_i there), not
  on the on-policy trajectories, and with an unweighted likelihood (the paper scales it by
  c_KL / its discount; here `distral.distill_lr` sets the pace);
- one shared critic over the one-hot id rather than a value per task network.

networks.py: the per-task policies, pi_0, the twin Q; losses.py: the loss terms (per task
for gradient surgery) and the learner step; trainer.py: collection with pi_i, updates,
evaluation of pi_0; training/common/local_policies.py `export_central_policy` exports pi_0
as a conditioned artifact (the registry's exporter).
"""
