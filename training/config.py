"""Training configuration; defaults live here, `configs/train/*.yaml` override.

The defaults are sized for the 2-core CPU machine this project is developed on (see
bench/train_update.py and BENCHMARKS.md): PEARL's own meta-batch 16 x batch 256 with
300-wide networks costs ~120 ms per update here, so the default update is a meta-batch of 8
tasks x 128 transitions on 128-wide networks.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from zshot.config import ProfileName, StrictModel

AlgoName = Literal[
    "pearl",
    "offline_pearl",
    "distill",
    "rdistill",
    "mtsac",
    "mtppo",
    "distral",
    "dnc",
    "her",
    "crl",
    "maml",
    "rl2",
    "varibad",
]
"""The algorithms of training/registry.py (a test checks the two lists agree)."""


class SACConfig(StrictModel):
    """Soft actor-critic underneath PEARL (Haarnoja et al. 2018, twin-Q variant)."""

    hidden: list[int] = Field(default_factory=lambda: [128, 128])
    """Hidden widths of the policy and of each Q network."""
    policy_lr: float = Field(3e-4, gt=0)
    qf_lr: float = Field(3e-4, gt=0)
    """Learning rate of the Q networks and of the context encoder (they share one loss)."""
    alpha_lr: float = Field(3e-4, gt=0)
    gamma: float = Field(0.99, ge=0, lt=1)
    """Discount."""
    tau: float = Field(0.005, gt=0, le=1)
    """Polyak factor for the target Q networks."""
    reward_scale: float = Field(5.0, gt=0)
    """PEARL's reward scale: rewards are multiplied by it in the Bellman target only."""
    alpha: float = Field(1.0, gt=0)
    """Entropy temperature when `auto_entropy` is off (PEARL fixes it to 1 with reward_scale)."""
    auto_entropy: bool = False
    """Tune alpha towards `target_entropy` (SAC v2). Off by default as in PEARL."""
    target_entropy: float | None = None
    """None: -act_dim (SAC's heuristic)."""


GOAL_ENVS = ("point_reach", "insertion_goal", "fetch_reach", "fetch_push")
"""The goal-reaching envs (training/common/goals.py): a goal per episode, a sparse reward."""
GOAL_ALGOS = ("her", "crl")
"""The algorithms that train on them (and only on them)."""


class GoalConfig(StrictModel):
    """Goal reaching (algos her, crl; envs GOAL_ENVS): r = δ(|achieved - desired| <= ε)
    (zshot/goal.py), the same for the env and for relabelling."""

    epsilon: float | None = Field(None, gt=0)
    """ε in the goal's units; None: the env's own (`distance_threshold`: Fetch 0.05 m,
    the point 0.15 m, insertion 1.0 mm/deg)."""
    inserted_fraction: float = Field(0.5, ge=0, le=1)
    """insertion_goal: share of episodes whose goal is the inserted pose (the rest hover)."""


class HERConfig(StrictModel):
    """Hindsight experience replay (Andrychowicz et al. 2017) over SAC."""

    strategy: Literal["future"] = "future"
    """Which achieved goals replace a transition's goal: `future`, one of a later state of
    the same episode (the paper's best)."""
    relabel_k: int = Field(4, ge=0, le=64)
    """k relabelled goals per real one: round(B k / (k + 1)) of each batch (the paper's
    k = 4: 80 %). 0: no relabelling, plain SAC on the same sparse reward (the baseline)."""


class CRLConfig(StrictModel):
    """Contrastive RL (Eysenbach et al. 2022): the critic phi(s, a) . psi(g), trained by
    InfoNCE to tell each (s, a)'s own future goal from the batch's others."""

    repr_dim: int = Field(64, ge=1, le=1024)
    """Size of the representations phi(s, a) and psi(g)."""
    critic_lr: float = Field(3e-4, gt=0)
    policy_lr: float = Field(3e-4, gt=0)
    alpha: float = Field(0.01, ge=0)
    """Entropy weight of the actor's loss (fixed)."""
    logsumexp_penalty: float = Field(0.0, ge=0)
    """Weight of mean(logsumexp(logits)^2) in the critic's loss (the official code's
    regulariser that keeps the logits from drifting; 0: off)."""


class MTSACConfig(StrictModel):
    """How multi-task SAC (training/algos/mtsac) is told its task, and its output heads."""

    task_input: Literal["onehot", "embedding", "descriptor"] = "onehot"
    """onehot: the train task's one-hot id (Yu et al. 2019); embedding: a learned Gaussian
    embedding per task id, z ~ N(mu_t, sigma_t) into the policy (Hausman et al. 2018; the
    critic keeps the one-hot); descriptor: a fixed-size vector computed from what a user
    has (insertion: the plug spec, zshot/plug_descriptor.py; point: the goal), so a new
    task gets a policy zero-shot."""
    heads: Literal["shared", "per_task"] = "shared"
    """per_task: one policy output head and one Q head per task on a shared trunk
    (Yu et al. 2019's MT-MH-SAC); needs task_input onehot."""
    embedding_dim: int = Field(4, ge=1, le=64)
    """task_input embedding: size of z."""
    embedding_entropy: float = Field(0.01, ge=0)
    """task_input embedding: weight of the embedding's entropy H[p(z|t)] (the paper's
    alpha_1) in the policy's loss (maximised)."""


class DistralConfig(StrictModel):
    """Distral (training/algos/distral): per-task policies with a KL to a distilled shared
    policy (Teh et al. 2017)."""

    c_kl: float = Field(0.5, ge=0)
    """Weight of log(pi_i / pi_0) in the regularised return (the paper's c_KL = alpha / beta)."""
    c_ent: float = Field(0.05, ge=0)
    """Weight of the entropy of pi_i (the paper's c_Ent = (1 - alpha) / beta)."""
    distill_lr: float = Field(1e-3, gt=0)
    """Learning rate of the shared policy pi_0's distillation."""
    task_hidden: list[int] = Field(default_factory=lambda: [64, 64])
    """Hidden widths of each per-task policy pi_i (the shared policy uses sac.hidden)."""


