"""Model bundles: plain data, verified on load, written atomically."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from sqnn_cli import bundle as bundle_module
from sqnn_cli import files
from sqnn_cli.cli import app
from sqnn_cli.data import write_table
from sqnn_cli.bundle import default_bundle_path, load_bundle, save_bundle
from sqnn_cli.data import ColumnRoles
from sqnn_cli.errors import BundleError, InputError
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.fitted import FittedModel
from sqnn_cli.preprocess import TabularEncoder

from .tampering import read_meta, replace_file, torch_bytes, write_meta


ROLES = ColumnRoles(target="y", positive_label="1", sensitive=("group",), features=("proxy", "signal", "colour"))


@pytest.fixture(scope="module")
def trained(make_table):
    table = make_table(300)
    features = table[["proxy", "signal", "colour"]]
    encoder = TabularEncoder().fit(features)
    x, _ = encoder.transform(features)
    model = SQNNClassifier(epochs=2, hidden=(8,), code_size=4, device="cpu").fit(
        x, table["y"].to_numpy(), sensitive_features=table["group"].to_numpy()
    )
    return model, encoder, {"note": "first"}, x


def test_round_trip_gives_identical_scores(tmp_path, trained):
    model, encoder, meta, x = trained
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    loaded = load_bundle(path)
    assert np.array_equal(loaded.model.estimator.predict_proba(x), model.predict_proba(x))
    assert loaded.model.roles.sensitive == ("group",)
    stored = json.loads((path / "meta.json").read_text())
    assert stored["schema_version"] == bundle_module.SCHEMA_VERSION
    assert set(stored["files"]) == {"weights.pt", "preprocess.json"}


def test_existing_directory_needs_overwrite(tmp_path, trained):
    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    with pytest.raises(InputError, match="already exists; pass overwrite to replace it"):
        save_bundle(path, FittedModel(model, encoder, ROLES), meta=meta)
    save_bundle(path, FittedModel(model, encoder, ROLES), meta=meta, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_interrupted_save_leaves_nothing_behind(tmp_path, trained, monkeypatch):
    model, encoder, meta, _ = trained

    def interrupted(_directory):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_module, "_fsync_directory_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_bundle(tmp_path, trained, monkeypatch):
    model, encoder, meta, x = trained
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    before = (path / "weights.pt").read_bytes()
    monkeypatch.setattr(bundle_module, "_fsync_directory_files", lambda _d: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        save_bundle(path, FittedModel(model, encoder, ROLES), meta=meta, overwrite=True)
    assert (path / "weights.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_weights_holding_code_are_refused_even_with_a_matching_checksum(tmp_path, trained):
    import collections
    import hashlib

    import torch

    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    # A pickle whose loading would construct an arbitrary object, checksum updated to match.
    torch.save({"payload": collections.Counter("abc")}, path / "weights.pt")
    stored = json.loads((path / "meta.json").read_text())
    stored["files"]["weights.pt"] = hashlib.sha256((path / "weights.pt").read_bytes()).hexdigest()
    stored["meta_sha256"] = bundle_module._meta_checksum(stored)
    (path / "meta.json").write_text(json.dumps(stored))
    with pytest.raises(BundleError, match="weights.pt"):
        load_bundle(path)


def test_edited_files_are_refused(tmp_path, trained):
    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    (path / "preprocess.json").write_text((path / "preprocess.json").read_text().replace("red", "RED"))
    with pytest.raises(BundleError, match="modified after training"):
        load_bundle(path)


def test_default_bundle_path_is_the_data_name_in_the_working_directory():
    assert default_bundle_path("data/adult.csv.gz") == Path("adult-model")
    assert default_bundle_path("/tmp/compas.csv") == Path("compas-model")
    assert default_bundle_path("credit.tsv") == Path("credit-model")


def test_edited_meta_is_refused(tmp_path, trained):
    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    stored = json.loads((path / "meta.json").read_text())
    stored["roles"]["positive_label"] = "0"
    (path / "meta.json").write_text(json.dumps(stored))
    with pytest.raises(BundleError, match="meta.json does not match its own checksum"):
        load_bundle(path)


def test_overwrite_replaces_only_a_bundle(tmp_path, trained):
    model, encoder, meta, _ = trained
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(InputError, match="not an sqnn model bundle"):
        save_bundle(precious, FittedModel(model, encoder, ROLES), meta=meta, overwrite=True)
    assert (precious / "thesis.txt").exists()


# -- bundles are judged before they are read -------------------------------------------------------
GIB = 1 << 30
TINY = ["--epochs", "1", "--hidden", "8", "--code-size", "4", "--samples", "2"]
runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, make_table):
    """A table and a bundle trained on it by the CLI, shared by the module (copy to damage)."""
    root = tmp_path_factory.mktemp("bundles")
    make_table(200).to_csv(root / "data.csv", index=False)
    result = runner.invoke(app, ["train", str(root / "data.csv"), "-s", "group", "--out", str(root / "model"), *TINY])
    assert result.exit_code == 0, result.stderr
    return root




def weights_of(bundle: Path) -> dict:
    return torch.load(bundle / "weights.pt", weights_only=True)


def refused_with_little_memory(bundle: Path, *fragments: str) -> str:
    """load_bundle refuses with one line, having allocated (in Python) under 16 MiB."""
    tracemalloc.start()
    try:
        with pytest.raises(BundleError) as caught:
            load_bundle(bundle)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert peak < 16 << 20, f"{peak} bytes allocated before the refusal"
    return message


def test_a_cli_bundle_loads_and_scores(damaged, data):
    result = runner.invoke(app, ["evaluate", str(damaged), str(data)])
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("name", ["meta.json", "preprocess.json", "weights.pt"])
@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "device"])
def test_a_bundle_file_that_is_not_a_regular_file_is_refused_unopened(damaged, tmp_path, name, kind):
    original = damaged / name
    if kind == "symlink":  # even to an identical copy: a link can point anywhere at any moment
        shutil.move(original, tmp_path / name)
        original.symlink_to(tmp_path / name)
    elif kind == "fifo":  # opening it would block for ever
        original.unlink()
        os.mkfifo(original)
    elif kind == "directory":
        original.unlink()
        original.mkdir()
    else:
        original.unlink()
        try:
            os.mknod(original, 0o600 | __import__("stat").S_IFCHR, os.makedev(1, 5))  # like /dev/zero
        except (PermissionError, AttributeError):
            pytest.skip("creating a device node needs privileges this test does not have")
    expected = "symbolic link" if kind == "symlink" else "not a regular file"
    refused_with_little_memory(damaged, name, expected)


@pytest.mark.parametrize("name", ["meta.json", "preprocess.json", "weights.pt"])
@pytest.mark.parametrize("size", [6 * GIB, 64 * GIB], ids=["6GiB", "64GiB"])
def test_a_huge_bundle_file_is_refused_by_its_size_without_reading_it(damaged, name, size):
    os.truncate(damaged / name, size)  # sparse: claims the size, occupies nothing
    refused_with_little_memory(damaged, name, "bytes")


def test_weights_larger_than_the_architecture_allows_are_refused_before_reading(damaged):
    padded = (damaged / "weights.pt").read_bytes() + b"\0" * (1 << 20)
    replace_file(damaged, "weights.pt", padded)
    refused_with_little_memory(damaged, "weights.pt", "does not fit the architecture")


@pytest.mark.parametrize(
    "edit",
    [{"hidden": [100_000_000, 64]}, {"hidden": [8, 4096, 4096]}, {"code_size": 256}],
    ids=["absurd-width", "wider-within-bounds", "more-neurons"],
)
def test_meta_describing_another_network_than_the_weights_is_refused_before_allocating(damaged, edit):
    meta = read_meta(damaged)
    meta["model"]["params"].update(edit)
    write_meta(damaged, meta)
    refused_with_little_memory(damaged)


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b'{"schema_version": NaN}', b'{"a": Infinity}', b"[1, 2]", b'"text"', b"\xff\xfe"],
    ids=["deep", "nan", "infinity", "list", "string", "not-utf8"],
)
def test_meta_json_that_is_not_a_plain_json_object_is_refused(damaged, content):
    (damaged / "meta.json").write_bytes(content)
    refused_with_little_memory(damaged, "meta.json")


def test_a_nan_literal_inside_an_otherwise_valid_meta_json_is_refused(damaged):
    text = (damaged / "meta.json").read_text()
    (damaged / "meta.json").write_text(re.sub(r'"gamma": [0-9.]+', '"gamma": NaN', text, count=1))
    assert "NaN" in (damaged / "meta.json").read_text()
    refused_with_little_memory(damaged, "meta.json", "NaN")


def test_deeply_nested_preprocess_json_is_refused(damaged):
    replace_file(damaged, "preprocess.json", b"[" * 100_000 + b"]" * 100_000)
    refused_with_little_memory(damaged, "preprocess.json")


def _set(meta: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for key in parents:
        meta = meta[key]
    meta[last] = value


@pytest.mark.parametrize(
    "path, value",
    [
        ("model.n_features_in", 0),
        ("model.n_features_in", "5"),
        ("model.n_features_in", True),
        ("model.n_features_in", 10**12),
        ("model.groups", []),
        ("model.groups", "ab"),
        ("model.groups", [1, 2]),
        ("model.groups", ["a", "a"]),
        ("model.history", "none"),
        ("model.params", []),
        ("model.params.hidden", "8"),
        ("model.params.hidden", [8.0]),
        ("model.params.code_size", True),
        ("model.params.n_samples", 10**9),
        ("model.params.temperature", -1),
        ("model.params.method", "magic"),
        ("model.params.telemetry", "on"),
        ("model.decision_threshold", {"value": 1.5, "rule": "manual"}),
        ("model.decision_threshold", {"value": "0.5", "rule": "manual"}),
        ("model.decision_threshold", 0.5),
        ("model.decision_threshold", None),
        ("roles", None),
        ("roles.target", 1),
        ("roles.sensitive", []),
        ("roles.features", "proxy"),
        ("roles.negative_label", 0),
        ("roles.sensitive_bins", {"age": ["young"]}),
        ("files", []),
        ("files.weights.pt", "not a digest"),
        ("pruned", [{"neurons": [99]}]),
        ("pruned", [{"by": "bias"}]),
    ],
    ids=lambda v: v if isinstance(v, str) else json.dumps(v)[:30],
)
def test_meta_json_outside_its_schema_is_refused(damaged, path, value):
    meta = read_meta(damaged)
    if path == "files.weights.pt":
        meta["files"]["weights.pt"] = value
    else:
        _set(meta, path, value)
    write_meta(damaged, meta)
    refused_with_little_memory(damaged, "meta.json")


def test_unknown_extra_keys_and_the_optional_fields_are_accepted(damaged):
    meta = read_meta(damaged)
    meta["comment"] = "written by a newer sqnn"
    meta["decision_threshold"] = {"value": 0.4, "rule": "set by hand", "source": "review"}
    meta["model"]["decision_threshold"] = {"value": 0.4, "rule": "set by hand"}
    meta["roles"]["negative_label"] = "0"
    write_meta(damaged, meta)
    loaded = load_bundle(damaged)
    assert loaded.meta["comment"] == "written by a newer sqnn" and loaded.model.estimator.threshold_ == 0.4


@pytest.mark.parametrize("change", [+1, -1], ids=["wider", "narrower"])
def test_an_encoder_of_another_width_than_the_network_is_refused(damaged, change):
    state = json.loads((damaged / "preprocess.json").read_text())
    colour = next(c for c in state["columns"] if c["name"] == "colour")
    colour["categories"] = colour["categories"] + ["purple"] if change > 0 else colour["categories"][:-1]
    replace_file(damaged, "preprocess.json", json.dumps(state).encode())
    refused_with_little_memory(damaged, "preprocess.json encodes")


@pytest.mark.parametrize("edit", ["missing", "extra", "renamed", "shape", "float64"])
def test_weights_other_than_the_architecture_s_tensors_are_refused(damaged, edit):
    weights = weights_of(damaged)
    if edit == "missing":
        weights.pop("head.bias")
    elif edit == "extra":
        weights["smuggled"] = torch.zeros(1)
    elif edit == "renamed":
        weights["head.offset"] = weights.pop("head.bias")
    elif edit == "shape":
        weights["head.weight"] = weights["head.weight"].reshape(-1, 1).clone()
    else:
        weights["head.bias"] = weights["head.bias"].double()
    replace_file(damaged, "weights.pt", torch_bytes(weights))
    with pytest.raises(BundleError, match="does not fit the architecture"):
        load_bundle(damaged)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_weights_are_refused(damaged, value):
    weights = weights_of(damaged)
    weights["features.0.weight"].view(-1)[3] = value
    replace_file(damaged, "weights.pt", torch_bytes(weights))
    with pytest.raises(BundleError, match="NaN or infinite values in features.0.weight"):
        load_bundle(damaged)


def test_a_compressed_weights_archive_is_refused_before_torch_reads_it(damaged):
    original = io.BytesIO((damaged / "weights.pt").read_bytes())
    recompressed = io.BytesIO()
    with zipfile.ZipFile(original) as source, zipfile.ZipFile(recompressed, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(member.filename, source.read(member))
    replace_file(damaged, "weights.pt", recompressed.getvalue())
    with pytest.raises(BundleError, match="compressed"):
        load_bundle(damaged)


def test_files_of_another_bundle_fail_the_checksums(damaged, workspace, data):
    """What the checksums guarantee: files mixed from two bundles are refused."""
    other = workspace / "other-seed"
    if not other.exists():
        result = runner.invoke(app, ["train", str(data), "-s", "group", "--seed", "1", "--out", str(other), *TINY])
        assert result.exit_code == 0, result.stderr
    shutil.copyfile(other / "weights.pt", damaged / "weights.pt")
    with pytest.raises(BundleError, match="modified after training: weights.pt"):
        load_bundle(damaged)


def test_bad_bundles_exit_2_with_one_line_through_the_cli(damaged, data):
    os.truncate(damaged / "weights.pt", 64 * GIB)
    result = runner.invoke(app, ["evaluate", str(damaged), str(data)])
    assert result.exit_code == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "weights.pt" in errors[0], result.stderr


# -- output paths: checked before any work starts ------------------------------------------------
def _blocker(tmp_path: Path) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    return blocker


def test_an_output_under_a_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="is a file, not a directory"):
        files.check_output_location(_blocker(tmp_path) / "deeper" / "model")


def test_an_output_name_over_the_filesystem_limit_is_refused(tmp_path):
    with pytest.raises(InputError, match="more than this filesystem allows"):
        files.check_output_location(tmp_path / ("n" * 256))
    files.check_output_location(tmp_path / ("n" * 255))  # the limit itself is fine


def test_a_directory_output_is_checked_like_any_other(tmp_path):
    """check_output_directory, for commands that write into --out (sweep-gamma)."""
    with pytest.raises(InputError, match="is a file, not a directory"):
        files.check_output_directory(_blocker(tmp_path) / "sweep")
    with pytest.raises(InputError, match="exists and is not a directory"):
        files.check_output_directory(tmp_path / "blocker")
    with pytest.raises(InputError, match="more than this filesystem allows"):
        files.check_output_directory(tmp_path / ("n" * 300))
    files.check_output_directory(tmp_path)
    files.check_output_directory(tmp_path / "new" / "sweep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]  # the probes left nothing


def test_an_output_on_a_read_only_filesystem_is_refused(tmp_path, monkeypatch):
    """Simulated: the probe's mkdir answers EROFS, as on a read-only mount."""
    read_only = tmp_path / "mounted"
    read_only.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).parent == read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(InputError, match="read-only filesystem"):
        files.check_output_location(read_only / "model")
    with pytest.raises(InputError, match="read-only filesystem"):
        files.check_output_directory(read_only)


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's sysfs")
def test_an_output_where_the_kernel_refuses_entries_is_refused():
    """Real, even for root: sysfs refuses to create entries (EPERM for root, EACCES else)."""
    with pytest.raises(InputError, match="cannot write in '/sys/kernel'"):
        files.check_output_location("/sys/kernel/sqnn-model")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_output_in_a_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(InputError, match="permission denied"):
        files.check_output_location(locked / "model")


