"""VariBAD: Zintgraf, Shiarlis, Igl, Schulze, Gal, Hofmann, Whiteson (2020), "VariBAD: A Very
Good Method for Bayes-Adaptive Deep RL via Meta-Learning", ICLR, arXiv 1910.08348.

A recurrent (GRU) trajectory encoder gives, after every transition, a belief over the task
q(m | tau_:t) = N(mean_t, var_t); a reward decoder p(r | s, a, s', m) (and optionally a
transition decoder p(s' | s, a, m), `varibad.decode_state`) is trained with it as a VAE on
the ELBO over whole trials (every belief reconstructs the trial's past and future rewards,
each posterior is pulled to the previous one, the first to N(0, I)); a policy
pi(a | s, mean_t, var_t) and its value function are trained by PPO (training/common/ppo.py)
on the beliefs the encoder gave during collection. As in the paper, the policy's loss does
not train the encoder (its beliefs are inputs, detached): only the ELBO does.

networks.py: encoder, decoders, policy and value (`VariBADNets`, whose `step` the exported
step graph runs);
losses.py: the ELBO terms and the VAE step; trainer.py: trials, PPO and VAE updates;
export.py: the `recurrent` artifact (step.onnx: hidden = the encoder's GRU state, the step
runs encoder + policy).
"""