class DnCConfig(StrictModel):
    """Divide-and-Conquer (training/algos/dnc): local policies, one per context, with a
    pairwise KL between them, and a central policy distilled from them (Ghosh et al. 2018)."""

    contexts: int | None = Field(None, ge=1)
    """How many contexts the train tasks are divided into. None: one context per train
    task (each local policy sees only the state). K: contiguous blocks of the train-task
    order, task i in context floor(i * K / num_train_tasks); the local policies are then
    told the task's one-hot id (a context of several tasks cannot tell them apart
    otherwise). Must be <= num_train_tasks."""
    c_kl: float = Field(0.1, ge=0)
    """Weight of the pairwise KL: a context's states carry the mean over the other local
    policies j of KL(pi_c || pi_j) (the paper's alpha, averaged rather than summed)."""
    c_ent: float = Field(0.05, ge=0)
    """The local policies' (fixed) soft actor-critic entropy temperature."""
    distill_every: int = Field(5, ge=1)
    """Distil the central policy every this many iterations (the paper's R), and before
    an evaluation when the local policies moved since the last distillation."""
    distill_steps: int = Field(100, ge=1)
    """Supervised gradient steps per distillation (each on meta_batch x batch_size states)."""
    distill_lr: float = Field(1e-3, gt=0)
    """Learning rate of the central policy's distillation."""
    local_hidden: list[int] = Field(default_factory=lambda: [64, 64])
    """Hidden widths of each local policy (the central policy uses sac.hidden)."""


class EncoderConfig(StrictModel):
    """The context encoder q(z | c) of PEARL."""

    latent_dim: int = Field(5, ge=1, le=64)
    hidden: list[int] = Field(default_factory=lambda: [128, 128])
    kl_lambda: float = Field(0.1, ge=0)
    """Weight of KL(q(z|c) || N(0, I)) in the encoder's loss (PEARL eq. 4, beta)."""
    prior_in_posterior: bool = True
    """Multiply the N(0, I) prior into the product of factors. True makes the empty context
    exactly the prior and matches a runtime that accumulates natural parameters from the
    prior; False is the paper's product over transitions only."""