def _error_line(result) -> str:
    assert result.exit_code == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def no_training(monkeypatch):
    """Any training (or scoring) reached is a test failure: the refusal must come first."""
    from sqnn_cli import pipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    for name in ("train", "predict", "prune", "split"):
        monkeypatch.setattr(pipeline, name, forbidden)


def _unwritable_outputs(tmp_path: Path, suffix: str) -> dict[str, Path]:
    return {
        "under-a-file": _blocker(tmp_path) / f"out{suffix}",
        "name-too-long": tmp_path / ("n" * 300 + suffix),
        "kernel-refuses": Path(f"/sys/kernel/sqnn-out{suffix}"),
    }


@pytest.mark.parametrize("where", ["under-a-file", "name-too-long", "kernel-refuses"])
@pytest.mark.parametrize("command", ["train", "prune", "predict", "split-train", "split-test"])
def test_every_command_checks_its_output_before_any_work(workspace, data, tmp_path, no_training, command, where):
    if where == "kernel-refuses" and not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux's sysfs")
    suffix = ".csv" if command in {"predict", "split-train", "split-test"} else ""
    out = _unwritable_outputs(tmp_path, suffix)[where]
    args = {
        "train": ["train", data, "-s", "group", "--out", out, *TINY],
        "prune": ["prune", workspace / "model", data, "--k", "1", "--out", out],
        "predict": ["predict", workspace / "model", data, "--out", out],
        "split-train": ["split", data, "--train", out, "--test", tmp_path / "test.csv"],
        "split-test": ["split", data, "--train", tmp_path / "train.csv", "--test", out],
    }[command]
    line = _error_line(runner.invoke(app, [str(a) for a in args]))
    assert "cannot write" in line
    assert not (tmp_path / "test.csv").exists() and not (tmp_path / "train.csv").exists()


