"""A recurrent student distilled from a search teacher (issue #17).

DAgger (Ross, Gordon, Bagnell 2011) of RL²'s GRU policy (Duan et al. 2016: the same
network and `recurrent` artifact) against `sim.spiral.MemorySpiralPolicy`, the spiral
search with memory, which sees only what a robot measures. Trained over whole trials of
one task's episodes, so what a successful episode reveals (where the plug went in) reaches
the policy through its hidden state, kept by the runtime across RESET_EPISODE.

trainer.py: the shadow teacher, trials, bc_loss, rounds, checkpoints. The networks, the
torch agent and the exporter are RL²'s (training/algos/rl2/).
"""
