"""Bad input through the real CLI: one `error:` line on stderr, exit code 2, no traceback.

One tiny bundle is trained per module and copied wherever a test needs to damage it,
so the whole file stays within a few seconds.
"""

from __future__ import annotations

import collections
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from sqnn_cli import limits
from sqnn_cli.cli import app

from .tampering import replace_file, torch_bytes, write_meta

TINY = ["--epochs", "1", "--hidden", "8", "--code-size", "4", "--samples", "2"]
runner = CliRunner()


class Payload:
    """Any non-tensor object: what a malicious weights.pt would smuggle in."""

    def __init__(self) -> None:
        self.command = "echo owned"


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_ok(result) -> None:
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def assert_input_error(result, *fragments: str) -> str:
    """The contract for bad input; returns the error line for further checks."""
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything
    assert result.exit_code == 2, everything
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "error:" not in result.stdout
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def synthetic(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    age = rng.integers(18, 80, n)
    hours = np.round(rng.normal(40, 8, n), 1)
    colour = rng.choice(["red", "green", "blue"], n)
    logit = 0.05 * (age - 45) + 0.8 * (sex == "M") + 0.1 * (hours - 40)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "hours": hours, "colour": colour, "sex": sex, "y": y})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    synthetic().to_csv(root / "data.csv", index=False)
    result = invoke("train", root / "data.csv", "-s", "sex", "--out", root / "model", *TINY)
    assert_ok(result)
    return root


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def train(data_path: Path, out: Path, *extra: object):
    return invoke("train", data_path, "--out", out, *TINY, *extra)


# -- train: the data file ---------------------------------------------------------------
def test_missing_data_file(tmp_path):
    result = train(tmp_path / "nope.csv", tmp_path / "m", "-s", "sex")
    assert_input_error(result, "nope.csv", "does not exist")
    assert not (tmp_path / "m").exists()


def test_directory_as_data_file(tmp_path):
    assert_input_error(train(tmp_path, tmp_path / "m", "-s", "sex"), "is not a file")


@pytest.mark.parametrize(
    "name, content",
    [
        ("zero.csv", b""),
        ("header.csv", b"age,sex,y\n"),
        ("zero.csv.gz", gzip.compress(b"")),
        ("header.csv.gz", gzip.compress(b"age,sex,y\n")),
    ],
)
def test_empty_data_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert_input_error(train(path, tmp_path / "m", "-s", "sex"), name, "has no rows")


def test_gzipped_csv_trains_and_the_default_target_is_announced(tmp_path):
    path = tmp_path / "data.csv.gz"
    synthetic().to_csv(path, index=False, compression="gzip")
    result = train(path, tmp_path / "m", "-s", "sex")
    assert_ok(result)
    assert "target: 'y' (the last column; choose with --target)" in result.stderr
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"meta.json", "preprocess.json", "weights.pt"}


# -- train: columns -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, column",
    [
        (["--target", "label", "-s", "sex"], "'label' (given as --target)"),
        (["-s", "gender"], "'gender' (given as --sensitive)"),
        (["-s", "sex", "-s", "race"], "'race' (given as --sensitive)"),
        (["-s", "sex", "--drop", "id"], "'id' (given as --drop)"),
    ],
)
def test_missing_column(data, tmp_path, options, column):
    """The refusal names the column and the option that named it."""
    line = assert_input_error(train(data, tmp_path / "m", *options), f"column {column} is not in the data")
    assert "age, hours, colour, sex, y" in line


def test_target_with_three_values_lists_them(tmp_path):
    frame = synthetic()
    frame["grade"] = np.resize(["A", "B", "C"], len(frame))
    path = write_csv(tmp_path / "graded.csv", frame.drop(columns="y"))
    line = assert_input_error(train(path, tmp_path / "m", "-s", "sex"), "target 'grade' has 3 distinct values", "--positive")
    for value in ("'A'", "'B'", "'C'"):
        assert value in line


def test_positive_value_not_in_the_target(data, tmp_path):
    assert_input_error(
        train(data, tmp_path / "m", "-s", "sex", "--target", "y", "--positive", "yes"),
        "--positive 'yes'",
        "target 'y'",
        "'0', '1'",
    )


