"""Training on a table read a chunk at a time (streaming.train_file, `sqnn train --stream`):
the encoder fitted in one streaming pass equals the whole table's, a single block trains
the in-memory model byte for byte, many blocks train a working model, and bad rows,
refused options and interruptions leave no temporary file behind."""

from __future__ import annotations

import json
import signal
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sqnn_cli import pipeline, ranked_threshold, streaming
from sqnn_cli.cli import app
from sqnn_cli.data import read_table, read_table_chunks, resolve_roles
from sqnn_cli.encoded_cache import EncodedCache
from sqnn_cli.errors import InputError, ParameterError
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.metrics import balanced_accuracy_threshold, evaluate_scores
from sqnn_cli.preprocess import StreamedEncoderFit, TabularEncoder
from sqnn_cli.spilled import SpilledColumn

from .conftest import TINY_MODEL, synthetic_table

runner = CliRunner()
CHUNK_SIZES = (1, 7, 10_000)


def awkward_features(rows: int = 203, seed: int = 0) -> pd.DataFrame:
    """Columns whose encoder is easy to get wrong: gaps, a constant, booleans with and
    without gaps, values near 1e150 (moments taken in units of the peak), ties, negative
    numbers and zeros of both signs, categories with gaps and a literal '<missing>'."""
    rng = np.random.default_rng(seed)
    gaps = rng.random(rows) < 0.2
    return pd.DataFrame({
        "normal": rng.normal(size=rows),
        "gappy": np.where(gaps, np.nan, rng.integers(-4, 5, rows).astype(float)),
        "constant": np.full(rows, 7.5),
        "flag": rng.random(rows) < 0.3,
        "flag_gaps": pd.Series(rng.random(rows) < 0.5, dtype=object).where(~gaps),
        "huge": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows) * 1e150),
        "ints": rng.integers(-3, 3, rows),
        "zeros": rng.choice([0.0, -0.0, 1.0], rows),
        "colour": pd.Series(rng.choice(["red", "blue", "<missing>"], rows), dtype=object).where(~gaps),
    })  # fmt: skip


def streamed_encoder(frame: pd.DataFrame, chunk_rows: int, directory: Path) -> TabularEncoder:
    with StreamedEncoderFit(directory) as fit:
        for start in range(0, len(frame), chunk_rows):
            fit.add(frame.iloc[start : start + chunk_rows])
        return fit.encoder()


def assert_same_encoder(streamed: list[dict], whole: list[dict]) -> None:
    """Column specs equal, means and scales to float64 rounding: they are the same
    formulas summed in another order."""
    assert [spec["name"] for spec in streamed] == [spec["name"] for spec in whole]
    for got, want in zip(streamed, whole):
        for key in ("mean", "scale"):
            if key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-12, abs=0), (want["name"], key)
        exact = {key: value for key, value in want.items() if key not in ("mean", "scale")}
        assert {key: got[key] for key in exact} == exact


@pytest.mark.parametrize("chunk_rows", CHUNK_SIZES)
def test_streamed_encoder_equals_the_whole_table_encoder(chunk_rows, tmp_path):
    frame = awkward_features()
    whole = TabularEncoder().fit(frame).to_dict()["columns"]
    assert_same_encoder(streamed_encoder(frame, chunk_rows, tmp_path).to_dict()["columns"], whole)


