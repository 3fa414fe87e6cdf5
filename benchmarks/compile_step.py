"""Does `torch.compile` pay for sqnn's training step? (issue 17, item 2)

Usage (from the repository root; needs a C++ compiler for inductor's CPU backend):

    python benchmarks/compile_step.py [--steps 400] [--mode default] [--floor-only]

Times the default closed-form training step (training.closed_form_step with
training.FlatAdam) on Adult-sized random data (48842 rows, 106 features, batch 256, one
torch thread), eager and through `torch.compile(mode=--mode)`: the compile (the first
three compiled steps) and milliseconds per step after it, two passes of --steps each.
A default `sqnn train` on Adult runs 5730 steps, so a compile pays only if it costs less
than 5730 times the time it saves per step.

It also times the floor no fusion removes: the step's matrix products alone (each of
the four Linear layers' forward product and its two backward ones, bare `torch.mm` on
one thread, best of 5 loops of 1000 steps) and their FLOP rate. `--floor-only` times
only that.
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
LAYERS = [(FEATURES, 64), (64, 64), (64, 32), (32, 1)]  # sqnn's default network on Adult


def products_floor() -> tuple[float, float]:
    """(ms per step, GFLOP/s) of the step's matrix products alone."""
    inputs = [torch.randn(BATCH, fan_in) for fan_in, _ in LAYERS]
    weights = [torch.randn(fan_out, fan_in) for fan_in, fan_out in LAYERS]
    grads = [torch.randn(BATCH, fan_out) for _, fan_out in LAYERS]

    def products() -> None:
        for x, w, g in zip(inputs, weights, grads):
            torch.mm(x, w.t())  # forward
            torch.mm(g.t(), x)  # the weights' gradient
            torch.mm(g, w)  # the inputs' gradient

    for _ in range(200):
        products()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(1000):
            products()
        best = min(best, (time.perf_counter() - started) / 1000)
    flops = 6 * sum(fan_in * fan_out for fan_in, fan_out in LAYERS) * BATCH
    return best * 1e3, flops / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--mode", default="default")
    parser.add_argument("--floor-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    floor_ms, floor_gflops = products_floor()
    print(f"matrix products alone: {floor_ms:.3f} ms a step ({floor_gflops:.0f} GFLOP/s), "
          f"{floor_ms * 5730 / 1e3:.2f} s over a default Adult train's 5730 steps")
    if args.floor_only:
        return
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
