"""Scoring tables beyond memory: `sqnn predict`'s wall time and peak RSS by table size.

Usage (from the repository root):

    python benchmarks/scale.py [--rows 1000000,3000000,10000000] [--train-rows 100000]
        [--epochs 3] [--whole-rows 1000000,3000000] [--evaluate] [--workdir /tmp/sqnn-scale]
        [--keep] [--out benchmarks/scale.json]

What it does:
  1. writes synthetic CSVs of --rows rows under --workdir (never in the repository): Adult's
     columns and dtypes, as benchmarks/speed_scale.py synthesizes them (`synthesize`), one
     block of a million rows at a time, each block with every column shuffled on its own
     (numpy default_rng(block)), so rows differ and memory holds one block;
  2. trains a small model, `sqnn train` on the first --train-rows rows (S = sex, target
     income, --epochs epochs);
  3. runs `sqnn predict MODEL TABLE --out SCORES.csv` on each table in a child process
     under GNU time: wall seconds and peak RSS (%M). For --whole-rows sizes it also runs
     the whole-table path predict had before streaming (read_table, pipeline.predict,
     write_table) in a child, and checks that both wrote the same bytes;
  4. with --evaluate, `sqnn evaluate MODEL TABLE --json` too (and, for --whole-rows sizes,
     pipeline.evaluate of the table read whole), timed and measured alike;
  5. a child that only imports what predict imports gives the RSS floor.
Prints a markdown table and writes every number to --out (JSON). Delete --workdir after
(it is removed unless --keep); a 10M-row table is about 1.1 GB, its scores as much again.

With --train it measures streamed training instead of scoring:

    python benchmarks/scale.py --train [--rows ...] [--epochs 2] [--format csv|parquet]
        [--out benchmarks/scale.json]

runs `sqnn train TABLE --stream -t income -s sex --positive '>50K' --epochs E` on each
table (written as Parquet for --format parquet) under GNU time: wall seconds and peak RSS;
from the bundle's meta.json, the seconds of each epoch and of training as a whole (the
epochs and the threshold's scoring pass); the rest of the wall time is starting up,
reading the table and encoding it into the temporary training cache. Seconds per epoch
per 100k rows is the linearity figure: flat across sizes means time linear in rows. The
temporary cache needs about 0.4 KB a row (4.3 GB at 10M rows) in TMPDIR. The figures are
added to --out under `train_streamed.<format>`; what else the file holds stays.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_scale import MIB, POSITIVE, SENSITIVE, TARGET, bundle_history, run_child, sqnn_command, synthesize

from sqnn_cli.jsonable import plain

BLOCK_ROWS = 1_000_000
PREDICT_IMPORTS = "import sqnn_cli.cli, sqnn_cli.streaming, sqnn_cli.estimator, pandas, torch"
WHOLE_TABLE_EVALUATE = (
    "import sys; from sqnn_cli import pipeline; from sqnn_cli.bundle import load_bundle; "
    "from sqnn_cli.data import read_table; pipeline.evaluate(load_bundle(sys.argv[1]).model, read_table(sys.argv[2]))"
)
WHOLE_TABLE_PREDICT = (
    "import sys; from sqnn_cli import pipeline; from sqnn_cli.bundle import load_bundle; "
    "from sqnn_cli.data import read_table, write_table; "
    "scored, _ = pipeline.predict(load_bundle(sys.argv[1]).model, read_table(sys.argv[2])); "
    "write_table(scored, sys.argv[3], overwrite=True)"
)


def write_table_of(adult: pd.DataFrame, rows: int, path: Path) -> float:
    """Write ``rows`` synthetic rows to ``path`` a block at a time; the seconds it took."""
    started = time.perf_counter()
    base = synthesize(adult, min(rows, BLOCK_ROWS))
    with open(path, "w", newline="") as handle:
        for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
            size = min(BLOCK_ROWS, rows - start)
            rng = np.random.default_rng(block)
            shuffled = pd.DataFrame({name: rng.permutation(base[name].to_numpy())[:size] for name in base.columns})
            shuffled.to_csv(handle, index=False, header=block == 0)
    return time.perf_counter() - started


def predict_runs(args: argparse.Namespace, workdir: Path, bundle: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    results = []
    for rows in args.rows:
        table = workdir / f"synthetic-{rows}.csv"
        scores = workdir / f"scores-{rows}.csv"
        command = [*sqnn_command(), "predict", str(bundle), str(table), "--out", str(scores), "--overwrite"]
        streamed = run_child(command, env)
        result = {"rows": rows, "command": shlex.join(command), "csv_mib": table.stat().st_size / MIB, **streamed}
        result["rows_per_s"] = rows / streamed["wall_s"]
        if rows in args.whole_rows:
            whole_scores = workdir / f"scores-{rows}-whole.csv"
            whole_command = [sys.executable, "-c", WHOLE_TABLE_PREDICT, str(bundle), str(table), str(whole_scores)]
            whole = run_child(whole_command, env)
            result["whole_table"] = {"command": shlex.join(whole_command), **whole}
            result["same_bytes_as_whole_table"] = filecmp.cmp(scores, whole_scores, shallow=False)
            whole_scores.unlink()
        scores.unlink()
        if args.evaluate:
            result["evaluate"] = evaluate_run(rows in args.whole_rows, bundle, table, env)
        results.append(result)
        print_row(result)
    return results


def evaluate_run(whole: bool, bundle: Path, table: Path, env: dict[str, str]) -> dict[str, Any]:
    command = [*sqnn_command(), "evaluate", str(bundle), str(table), "--json"]
    result = {"command": shlex.join(command), **run_child(command, env)}
    if whole:
        whole_command = [sys.executable, "-c", WHOLE_TABLE_EVALUATE, str(bundle), str(table)]
        result["whole_table"] = {"command": shlex.join(whole_command), **run_child(whole_command, env)}
    return result


def print_row(result: dict[str, Any]) -> None:
    """The markdown rows of one size: predict, and evaluate where it was measured."""
    same = {True: "yes", False: "NO", None: "-"}[result.get("same_bytes_as_whole_table")]
    for command in ("predict", "evaluate"):
        run = result if command == "predict" else result.get(command)
        if run is None:
            continue
        whole = run.get("whole_table")
        before = f"{whole['wall_s']:.1f} | {whole['peak_rss_mib']:.0f}" if whole else "- | -"
        rate = result["rows"] / run["wall_s"]
        print(
            f"| {result['rows']:,} | {result['csv_mib']:.0f} | {command} | {run['wall_s']:.1f} | {rate:,.0f} "
            f"| {run['peak_rss_mib']:.0f} | {before} | {same if command == 'predict' else '-'} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="sample_data/adult.csv.gz")
    parser.add_argument("--rows", default="1000000,3000000,10000000")
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--whole-rows", default="1000000,3000000", help="sizes also scored the whole-table way")
    parser.add_argument("--evaluate", action="store_true", help="measure `sqnn evaluate` too")
    parser.add_argument("--workdir", default="/tmp/sqnn-scale")
    parser.add_argument("--keep", action="store_true", help="keep --workdir (the tables) afterwards")
    parser.add_argument("--out", default="benchmarks/scale.json")
    parser.add_argument("--train", action="store_true", help="measure streamed `sqnn train` instead of scoring")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv", help="--train: the tables' format")
    args = parser.parse_args()
    args.rows = sorted(int(part) for part in args.rows.split(","))
    args.whole_rows = {int(part) for part in args.whole_rows.split(",") if part}
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    adult = pd.read_csv(args.data)
    if args.train:
        return train_main(args, adult, workdir, env)

    generated = {rows: write_table_of(adult, rows, workdir / f"synthetic-{rows}.csv") for rows in args.rows}
    training = workdir / "train.csv"
    pd.read_csv(workdir / f"synthetic-{args.rows[0]}.csv", nrows=args.train_rows).to_csv(training, index=False)
    bundle = workdir / "model"
    train = [*sqnn_command(), "train", str(training), "--sensitive", SENSITIVE, "--target", TARGET,
             "--positive", POSITIVE, "--epochs", str(args.epochs), "--out", str(bundle), "--overwrite"]  # fmt: skip
    trained = run_child(train, env)
    floor = run_child([sys.executable, "-c", PREDICT_IMPORTS], env)
    print(f"train: {shlex.join(train)}: {trained['wall_s']:.1f} s; imports alone: {floor['peak_rss_mib']:.0f} MiB")
    print("| rows | CSV MiB | command | s | rows/s | peak RSS MiB | whole table: s | whole table: peak RSS MiB | same bytes |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---|")
    results = predict_runs(args, workdir, bundle, env)
    for result in results:
        result["generated_s"] = generated[result["rows"]]
    if not args.keep:
        shutil.rmtree(workdir)
    report = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "train": {"command": shlex.join(train), **trained},
        "imports_command": shlex.join([sys.executable, "-c", PREDICT_IMPORTS]),
        "imports_peak_rss_mib": floor["peak_rss_mib"],
        "results": results,
    }
    Path(args.out).write_text(json.dumps(plain(report), indent=2, allow_nan=False) + "\n")
    print(f"wrote {args.out}")


def train_main(args: argparse.Namespace, adult: pd.DataFrame, workdir: Path, env: dict[str, str]) -> None:
    """--train: streamed `sqnn train` on each table, one size after another."""
    floor = run_child([sys.executable, "-c", PREDICT_IMPORTS], env)
    print(f"imports alone: {floor['peak_rss_mib']:.0f} MiB; load average {os.getloadavg()[0]:.1f} at the start")
    print("| rows | file MiB | wall s | reading + encoding s | s/epoch | s/epoch per 100k rows | training s | peak RSS MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = []
    for rows in args.rows:
        table = workdir / f"synthetic-{rows}.csv"
        generated = write_table_of(adult, rows, table)
        if args.format == "parquet":
            table = csv_as_parquet(table)
        result = {"rows": rows, "format": args.format, "file_mib": table.stat().st_size / MIB, "generated_s": generated}
        result |= train_run(args, workdir, table, env)
        results.append(result)
        print(
            f"| {rows:,} | {result['file_mib']:.0f} | {result['wall_s']:.1f} | {result['reading_encoding_s']:.1f} "
            f"| {result['mean_epoch_s']:.1f} | {result['epoch_s_per_100k_rows']:.2f} | {result['training_s']:.1f} "
            f"| {result['peak_rss_mib']:.0f} |",
            flush=True,
        )
        table.unlink()
    if not args.keep:
        shutil.rmtree(workdir)
    measured = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "imports_peak_rss_mib": floor["peak_rss_mib"],
        "train_results": results,
    }
    # The scoring figures of an earlier run stay: these go beside them, one key per format.
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report.setdefault("train_streamed", {})[args.format] = measured
    out.write_text(json.dumps(plain(report), indent=2, allow_nan=False) + "\n")
    print(f"wrote {args.out} (train_streamed.{args.format})")


def train_run(args: argparse.Namespace, workdir: Path, table: Path, env: dict[str, str]) -> dict[str, Any]:
    """One streamed `sqnn train`: GNU time's figures and the bundle's, split into phases."""
    bundle = workdir / "model-streamed"
    command = [*sqnn_command(), "train", str(table), "--stream", "--sensitive", SENSITIVE, "--target", TARGET,
               "--positive", POSITIVE, "--epochs", str(args.epochs), "--out", str(bundle), "--overwrite"]  # fmt: skip
    load = os.getloadavg()[0]
    run = run_child(command, env)
    history = bundle_history(bundle)
    mean_epoch = sum(history["epoch_s"]) / len(history["epoch_s"])
    return {
        "command": shlex.join(command),
        "load_average_1min_before": load,
        **run,
        **history,
        "reading_encoding_s": run["wall_s"] - history["training_s"],
        "mean_epoch_s": mean_epoch,
        "epoch_s_per_100k_rows": mean_epoch / (history["rows_trained"] / 100_000),
    }


def csv_as_parquet(table: Path) -> Path:
    """The CSV ``table`` rewritten as Parquet (a block of rows at a time), the CSV deleted."""
    import pyarrow as arrow
    import pyarrow.parquet as parquet

    path = table.with_suffix(".parquet")
    writer = None
    for block in pd.read_csv(table, chunksize=BLOCK_ROWS):
        batch = arrow.Table.from_pandas(block, preserve_index=False)
        writer = writer or parquet.ParquetWriter(path, batch.schema)
        writer.write_table(batch.cast(writer.schema))
    writer.close()
    table.unlink()
    return path


if __name__ == "__main__":
    main()
