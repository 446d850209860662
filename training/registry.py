"""The algorithms `zshot train` can run, by name (`zshot algos` lists them).

Each `Algorithm` names what a new one provides: the TrainConfig sections it reads beyond
the shared ones, its networks (`make_nets`), its trainer class, its exporter and the
artifact kind that exporter writes, and its paper. `zshot train` picks one by the config's
`algo` (`TrainConfig.algorithm`); export, evaluation, fine-tuning and `zshot collect` read a
run back with `load_run`, which builds the networks of the algorithm its checkpoint is
tagged with (training/common/checkpoint.py).

Adding an algorithm: a package under training/algos/ (losses, networks, trainer, exporter),
one entry in `ALGORITHMS`, its name in `training.config.AlgoName`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from training.algos.crl import networks as crl_networks
from training.algos.crl.trainer import CRLTrainer
from training.algos.distill.trainer import DistillTrainer
from training.algos.distral import networks as distral_networks
from training.algos.distral.trainer import DistralTrainer
from training.algos.dnc import networks as dnc_networks
from training.algos.dnc.trainer import DnCTrainer
from training.algos.her import networks as her_networks
from training.algos.her.trainer import HERTrainer
from training.algos.maml import networks as maml_networks
from training.algos.maml.export import export_weights
from training.algos.maml.trainer import MAMLTrainer
from training.algos.mtppo import networks as mtppo_networks
from training.algos.mtppo.export import export_mtppo
from training.algos.mtppo.trainer import MTPPOTrainer
from training.algos.mtsac import networks as mtsac_networks
from training.algos.mtsac.export import export_conditioned
from training.algos.mtsac.trainer import MTSACTrainer
from training.algos.offline_pearl import networks as offline_pearl_networks
from training.algos.offline_pearl.networks import OfflinePearlNets
from training.algos.offline_pearl.trainer import OfflineTrainer
from training.algos.pearl import networks as pearl_networks
from training.algos.pearl.agent import pearl_agent
from training.algos.pearl.export import export_posterior
from training.algos.pearl.trainer import Trainer
from training.algos.rdistill.trainer import RDistillTrainer
from training.algos.rl2 import networks as rl2_networks
from training.algos.rl2.agent import rl2_agent
from training.algos.rl2.export import export_rl2
from training.algos.rl2.trainer import RL2Trainer
from training.algos.varibad import networks as varibad_networks
from training.algos.varibad.export import export_varibad
from training.algos.varibad.trainer import VariBADTrainer, varibad_agent
from training.common.agents import FewShotAgent
from training.common.checkpoint import CHECKPOINT, checkpoint_algorithm, load_checkpoint
from training.common.goal_export import export_goal_conditioned
from training.common.local_policies import export_central_policy
from training.common.tasks import observation_index
from training.config import TrainConfig
from training.evaluate import FewShotReport


class RunTrainer(Protocol):
    """What `zshot train` drives: a trainer of one run dir."""

    @property
    def iteration(self) -> int:
        """Iterations (or gradient steps) done."""
        ...

    updates: int

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Resume from the run dir's checkpoint."""
        ...

    def run(self, progress: bool = True) -> FewShotReport | None:
        """Train to the config's end; the final few-shot report (None: no evaluation)."""
        ...


MakeNets = Callable[[int, int, TrainConfig, Mapping[str, int] | None], nn.Module]
"""(obs_dim, act_dim, cfg, obs_index) -> the algorithm's networks."""
Exporter = Callable[..., tuple[Any, dict[str, float]]]
"""(nets, cfg, out_dir, *, name, algorithm, run_dir, counters, force, verbose) ->
(Artifact, parity errors)."""


@dataclass(frozen=True)
class Algorithm:
    """One algorithm of the family."""

    name: str
    summary: str
    paper: str
    """The paper it implements: authors (year), title, where."""
    config_sections: tuple[str, ...]
    """TrainConfig sections it reads beyond the shared ones (seed, env, eval, ...)."""
    make_nets: MakeNets
    make_agent: Callable[[nn.Module, TrainConfig], FewShotAgent] | None
    """(nets, cfg) -> the run as a few-shot agent for evaluation and collection (torch);
    None for an algorithm whose policy is told its task (a `conditioned` artifact) or
    adapts by gradient steps (MAML, a `weights` artifact), which the few-shot protocol
    cannot drive."""
    trainer: Callable[[TrainConfig, Path], RunTrainer]
    exporter: Exporter
    artifact_kind: str
    """What `zshot export` writes (docs/PROTOCOL.md): `posterior` (encoder + policy),
    `conditioned` (policy of obs and a task descriptor), `recurrent` (step.onnx) or
    `weights` (policy of obs)."""