@pytest.mark.parametrize("values", [
    [3.0], [2.0, -1.0], [5.0, 5.0, 5.0, 1.0], [-0.0, 0.0, -2.5, 1e-310, -1e-310],
    [1e150, -1e150, 3.0, 2.0], list(np.random.default_rng(1).normal(size=1000)),
    list(np.random.default_rng(2).integers(0, 3, 999).astype(float)),
])  # fmt: skip
def test_spilled_median_is_exact(values, tmp_path):
    column = SpilledColumn(tmp_path / "column")
    for start in range(0, len(values), 3):
        column.add(np.array(values[start : start + 3] + [np.nan], dtype=float))
    column.close()
    assert column.median() == pd.Series(values).median()
    assert column.missing == -(-len(values) // 3)


def test_encoded_cache_reads_back_its_blocks(tmp_path):
    rows = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    with EncodedCache(tmp_path / "cache", 3, block_rows=16) as cache:
        for start in range(0, 50, 7):
            cache.append(rows[start : start + 7])
        assert cache.n_blocks == 4
        assert np.array_equal(np.concatenate([cache.block(i).copy() for i in range(4)]), rows)
        assert np.array_equal(cache.block(3), rows[48:])


# -- training ------------------------------------------------------------------------
def table_file(tmp_path: Path, rows: int = 300, name: str = "data.csv") -> Path:
    path = tmp_path / name
    frame = synthetic_table(rows)
    frame["weight"] = np.random.default_rng(3).choice([0.0, 1.0, 2.5], rows, p=[0.1, 0.6, 0.3])
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return path


def small_model() -> SQNNClassifier:
    return SQNNClassifier(epochs=20, batch_size=32, hidden=(16,), code_size=8)


def streamed(path: Path, chunk_rows: int, block_rows: int, temp_dir: Path) -> pipeline.TrainingOutcome:
    table = read_table_chunks(path, chunk_rows=chunk_rows)
    roles = resolve_roles(streaming.distinct_values(table, ["y", "group"]), target="y", sensitive=["group"])
    settings = streaming.StreamedTraining(block_rows=block_rows, temp_dir=temp_dir)
    return streaming.train_file(table, roles, small_model(), settings)


def test_distinct_values_resolve_the_roles_the_whole_table_resolves(tmp_path):
    path = table_file(tmp_path)
    frame = streaming.distinct_values(read_table_chunks(path, chunk_rows=7), ["y", "group"])
    assert len(frame) == 2
    options = dict(target="y", sensitive=["group"], weight="weight")
    assert resolve_roles(frame, **options) == resolve_roles(read_table(path), **options)


@pytest.mark.parametrize("name", ["data.csv", "data.parquet"])
def test_a_single_block_trains_the_in_memory_model_byte_for_byte(name, tmp_path):
    """A block larger than the table: the encoder, the weights, the history and the
    threshold are those of `sqnn train --no-stream`, rows of weight 0 left out alike."""
    path = table_file(tmp_path, name=name)
    options = ["-s", "group", "-t", "y", "--weight", "weight", *TINY_MODEL]
    for mode in ("stream", "no-stream"):
        result = runner.invoke(app, ["train", str(path), f"--{mode}", "--out", str(tmp_path / mode), *options])
        assert result.exit_code == 0, result.output
    assert "streaming data" in runner.invoke(app, ["train", str(path), "--stream", "--out", str(tmp_path / "x"), *options]).stderr
    for file in ("weights.pt", "preprocess.json"):
        assert (tmp_path / "stream" / file).read_bytes() == (tmp_path / "no-stream" / file).read_bytes()
    metas = [json.loads((tmp_path / mode / "meta.json").read_text()) for mode in ("stream", "no-stream")]
    assert [meta["options"]["stream"] for meta in metas] == [True, False]
    scored = runner.invoke(app, ["evaluate", str(tmp_path / "stream"), str(path), "--json"])
    assert scored.exit_code == 0 and json.loads(scored.stdout)["sample_weight_column"] == "weight", scored.output
    for meta in metas:
        for record in meta["model"]["history"]:
            del record["seconds"]
    assert metas[0]["model"] == metas[1]["model"]
    assert metas[0]["data"] == metas[1]["data"]


def test_many_blocks_train_a_working_bundle(tmp_path):
    """Chunks of 13 rows, blocks of 32 rows (batches of 32): ten blocks in a random order."""
    path = table_file(tmp_path, rows=320)
    (tmp_path / "temp").mkdir()
    outcome = streamed(path, chunk_rows=13, block_rows=32, temp_dir=tmp_path / "temp")
    in_memory = pipeline.train(read_table(path), outcome.model.roles, small_model())
    assert outcome.model.encoder.to_dict() == in_memory.model.encoder.to_dict()
    assert outcome.rows_trained == 320 and len(outcome.model.estimator.history_) == 20
    data = pipeline.prepare(read_table(path), outcome.model.roles)
    X, _ = outcome.model.encoder.transform(data.features)
    aucs = [
        evaluate_scores(data.y, model.estimator.predict_proba(X)[:, 1], sensitive_features=data.groups).auc
        for model in (outcome.model, in_memory.model)
    ]
    # Another order of the same rows: a model as good as the in-memory one, not the same one.
    assert aucs[0] > 0.7 and abs(aucs[0] - aucs[1]) < 0.05, aucs
    assert not any((tmp_path / "temp").iterdir())


def test_a_bad_row_in_a_late_chunk_is_refused_with_its_csv_line(tmp_path):
    frame = synthetic_table(200)
    frame["y"] = frame["y"].astype(float)
    frame.loc[187, "y"] = np.nan
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    (tmp_path / "temp").mkdir()
    with pytest.raises(ParameterError, match="CSV lines 189\\)"):
        streamed(path, chunk_rows=20, block_rows=64, temp_dir=tmp_path / "temp")
    assert not any((tmp_path / "temp").iterdir())


def test_whole_table_checks_are_made_over_every_chunk(tmp_path):
    """Every chunk of 10 rows holds one class, and the table two: it trains. A column empty
    in every chunk is refused as the whole table's would be."""
    frame = synthetic_table(40).sort_values("y", kind="stable")
    path = tmp_path / "sorted.csv"
    frame.to_csv(path, index=False)
    (tmp_path / "temp").mkdir()
    assert streamed(path, chunk_rows=10, block_rows=64, temp_dir=tmp_path / "temp").rows_trained == 40
    frame["empty"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(ParameterError, match="column 'empty' is entirely empty"):
        streamed(path, chunk_rows=10, block_rows=64, temp_dir=tmp_path / "temp")
    frame = frame.drop(columns="empty")
    frame["y"] = 1
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match="single class"):
        streamed(path, chunk_rows=10, block_rows=64, temp_dir=tmp_path / "temp")
    assert not any((tmp_path / "temp").iterdir())


def test_an_interruption_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = table_file(tmp_path)
    (tmp_path / "temp").mkdir()
    seen = []

    def interrupted(self, *args, **kwargs):
        seen.extend(path.name for path in (tmp_path / "temp").rglob("*"))
        raise KeyboardInterrupt

    monkeypatch.setattr(SQNNClassifier, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        streamed(path, chunk_rows=50, block_rows=64, temp_dir=tmp_path / "temp")
    assert "features.f32" in seen  # the cache was there when training was interrupted
    assert not any((tmp_path / "temp").iterdir())


# -- the command ------------------------------------------------------------------------
def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("option", [["--max-dp", "0.1"], ["--min-dp-ratio", "0.8"]])
def test_a_gamma_search_is_refused_when_streaming(option, tmp_path):
    path = table_file(tmp_path)
    result = runner.invoke(app, ["train", str(path), "--stream", "-s", "group", "-t", "y", *option, "--out", str(tmp_path / "m")])
    line = one_error_line(result)
    assert f"{option[0]} (a search for gamma) is not available when train streams the table (--stream)" in line
    assert "--gamma" in line and "--no-stream" in line
    assert not (tmp_path / "m").exists()


def test_held_out_rows_are_each_rows_own_draw():
    positions = np.arange(20_000)
    whole = streaming.held_out_rows(positions, 0, 0.3)
    assert np.array_equal(np.concatenate([streaming.held_out_rows(positions[i : i + 7], 0, 0.3) for i in range(0, 20_000, 7)]), whole)
    assert abs(whole.mean() - 0.3) < 0.02
    assert not np.array_equal(streaming.held_out_rows(positions, 1, 0.3), whole)


def test_a_streamed_held_out_split_is_evaluated_as_the_same_rows_read_whole(tmp_path):
    path = table_file(tmp_path, rows=400)
    (tmp_path / "temp").mkdir()
    table = read_table_chunks(path, chunk_rows=13)
    roles = resolve_roles(streaming.distinct_values(table, ["y", "group"]), target="y", sensitive=["group"], weight="weight")
    settings = streaming.StreamedTraining(block_rows=64, temp_dir=tmp_path / "temp", test_size=0.3, min_group_size=5)
    outcome = streaming.train_file(table, roles, small_model(), settings)
    held = streaming.held_out_rows(np.arange(400), small_model().random_state, 0.3)
    assert outcome.rows_trained == 400 - held.sum()
    frame = read_table(path)
    # The training rows alone fit the encoder, as pipeline.train fits it.
    training = pipeline.prepare(frame[~held], roles).features
    assert_same_encoder(outcome.model.encoder.to_dict()["columns"], TabularEncoder().fit(training).to_dict()["columns"])
    whole = pipeline.evaluate(outcome.model, frame[held].reset_index(drop=True), min_group_size=5)
    assert outcome.test.to_dict() == whole.to_dict()
    assert not any((tmp_path / "temp").iterdir())


def test_large_files_stream_by_default_and_no_stream_reads_them_whole(tmp_path, monkeypatch):
    path = table_file(tmp_path)
    monkeypatch.setattr(streaming, "STREAM_FILE_BYTES", path.stat().st_size - 1)
    options = ["-s", "group", "-t", "y", *TINY_MODEL]
    result = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "a"), *options])
    assert result.exit_code == 0, result.output
    assert "streaming data.csv (the file is over" in result.stderr
    result = runner.invoke(app, ["train", str(path), "--no-stream", "--test-size", "0.3", "--out", str(tmp_path / "b"), *options])
    assert result.exit_code == 0, result.output
    assert "streaming" not in result.stderr
    # The refusal names the size rule, so a user knows why a plain train streamed.
    result = runner.invoke(app, ["train", str(path), "--max-dp", "0.1", "--out", str(tmp_path / "c"), *options])
    assert "the file is over" in one_error_line(result)
    result = runner.invoke(app, ["train", str(path), "--test-size", "0.3", "--out", str(tmp_path / "d"), *options])
    assert result.exit_code == 0, result.output
    assert "holds out each row by a seeded draw" in result.stderr
    assert json.loads((tmp_path / "d" / "meta.json").read_text())["test_metrics"]["n"] > 0