class TeacherConfig(StrictModel):
    """The privileged servo's tuning for distillation (fields of sim.teleop.TeleopParams;
    None keeps the demonstrator's own default, the one `zshot collect`'s teleop uses)."""

    approach_speed: float | None = Field(None, gt=0)
    """mm/s descent while no contact force is felt (the arm's limit is 20 mm/s)."""
    aligned_xy: float | None = Field(None, gt=0)
    """mm; lateral error below which the plug is lowered."""
    aligned_yaw: float | None = Field(None, gt=0)
    """rad; yaw error below which the plug is lowered."""
    insert_force: float | None = Field(None, gt=0)
    """N pressed down once in contact."""

    def params(self) -> dict[str, float]:
        """The fields set, as TeleopParams keyword arguments."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class DistillConfig(StrictModel):
    """Privileged-teacher distillation (training/algos/distill/trainer.py, issue #17): DAgger rounds
    against the sim's servo told the true socket pose, plus an encoder trained to estimate it."""

    rounds: int = Field(10, ge=1)
    """DAgger rounds; round 0 is the teacher alone (behaviour cloning)."""
    episodes_per_round: int = Field(100, ge=1)
    explore_episodes_per_round: int = Field(100, ge=0)
    """Episodes per round (from round 1) of the student with z ~ N(0, I), for the encoder."""
    explore_group: int = Field(3, ge=1)
    """Exploration episodes per task in a row (K of the few-shot protocol): one context."""
    beta_decay: float = Field(0.5, ge=0, le=1)
    """Round r rolls out the teacher with probability beta_decay**r per episode."""
    policy_updates: int = Field(1000, ge=0)
    """bc_loss steps per round."""
    encoder_updates: int = Field(300, ge=0)
    """nll_loss steps per round."""
    batch_size: int = Field(256, ge=1)
    encoder_episodes: int = Field(32, ge=1)
    """Episodes per encoder step."""
    success_fraction: float = Field(0.5, ge=0, le=1)
    """Fraction of encoder episodes drawn from the successful ones."""
    lr: float = Field(1e-3, gt=0)
    z_noise: float = Field(0.05, ge=0)
    """Std of the noise on the privileged z the student is conditioned on (z units)."""
    grad_clip: float = Field(1.0, gt=0)
    """Gradient-norm clip of each encoder step."""
    policy_std: float = Field(0.1, gt=0)
    """The exported policy's exploration std (pre-tanh) that bc_loss pulls log-std towards."""
    teacher: TeacherConfig = Field(default_factory=lambda: TeacherConfig.model_validate({}))
    """The servo's tuning (empty: sim.teleop's defaults, 15 mm/s descent)."""


_RDISTILL_PROFILES: tuple[ProfileName, ...] = ("hard", "oda", "known")


class RDistillConfig(StrictModel):
    """A recurrent student distilled by DAgger from a search teacher that sees only what a
    robot measures (training/algos/rdistill/, issue #17): the GRU policy of RL² (`rl2:`
    gru_hidden, `ppo:` hidden and init_log_std) imitating `sim.spiral.MemorySpiralPolicy`
    over whole trials of a task's episodes."""

    rounds: int = Field(6, ge=0)
    """DAgger rounds; round 0 is the teacher alone (behaviour cloning). 0 only with
    `init_from` (then the RL phase alone; the trainer refuses it without)."""
    trials_per_round: int = Field(60, ge=1)
    """Trials collected per round, each on a random train task (and profile)."""
    episodes_per_trial: int = Field(8, ge=1, le=50)
    """Episodes of one task in a row, the student's hidden state and the teacher's memory
    kept across them (the few-shot protocol runs K + N: 3 + 10)."""
    beta_decay: float = Field(0.5, ge=0, le=1)
    """Round r lets the teacher drive a trial with probability beta_decay**r."""
    action_noise: float = Field(0.1, ge=0, le=1)
    """Std of Gaussian noise on the teacher's executed action when it drives (DART, Laskey
    et al. 2017: the labels then cover the states next to its path); its label stays clean."""
    student_steps: float = Field(1.0, gt=0, le=1)
    """In a trial the student drives, the probability that a step executes the student's
    action; the other steps execute the teacher's label plus `action_noise` (DAgger's
    mixture policy per step, Ross et al. 2011). 1: the student alone."""
    updates_per_round: int = Field(300, ge=0)
    """bc_loss steps per round over the aggregated trials."""
    probe_trials: int = Field(0, ge=0)
    """Trials per round driven by the student after its fit, on random train tasks (the
    profiles in turn), measured for the history and never aggregated: the student's
    progress when beta stays 1 (pure behaviour cloning)."""
    batch_trials: int = Field(8, ge=1)
    """Trials per bc_loss step (whole trials, backpropagated through time)."""
    lr: float = Field(1e-3, gt=0)
    grad_clip: float = Field(1.0, gt=0)
    policy_std: float = Field(0.05, gt=0)
    """The exported policy's std (pre-tanh) that bc_loss pulls log-std towards."""
    memory_coef: float = Field(0.0, ge=0)
    """Weight of the auxiliary loss that trains the GRU's hidden state to predict the
    teacher's memory and search progress (MemorySpiralPolicy.state_features) through a
    linear head used in training only; 0: behaviour cloning alone."""
    ignore_last_action: bool = False
    """Hold the GRU's input weights on a_{t-1} at zero (at init and through every step), so
    the student, and its exported graph, cannot copy its previous action (the "copycat"
    failure of behaviour cloning from histories, Wen et al. 2020); the runtime still sends
    a_{t-1}."""
    memory_search: bool = False
    """The memory head also predicts the search's current point (state_features past its
    MEMORY_DIM); False: only the memory (its first MEMORY_DIM)."""
    profiles: list[ProfileName] = Field(default_factory=lambda: list(_RDISTILL_PROFILES))
    """Benchmark profiles the training trials are drawn from, in turn (the student has to
    search in `hard`, distrust its memory in `oda` and go straight in in `known`)."""
    teacher: dict[str, float | bool] = Field(default_factory=dict)
    """Fields of sim.spiral.MemorySpiralParams (empty: `zshot eval spiral-memory`'s)."""
    init_from: str | None = None
    """A run dir of algo rdistill whose checkpoint starts the networks (the policy, the value
    function and the observation normalisation; `rl2.gru_hidden`, `rl2.success_memory` and
    `ppo.hidden` must match it); the rounds, if any, then continue its cloning on fresh
    trials."""
    rl_iterations: int = Field(0, ge=0)
    """RL fine-tuning after the rounds: PPO iterations (RL²'s, the `ppo:` section) of the
    student on its own trials with the robot-computable reward, the closed loop that
    cloning never trains on. 0: none (behaviour cloning alone)."""
    rl_trials: int = Field(12, ge=1)
    """Trials per PPO iteration, the student driving with its Gaussian's noise, on random
    train tasks, the profiles in turn."""
    rl_value_warmup: int = Field(4, ge=0)
    """The first PPO iterations step only the value function (the cloned student's critic
    starts untrained; its advantages would be noise)."""
    rl_value_lr: float = Field(1e-3, gt=0)
    """Adam's learning rate of the value function in the RL phase (the policy's: ppo.lr)."""
    rl_reward_scale: float = Field(0.1, gt=0)
    """Factor on the rewards in PPO's returns (the student's r_{t-1} input stays the reward
    as a robot computes it)."""
    rl_bptt: int | None = Field(200, ge=1)
    """Truncated BPTT chunk length of the PPO update (None: whole trials)."""
    rl_std: float | None = Field(None, gt=0, le=1)
    """The policy's std (pre-tanh) when the RL phase starts (None: the cloned one,
    `policy_std`'s pull)."""
    rl_bc_updates: int = Field(0, ge=0)
    """bc_loss steps on the aggregated teacher trials after each PPO update, at ppo.lr (an
    anchor to the teacher, as DAPG's demonstration term; 0: PPO alone)."""
    rl_select_every: int = Field(0, ge=0)
    """Score the student every this many PPO iterations (and before the first, and after
    the last) on fixed validation trials, and end the run with the best-scoring networks
    (early stopping by validation; the PPO trajectory is the same with it or without). 0:
    off, the run ends with its last iteration's networks."""
    rl_select_trials: int = Field(8, ge=1)
    """Validation trials per profile: the student's mean action (as `zshot eval` acts), on
    train tasks drawn once from the seed, the same tasks and reset seeds at every score.
    The score is the episode success rate averaged over the profiles."""

    @model_validator(mode="after")
    def _profiles_once(self) -> RDistillConfig:
        seen = [p for i, p in enumerate(self.profiles) if p in self.profiles[:i]]
        if seen:
            raise ValueError(
                f"rdistill.profiles: {sorted(set(seen))} listed more than once (each profile "
                "is one env; the trials already take the profiles in turn)"
            )
        return self


class VariBADConfig(StrictModel):
    """VariBAD (Zintgraf et al. 2020; training/algos/varibad/): a GRU trajectory encoder
    giving a belief q(m | tau_:t) = N(mean, var) after every transition, reward (and
    optionally transition) decoders trained with it as a VAE, and a policy on (s, belief
    mean, belief variance) trained by PPO (the `ppo` section: its hidden widths and initial
    log-std are the policy's and the value function's)."""

    latent_dim: int = Field(5, ge=1, le=64)
    """Size of the task latent m."""
    embed: list[int] = Field(default_factory=lambda: [32])
    """Widths of the MLP (ReLU) in front of the GRU, over (s, a_prev, r_prev, done_prev)."""
    gru_hidden: int = Field(64, ge=1, le=1024)
    """The GRU's state size: the `recurrent` artifact's hidden_dim."""
    decoder_hidden: list[int] = Field(default_factory=lambda: [64, 32])
    """Hidden widths of the reward decoder (and of the transition decoder)."""
    decode_state: bool = False
    """Also train a transition decoder p(s' | s, a, m) (the paper's optional one)."""
    kl_weight: float = Field(1.0, ge=0)
    """Weight of each KL(q_t || q_{t-1}) term of the ELBO."""
    reward_coef: float = Field(1.0, ge=0)
    state_coef: float = Field(1.0, ge=0)
    """Weights of the reward and (decode_state) transition reconstruction terms."""
    vae_lr: float = Field(1e-3, gt=0)
    vae_updates: int = Field(10, ge=0)
    """VAE gradient steps per iteration (after the PPO update)."""
    vae_batch: int = Field(16, ge=1)
    """Trials per VAE step, drawn from the VAE buffer."""
    vae_buffer: int = Field(200, ge=1)
    """Most recent trials kept for the VAE (the paper trains the VAE off-policy on them)."""
    subsample_beliefs: int | None = Field(None, ge=1)
    """ELBO terms (beliefs b_t) per trial and VAE step, drawn at random (None: all)."""
    subsample_decodes: int | None = Field(None, ge=1)
    """Transitions each belief reconstructs, drawn at random (None: the whole trial)."""
    episodes_per_trial: int = Field(2, ge=1, le=50)
    """Episodes of one task in a row with the belief carried across them (the BAMDP
    horizon H+ of the paper); PPO's returns run over the whole trial."""
    trials_per_iteration: int = Field(8, ge=1)
    """Trials collected per iteration (each on a random train task) for PPO."""
    rl_through_encoder: bool = False
    """Let PPO's loss train the encoder too (the beliefs recomputed with gradient over each
    minibatch's trials). False, the paper's default: the policy is trained on the beliefs
    recorded at collection, as data; only the ELBO trains the encoder."""
    policy_reward_scale: float = Field(1.0, gt=0)
    """Rewards are multiplied by this in PPO's returns only (the VAE and the encoder's input
    see them times `vae_reward_scale`): keeps the value targets near unit scale."""
    vae_reward_scale: float = Field(1.0, gt=0)
    """Rewards are multiplied by this where the VAE sees them: the encoder's r_{t-1} input
    (inside the networks, so the exported step graph still takes the reward as the env and
    the runtime give it) and the reward decoder's target. Insertion: a force violation's
    step earns -410 beside per-step costs of 0-4 (zshot/reward.py), which otherwise
    dominates the reconstruction loss and the GRU's input."""


class PPOConfig(StrictModel):
    """Proximal policy optimisation (training/common/ppo.py; Schulman et al. 2017) with GAE
    (Schulman et al. 2016): the on-policy learner of algo rl2 and mtppo."""

    hidden: list[int] = Field(default_factory=lambda: [64, 64])
    """Hidden widths of the policy and value MLPs (rl2: the layers after the GRU)."""
    lr: float = Field(3e-4, gt=0)
    """Adam's learning rate (one optimizer over the policy and the value network)."""
    gamma: float = Field(0.99, ge=0, le=1)
    """Discount."""
    gae_lambda: float = Field(0.95, ge=0, le=1)
    """GAE's lambda: 0 one-step TD advantages, 1 Monte Carlo returns minus the value."""
    clip: float = Field(0.2, gt=0)
    """The surrogate's clip range epsilon: ratios outside [1 - eps, 1 + eps] get no gradient."""
    value_coef: float = Field(0.5, ge=0)
    """Weight of the value loss 0.5 (V - R)^2 in the one loss."""
    entropy_coef: float = Field(0.0, ge=0)
    """Weight of the entropy bonus (subtracted from the loss)."""
    epochs: int = Field(4, ge=1)
    """Passes over the batch per update."""
    minibatches: int = Field(4, ge=1)
    """Minibatches of sequences per pass (at most one sequence each)."""
    max_grad_norm: float | None = Field(0.5, gt=0)
    """Clip the gradient's global norm to this (None: no clipping)."""
    normalise_advantages: bool = True
    """Standardise the advantages over the batch's real steps before the epochs."""
    init_log_std: float = Field(0.0, le=2)
    """Initial log standard deviation of the Gaussian policy (state-independent)."""


class RL2Config(StrictModel):
    """RL² (training/algos/rl2/; Duan et al. 2016, Wang et al. 2016): a GRU policy whose
    hidden state runs through a trial of episodes on one task, trained by PPO (`ppo:`)."""

    gru_hidden: int = Field(64, ge=1, le=4096)
    """Size H of the GRU's hidden state (the exported artifact's `hidden_dim`)."""
    episodes_per_trial: int = Field(2, ge=1, le=50)
    """Episodes of one task per trial: the hidden state is kept across them."""
    trials_per_iteration: int = Field(16, ge=1)
    """Trials collected per iteration (each on a random train task), then one PPO update."""
    bptt: int | None = Field(None, ge=1)
    """Truncated backpropagation through time: train on chunks of this many steps, each
    starting from the hidden state the rollout had there (None: whole trials)."""
    stats_trials: int = Field(4, ge=1)
    """Trials of the untrained policy before training, for the observation statistics."""
    success_memory: bool = False
    """Carry a SuccessMemory in each network's recurrent state (training/algos/rl2/
    networks.py): where the task's last successful episode ended (the robot's measured
    x, y, yaw), recalled exactly, computed inside the step graph from the inputs the runtime
    already sends (the artifact's hidden_dim grows by 7). Env insertion only."""
    commanded_pose: bool = False
    """With success_memory: the state also integrates the commanded pose (the setpoint as
    the scripted controllers keep it: the measured pose at each episode's start, plus each
    executed action x max speed x control period), and the features give the offset from
    it to the memory and to the measured pose (hidden_dim grows by 5 more)."""

    @model_validator(mode="after")
    def _command_needs_memory(self) -> RL2Config:
        if self.commanded_pose and not self.success_memory:
            raise ValueError("rl2.commanded_pose needs rl2.success_memory")
        return self


class EvalConfig(StrictModel):
    """Few-shot evaluation protocol."""

    explore_episodes: int = Field(2, ge=0, le=50)
    """K: exploration episodes with posterior sampling, accumulating context."""
    eval_episodes: int = Field(1, ge=1)
    """N: evaluation episodes per test task with the posterior mean."""
    mode: Literal["episodic", "online"] = "episodic"
    """episodic: z resampled per episode from the posterior (paper); online: posterior
    updated after every step from the first episode on, z = posterior mean."""
    tasks_per_label: int | None = Field(None, ge=1)
    """Evaluate at most this many test tasks of each label (plug, terrain setting, ...;
    None: all). `tasks_per_plug`, its name before, is read as an alias."""
    max_tasks: int | None = Field(None, ge=1)
    """Then at most this many test tasks in all (None: all)."""

    @model_validator(mode="before")
    @classmethod
    def _old_key(cls, data: Any) -> Any:
        """`tasks_per_plug` (older configs and checkpoints) -> `tasks_per_label`. Given
        beside the new key it wins: a stored config dumps only the new key, so
        `--set eval.tasks_per_plug=N` on a run's config must override it."""
        if isinstance(data, dict) and "tasks_per_plug" in data:
            data = dict(data)
            data["tasks_per_label"] = data.pop("tasks_per_plug")
        return data


class TaskFeature(StrictModel):
    """One belief feature: `scale * estimate(target) - obs[obs]` (OfflineConfig.task_features)."""

    obs: str
    """An observation name of the env (insertion: sim.insertion.OBS_INDEX, e.g. x_mm)."""
    scale: float = 1.0
    """Multiplies the target's unit into the observation's (m -> mm: 1000; rad -> deg)."""
    fine: float = Field(1.0, gt=0)
    """Width of the fine feature tanh(e / fine), in the observation's unit: errors well
    below it are resolved, errors above it saturate."""


class OfflineConfig(StrictModel):
    """Offline PEARL, the ODA recipe (Zhao et al. 2022): PEARL's encoder trained through an
    offline critic, with an advantage-weighted actor (AWAC, Nair et al. 2020), from a fixed
    multi-task dataset (`zshot collect`). Set `dataset` to train offline with `zshot train`."""

    dataset: str | None = None
    """A dataset directory written by `zshot collect` (or recordings with task metadata)."""
    updates: int = Field(5000, ge=1)
    """Gradient steps (offline: no env interaction during training)."""
    critic: Literal["awac", "iql"] = "awac"
    """How the advantage of a dataset action is measured. awac (AWAC, Nair et al. 2020):
    Q^pi by Bellman backups through a' ~ pi, A = Q(s, a) - E_pi Q(s, a'). iql (Implicit
    Q-Learning, Kostrikov et al. 2021, arXiv 2110.06169): a value network V(s, z) fitted
    by expectile regression onto the dataset actions' Q (`expectile`), Q backed up through
    V(s'), A = Q(s, a) - V(s): no action the data never took is ever evaluated. The actor
    is the same advantage-weighted likelihood either way (IQL's beta = 1 / awac_lambda)."""
    expectile: float = Field(0.7, gt=0.5, lt=1.0)
    """iql: the expectile tau of Q(s, a) over the dataset's actions that V(s) fits (0.5 = their
    mean, towards 1 = their best); IQL's 0.7 for locomotion, 0.9 for AntMaze."""
    awac_lambda: float = Field(1.0, gt=0)
    """AWAC temperature: policy weight exp(A / lambda) on each dataset action."""
    max_weight: float = Field(20.0, gt=0)
    """Clip on exp(A / lambda) (as in CRR/IQL) so a few large advantages cannot dominate."""
    value_samples: int = Field(4, ge=1)
    """Actions sampled from pi to estimate V(s, z) = E_pi Q(s, a, z) in the advantage."""
    context_sampling: Literal["mixed", "per_behaviour"] = "per_behaviour"
    """mixed: each task's context drawn from all its transitions (every behaviour at once);
    per_behaviour: each context drawn from one behaviour's transitions, chosen at random per
    task and step, so the encoder learns to identify the task from any single policy's data.
    The context-shift remedy (see training/algos/offline_pearl/losses.py and docs)."""
    task_targets: list[str] = Field(default_factory=list)
    """Hidden task parameters (keys of each dataset task's metadata, e.g. [dx, dy, dyaw]) that
    the encoder's posterior mean must also predict, through a linear head, in the encoder's
    loss: supervised task inference with privileged training-time information (Humplik et
    al. 2019, arXiv 1905.06424), a second context-shift remedy (training/algos/offline_pearl/losses.py). Targets
    are standardised over the dataset's tasks. Empty: off (the encoder learns from Q and
    KL alone, as in PEARL)."""
    task_loss_weight: float = Field(1.0, ge=0)
    """Weight of the task-inference loss (mean squared error of the standardised targets)."""
    task_features: dict[str, TaskFeature] = Field(default_factory=dict)
    """Belief features for the policy and the critics (training/common/networks.py `TaskDecoder`):
    per task target (a key of `task_targets`), the observation it is compared with and the
    unit scale, e.g. `dx: {obs: x_mm, scale: 1000}` (dx in m, x_mm in mm). The networks then
    also see `scale * estimate - obs`, the estimate decoded from z by the task-inference
    head: "where the socket is, relative to the plug", the quantity a demonstrator servoes
    on, the same function on every task. Insertion only. Empty: off."""
    eval_every: int = Field(0, ge=0)
    """Few-shot evaluation every this many updates (0: only at the end)."""
    log_every: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _check(self) -> OfflineConfig:
        missing = sorted(set(self.task_features) - set(self.task_targets))
        if missing:
            raise ValueError(
                f"offline.task_features {missing} are not in offline.task_targets "
                f"{self.task_targets}: a feature is decoded by the task-inference head"
            )
        return self


class FinetuneConfig(StrictModel):
    """Adaptation of an offline PEARL run to a new task (training/algos/offline_pearl/finetune.py)."""

    context_source: Literal["scripted", "teleop", "own"] = "scripted"
    """Where the adaptation context comes from: K episodes of the noisy scripted expert
    (the spiral search, which does not know where the socket is), K demonstrations of the
    teleop demonstrator told the task (sim/teleop.py; the ODA protocol: a person
    demonstrating the new task), or K episodes of the learned policy's own
    posterior-sampling exploration (PEARL's protocol)."""
    context_episodes: int = Field(2, ge=0, le=50)
    """K: episodes of context before the first evaluation or fine-tuning episode."""
    scripted_noise: float = Field(0.3, ge=0, le=2)
    """Action noise of the scripted demonstrations (as in `zshot collect`)."""
    teleop_noise: float = Field(0.1, ge=0, le=2)
    """Action noise of the teleop demonstrations (as in `zshot collect`)."""
    max_episodes: int = Field(20, ge=1)
    """Online budget: fine-tuning episodes on the new task (context episodes not included)."""
    streak: int = Field(5, ge=1)
    """Stop once this many consecutive fine-tuning episodes succeed."""
    far_window: int = Field(2, ge=1)
    """Contextual adaptation only for this many episodes; gradient fine-tuning starts when
    their success rate is below `far_threshold` (the task is far from the data)."""
    far_threshold: float = Field(1.0, ge=0, le=1)
    online_context: Literal["all", "successes", "none"] = "all"
    """Which of the online episodes join the posterior's context (the K context episodes
    always do): all (PEARL), only those that inserted (an insertion shows where the socket
    is; a failed search may mislead the belief), or none (the context episodes alone)."""
    sample_actions: bool = False
    """Act with actions sampled from pi (its Gaussian; the runtime's stochastic STEP) instead
    of its mean action, in evaluation episodes and in the online episodes before the gradient
    phase (which always samples). Noise lets a plug stuck on the socket face jiggle free
    (BENCHMARKS.md `## offline` r7)."""
    updates_per_episode: int = Field(100, ge=0)
    """Gradient steps (offline PEARL's losses) after each episode of the gradient phase."""
    offline_tasks_per_batch: int = Field(3, ge=0)
    """Offline data kept in the fine-tuning batches (the ODA recipe, as AWAC's offline-to-online
    fine-tuning keeps its offline data in the replay buffer): each gradient step's meta-batch is
    the new task (its online buffer) plus this many distinct tasks drawn from the run's
    offline dataset (`offline.dataset`), each with `batch_size` transitions and
    `context_size` context, so the new task weighs 1 / (1 + this) of the losses. 0: the new
    task's own data only (T = 1; the earlier behaviour, which made the policy worse in
    BENCHMARKS.md `## offline`). Must not exceed the dataset's task count; the dataset must
    load when > 0 and `updates_per_episode` > 0 (else set it to 0)."""
    batch_size: int = Field(128, ge=1)
    """RL transitions per task (online and offline alike) per fine-tuning gradient step."""
    final_episodes: int = Field(100, ge=0)
    """Evaluation episodes of the fine-tuned policy after fine-tuning (posterior mean)."""


class MAMLConfig(StrictModel):
    """MAML for RL (training/algos/maml/, Finn et al. 2017): a Gaussian MLP policy adapted
    by `inner_steps` policy-gradient steps on K episodes of a task, meta-trained with
    ProMP's clipped surrogate (Rothfuss et al. 2019) through the inner steps."""

    hidden: list[int] = Field(default_factory=lambda: [64, 64])
    """Hidden widths of the policy's mean network (the paper: two layers of 100, ReLU)."""
    init_std: float = Field(1.0, gt=0)
    """Initial action std (state-independent, learned: the paper's Gaussian policy)."""
    episodes_per_task: int = Field(10, ge=1)
    """K: episodes per task for each inner step and for the post-update batch (the
    paper's "fast batch size" counted in episodes; 20 on half-cheetah)."""
    inner_lr: float = Field(0.1, gt=0)
    """alpha: the inner policy-gradient step size (the paper: 0.1 on locomotion)."""
    inner_steps: int = Field(1, ge=1, le=5)
    """Inner policy-gradient steps in meta-training (each on fresh episodes of the
    policy adapted so far, as in the paper); `zshot adapt --steps` may take more."""
    inner_estimator: Literal["reinforce", "lvc"] = "reinforce"
    """The inner loss: reinforce, -mean(log pi(a|s) A) (Finn et al.); lvc, ProMP's
    low-variance curvature surrogate -mean(pi/stop_grad(pi) A): the same inner step (its
    gradient at theta is REINFORCE's), another second-order term."""
    first_order: bool = False
    """First-order MAML: the inner gradient is a constant of the meta-gradient (the
    Hessian term through the inner step is dropped)."""
    outer_lr: float = Field(1e-3, gt=0)
    """Adam step size of the meta-update."""
    outer_steps: int = Field(5, ge=1)
    """ProMP's gradient steps on one meta-batch (the clipped surrogate, recomputing the
    inner steps from the fixed pre-update episodes each time)."""
    clip_eps: float = Field(0.3, gt=0, lt=1)
    """ProMP's clip on the post-update likelihood ratio (its paper: 0.3)."""
    gamma: float = Field(0.99, ge=0, le=1)
    """Discount of the returns the advantages are measured from."""
    normalize_advantages: bool = True
    """Standardise each task batch's advantages (mean 0, std 1), inner and outer alike."""
    baseline_reg: float = Field(1e-5, gt=0)
    """Ridge coefficient of the linear feature baseline (Duan et al. 2016)."""
    eval_tasks: int = Field(5, ge=1)
    """Test tasks of the adaptation curve measured at the end (and every `eval_every`)."""
    eval_steps: int = Field(3, ge=0, le=10)
    """The adaptation curve: the return after 0, 1, .., this many inner steps."""


class TrainConfig(StrictModel):
    """A training run of one algorithm (`algo`): PEARL meta-training (or the SAC-without-context
    baseline when latent is off), or offline PEARL from a dataset."""

    algo: AlgoName | None = None
    """The algorithm (`zshot algos` lists them, training/registry.py). None: `distill` when
    the config has a `distill` section, `offline_pearl` when `offline.dataset` is set, else
    `pearl` (how configs chose before this key)."""
    seed: int = 0
    env: Literal[
        "insertion",
        "point",
        "terrain",
        "point_reach",
        "insertion_goal",
        "fetch_reach",
        "fetch_push",
        "metaworld_mt10",
    ] = "insertion"
    """insertion: sim.insertion.InsertionEnv over sim.tasks.TaskFamily; point: the 2-D toy
    meta-RL task of training.common.toy_env (hidden goal), for CI and sanity checks; terrain:
    sim.terrain.TerrainEnv over sim.terrain_tasks.TerrainTaskFamily (`terrain_config`).
    Goal reaching (algos her, crl; `goal`): point_reach (the point told its goal),
    insertion_goal (sim.insertion_goal: a plug pose, inserted included, over the insertion
    train tasks), fetch_reach / fetch_push (gymnasium-robotics' FetchReach-v4 / FetchPush-v4,
    `pip install 'zshot[robotics]'`). metaworld_mt10: Meta-World's MT10, its 10 tasks as
    train tasks with their one-hot ids for algos mtsac (task_input onehot or embedding),
    mtppo and distral (`pip install 'zshot[metaworld]'`; configs/train/mt10_*.yaml)."""
    terrain_config: str | None = None
    """terrain only: YAML of sim.terrain_config.TerrainEnvConfig (a configs/terrain/ file,
    relative to the cwd or the repository root); `sim_overrides` apply on top of it."""
    sim_config: str | None = None
    """YAML overriding sim.config.InsertionEnvConfig (insertion only; a configs/sim/ file)."""
    sim_overrides: dict[str, Any] = Field(default_factory=dict)
    """Keys of sim.config.InsertionEnvConfig set on top of `sim_config`, e.g.
    {tasks: {n_train_per_plug: 4}} (validated by the sim's model when the run starts)."""
    profile: ProfileName | None = None
    """Insertion benchmark profile (sim.config.PROFILES): known (no socket error), oda (a fresh
    unobserved ±1 mm every episode), hard (±2 mm / ±3° per task). It wins over the socket-error
    keys of `sim_config` / `sim_overrides`; None: those keys as given (defaults: hard)."""
    train_plugs: list[str] = Field(default_factory=lambda: ["family"])
    """Plugs to meta-train on (insertion only): "family" = the procedural specs in
    training/plugs/; other entries are shipped plug names or spec paths. The held-out
    plugs (sim default: the 9 named ones) are never trained on."""
    eval_held_out_only: bool = True
    """Few-shot evaluation on the held-out plugs' test tasks only (insertion only)."""
    use_latent: bool = True
    """False: plain multi-task SAC without context (z is all zeros, the encoder is unused);
    the baseline that shows what the context buys."""
    num_train_tasks: int | None = Field(None, ge=1)
    """Use at most this many of the family's train tasks (None: all). algo mtsac, mtppo,
    distral, dnc: required, the size of their one-hot task id (the family must have that many)."""
    mtsac: MTSACConfig = Field(default_factory=lambda: MTSACConfig.model_validate({}))
    """Task input and heads of algo mtsac (training/algos/mtsac)."""
    distral: DistralConfig = Field(default_factory=lambda: DistralConfig.model_validate({}))
    """algo distral's coefficients (training/algos/distral)."""
    dnc: DnCConfig = Field(default_factory=lambda: DnCConfig.model_validate({}))
    """algo dnc's contexts and coefficients (training/algos/dnc)."""
    pcgrad: bool = False
    """Project conflicting per-task gradients (PCGrad, Yu et al. 2020:
    training/common/pcgrad.py) in every learner step. Read by algo mtsac."""

    iterations: int = Field(200, ge=1)
    """Meta-training iterations (collect, then `updates_per_iteration` gradient steps)."""
    max_minutes: float | None = Field(None, gt=0)
    """Wall-clock budget for training (summed over resumed sessions): the iteration that
    crosses it is the last one (final evaluation, checkpoint and curves as usual). None: run
    all `iterations`."""
    initial_steps: int = Field(400, ge=0)
    """Env steps per train task with z from the prior before training starts."""
    tasks_per_iteration: int = Field(5, ge=1)
    """Tasks whose data is refreshed each iteration."""
    steps_prior: int = Field(200, ge=0)
    """Per sampled task: steps with z ~ prior, added to both buffers."""
    steps_posterior: int = Field(0, ge=0)
    """Per sampled task: steps with z ~ posterior, added to both buffers."""
    steps_extra_posterior: int = Field(200, ge=0)
    """Per sampled task: steps with z ~ posterior, RL buffer only (PEARL's
    num_extra_rl_steps_posterior)."""
    updates_per_iteration: int = Field(100, ge=1)
    meta_batch: int = Field(8, ge=1)
    """Tasks per gradient step."""
    batch_size: int = Field(128, ge=1)
    """RL transitions per task per gradient step."""
    context_size: int = Field(64, ge=1)
    """Context transitions per task fed to the encoder (PEARL's embedding_batch_size)."""
    buffer_capacity: int = Field(20_000, ge=1)
    """Per-task RL replay capacity (transitions)."""
    max_episode_steps: int | None = Field(None, ge=1)
    """None: the env's own time limit."""

    offline: OfflineConfig = Field(default_factory=lambda: OfflineConfig.model_validate({}))
    """Offline PEARL (training/algos/offline_pearl/losses.py); used when `offline.dataset` is set."""
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig.model_validate({}))
    """Online fine-tuning of an offline run on a new task (training/algos/offline_pearl/finetune.py)."""
    sac: SACConfig = Field(default_factory=lambda: SACConfig.model_validate({}))
    ppo: PPOConfig = Field(default_factory=lambda: PPOConfig.model_validate({}))
    """The on-policy learner (training/common/ppo.py); read by algo rl2 and mtppo."""
    rl2: RL2Config = Field(default_factory=lambda: RL2Config.model_validate({}))
    """RL²'s trials and GRU (training/algos/rl2/); read by algo rl2."""
    encoder: EncoderConfig = Field(default_factory=lambda: EncoderConfig.model_validate({}))
    eval: EvalConfig = Field(default_factory=lambda: EvalConfig.model_validate({}))
    goal: GoalConfig = Field(default_factory=lambda: GoalConfig.model_validate({}))
    her: HERConfig = Field(default_factory=lambda: HERConfig.model_validate({}))
    crl: CRLConfig = Field(default_factory=lambda: CRLConfig.model_validate({}))
    distill: DistillConfig | None = None
    rdistill: RDistillConfig = Field(default_factory=lambda: RDistillConfig.model_validate({}))
    """The recurrent student distilled from the search teacher (training/algos/rdistill/);
    read by algo rdistill."""
    maml: MAMLConfig = Field(default_factory=lambda: MAMLConfig.model_validate({}))
    """MAML for RL (training/algos/maml/); read by algo maml."""
    varibad: VariBADConfig = Field(default_factory=lambda: VariBADConfig.model_validate({}))
    """VariBAD (training/algos/varibad/); read by algo varibad."""
    """Distillation from the privileged servo (training/algos/distill/trainer.py) instead of PEARL."""
    eval_every: int = Field(20, ge=0)
    """Few-shot evaluation every this many iterations (0: only at the end)."""
    checkpoint_every: int = Field(10, ge=1)
    """Iterations between checkpoints (one is always written at the end)."""
    torch_threads: int = Field(1, ge=1, le=64)
    """torch intra-op threads. One: on the shared 2-core machine a second OpenMP thread
    spin-waits against other processes (bench/train_update.py: 42 ms/update with 1 thread
    against 891 ms with 2 under load), and the small batches gain little from it."""
    workers: int = Field(1, ge=1)
    """Rollout workers for online collection (algo pearl; `zshot train --workers N`): N > 1
    runs them as Ray actors (the `ray` extra, docs/SCALE.md). The run is the same for every
    N: each task's collection draws from its own stream."""
    run_dir: str = "runs/{name}-s{seed}"
    """Where the run is written; {name} is the config file's stem, {seed} the seed."""

    @property
    def algorithm(self) -> AlgoName:
        """`algo`, or the algorithm a config without it trains (see `algo`)."""
        if self.algo is not None:
            return self.algo
        if self.distill is not None:
            return "distill"
        return "offline_pearl" if self.offline.dataset is not None else "pearl"

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.algo == "offline_pearl" and self.offline.dataset is None:
            raise ValueError("algo offline_pearl needs offline.dataset (a `zshot collect` dir)")
        if self.algo == "distill" and self.distill is None:
            raise ValueError("algo distill needs a `distill` section (training/config.py)")
        if self.algo in ("mtsac", "mtppo", "distral", "dnc") and self.num_train_tasks is None:
            raise ValueError(
                f"algo {self.algo} needs num_train_tasks (the size of its one-hot task id)"
            )
        k, n = self.dnc.contexts, self.num_train_tasks
        if self.algo == "dnc" and k is not None and n is not None and k > n:
            raise ValueError(f"dnc.contexts is {k}: at most num_train_tasks ({n}) contexts")
        if self.mtsac.task_input == "descriptor" and self.env in ("terrain", "metaworld_mt10"):
            raise ValueError(
                f"mtsac.task_input descriptor: env {self.env!r} has no task descriptor "
                "(insertion and point do)"
            )
        if self.mtsac.heads == "per_task" and self.mtsac.task_input != "onehot":
            raise ValueError(
                "mtsac.heads per_task needs mtsac.task_input onehot (a head per task id)"
            )
        if self.workers > 1 and self.algorithm != "pearl":
            raise ValueError(
                f"workers > 1: only algo pearl collects on Ray workers; {self.algorithm} "
                "collects in its own process (workers: 1)"
            )
        if (self.algorithm in GOAL_ALGOS) != (self.env in GOAL_ENVS):
            raise ValueError(
                f"algo {self.algorithm} on env {self.env}: algos {list(GOAL_ALGOS)} train on "
                f"the goal envs {list(GOAL_ENVS)} and only they do"
            )
        if self.steps_prior + self.steps_posterior + self.steps_extra_posterior == 0:
            raise ValueError("steps_prior + steps_posterior + steps_extra_posterior must be > 0")
        if self.env == "terrain" and self.terrain_config is None:
            raise ValueError("env 'terrain' needs terrain_config (a configs/terrain/*.yaml path)")
        if self.offline.task_features:
            if self.env != "insertion":
                raise ValueError("offline.task_features: only env 'insertion' has them")
            from sim.insertion import OBS_INDEX  # lazy: pybullet only with task_features

            bad = {
                k: f.obs for k, f in self.offline.task_features.items() if f.obs not in OBS_INDEX
            }
            if bad:
                raise ValueError(
                    f"offline.task_features: unknown observation names {bad}; "
                    f"known: {sorted(OBS_INDEX)}"
                )
        return self


