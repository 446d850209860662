"""Contrastive RL: Eysenbach, Zhang, Salakhutdinov, Levine (2022), "Contrastive Learning as
Goal-Conditioned Reinforcement Learning", NeurIPS, arXiv 2206.07568.

The critic is a classifier of futures: f(s, a, g) = phi(s, a) . psi(g), trained by InfoNCE
over a batch to pick each (s_t, a_t)'s own future achieved goal (Δ ~ Geom(1 - γ) steps
later in the same episode: training/common/goals.py `sample_future`) among the batch's
others; at the optimum exp f is the discounted occupancy of g under the policy up to a
factor of g alone, so it ranks actions as a goal-conditioned Q does, without a reward or a
Bellman backup. The actor maximises f(s, pi(s, g), g) (with a fixed entropy bonus).

networks.py: pi(a | s, g) and the critic's two encoders; losses.py: `infonce_loss`, the
critic and actor terms, the learner step; trainer.py: the shared goal loop
(training/common/goal_trainer.py). Export: a `conditioned` artifact whose descriptor is the
goal (training/common/goal_export.py).
"""
