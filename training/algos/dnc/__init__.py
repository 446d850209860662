"""Divide-and-Conquer RL: Ghosh, Singh, Rajeswaran, Kumar, Levine (2018),
"Divide-and-Conquer Reinforcement Learning", ICLR, arXiv 1711.09874.

The task set is partitioned into contexts omega_1..omega_K; local policy pi_c is trained by
RL on its own context's tasks with a penalty that ties the local policies together on each
context's states (the paper's pairwise KL),

    L = sum_c ( eta_c(pi_c) - alpha sum_{j != c} E_{s ~ rho_c} KL(pi_c(.|s) || pi_j(.|s)) ),

and every R iterations a central policy pi_G is distilled from them by supervised learning,
minimising sum_c E_{s ~ rho_c} KL(pi_c(.|s) || pi_G(.|s)) on the contexts' states (the
paper's L_center). The exported artifact is pi_G, a `conditioned` artifact told the task's
one-hot id.

How it differs from Distral (training/algos/distral, Teh et al. 2017), which shares this
package's networks, actor and exporter (training/common/local_policies.py):
- the KL: Distral's task policies carry a KL to the shared policy pi_0 inside their
  regularised return (so pi_0 shapes the task policies at every step); here the local
  policies carry a KL to each other (pairwise, on the states of the context whose policy
  is the first argument), and the central policy is in no local policy's loss. The
  pairwise term's gradient reaches both arguments: pi_j is pulled towards what pi_c does
  on context c's states, which is how a context's behaviour spreads to the others;
- the distillation: Distral distils pi_0 at every gradient step (its likelihood term is
  part of the joint objective); here pi_G is distilled periodically, `dnc.distill_steps`
  supervised steps every `dnc.distill_every` iterations, on replayed states of every
  context, with the exact KL of the local to the central policy (tanh-Gaussians: the KL
  of the pre-tanh Gaussians) rather than a one-sample likelihood;
- contexts: one per task (`dnc.contexts` None) or K contiguous blocks of the train-task
  order (task i in context floor(i K / T)); Distral has one policy per task always.

What this implementation does differently from the paper, and why:
- off-policy soft actor-critic instead of TRPO for the local policies (the family's
  machinery: training/common/multitask.py's loop and replay, the learner step, PCGrad):
  twin soft Q over (s, a, one-hot id) shared by all contexts, a fixed entropy
  temperature `dnc.c_ent`, Polyak targets. The pairwise KL is a per-state penalty in the
  local policies' loss on the states they are updated on, not a term of the critic's
  return;
- the pairwise KL is averaged over the other K - 1 policies (weight `dnc.c_kl`), not
  summed, so its weight does not grow with the number of contexts;
- the central policy is told the task id (the paper's pi_G sees the state alone, whose
  contexts are told apart by their initial states): our tasks (hidden goals, plugs)
  cannot be told apart from the observation. For the same reason, with K < T contexts
  the local policies are told the one-hot id too;
- local policies are not reset to the central one after a distillation, and the
  central policy is also distilled before an evaluation if the local policies moved
  since the last one (so the evaluated and exported pi_G is never stale). Distillation
  draws its states with its own generator, so when it happens never changes the local
  policies' training.

networks.py: the local policies, pi_G, the twin Q; losses.py: the RL and distillation
losses (per task for gradient surgery) and their learner steps; trainer.py: collection
with the context's local policy, updates, periodic distillation, evaluation of pi_G;
training/common/local_policies.py `export_central_policy` exports pi_G as a conditioned
artifact (the registry's exporter).
"""