def test_predict_never_writes_over_its_input(workspace, tmp_path, monkeypatch):
    copy = Path(shutil.copy(workspace / "data.csv", tmp_path / "data.csv"))
    before = copy.read_bytes()
    monkeypatch.chdir(tmp_path)
    for spelling in (copy, Path("data.csv"), tmp_path / ".." / tmp_path.name / "data.csv"):
        args = ["predict", str(workspace / "model"), str(copy), "--out", str(spelling), "--overwrite"]
        assert "is the input" in _error_line(runner.invoke(app, args))
    (tmp_path / "linked.csv").symlink_to(copy)
    args = ["predict", str(workspace / "model"), str(copy), "--out", str(tmp_path / "linked.csv"), "--overwrite"]
    assert "is the input" in _error_line(runner.invoke(app, args))
    assert copy.read_bytes() == before


def test_split_never_writes_over_its_input(workspace, tmp_path):
    copy = Path(shutil.copy(workspace / "data.csv", tmp_path / "data.csv"))
    before = copy.read_bytes()
    for train, test in ((copy, tmp_path / "test.csv"), (tmp_path / "train.csv", copy)):
        result = runner.invoke(app, ["split", str(copy), "--train", str(train), "--test", str(test), "--overwrite"])
        assert "is the input" in _error_line(result)
    assert copy.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_prune_never_writes_over_its_model(damaged, data, no_training):
    before = {p.name: p.read_bytes() for p in damaged.iterdir()}
    for out in (damaged, damaged / ".." / damaged.name):
        result = runner.invoke(app, ["prune", str(damaged), str(data), "--k", "1", "--out", str(out), "--overwrite"])
        assert "is the input" in _error_line(result)
    assert {p.name: p.read_bytes() for p in damaged.iterdir()} == before


