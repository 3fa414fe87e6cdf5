"""Issue 17's first two goals, measured as a user meets them: whole processes, in turns.

Usage (from the repository root, after `pip install -e '.[test]'`; fairlearn is a test
extra):

    python benchmarks/process_speed.py [--rounds 3] [--skip-sweep] [--sweep-jobs 1]
        [--peer-threads 1] [--out benchmarks/process_speed.json]

Each round runs, one after the other, in child processes under GNU time (wall, user and
system CPU seconds, peak RSS):
  1. `sqnn train sample_data/adult.csv.gz --sensitive sex --out TMP`: the whole process
     (start-up, imports, reading, encoding, 30 epochs, the threshold, saving);
  2. fairlearn's AdversarialFairnessClassifier on the same data, encoded as
     benchmarks/peers.py encodes it, with sqnn's hidden widths (64, 64, leaky_relu), 30
     epochs, batch 256 and learning rate (benchmarks/peers.py: adversarial_classifier):
     the seconds of its `fit` alone, timed inside the child after an untimed one-epoch
     warm-up fit on 512 rows (torch's one-time start-up), on --peer-threads torch threads
     (one by default, see FAIRLEARN_FIT), so the peer is timed at its best;
  3. unless --skip-sweep, the default `sqnn sweep-gamma sample_data/adult.csv.gz
     --sensitive sex --out TMP` (11 gammas x 3 folds, 33 models; --sweep-jobs workers).
Goals (issue 17): fairlearn's fit / the sqnn train process >= 3 (median of the rounds);
the sweep / one train <= 2. Rounds alternate the commands, so a slow spell of the machine
falls on all of them; the medians are the figures, every run is in --out.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_scale import GNU_TIME, machine, sqnn_command  # noqa: E402

DATA = "sample_data/adult.csv.gz"
# One torch thread for the peer by default, as sqnn takes for matrices this small: with torch's
# default two, fairlearn's fit took 245 s instead of 10 s beside other work (load 5), its
# OpenMP threads spinning against the other processes (issue 12's oversubscription).
FAIRLEARN_FIT = """
import sys, time, torch
if int(sys.argv[2]) > 0:
    torch.set_num_threads(int(sys.argv[2]))
sys.path.insert(0, "benchmarks")
from peers import _f64, adversarial_classifier, encode, load_adult
from pathlib import Path
features, y, s = load_adult(Path(sys.argv[1]))
X = _f64(encode(features)[0])
adversarial_classifier(1.0, 1).fit(X[:512], y[:512], sensitive_features=s[:512])
started = time.perf_counter()
adversarial_classifier(1.0, 30).fit(X, y, sensitive_features=s)
print(time.perf_counter() - started)
"""


def timed(command: list[str]) -> dict[str, Any]:
    """Wall, user and system seconds and peak RSS (MiB) of a child, with its stdout."""
    with tempfile.NamedTemporaryFile() as report:
        done = subprocess.run(
            [GNU_TIME, "-f", "%e %U %S %M", "-o", report.name, *command],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
        wall, user, system, peak_kib = Path(report.name).read_text().split()[-4:]
    return {
        "wall_s": float(wall),
        "cpu_s": float(user) + float(system),
        "peak_rss_mib": int(peak_kib) / 1024,
        "stdout": done.stdout,
    }


def one_round(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    train = timed([*sqnn_command(), "train", DATA, "--sensitive", "sex", "--out", str(workdir / "model"), "--overwrite"])
    fairlearn = timed([sys.executable, "-c", FAIRLEARN_FIT, DATA, str(args.peer_threads)])
    fairlearn["fit_s"] = float(fairlearn.pop("stdout").split()[-1])
    result = {"train": train, "fairlearn": fairlearn}
    if not args.skip_sweep:
        # A fresh directory each round: a finished sweep's directory would only be resumed.
        shutil.rmtree(workdir / "sweep", ignore_errors=True)
        sweep = [*sqnn_command(), "sweep-gamma", DATA, "--sensitive", "sex", "--out", str(workdir / "sweep")]
        result["sweep"] = timed([*sweep, "--n-jobs", str(args.sweep_jobs)])
    for run in result.values():
        run.pop("stdout", None)
    return result


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def median(what: str, figure: str) -> float:
        return statistics.median(r[what][figure] for r in rounds)

    out = {
        "train_wall_s": median("train", "wall_s"),
        "train_cpu_s": median("train", "cpu_s"),
        "fairlearn_fit_s": median("fairlearn", "fit_s"),
    }
    out["fairlearn_fit_over_train_process"] = out["fairlearn_fit_s"] / out["train_wall_s"]
    if "sweep" in rounds[0]:
        out["sweep_wall_s"] = median("sweep", "wall_s")
        out["sweep_cpu_s"] = median("sweep", "cpu_s")
        out["sweep_over_train"] = out["sweep_wall_s"] / out["train_wall_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--sweep-jobs", type=int, default=1)
    parser.add_argument("--peer-threads", type=int, default=1, help="torch threads for fairlearn's fit; 0: torch's default")
    parser.add_argument("--out", default="benchmarks/process_speed.json")
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as workdir:
        for number in range(1, args.rounds + 1):
            rounds.append(one_round(Path(workdir), args))
            print(f"round {number}: {json.dumps(rounds[-1])}", file=sys.stderr)
    with open("/proc/loadavg") as load:
        load_average = load.read().split()[:3]
    result = {"command": shlex.join([sys.executable, *sys.argv]), "machine": machine(), "load_average_after": load_average,
              "rounds": rounds, "summary": summary(rounds)}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    s = result["summary"]
    print("| figure (median of rounds) | value |\n|---|---:|")
    for key, value in s.items():
        print(f"| {key} | {value:.2f} |")
    print(f"\nload average after: {' '.join(load_average)}; every run in {args.out}")


if __name__ == "__main__":
    main()