class BehaviourMix(StrictModel):
    """Fractions of each task's episodes per behaviour policy (normalised to sum 1)."""

    scripted: float = Field(0.5, ge=0)
    """The scripted expert with action noise: noisy spiral search (insertion) or a noisy
    go-to-goal controller that sees the hidden goal (point)."""
    random: float = Field(0.25, ge=0)
    """Uniform random actions, low-pass filtered (see `random_smoothing`)."""
    policy: float = Field(0.25, ge=0)
    """A partially trained PEARL run (`policy_run`); z per episode as `policy_latent` says."""
    teleop: float = Field(0.0, ge=0)
    """A demonstrator told the hidden task (sim.teleop: a person teleoperating with the socket
    in view), with action noise `teleop_noise`: the ODA paper's demonstrations."""

    @model_validator(mode="after")
    def _check(self) -> BehaviourMix:
        if self.scripted + self.random + self.policy + self.teleop <= 0:
            raise ValueError("mix: at least one behaviour needs a fraction > 0")
        return self


class CollectConfig(StrictModel):
    """An offline data-collection run (`zshot collect`): per train task, episodes of a mix of
    behaviour policies, written as a Minari dataset (training/common/minari_format.py)."""

    seed: int = 0
    episodes_per_task: int = Field(10, ge=1)
    env: Literal["insertion", "point"] = "insertion"
    """The task family, as in TrainConfig (same seed + same task keys = same train tasks)."""
    sim_config: str | None = None
    """As TrainConfig.sim_config."""
    sim_overrides: dict[str, Any] = Field(default_factory=dict)
    """As TrainConfig.sim_overrides."""
    profile: ProfileName | None = None
    """As TrainConfig.profile."""
    train_plugs: list[str] = Field(default_factory=lambda: ["family"])
    """As TrainConfig.train_plugs (the held-out plugs are never collected on)."""
    num_tasks: int | None = Field(None, ge=1)
    """Collect on at most this many of the train tasks (None: all)."""
    mix: BehaviourMix = Field(default_factory=lambda: BehaviourMix.model_validate({}))
    scripted_noise: float = Field(0.3, ge=0, le=2)
    """Std of Gaussian noise added to the scripted expert's normalised action (then clipped)."""
    teleop_noise: float = Field(0.1, ge=0, le=2)
    """Std of Gaussian noise added to the teleop demonstrator's normalised action (a person's
    hand is steadier than the spiral's exploration noise; sim/teleop.py)."""
    random_smoothing: float = Field(0.8, ge=0, lt=1)
    """Random behaviour a_t = s * a_{t-1} + (1 - s) * u_t, u_t ~ U(-1, 1): wanders like a
    poorly tuned controller instead of jittering in place."""
    policy_run: str | None = None
    """A partially trained PEARL: its run dir (checkpoint.pt) or an exported artifact dir
    (manifest.json, run in onnxruntime; e.g. hardware_bridge/demo_artifact); needed when
    mix.policy > 0."""
    policy_latent: Literal["prior", "posterior"] = "prior"
    """The policy behaviour's z per episode: "prior" (z ~ N(0, I) every episode) or
    "posterior" (PEARL's posterior sampling over its own earlier episodes on the task)."""
    max_episode_steps: int | None = Field(None, ge=1)
    """None: the env's own time limit."""

    def as_train_config(self) -> TrainConfig:
        """The TrainConfig whose task source has the same train tasks (tasks.make_task_source)."""
        return TrainConfig.model_validate(
            {
                "seed": self.seed,
                "env": self.env,
                "sim_config": self.sim_config,
                "sim_overrides": self.sim_overrides,
                "profile": self.profile,
                "train_plugs": self.train_plugs,
                "num_train_tasks": self.num_tasks,
                "max_episode_steps": self.max_episode_steps,
            }
        )