ALGORITHMS: dict[str, Algorithm] = {
    "pearl": Algorithm(
        name="pearl",
        summary="meta-RL with a probabilistic context encoder (SAC without context: "
        "use_latent false)",
        paper="Rakelly et al. (2019), Efficient Off-Policy Meta-Reinforcement Learning via "
        "Probabilistic Context Variables, ICML, arXiv 1903.08254",
        config_sections=("sac", "encoder"),
        make_nets=pearl_networks.make_nets,
        make_agent=pearl_agent,
        trainer=Trainer,
        exporter=export_posterior,
        artifact_kind="posterior",
    ),
    "offline_pearl": Algorithm(
        name="offline_pearl",
        summary="PEARL's encoder from a fixed dataset with an AWAC or IQL critic (the ODA "
        "recipe); fine-tuned online by training/algos/offline_pearl/finetune.py",
        paper="Zhao et al. (2022), Offline Meta-Reinforcement Learning for Industrial "
        "Insertion, ICRA, arXiv 2110.04276",
        config_sections=("sac", "encoder", "offline", "finetune"),
        make_nets=offline_pearl_networks.make_nets,
        make_agent=pearl_agent,
        trainer=OfflineTrainer,
        exporter=export_posterior,
        artifact_kind="posterior",
    ),
    "distill": Algorithm(
        name="distill",
        summary="insertion skill distilled by DAgger from the sim's servo told the true "
        "socket pose, an encoder trained to estimate that pose (issue #17)",
        paper="Ross, Gordon, Bagnell (2011), A Reduction of Imitation Learning and Structured "
        "Prediction to No-Regret Online Learning (DAgger), AISTATS, arXiv 1011.0686; "
        "Chen et al. (2019), Learning by Cheating, CoRL, arXiv 1912.12294",
        config_sections=("encoder", "distill"),
        make_nets=pearl_networks.make_nets,
        make_agent=pearl_agent,
        trainer=DistillTrainer,
        exporter=export_posterior,
        artifact_kind="posterior",
    ),
    "rdistill": Algorithm(
        name="rdistill",
        summary="the spiral search with memory (a teacher that sees only what a robot "
        "measures) imitated by RL²'s GRU policy over whole trials, behaviour cloning with "
        "DART noise or DAgger (issue #17); exports a recurrent artifact",
        paper="Ross, Gordon, Bagnell (2011), A Reduction of Imitation Learning and Structured "
        "Prediction to No-Regret Online Learning (DAgger), AISTATS, arXiv 1011.0686; Laskey "
        "et al. (2017), DART: Noise Injection for Robust Imitation Learning, CoRL, arXiv "
        "1703.09327; the student is RL²'s (Duan et al. 2016, arXiv 1611.02779)",
        config_sections=("rdistill", "rl2", "ppo"),
        make_nets=rl2_networks.make_nets,
        make_agent=rl2_agent,
        trainer=RDistillTrainer,
        exporter=export_rl2,
        artifact_kind="recurrent",
    ),
    "mtsac": Algorithm(
        name="mtsac",
        summary="multi-task SAC told its task (`mtsac.task_input`: one-hot id, learned "
        "embedding (Hausman et al. 2018), task descriptor e.g. a plug's; `mtsac.heads: "
        "per_task`: multi-head SAC; `pcgrad: true`: with PCGrad, Yu et al. 2020, arXiv "
        "2001.06782); exports a conditioned artifact",
        paper="Yu et al. (2019), Meta-World: A Benchmark and Evaluation for Multi-Task and "
        "Meta Reinforcement Learning, CoRL, arXiv 1910.10897; Hausman et al. (2018), Learning "
        "an Embedding Space for Transferable Robot Skills, ICLR",
        config_sections=("sac", "mtsac"),
        make_nets=mtsac_networks.make_nets,
        make_agent=None,
        trainer=MTSACTrainer,
        exporter=export_conditioned,
        artifact_kind="conditioned",
    ),
    "maml": Algorithm(
        name="maml",
        summary="MAML for RL: a Gaussian policy adapted by policy-gradient steps on K "
        "episodes, meta-trained with ProMP's clipped surrogate (`zshot adapt` adapts it on a "
        "robot); exports a weights artifact",
        paper="Finn, Abbeel, Levine (2017), Model-Agnostic Meta-Learning for Fast Adaptation "
        "of Deep Networks, ICML, arXiv 1703.03400; outer loop: Rothfuss et al. (2019), ProMP: "
        "Proximal Meta-Policy Search, ICLR, arXiv 1810.06784",
        config_sections=("maml",),
        make_nets=maml_networks.make_nets,
        make_agent=None,
        trainer=MAMLTrainer,
        exporter=export_weights,
        artifact_kind="weights",
    ),
    "mtppo": Algorithm(
        name="mtppo",
        summary="multi-task PPO told its task by a one-hot id (the on-policy baseline); "
        "exports a conditioned artifact",
        paper="Yu et al. (2019), Meta-World: A Benchmark and Evaluation for Multi-Task and "
        "Meta Reinforcement Learning, CoRL, arXiv 1910.10897 (MT-PPO); Schulman et al. "
        "(2017), Proximal Policy Optimization Algorithms, arXiv 1707.06347",
        config_sections=("ppo",),
        make_nets=mtppo_networks.make_nets,
        make_agent=None,
        trainer=MTPPOTrainer,
        exporter=export_mtppo,
        artifact_kind="conditioned",
    ),
    "rl2": Algorithm(
        name="rl2",
        summary="a GRU policy over (s, a, r, done) whose hidden state runs through a trial "
        "of episodes of one task, trained by PPO over whole trials; exports a recurrent "
        "artifact",
        paper="Duan et al. (2016), RL²: Fast Reinforcement Learning via Slow Reinforcement "
        "Learning, arXiv 1611.02779; Wang et al. (2016), Learning to reinforcement learn, "
        "arXiv 1611.05763",
        config_sections=("ppo", "rl2"),
        make_nets=rl2_networks.make_nets,
        make_agent=rl2_agent,
        trainer=RL2Trainer,
        exporter=export_rl2,
        artifact_kind="recurrent",
    ),
    "varibad": Algorithm(
        name="varibad",
        summary="a GRU belief over the task (VAE: reward/transition decoders, ELBO over "
        "trials) and a PPO policy on (state, belief); exports a recurrent artifact",
        paper="Zintgraf et al. (2020), VariBAD: A Very Good Method for Bayes-Adaptive Deep RL "
        "via Meta-Learning, ICLR, arXiv 1910.08348",
        config_sections=("varibad", "ppo"),
        make_nets=varibad_networks.make_nets,
        make_agent=varibad_agent,
        trainer=VariBADTrainer,
        exporter=export_varibad,
        artifact_kind="recurrent",
    ),
    "her": Algorithm(
        name="her",
        summary="goal-conditioned SAC with hindsight relabelling (`future`, her.relabel_k per "
        "real goal; 0: plain SAC on the same sparse reward); exports a conditioned artifact "
        "whose descriptor is the goal",
        paper="Andrychowicz et al. (2017), Hindsight Experience Replay, NeurIPS, arXiv 1707.01495",
        config_sections=("sac", "goal", "her"),
        make_nets=her_networks.make_nets,
        make_agent=None,
        trainer=HERTrainer,
        exporter=export_goal_conditioned,
        artifact_kind="conditioned",
    ),
    "crl": Algorithm(
        name="crl",
        summary="contrastive RL: the critic phi(s,a).psi(g) an InfoNCE classifier of future "
        "goals, the actor maximising it; exports a conditioned artifact whose descriptor is "
        "the goal",
        paper="Eysenbach, Zhang, Salakhutdinov, Levine (2022), Contrastive Learning as "
        "Goal-Conditioned Reinforcement Learning, NeurIPS, arXiv 2206.07568",
        config_sections=("sac", "goal", "crl"),
        make_nets=crl_networks.make_nets,
        make_agent=None,
        trainer=CRLTrainer,
        exporter=export_goal_conditioned,
        artifact_kind="conditioned",
    ),
    "distral": Algorithm(
        name="distral",
        summary="per-task policies trained by soft actor-critic with a KL to a shared "
        "policy distilled from them; exports the shared policy (told the one-hot id) as a "
        "conditioned artifact",
        paper="Teh et al. (2017), Distral: Robust Multitask Reinforcement Learning, NeurIPS, "
        "arXiv 1707.04175",
        config_sections=("sac", "distral"),
        make_nets=distral_networks.make_nets,
        make_agent=None,
        trainer=DistralTrainer,
        exporter=export_central_policy,
        artifact_kind="conditioned",
    ),
    "dnc": Algorithm(
        name="dnc",
        summary="Divide-and-Conquer: a local soft actor-critic policy per context (one per "
        "task, or K blocks) with a pairwise KL between them, and a central policy distilled "
        "from them every few iterations; exports the central policy (told the one-hot id) as "
        "a conditioned artifact",
        paper="Ghosh, Singh, Rajeswaran, Kumar, Levine (2018), Divide-and-Conquer "
        "Reinforcement Learning, ICLR, arXiv 1711.09874",
        config_sections=("sac", "dnc"),
        make_nets=dnc_networks.make_nets,
        make_agent=None,
        trainer=DnCTrainer,
        exporter=export_central_policy,
        artifact_kind="conditioned",
    ),
}


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called `name`; a ValueError listing the known ones otherwise."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}") from None