def test_fit_blocks_refuses_warm_start(tmp_path):
    with EncodedCache(tmp_path / "cache", 2, block_rows=8) as cache:
        cache.append(np.zeros((4, 2), np.float32))
        model = SQNNClassifier(warm_start=True)
        with pytest.raises(ParameterError, match="warm_start"):
            model.fit_blocks(cache, np.array([0, 1, 0, 1]), group_codes=np.zeros(4, np.int32), groups=["a"])


@pytest.mark.parametrize("block_rows", [1, 5, 1 << 20])
@pytest.mark.parametrize("weighted", [False, True])
def test_ranked_threshold_is_the_whole_table_threshold(block_rows, weighted, monkeypatch):
    """Ties within and across blocks (scores on a coarse grid), every row its own block,
    and one block; weights are whole numbers, so weighted sums are exact in any order."""
    monkeypatch.setattr(ranked_threshold, "_BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(block_rows)
    for rows, levels in ((400, 13), (401, 10_000), (50, 2)):
        scores = (rng.integers(0, levels, rows) / (levels - 1)).astype(np.float32)
        positive = rng.random(rows) < 0.2 + 0.6 * scores
        weights = rng.integers(1, 5, rows).astype(float) if weighted else None
        want = balanced_accuracy_threshold(positive.astype(int), scores, sample_weight=weights)
        assert ranked_threshold.ranked_balanced_accuracy_threshold(positive, scores, weights) == want
    assert ranked_threshold.ranked_balanced_accuracy_threshold(np.ones(5, bool), scores[:5], None) == 0.5


def test_ctrl_c_during_streamed_training_leaves_no_bundle_and_no_temporary_file(tmp_path, monkeypatch):
    path = table_file(tmp_path)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    seen = []

    def interrupted(self, *args, **kwargs):
        seen.extend(path.name for path in temp.rglob("*"))
        raise KeyboardInterrupt

    monkeypatch.setattr(SQNNClassifier, "_train_epoch", interrupted)
    result = runner.invoke(app, ["train", str(path), "--stream", "-s", "group", "-t", "y", "--out", str(tmp_path / "m")])
    assert result.exit_code == 130, result.output
    assert "features.f32" in seen
    assert not (tmp_path / "m").exists()
    assert not any(temp.iterdir())


def test_a_held_out_draw_that_holds_out_nothing_is_refused(tmp_path):
    path = table_file(tmp_path, rows=40)
    (tmp_path / "temp").mkdir()
    table = read_table_chunks(path, chunk_rows=13)
    roles = resolve_roles(streaming.distinct_values(table, ["y", "group"]), target="y", sensitive=["group"])
    settings = streaming.StreamedTraining(temp_dir=tmp_path / "temp", test_size=1e-9)
    with pytest.raises(ParameterError, match=r"test_size 1e-09 held out none of the 40 rows"):
        streaming.train_file(table, roles, small_model(), settings)
    assert not any((tmp_path / "temp").iterdir())


def test_sigterm_during_streamed_training_ends_it_as_ctrl_c_does(tmp_path, monkeypatch):
    """A scheduler's SIGTERM must not leave the temporary cache behind; the handler in force
    while training is called as the signal would call it."""
    path = table_file(tmp_path)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    before = signal.getsignal(signal.SIGTERM)

    def terminated(self, *args, **kwargs):
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler) and handler is not before
        handler(signal.SIGTERM, None)

    monkeypatch.setattr(SQNNClassifier, "_train_epoch", terminated)
    result = runner.invoke(app, ["train", str(path), "--stream", "-s", "group", "-t", "y", "--out", str(tmp_path / "m")])
    assert result.exit_code == 130, result.output
    assert not (tmp_path / "m").exists() and not any(temp.iterdir())
    assert signal.getsignal(signal.SIGTERM) is before
