"""Where a whole `sqnn train` on Adult spends its CPU, phase by phase (issue 17, item 2).

Usage (from the repository root):

    python benchmarks/train_profile.py [--old-imports] [--data sample_data/adult.csv.gz]

Runs in this fresh process what `sqnn train DATA --sensitive sex` runs, timing each phase
(CPU seconds of this process, and wall seconds): the imports (torch, pandas, scikit-learn,
sqnn's modules), reading the CSV, preparing the columns, fitting and applying the encoder,
the 30 epochs of training, choosing the threshold (scoring every training row), and saving
the bundle. `--old-imports` imports what train imported before issue 17 (scipy.stats
through scikit-learn, sklearn.metrics, sklearn.model_selection), for the profile before.
The console script defers scipy.stats (sqnn_cli/imports.py); so does this, unless
`--old-imports`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

MARKS: list[tuple[str, float, float]] = []


def mark(phase: str) -> None:
    MARKS.append((phase, time.process_time(), time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-imports", action="store_true")
    parser.add_argument("--data", default="sample_data/adult.csv.gz")
    args = parser.parse_args()
    mark("start")
    from sqnn_cli import imports

    if not args.old_imports:
        imports.defer("scipy.stats")
    import torch  # noqa: F401

    mark("import torch")
    import pandas  # noqa: F401

    mark("import pandas")
    import sklearn.base  # noqa: F401

    if args.old_imports:
        import sklearn.metrics  # noqa: F401
        import sklearn.model_selection  # noqa: F401
    mark("import scikit-learn")
    from sqnn_cli import bundle, cli, data, estimator, pipeline, preprocess  # noqa: F401
    from sqnn_cli.fitted import FittedModel

    mark("import sqnn_cli")
    frame = data.read_table(args.data)
    mark("read the CSV")
    roles = data.resolve_roles(frame, target=None, sensitive=["sex"])
    prepared = data.prepare(frame, roles, for_training=True)
    mark("prepare the columns")
    encoder = preprocess.TabularEncoder().fit(prepared.features)
    mark("fit the encoder")
    X, _ = encoder.transform(prepared.features)
    mark("encode")
    model = estimator.SQNNClassifier()
    with estimator.limit_threads(None):
        model._fit(X, prepared.y, prepared.groups, None, None)
        mark("train 30 epochs + threshold")
    with tempfile.TemporaryDirectory() as out:
        bundle.save_bundle(f"{out}/model", FittedModel(model, encoder, roles), meta={"options": {}})
    mark("save the bundle")
    print("| phase | CPU s | wall s |\n|---|---:|---:|")
    for (_, cpu0, wall0), (phase, cpu1, wall1) in zip(MARKS, MARKS[1:]):
        print(f"| {phase} | {cpu1 - cpu0:.2f} | {wall1 - wall0:.2f} |")
    print(f"| **whole** | **{MARKS[-1][1] - MARKS[0][1]:.2f}** | **{MARKS[-1][2] - MARKS[0][2]:.2f}** |")
    print(f"\n{'old imports' if args.old_imports else 'imports as the console script has them'}; "
          f"scipy.stats loaded: {type(sys.modules.get('scipy.stats')).__name__ != '_Deferred'}")


if __name__ == "__main__":
    main()