def test_single_sensitive_group(tmp_path):
    frame = synthetic().assign(sex="F")
    path = write_csv(tmp_path / "one.csv", frame)
    assert_input_error(train(path, tmp_path / "m", "-s", "sex"), "'sex'", "single group (F)")


def test_entirely_empty_column_is_refused_and_drop_is_the_way_out(tmp_path):
    frame = synthetic().assign(notes=np.nan)
    frame = frame[["age", "hours", "colour", "notes", "sex", "y"]]
    path = write_csv(tmp_path / "notes.csv", frame)
    assert_input_error(train(path, tmp_path / "m", "-s", "sex"), "column 'notes' is entirely empty", "--drop notes")
    assert_ok(train(path, tmp_path / "m", "-s", "sex", "--drop", "notes"))


def test_entirely_empty_target(tmp_path):
    path = write_csv(tmp_path / "no-y.csv", synthetic().assign(y=np.nan))
    assert_input_error(train(path, tmp_path / "m", "-s", "sex"), "target 'y' is entirely empty")


def test_missing_target_and_sensitive_rows_are_counted_and_located(tmp_path):
    frame = synthetic().astype({"y": float})
    frame.loc[[3, 10], "y"] = np.nan
    frame.loc[[5], "sex"] = np.nan
    path = write_csv(tmp_path / "gaps.csv", frame)
    # Row 3 of the frame is line 5 of the file: header, then rows from 0.
    assert_input_error(train(path, tmp_path / "m", "-s", "sex"), "2 row(s)", "target 'y'", "CSV lines 5, 12", "--drop-missing")
    result = train(path, tmp_path / "m", "-s", "sex", "--drop-missing")
    assert_ok(result)
    assert "3 row(s) with a missing target or sensitive value were left out" in result.stderr
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["data"]["rows_dropped_missing"] == 3


def test_numeric_sensitive_with_many_values_suggests_bins(data, tmp_path):
    assert_input_error(train(data, tmp_path / "m", "-s", "age"), "sensitive column 'age'", "--sensitive-bins age=")
    result = train(data, tmp_path / "m", "-s", "age", "-s", "sex", "--sensitive-bins", "age=30,60")
    assert_ok(result)
    roles = json.loads((tmp_path / "m" / "meta.json").read_text())["roles"]
    assert roles["sensitive"] == ["age", "sex"] and roles["sensitive_bins"] == {"age": [30.0, 60.0]}


@pytest.mark.parametrize(
    "options, fragments",
    [
        (["-s", "age", "--sensitive-bins", "age"], ["--sensitive-bins expects", "'age'"]),
        (["-s", "age", "--sensitive-bins", "age=young"], ["--sensitive-bins expects", "'age=young'"]),
        (["-s", "sex", "--sensitive-bins", "age=30"], ["'age', which is not a --sensitive column"]),
        (["-s", "y"], ["column 'y' cannot be both the target and sensitive"]),
        (["-s", "sex", "--drop", "sex"], ["column 'sex' cannot be both sensitive and dropped"]),
        (["-s", "sex", "--hidden", "8,x"], ["--hidden expects"]),
        (["-s", "sex", "--test-size", "1.5"], ["--test-size must be between 0 and 1"]),
    ],
)
def test_contradictory_options(data, tmp_path, options, fragments):
    assert_input_error(invoke("train", data, "--out", tmp_path / "m", *options), *fragments)


def test_missing_sensitive_option_is_a_usage_error(data, tmp_path):
    result = train(data, tmp_path / "m")
    assert result.exit_code == 2
    assert "--sensitive" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# -- train: the output directory ------------------------------------------------------------
