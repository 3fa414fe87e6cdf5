"""The estimator's parameters: defaults and choices, written once.

SQNNClassifier's signature, the options of `sqnn train` and `sqnn sweep-gamma`, and the
parameter checks all read this module. It imports nothing heavy, so `sqnn --help`
answers without loading torch.
"""

from __future__ import annotations

__all__ = [
    "GAMMA", "METHODS", "BASELINE_METHODS", "METHOD", "OBJECTIVES", "OBJECTIVE", "HIDDEN", "CODE_SIZE", "TEMPERATURE", "STRAIGHT_THROUGH_CHOICES",
    "STRAIGHT_THROUGH", "EPOCHS", "BATCH_SIZE", "LR", "N_SAMPLES", "RANDOM_STATE", "DEVICES", "DEVICE",
    "MAX_EXACT_JOINT_NEURONS",
]  # fmt: skip

# The largest gamma that costs at most 0.02 AUC on the inner folds of every sample
# dataset's training part (benchmarks/default_gamma.py; README, "Choosing gamma").
GAMMA = 0.2

# bernoulli and joint compute I(T;S) from theta (the paper's BinaryBernoulli and BinaryMI);
# adversarial and vfae are the paper's baselines (AdvCls, VFAE) on the same binary layer.
METHODS = ("bernoulli", "joint", "adversarial", "vfae")
# Each is a module of sqnn_cli of that name with its NETWORK, STEP and FIGURES.
BASELINE_METHODS = ("adversarial", "vfae")
METHOD = "bernoulli"
# What the information term makes T forget: S (demographic parity's aim), or S given Y
# (equalized odds' and GPA's aim).
OBJECTIVES = ("independence", "separation")
OBJECTIVE = "independence"
HIDDEN = (64, 64)
# bernoulli's cost is linear in the code size; joint's exact loss enumerates 2^m codes
# per batch, so its default is a size where that stays exact and cheap.
CODE_SIZE = {"bernoulli": 32, "joint": 8, "adversarial": 32, "vfae": 32}
MAX_EXACT_JOINT_NEURONS = 12
TEMPERATURE = 1.0
STRAIGHT_THROUGH_CHOICES = ("sigmoid", "identity")
STRAIGHT_THROUGH = "sigmoid"
EPOCHS = 30
BATCH_SIZE = 256
LR = 1e-3
N_SAMPLES = 32
RANDOM_STATE = 0
DEVICES = ("auto", "cpu", "cuda")
DEVICE = "auto"
