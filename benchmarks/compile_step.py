"""Does `torch.compile` pay for sqnn's training step? (issue 17, item 2)

Usage (from the repository root; needs a C++ compiler for inductor's CPU backend):

    python benchmarks/compile_step.py [--steps 400] [--mode default]

Times the default closed-form training step (training.closed_form_step with
training.FlatAdam) on Adult-sized random data (48842 rows, 106 features, batch 256, one
torch thread), eager and through `torch.compile(mode=--mode)`: the compile (the first
three compiled steps) and milliseconds per step after it, two passes of --steps each.
A default `sqnn train` on Adult runs 5730 steps, so a compile pays only if it costs less
than 5730 times the time it saves per step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.information import information_cells
from sqnn_cli.training import FlatAdam, closed_form_step

ROWS, FEATURES, BATCH = 48842, 106, 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--mode", default="default")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(ROWS, FEATURES)).astype(np.float32))
    y = torch.from_numpy((rng.random(ROWS) < 0.3).astype(np.float32))
    groups = torch.from_numpy(rng.integers(0, 2, ROWS))
    estimator = SQNNClassifier()
    estimator.groups_ = np.array(["a", "b"])
    network = estimator._build_network(FEATURES, 2)
    cells = information_cells(2, "independence", device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)

    def ms_per_step(step, steps: int) -> float:
        with FlatAdam(network.parameters(), lr=1e-3) as optimizer:
            started = time.perf_counter()
            for _ in range(steps):
                rows = torch.randint(0, ROWS, (BATCH,))
                step(network, X[rows], y[rows], groups[rows], None, gamma=0.2, cells=cells, generator=generator)
                optimizer.step()
            return (time.perf_counter() - started) / steps * 1e3

    eager = [ms_per_step(closed_form_step, args.steps) for _ in range(2)]
    compiled_step = torch.compile(closed_form_step.__wrapped__, mode=args.mode)

    def compiled(*step_args, **step_kwargs):
        with torch.inference_mode():
            return compiled_step(*step_args, **step_kwargs)

    started = time.perf_counter()
    ms_per_step(compiled, 3)
    compile_s = time.perf_counter() - started
    after = [ms_per_step(compiled, args.steps) for _ in range(2)]
    print("| step | ms per step (two passes) |\n|---|---|")
    print(f"| eager | {eager[0]:.3f}, {eager[1]:.3f} |")
    print(f"| torch.compile (mode {args.mode}) | {after[0]:.3f}, {after[1]:.3f} |")
    saved_s = (min(eager) - min(after)) / 1e3 * 5730
    print(f"\ncompile and first 3 steps: {compile_s:.1f} s; saved over a default Adult train (5730 steps): {saved_s:.2f} s")


if __name__ == "__main__":
    main()