# -- temporaries of killed runs -------------------------------------------------------------------
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def test_a_save_removes_the_temporaries_of_killed_saves_but_not_of_live_ones(tmp_path, trained, live_pid):
    model, encoder, meta, _ = trained
    dead = _dead_pid()
    stale = [tmp_path / f".m.{dead}.0123abcd.partial", tmp_path / f".m.{dead}.89abcdef.old"]
    for directory in stale:
        (directory / "bundle").mkdir(parents=True)
        (directory / "bundle" / "weights.pt").write_bytes(b"half a bundle")
    live = tmp_path / f".m.{live_pid}.00000000.partial"
    live.mkdir()
    kept = [live, tmp_path / f".other.{dead}.0123abcd.partial", tmp_path / ".m.notes.partial"]
    for path in kept[1:]:
        path.write_text("not ours to remove")
    save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m", *(p.name for p in kept)])


def test_a_table_write_removes_the_temporaries_of_killed_writes(tmp_path, live_pid):
    dead = _dead_pid()
    (tmp_path / f".scores.csv.{dead}.0123abcd.partial").write_text("half a table")
    (tmp_path / f".scores.csv.{live_pid}.0123abcd.partial").write_text("being written")
    write_table(pd.DataFrame({"a": [1, 2]}), tmp_path / "scores.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scores.csv", f".scores.csv.{live_pid}.0123abcd.partial"])


