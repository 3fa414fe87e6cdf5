"""How `sqnn train`'s wall time depends on the thread count, on an idle and on a busy machine.

Usage (from the repository root):

    python benchmarks/threads.py [--rows 20000] [--epochs 3] [--repeats 2] [--burners 2]
        [--threads 1,2,torch,sqnn] [--json benchmarks/threads.json]

Trains a seeded --rows subset of sample_data/adult.csv.gz (numpy default_rng(0); target
income, positive ">50K", S = sex) for --epochs epochs with `python -m sqnn_cli train` in a
child process, once per thread setting and load, in turns, --repeats times:

  - settings: `1`, `2`, ... pass `--threads N`; `torch` passes torch's own default (the
    count a fresh process starts with: the physical cores), `sqnn` passes no --threads
    (sqnn's default);
  - loads: idle, and busy with --burners processes spinning `while True: pass` beside
    the child (what a CI runner or a loaded laptop looks like).

Reports the fastest and the median wall time of each (setting, load), the 1-minute load
average before each run (other work on the machine shows there), and whether each
setting's trained weights and scores are bit-identical to those of the first setting.
Prints markdown tables for benchmarks/RESULTS.md; --json also writes every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

REPOSITORY = Path(__file__).resolve().parent.parent
ADULT = REPOSITORY / "sample_data" / "adult.csv.gz"


def make_table(rows: int, directory: Path) -> Path:
    frame = pd.read_csv(ADULT)
    picked = np.random.default_rng(0).choice(len(frame), size=min(rows, len(frame)), replace=False)
    path = directory / f"adult-{rows}.csv"
    frame.iloc[np.sort(picked)].to_csv(path, index=False)
    return path


def torch_default_threads() -> int:
    """Torch's thread count in a fresh process without OMP/MKL settings."""
    env = {k: v for k, v in os.environ.items() if k not in {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}}
    done = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        env=env, capture_output=True, text=True, check=True,
    )
    return int(done.stdout)


def train_once(data: Path, out: Path, epochs: int, threads: int | None) -> float:
    command = [
        sys.executable, "-m", "sqnn_cli", "train", str(data), "-t", "income", "--positive", ">50K", "-s", "sex",
        "--epochs", str(epochs), "--out", str(out), "--overwrite",
    ]  # fmt: skip
    if threads is not None:
        command += ["--threads", str(threads)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
    return seconds


def start_burners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop(burners: list[subprocess.Popen]) -> None:
    for burner in burners:
        burner.kill()
        burner.wait()


def compare(first: Path, other: Path, data: Path) -> dict[str, Any]:
    """Whether two bundles hold bit-identical weights and give bit-identical scores."""
    from sqnn_cli.bundle import load_bundle
    from sqnn_cli.pipeline import predict

    table = pd.read_csv(data)
    a, b = load_bundle(first).model, load_bundle(other).model
    weights_a, weights_b = a.estimator.network_.state_dict(), b.estimator.network_.state_dict()
    max_weight_difference = max(float((weights_a[k] - weights_b[k]).abs().max()) for k in weights_a)
    scores_a = predict(a, table, threshold=0.5, n_samples=None, id_column=None)[0]["score"].to_numpy()
    scores_b = predict(b, table, threshold=0.5, n_samples=None, id_column=None)[0]["score"].to_numpy()
    return {
        "weights_identical": all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a),
        "max_weight_difference": max_weight_difference,
        "scores_identical": bool(np.array_equal(scores_a, scores_b)),
        "max_score_difference": float(np.abs(scores_a - scores_b).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--threads", default="1,2,torch,sqnn", help="comma-separated: counts, 'torch', 'sqnn'")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    torch_threads = torch_default_threads()
    settings: dict[str, int | None] = {}
    for name in args.threads.split(","):
        name = name.strip()
        if name == "torch":
            settings[f"torch default ({torch_threads})"] = torch_threads
        elif name == "sqnn":
            settings["sqnn default (no --threads)"] = None
        else:
            settings[name] = int(name)

    measured: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        data = make_table(args.rows, directory)
        train_once(data, directory / "warm-up", 1, 1)  # first imports and file cache
        for repeat in range(args.repeats):
            for load in ("idle", "busy"):
                burners = start_burners(args.burners) if load == "busy" else []
                try:
                    if burners:
                        time.sleep(1.0)  # let the burners reach full speed
                    for label, threads in settings.items():
                        load_average = os.getloadavg()[0]
                        out = directory / f"model-{list(settings).index(label)}-{load}"
                        seconds = train_once(data, out, args.epochs, threads)
                        measured.setdefault((label, load), []).append({"seconds": seconds, "load_average": load_average})
                        progress = f"repeat {repeat + 1}, {load}, threads {label}: {seconds:.1f} s"
                        print(f"{progress} (load average {load_average:.2f})", file=sys.stderr)
                finally:
                    stop(burners)
        labels = list(settings)
        identity = {
            label: compare(directory / "model-0-idle", directory / f"model-{i}-idle", data) for i, label in enumerate(labels)
        }

    print(
        f"\n`sqnn train` on {args.rows} Adult rows, {args.epochs} epochs; {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__}, {platform.platform()}; {args.repeats} run(s) of each, in turns; "
        f"busy = {args.burners} CPU burners beside it\n"
    )
    print(
        "| threads | idle: fastest s | idle: median s | busy: fastest s | busy: median s "
        "| load average before runs (idle / busy) |"
    )
    print("|---|---|---|---|---|---|")
    for label in labels:
        cells = []
        for load in ("idle", "busy"):
            times = [m["seconds"] for m in measured[(label, load)]]
            cells += [f"{min(times):.1f}", f"{statistics.median(times):.1f}"]
        loads = " / ".join(
            f"{statistics.median(m['load_average'] for m in measured[(label, load)]):.2f}" for load in ("idle", "busy")
        )
        print(f"| {label} | {' | '.join(cells)} | {loads} |")
    print(f"\nAgainst threads {labels[0]} (idle runs):\n")
    print("| threads | weights bit-identical | max weight difference | scores bit-identical | max score difference |")
    print("|---|---|---|---|---|")
    for label in labels:
        same = identity[label]
        print(
            f"| {label} | {'yes' if same['weights_identical'] else 'no'} | {same['max_weight_difference']:.3g} | "
            f"{'yes' if same['scores_identical'] else 'no'} | {same['max_score_difference']:.3g} |"
        )
    if args.json is not None:
        payload = {
            "rows": args.rows,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "burners": args.burners,
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "runs": {f"{label} / {load}": runs for (label, load), runs in measured.items()},
            "identity": identity,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
