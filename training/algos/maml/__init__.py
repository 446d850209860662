"""MAML for RL: Finn, Abbeel, Levine (2017), "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks", ICML, arXiv 1703.03400 (section 3.3, reinforcement learning),
with the outer loop of ProMP: Rothfuss, Lee, Clavera, Asfour, Abbeel (2019), "ProMP:
Proximal Meta-Policy Search", ICLR, arXiv 1810.06784.

A Gaussian MLP policy pi_theta(a | s) = N(mu_theta(s), diag(sigma_theta^2)) (state-
independent learned std; the action is the unsquashed sample, the env clips it, as in the
paper). For a task, K episodes with theta give the inner step

    theta' = theta - alpha * grad_theta L_in(theta),   L_in = -mean_t log pi_theta(a_t|s_t) A_t

(REINFORCE with the linear feature baseline of Duan et al. 2016; `inner_estimator: lvc`:
ProMP's low-variance curvature surrogate instead, the same step), K episodes with theta'
give the post-update batch, and the meta-update climbs ProMP's clipped surrogate of theta'(theta)
over a meta-batch of tasks, `outer_steps` Adam steps per batch. The meta-gradient flows
through the inner step: second order with `torch.func` (functional_call + grad, nested),
first order (`first_order: true`) with the inner gradient held constant. ProMP's KL penalty
on the pre-update policies is not used (the clip alone bounds the step); the pre-update
sampling distribution's own score term (DiCE / ProMP's full estimator) is left out with
`inner_estimator: reinforce`, and its curvature is what `lvc` adds.

networks.py: the policy (functional: parameters as a dict, `torch.func.functional_call`);
losses.py: returns, the baseline, the inner step, the outer surrogate, the meta-gradient;
trainer.py: sampling, meta-updates, the adaptation curve; export.py: the `weights`
artifact (policy.onnx: obs, noise -> action); adapt.py: `zshot adapt`, the robot-side
adaptation (episodes through the runtime and the bridge, the gradient step here, RELOAD).
"""
