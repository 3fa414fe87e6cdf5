"""Where one training step of default sqnn spends its time, part by part.

Usage (from the repository root, after `pip install -e '.[test]'`):

    python benchmarks/step_profile.py [--epochs 3] [--threads 1]

Trains sqnn's default network on Adult (batches of 256 shuffled rows, as `fit` does)
and times each part of the closed-form step with a clock around it: gathering the
batch, the forward pass, the BCE and its gradient, the information term and its
gradient, the backward pass, Adam. Then it times whole steps taken through autograd
instead (`training.autograd_step` with the bernoulli loss), which is what the closed
form replaced. The first epoch of each is a warm-up and not counted.
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
from sqnn_cli.information import (
    bernoulli_information_and_gradient,
    bernoulli_mutual_information,
    group_indicators,
)
from sqnn_cli.model import SQNNetwork
from sqnn_cli.training import FlatAdam, autograd_step

PARTS = ("gather", "forward", "BCE", "information", "backward", "Adam", "bookkeeping")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs + 1 [3]")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    features, y, s = load("adult")
    X = torch.from_numpy(encode(features)[0])
    labels = torch.from_numpy(y.astype(np.float32))
    groups = torch.from_numpy(np.unique(s, return_inverse=True)[1].astype(np.int64))
    indicators = group_indicators(2)
    defaults = SQNNClassifier().get_params()
    gamma, batch = defaults["gamma"], defaults["batch_size"]
    torch.manual_seed(0)
    network = SQNNetwork(X.shape[1], list(defaults["hidden"]), 32)
    generator = torch.Generator().manual_seed(0)
    n_steps = -(-len(labels) // batch)
    clock = time.perf_counter

    def batches():
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), batch):
            rows = order[start : start + batch]
            yield rows, X.index_select(0, rows), labels.index_select(0, rows)

    seconds = dict.fromkeys(PARTS, 0.0)
    last = clock()

    def lap(part: str) -> None:
        """Charge the time since the previous lap to ``part``."""
        nonlocal last
        now = clock()
        seconds[part] += now - last
        last = now

    with FlatAdam(network.parameters(), lr=defaults["lr"]) as adam:
        for epoch in range(args.epochs):
            if epoch == 1:
                seconds.update(dict.fromkeys(PARTS, 0.0))
            totals = torch.zeros(2)
            last = clock()
            for rows, x, y_batch in batches():
                member = indicators.index_select(0, groups.index_select(0, rows))
                lap("gather")
                with torch.inference_mode():
                    logits, cached = network.training_pass(x, generator)
                    lap("forward")
                    bce = torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, y_batch
                    )
                    d_logits = torch.sigmoid(logits).sub_(y_batch)
                    d_logits.mul_((1.0 - gamma) / len(rows))
                    lap("BCE")
                    information, d_theta = bernoulli_information_and_gradient(
                        cached.theta, member, weight=gamma
                    )
                    lap("information")
                    network.backpropagate(cached, d_logits, d_theta)
                    lap("backward")
                adam.step()
                lap("Adam")
                totals.add_(torch.stack([bce, information]), alpha=len(rows))
                lap("bookkeeping")
    timed_steps = n_steps * (args.epochs - 1)
    closed_form_ms = sum(seconds.values()) / timed_steps * 1e3

    def penalty(theta, batch_groups, _generator):
        information = bernoulli_mutual_information(theta, batch_groups, 2)
        return information, information

    torch.manual_seed(0)
    network = SQNNetwork(X.shape[1], list(defaults["hidden"]), 32)
    with FlatAdam(network.parameters(), lr=defaults["lr"]) as adam:
        for epoch in range(args.epochs):
            if epoch == 1:
                started = clock()
            for rows, x, y_batch in batches():
                autograd_step(
                    network,
                    x,
                    y_batch,
                    groups.index_select(0, rows),
                    gamma=gamma,
                    penalty=penalty,
                    generator=generator,
                )
                adam.step()
    autograd_ms = (clock() - started) / timed_steps * 1e3

    print(
        f"Adult, batch {batch}, {args.threads} torch thread(s), "
        f"{args.epochs - 1} timed epochs of {n_steps} steps"
    )
    print()
    print("| part of the closed-form step | ms per step | share |")
    print("|---|---:|---:|")
    for part, total in seconds.items():
        ms = total / timed_steps * 1e3
        print(f"| {part} | {ms:.3f} | {ms / closed_form_ms:.0%} |")
    print(f"| **whole step** | **{closed_form_ms:.3f}** | 100% |")
    print()
    print(
        f"the same steps through autograd: {autograd_ms:.3f} ms per step "
        f"({autograd_ms / closed_form_ms:.2f}x the closed form)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