def test_existing_output_directory_needs_overwrite(data, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_input_error(train(data, out, "-s", "sex"), f"output directory '{out}' already exists", "--overwrite")
    # --overwrite replaces a bundle, never a directory of someone's own files.
    assert_input_error(train(data, out, "-s", "sex", "--overwrite"), "not an sqnn model bundle")
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    assert_ok(train(data, out, "-s", "sex"))
    assert_input_error(train(data, out, "-s", "sex"), "already exists")
    assert_ok(train(data, out, "-s", "sex", "--overwrite"))
    assert_ok(invoke("evaluate", out, data))


# -- evaluate / predict: the data -------------------------------------------------------------
def test_a_good_bundle_evaluates(model, data):
    assert_ok(invoke("evaluate", model, data))


def test_non_numeric_value_in_a_numeric_column(model, tmp_path):
    frame = synthetic(20, seed=1).astype({"age": object})
    frame.loc[7, "age"] = "forty"
    path = write_csv(tmp_path / "bad.csv", frame)
    fragments = ("column 'age' must be numeric", "'forty'", "CSV line 9")
    assert_input_error(invoke("evaluate", model, path), *fragments)
    assert_input_error(invoke("predict", model, path, "--out", tmp_path / "s.csv"), *fragments)
    assert not (tmp_path / "s.csv").exists()


def test_non_numeric_line_number_counts_rows_left_out(model, tmp_path):
    frame = synthetic(20, seed=1).astype({"age": object, "y": float})
    frame.loc[2, "y"] = np.nan
    frame.loc[7, "age"] = "forty"
    path = write_csv(tmp_path / "bad.csv", frame)
    assert_input_error(invoke("evaluate", model, path, "--drop-missing"), "'forty'", "CSV line 9")


def test_missing_feature_column_at_evaluation(model, tmp_path):
    path = write_csv(tmp_path / "short.csv", synthetic(40).drop(columns="colour"))
    assert_input_error(invoke("evaluate", model, path), "column 'colour' is not in the data")
    assert_input_error(invoke("predict", model, path, "--out", tmp_path / "s.csv"), "column 'colour'")


def test_single_group_at_evaluation(model, tmp_path):
    path = write_csv(tmp_path / "one.csv", synthetic(40).assign(sex="M"))
    assert_input_error(invoke("evaluate", model, path), "single group (M)")


def test_unseen_category_is_counted_not_fatal(model, tmp_path):
    frame = synthetic(60, seed=2)
    frame.loc[:4, "colour"] = "purple"
    path = write_csv(tmp_path / "new.csv", frame)
    result = invoke("evaluate", model, path, "--json")
    assert_ok(result)
    assert json.loads(result.stdout)["unseen_categories"] == {"colour": 5}


def test_missing_data_file_at_evaluation(model, tmp_path):
    assert_input_error(invoke("evaluate", model, tmp_path / "gone.csv"), "gone.csv", "does not exist")


# -- predict: the output file --------------------------------------------------------------
def test_predict_refuses_to_replace_an_existing_file_without_overwrite(model, tmp_path):
    features = write_csv(tmp_path / "features.csv", synthetic(30, seed=3).drop(columns=["y", "sex"]))
    out = tmp_path / "scores.csv"
    out.write_text("precious\n")
    assert_input_error(invoke("predict", model, features, "--out", out), f"'{out}' already exists", "--overwrite")
    assert out.read_text() == "precious\n"
    assert_ok(invoke("predict", model, features, "--out", out, "--overwrite"))
    scored = pd.read_csv(out)
    assert len(scored) == 30 and {"score", "prediction"} <= set(scored.columns)


# -- model directories that are not bundles ----------------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_nonexistent_model_directory(command, data, tmp_path):
    extra = ["--out", tmp_path / "s.csv"] if command == "predict" else []
    result = invoke(command, tmp_path / "no-model", data, *extra)
    assert_input_error(result, "model directory", "no-model", "does not exist")


def test_empty_model_directory(data, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_input_error(invoke("evaluate", tmp_path / "empty", data), "not an sqnn model bundle", "meta.json is missing")


def test_file_instead_of_model_directory(data):
    assert_input_error(invoke("evaluate", data, data), "data.csv", "not an sqnn model bundle", "not a directory")


@pytest.mark.parametrize("missing", ["meta.json", "preprocess.json", "weights.pt"])
def test_bundle_with_a_file_missing(damaged, data, missing):
    (damaged / missing).unlink()
    assert_input_error(invoke("evaluate", damaged, data), f"{missing} is missing")


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe\x00garbage", b"", b"[1, 2]", b'{"schema_version": 1}', b"null"],
    ids=["syntax", "binary", "empty", "list", "keys-missing", "null"],
)
def test_garbage_meta_json(damaged, data, content):
    (damaged / "meta.json").write_bytes(content)
    assert_input_error(invoke("evaluate", damaged, data), "not an sqnn model bundle", "meta.json")


def test_hand_edited_meta_json_fails_its_checksum(damaged, data):
    meta = json.loads((damaged / "meta.json").read_text())
    meta["roles"]["positive_label"] = "0"
    (damaged / "meta.json").write_text(json.dumps(meta))
    assert_input_error(invoke("evaluate", damaged, data), "modified after training", "meta.json")


def test_newer_schema_version(damaged, data):
    meta = json.loads((damaged / "meta.json").read_text())
    meta["schema_version"] = 99
    write_meta(damaged, meta)
    assert_input_error(invoke("evaluate", damaged, data), "schema version 99")


# -- tampered bundles ----------------------------------------------------------------------------
def test_edited_preprocess_json_fails_the_checksum(damaged, data):
    path = damaged / "preprocess.json"
    path.write_text(path.read_text().replace('"red"', '"crimson"'))
    assert_input_error(invoke("evaluate", damaged, data), "modified after training", "preprocess.json")


def test_replaced_weights_fail_the_checksum(damaged, data):
    weights = torch.load(damaged / "weights.pt", weights_only=True)
    (damaged / "weights.pt").write_bytes(torch_bytes({k: torch.zeros_like(v) for k, v in weights.items()}))
    assert_input_error(invoke("evaluate", damaged, data), "modified after training", "weights.pt")


@pytest.mark.parametrize(
    "smuggled",
    [lambda: collections.OrderedDict(a=1), lambda: Payload(), lambda: [1, 2]],
    ids=["ordered-dict", "custom-class", "list"],
)
def test_weights_with_non_tensor_objects_are_refused_even_with_a_matching_checksum(damaged, data, smuggled):
    weights = torch.load(damaged / "weights.pt", weights_only=True)
    replace_file(damaged, "weights.pt", torch_bytes({**weights, "extra": smuggled()}))
    assert_input_error(invoke("evaluate", damaged, data), "weights.pt holds more than plain tensors")


def test_weights_of_the_wrong_shape_are_refused(damaged, data):
    weights = torch.load(damaged / "weights.pt", weights_only=True)
    replace_file(damaged, "weights.pt", torch_bytes({k: v[..., :1].clone() for k, v in weights.items()}))
    assert_input_error(invoke("evaluate", damaged, data), "not an sqnn model bundle")


def test_malformed_preprocess_json_with_a_matching_checksum(damaged, data):
    state = json.loads((damaged / "preprocess.json").read_text())
    state["columns"][0]["scale"] = "wide"
    replace_file(damaged, "preprocess.json", json.dumps(state).encode())
    assert_input_error(invoke("evaluate", damaged, data), "preprocess.json is not a valid sqnn encoder")


@pytest.mark.parametrize("files", [[], "x", None], ids=["list", "text", "null"])
def test_meta_json_files_entry_of_the_wrong_type(damaged, data, files):
    meta = json.loads((damaged / "meta.json").read_text())
    meta["files"] = files
    write_meta(damaged, meta)
    assert_input_error(invoke("evaluate", damaged, data), "not an sqnn model bundle")


@pytest.mark.parametrize(
    "edit",
    [lambda roles: roles.update(features=["hours"]), lambda roles: roles.update(sensitive=[])],
    ids=["features", "no-sensitive"],
)
def test_meta_json_roles_inconsistent_with_the_encoder(damaged, data, edit):
    meta = json.loads((damaged / "meta.json").read_text())
    edit(meta["roles"])
    write_meta(damaged, meta)
    assert_input_error(invoke("evaluate", damaged, data), "not an sqnn model bundle")


def test_refused_weights_message_is_plain_text(damaged, data):
    weights = torch.load(damaged / "weights.pt", weights_only=True)
    replace_file(damaged, "weights.pt", torch_bytes({**weights, "extra": Payload()}))
    line = assert_input_error(invoke("evaluate", damaged, data), "weights.pt holds more than plain tensors")
    assert "\x1b" not in line


# -- found in review: each of these once ended in exit 3 or left files behind ----------------
def _small_csv(tmp_path: Path, *, missing_target: bool = False) -> Path:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=60), "s": rng.choice(["a", "b"], 60), "y": rng.integers(0, 2, 60)})
    if missing_target:
        table["y"] = table["y"].astype(float)
        table.loc[[3, 7], "y"] = np.nan
    path = tmp_path / ("gaps.csv" if missing_target else "small.csv")
    table.to_csv(path, index=False)
    return path