def test_temporaries_of_a_name_too_long_to_carry_a_pid_still_fit_and_are_found(tmp_path):
    target = tmp_path / ("n" * 250)
    files.atomic_write_text(target, "first")
    stale = files._temporary(target, files.PARTIAL).name.replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    (tmp_path / stale).write_text("left by a kill")
    files.atomic_write_text(target, "second")
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_text() == "second"


# -- the --out path holds the old bundle or the new one at every instant ---------------------------
@pytest.mark.skipif(files._renameat2() is None, reason="renameat2 is Linux only")
def test_replacing_a_bundle_never_leaves_the_path_empty(tmp_path, trained, monkeypatch):
    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    real_replace, real_rename = os.replace, os.rename
    seen = []

    def watched(function):
        def call(*args, **kwargs):
            result = function(*args, **kwargs)
            seen.append((path / "meta.json").is_file())
            return result

        return call

    monkeypatch.setattr(os, "replace", watched(real_replace))
    monkeypatch.setattr(os, "rename", watched(real_rename))
    monkeypatch.setattr(files, "_exchange", watched(files._exchange))
    save_bundle(path, FittedModel(model, encoder, ROLES), meta={**meta, "note": "second"}, overwrite=True)
    assert seen and all(seen)
    assert load_bundle(path).meta["note"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_replacing_a_bundle_without_renameat2_still_replaces_it(tmp_path, trained, monkeypatch):
    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta=meta)
    monkeypatch.setattr(files, "_renameat2", lambda: None)
    save_bundle(path, FittedModel(model, encoder, ROLES), meta={**meta, "note": "second"}, overwrite=True)
    assert load_bundle(path).meta["note"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_an_interrupted_atomic_write_keeps_the_old_file_and_nothing_else(tmp_path):
    target = tmp_path / "summary.json"
    files.atomic_write_text(target, "old")

    def interrupted(temporary):
        temporary.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(target, interrupted)
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    assert target.read_text() == "old"


def test_written_files_get_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
