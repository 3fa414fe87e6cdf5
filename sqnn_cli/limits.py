"""Upper bounds on every size-like setting, shared by the CLI's options and the estimator.

Each bound is generous for real use and keeps what the setting allocates sane. They are
checked before anything is allocated: by typer for the options, and by the estimator's
``_parameter_constraints`` (``SQNNClassifier.check_params``), which is also how a
bundle's meta.json (possibly crafted) is judged before its network is built.

This module imports nothing, so that ``sqnn --help`` stays fast.
"""

from __future__ import annotations

# A width-4096 layer after another is 64 MiB of float32 weights, four times that with
# the optimiser's buffers; 16 such layers stay near 4 GiB. Tabular networks use tens to
# hundreds.
MAX_HIDDEN_WIDTH = 4096
MAX_HIDDEN_LAYERS = 16
# Scoring holds (samples x rows x code) draws, as many rows at once as fit a fixed budget
# (rowwise.rows_per_chunk: 2**22 entries), but never fewer than one: at both bounds one
# row's draws are 1024 x 256 = 2**18 entries, well inside it. The paper's codes have 8
# to 64 neurons; 32 draws are the default.
MAX_CODE_SIZE = 256
MAX_SAMPLES = 1024
# The sampled joint estimator holds (joint samples x batch rows) log-likelihoods, a batch
# (batch rows x width) activations: 4096 x 65,536 x 4 bytes = 1 GiB at both bounds.
MAX_JOINT_SAMPLES = 4096
MAX_BATCH_SIZE = 65_536
# Epochs allocate nothing but a history record each; the bound catches typos like 1e9.
MAX_EPOCHS = 100_000
# numpy's and scikit-learn's seeds are unsigned 32-bit integers: larger ones are refused there.
MAX_SEED = 2**32 - 1
# torch, BLAS and OpenMP threads, and worker processes: far beyond any single machine's cores
# here, yet no runaway fork or thread bomb from a typo.
MAX_THREADS = 256
MAX_N_JOBS = 256
# The audit: forests of up to 10,000 trees (the paper used 1,000); up to 32 sampled codes
# stacked per row (the forests train on draws x rows rows); up to 1,000 random rankings.
MAX_TREES = 10_000
MAX_AUDIT_DRAWS = 32
MAX_RANDOM_REPEATS = 1_000
# Sweeps: each step and fold is a trained model.
MAX_SWEEP_STEPS = 1_001
MAX_FOLDS = 100
# Bootstrap resamples: processed in blocks of a fixed size, so memory stays flat; time grows
# linearly (1,000 resamples of 50,000 rows take about 4 s), and 100,000 is far past the
# point where another resample moves a 95 % interval.
MAX_BOOTSTRAP = 100_000