def test_usage_errors_from_the_console_script_are_one_line(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "sqnn_cli", "train", str(_small_csv(tmp_path)), "-s", "s", "--gamma", "1.5"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error:") and "--gamma" in done.stderr


@pytest.mark.parametrize("option", [["--lr", "inf"], ["--temperature", "inf"], ["--hidden", ","]])
def test_unusable_training_numbers_are_refused(tmp_path, option):
    result = runner.invoke(app, ["train", str(_small_csv(tmp_path)), "-s", "s", "--out", str(tmp_path / "m"), *option])
    assert result.exit_code == 2, result.output


def test_diverging_training_is_a_clear_error(tmp_path, monkeypatch):
    # Weights poisoned after the first step diverge on any CPU; a huge --lr only overflows
    # where rounding happens to take it there.
    from sqnn_cli.training import FlatAdam

    real_step = FlatAdam.step

    def step(self):
        real_step(self)
        self.values.fill_(float("nan"))

    monkeypatch.setattr(FlatAdam, "step", step)
    result = runner.invoke(app, ["train", str(_small_csv(tmp_path)), "-s", "s", "--out", str(tmp_path / "m"), "--epochs", "5"])
    line = assert_input_error(result, "training diverged at epoch 2", "--lr")  # 60 rows: one step an epoch
    assert not (tmp_path / "m").exists(), line


def test_split_refuses_gaps_in_the_stratify_column(tmp_path):
    result = runner.invoke(
        app, ["split", str(_small_csv(tmp_path, missing_target=True)), "--train", str(tmp_path / "a.csv"),
              "--test", str(tmp_path / "b.csv")],
    )  # fmt: skip
    assert result.exit_code == 2 and "2 empty value(s)" in result.stderr and "CSV lines 5, 9" in result.stderr


def test_split_checks_both_outputs_before_writing_either(tmp_path):
    same = tmp_path / "out.csv"
    result = runner.invoke(app, ["split", str(_small_csv(tmp_path)), "--train", str(same), "--test", str(same)])
    assert result.exit_code == 2 and not same.exists()
    (tmp_path / "adir").mkdir()
    result = runner.invoke(
        app, ["split", str(_small_csv(tmp_path)), "--train", str(same), "--test", str(tmp_path / "adir"), "--overwrite"]
    )
    assert result.exit_code == 2 and not same.exists()


def test_a_refused_sweep_leaves_no_directory_behind(tmp_path):
    out = tmp_path / "sweep"
    gaps = _small_csv(tmp_path, missing_target=True)
    result = runner.invoke(app, ["sweep-gamma", str(gaps), "-s", "s", "--out", str(out), "--gammas", "0"])
    assert result.exit_code == 2 and "--drop-missing" in result.stderr
    assert not out.exists()
    result = runner.invoke(app, ["sweep-gamma", str(gaps), "-s", "s", "--out", str(out), "--gammas", ","])
    assert result.exit_code == 2 and "--gammas" in result.stderr


# -- size-like options: each has an upper bound, refused (exit 2) before anything is read --------
ABOVE = {name: str(getattr(limits, name) + 1) for name in dir(limits) if name.startswith("MAX_")}
BOUNDED_TRAINING = [
    (["--code-size", ABOVE["MAX_CODE_SIZE"]], "--code-size"),
    (["--code-size", "1e9"], "--code-size"),
    (["--hidden", ABOVE["MAX_HIDDEN_WIDTH"]], "--hidden"),
    (["--hidden", "1e9"], "--hidden"),
    (["--hidden", ",".join(["8"] * (limits.MAX_HIDDEN_LAYERS + 1))], "--hidden"),
    (["--samples", ABOVE["MAX_SAMPLES"]], "--samples"),
    (["--epochs", ABOVE["MAX_EPOCHS"]], "--epochs"),
    (["--batch-size", ABOVE["MAX_BATCH_SIZE"]], "--batch-size"),
    (["--method", "joint", "--joint-samples", ABOVE["MAX_JOINT_SAMPLES"]], "--joint-samples"),
    (["--seed", "-1"], "--seed"),
    (["--seed", ABOVE["MAX_SEED"]], "--seed"),
    (["--seed", str(2**64)], "--seed"),
]


@pytest.fixture
def nothing_is_read(monkeypatch):
    """Reading a table or a bundle fails the test (as exit 3): refusal must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("read before the options were judged")

    monkeypatch.setattr("sqnn_cli.data.read_table", forbidden)
    monkeypatch.setattr("sqnn_cli.data.read_table_chunks", forbidden)
    monkeypatch.setattr("sqnn_cli.bundle.load_bundle", forbidden)


def assert_refused_option(result, option: str) -> None:
    everything = result.stdout + result.stderr
    assert result.exit_code == 2, everything
    assert "Traceback" not in everything and option in result.stderr, everything


@pytest.mark.parametrize(
    "options, option",
    [*BOUNDED_TRAINING, (["--threads", "0"], "--threads"), (["--threads", ABOVE["MAX_THREADS"]], "--threads")],
    ids=str,
)
def test_train_refuses_a_size_beyond_its_bound(data, tmp_path, nothing_is_read, options, option):
    assert_refused_option(invoke("train", data, "-s", "sex", "--out", tmp_path / "m", *options), option)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "options, option",
    [
        *BOUNDED_TRAINING,
        (["--steps", ABOVE["MAX_SWEEP_STEPS"]], "--steps"),
        (["--folds", ABOVE["MAX_FOLDS"]], "--folds"),
        (["--n-jobs", "0"], "--n-jobs"),
        (["--n-jobs", ABOVE["MAX_N_JOBS"]], "--n-jobs"),
        (["--audit", "--trees", ABOVE["MAX_TREES"]], "--trees"),
    ],
    ids=str,
)
def test_sweep_refuses_a_size_beyond_its_bound(data, tmp_path, nothing_is_read, options, option):
    assert_refused_option(invoke("sweep-gamma", data, "-s", "sex", "--out", tmp_path / "sweep", *options), option)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "command, options, option",
    [
        *[
            (command, ["--samples", ABOVE["MAX_SAMPLES"]], "--samples")
            for command in ("evaluate", "predict", "audit-representation")
        ],
        *[
            (command, ["--threads", value], "--threads")
            for command in ("evaluate", "predict", "audit-representation", "prune")
            for value in ("0", ABOVE["MAX_THREADS"])
        ],
        ("audit-representation", ["--draws", ABOVE["MAX_AUDIT_DRAWS"]], "--draws"),
        ("audit-representation", ["--draws", "1e9"], "--draws"),
        ("audit-representation", ["--trees", ABOVE["MAX_TREES"]], "--trees"),
        ("audit-representation", ["--random-repeats", ABOVE["MAX_RANDOM_REPEATS"]], "--random-repeats"),
        ("audit-representation", ["--n-jobs", "0"], "--n-jobs"),
        ("audit-representation", ["--n-jobs", "-2"], "--n-jobs"),
        ("audit-representation", ["--n-jobs", ABOVE["MAX_N_JOBS"]], "--n-jobs"),
        ("audit-representation", ["--seed", ABOVE["MAX_SEED"]], "--seed"),
        ("prune", ["--seed", "-1"], "--seed"),
        ("prune", ["--k", ABOVE["MAX_CODE_SIZE"]], "--k"),
    ],
    ids=str,
)
def test_commands_on_a_model_refuse_a_size_beyond_its_bound(model, data, tmp_path, nothing_is_read, command, options, option):
    extra = {"predict": ["--out", tmp_path / "scores.csv"], "prune": ["--out", tmp_path / "pruned"]}.get(command, [])
    if command == "prune" and "--k" not in options:
        extra += ["--k", "1"]
    assert_refused_option(invoke(command, model, data, *extra, *options), option)
    assert not (tmp_path / "scores.csv").exists() and not (tmp_path / "pruned").exists()


def test_split_refuses_a_seed_beyond_its_bound(data, tmp_path, nothing_is_read):
    result = invoke("split", data, "--train", tmp_path / "a.csv", "--test", tmp_path / "b.csv", "--seed", ABOVE["MAX_SEED"])
    assert_refused_option(result, "--seed")


def test_every_integer_option_has_an_upper_bound_shown_in_its_help():
    import typer.main

    # Counts that allocate nothing: a group smaller than this is only listed apart.
    unbounded = {"min_group_size"}
    checked = 0
    for name, command in typer.main.get_command(app).commands.items():
        help_text = runner.invoke(app, [name, "--help"], env={"COLUMNS": "250"}).stdout
        for parameter in command.params:
            if getattr(parameter, "type_descriptor", None) is None or parameter.type_descriptor.annotation is not int:
                continue
            if parameter.name in unbounded:
                continue
            assert parameter.max is not None, f"{name} --{parameter.name}"
            assert f"x<={parameter.max}]" in help_text, f"{name} --{parameter.name}"
            checked += 1
    assert checked >= 25


def test_the_upper_bounds_themselves_are_accepted_as_options(data, tmp_path):
    result = invoke(
        "train", data, "-s", "sex", "--out", tmp_path / "m", "--epochs", "1", "--hidden", "8", "--code-size", "4",
        "--samples", "2", "--seed", str(limits.MAX_SEED), "--threads", "2",
    )  # fmt: skip
    assert_ok(result)


def test_threads_apply_to_the_whole_command_and_the_counts_come_back(data, tmp_path, monkeypatch):
    from sqnn_cli.estimator import SQNNClassifier

    seen: list[int] = []
    real_epoch = SQNNClassifier._train_epoch

    def epoch(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_epoch(self, *args, **kwargs)

    monkeypatch.setattr(SQNNClassifier, "_train_epoch", epoch)
    before = torch.get_num_threads()
    for threads, expected in ((["--threads", "2"], 2), ([], 1)):
        seen.clear()
        out = tmp_path / f"m{expected}"
        assert_ok(invoke("train", data, "-s", "sex", "--out", out, *TINY, *threads))
        assert seen == [expected] and torch.get_num_threads() == before


def test_threads_apply_to_scoring_a_bundle(model, data, monkeypatch):
    from sqnn_cli import streaming

    seen: list[int] = []
    real_evaluate = streaming.evaluate_file

    def evaluate(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(streaming, "evaluate_file", evaluate)
    before = torch.get_num_threads()
    assert_ok(invoke("evaluate", model, data, "--threads", "2"))
    assert_ok(invoke("evaluate", model, data))
    assert seen == [2, 1] and torch.get_num_threads() == before


def test_an_unexpected_value_error_is_an_internal_error_in_one_line(model, data, monkeypatch):
    """Not bad input the CLI knows of, not scikit-learn's parameter check: exit 3, one line."""
    from sqnn_cli import streaming

    def broken(*args, **kwargs):
        raise ValueError("something nobody foresaw")

    monkeypatch.setattr(streaming, "evaluate_file", broken)
    result = invoke("evaluate", model, data, "--json")
    assert result.exit_code == 3 and "Traceback" not in result.stdout + result.stderr
    assert "internal error: ValueError: something nobody foresaw" in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 3


def test_a_usage_error_under_json_still_prints_one_object():
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "sqnn_cli", "train", "absent.csv", "-s", "a", "--batch-size", "0", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2 and json.loads(run.stdout)["exit_code"] == 2
    assert run.stderr.startswith("error: Invalid value for '--batch-size'")
