"""Where one training step of default sqnn spends its time, part by part.

Usage (from the repository root, after `pip install -e '.[test]'`):

    python benchmarks/step_profile.py [--steps 400] [--threads 1]

Runs sqnn's network (default layers and code size) on batches of 256 Adult rows and
times the same loop with parts taken out: the information term, the optimiser step,
the backward pass. Differences between the lines attribute the step's time, which is
what a faster training step (issue 6's throughput goal) has to cut.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import encode, load

from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.information import bernoulli_mutual_information
from sqnn_cli.model import SQNNetwork

VARIANTS = {  # label: (information term, backward pass, optimiser step)
    "full step": (True, True, True),
    "without the information term": (False, True, True),
    "without the optimiser step": (True, True, False),
    "forward and loss only": (True, False, False),
    "forward and BCE only": (False, False, False),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    features, y, s = load("adult")
    X = torch.from_numpy(encode(features)[0])
    labels = torch.from_numpy(y.astype(np.float32))
    groups = torch.from_numpy(np.unique(s, return_inverse=True)[1].astype(np.int64))
    defaults = SQNNClassifier().get_params()
    gamma, batch = defaults["gamma"], defaults["batch_size"]
    torch.manual_seed(0)
    network = SQNNetwork(X.shape[1], list(defaults["hidden"]), 32)
    optimizer = torch.optim.Adam(network.parameters(), lr=defaults["lr"], fused=True)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(labels), generator=generator)
    n_batches = len(labels) // batch

    def run(information: bool, backward: bool, step: bool) -> float:
        started = time.perf_counter()
        for i in range(args.steps):
            rows = order[(i % n_batches) * batch : (i % n_batches + 1) * batch]
            logits, theta = network(X[rows], generator)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels[rows]
            )
            if information:
                mi = bernoulli_mutual_information(theta, groups[rows], 2)
                loss = gamma * mi + (1.0 - gamma) * loss
            if backward:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if step:
                    optimizer.step()
        return (time.perf_counter() - started) / args.steps * 1e3

    run(True, True, True)  # warm-up: lazy initialisation and allocator
    print(
        f"Adult, batch {batch}, {args.threads} torch thread(s), {args.steps} steps each"
    )
    print("| loop | ms per step |")
    print("|---|---:|")
    for label, parts in VARIANTS.items():
        print(f"| {label} | {run(*parts):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