def make_trainer(cfg: TrainConfig, run_dir: str | Path) -> RunTrainer:
    """The trainer of `cfg`'s algorithm for `run_dir`."""
    return get_algorithm(cfg.algorithm).trainer(cfg, Path(run_dir))


@dataclass
class LoadedRun:
    """A run dir read back: its networks (weights loaded), config and checkpoint."""

    run_dir: Path
    algorithm: Algorithm
    nets: nn.Module
    cfg: TrainConfig
    state: dict[str, Any]


def load_run(run_dir: str | Path, *, as_algorithm: str | None = None) -> LoadedRun:
    """Read `run_dir`'s checkpoint, build its algorithm's networks, load the weights.

    `as_algorithm`: build that algorithm's networks instead (fine-tuning trains any
    PEARL-shaped run with offline PEARL's networks); the weights must fit them."""
    run = Path(run_dir)
    state = load_checkpoint(run / CHECKPOINT)
    cfg = TrainConfig.model_validate(state["config"])
    algo = get_algorithm(as_algorithm or checkpoint_algorithm(state, cfg))
    obs_dim, act_dim = int(state["dims"]["obs"]), int(state["dims"]["act"])
    index = observation_index(cfg) if cfg.offline.task_features else None
    nets = algo.make_nets(obs_dim, act_dim, cfg, index)
    nets.load_state_dict(state["nets"])
    return LoadedRun(run, algo, nets, cfg, state)


def agent_of(run: LoadedRun) -> FewShotAgent:
    """A loaded run as a few-shot agent (torch), by its algorithm; a ValueError for an
    algorithm without one (a policy told its task: evaluate its exported artifact)."""
    if run.algorithm.make_agent is None:
        raise ValueError(
            f"{run.run_dir}: algorithm {run.algorithm.name} has no few-shot agent (its policy "
            "is told its task, or adapts by gradient steps); export it (`zshot export`) and "
            f"serve the {run.algorithm.artifact_kind} artifact"
        )
    return run.algorithm.make_agent(run.nets, run.cfg)


def load_finetune_run(run_dir: str | Path) -> tuple[OfflinePearlNets, TrainConfig]:
    """A PEARL-shaped run (online or offline PEARL) with offline PEARL's networks, which
    fine-tuning trains (training/algos/offline_pearl/finetune.py), and its config."""
    run = load_run(run_dir, as_algorithm="offline_pearl")
    assert isinstance(run.nets, OfflinePearlNets)  # what offline_pearl's make_nets builds
    return run.nets, run.cfg


def export_run(
    run_dir: str | Path, out_dir: str | Path, *, force: bool = False, verbose: bool = False
) -> tuple[Any, dict[str, float]]:
    """`zshot export`: the run's networks through its algorithm's exporter; returns
    (Artifact, parity errors)."""
    run = load_run(run_dir)
    counters = {k: int(run.state[k]) for k in ("iteration", "updates", "env_steps")}
    return run.algorithm.exporter(
        run.nets,
        run.cfg,
        out_dir,
        name=f"zshot-{run.algorithm.name}-{run.run_dir.name}",
        algorithm=run.algorithm.name,
        run_dir=run.run_dir,
        counters=counters,
        force=force,
        verbose=verbose,
    )
