"""The fault suite's fast half: hostile bundles, absurd options, bad paths and bad files.

Each case attacks the real console entry point (``sqnn_cli.cli.main``, in this process)
and holds it to the same contract: exit 2 for bad input (never 3), exactly one ``error:``
line on stderr, no traceback, no input file changed, and no absurd allocation or
runaway work on the way. The last two are enforced rather than measured: every command
runs under an address-space limit a few GiB above what this process already maps and
under a wall-clock limit, so a command that would allocate gigabytes fails here with a
MemoryError (exit 3) instead of exhausting a shared machine, and one that would start an
hour of work is stopped. The slow attacks (kills, concurrent processes, busy machines)
live in benchmarks/faults.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import torch
from typer.testing import CliRunner

from sqnn_cli.cli import main

from .conftest import synthetic_table
from .processes import paused, recorded_runs, wait_until
from .tampering import read_meta, replace_file, torch_bytes, write_meta

# Resource limits, SIGALRM and fork: the fault suite is POSIX only.
resource = pytest.importorskip("resource")

TINY = ["--epochs", "2", "--hidden", "8", "--code-size", "4", "--samples", "4"]
TINY_SWEEP = ["-s", "group", "--gammas", "0,1", "--folds", "2", *TINY]
ABSURD = 1_000_000_000
SEED_OVER_64_BITS = str(2**64)
# Head-room above what the test process maps already: plenty for a tiny model, far
# below what any of the absurd requests would need.
MEMORY_HEADROOM = 2 << 30
SECONDS = 30
GIB = 1 << 30

runner = CliRunner()


def tiny(**override: object) -> list[str]:
    """TINY with some of its options replaced (by name: hidden=, code_size=, ...) or left
    out (None), so that an attacked option appears once."""
    options = dict(zip(TINY[::2], TINY[1::2]))
    for name, value in override.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            options.pop(flag, None)
        else:
            options[flag] = str(value)
    return [part for flag, value in options.items() for part in (flag, value)]


class Overran(BaseException):
    """Raised into a command that ran past its time limit (not an Exception, so the
    CLI's last line of defence cannot turn it into an exit code)."""


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def _mapped_bytes() -> int | None:
    """What this process maps now (Linux); None where /proc does not say."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _overran(signum, frame):
    raise Overran()


@contextmanager
def bounded(seconds: float = SECONDS, memory: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Run the block under an address-space limit (where the platform reports and
    enforces one) and a wall-clock limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _mapped_bytes()
    limit = soft if mapped is None else mapped + memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    previous = signal.signal(signal.SIGALRM, _overran)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def sqnn(*args: object, seconds: float = SECONDS, memory: int = MEMORY_HEADROOM) -> Outcome:
    """Run the console script in this process, as a user's shell would.

    Through ``main`` rather than ``runner.invoke(app)``: the one-line contract is the
    console script's (typer's own runner frames click's usage errors in a panel).
    """
    argv = sys.argv
    sys.argv = ["sqnn", *(str(a) for a in args)]
    code = 0
    try:
        with runner.isolation() as (stdout, stderr, _):
            try:
                with bounded(seconds, memory):
                    main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            printed = stdout.getvalue().decode(errors="replace"), stderr.getvalue().decode(errors="replace")
    except Overran:
        pytest.fail(f"sqnn {' '.join(sys.argv[1:])} ran past {seconds} s")
    finally:
        sys.argv = argv
    return Outcome(code, *printed)


def refused(outcome: Outcome, *fragments: str) -> str:
    """The contract for bad input; returns the error line."""
    everything = outcome.stdout + outcome.stderr
    assert "Traceback" not in everything, everything
    assert outcome.code == 2, f"exit {outcome.code}, expected 2:\n{everything}"
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert "error:" not in outcome.stdout
    for fragment in fragments:
        assert fragment in outcome.error_lines[0], outcome.error_lines[0]
    return outcome.error_lines[0]


def succeeded(outcome: Outcome) -> None:
    assert outcome.code == 0, f"exit {outcome.code}:\n{outcome.stderr}"
    assert "Traceback" not in outcome.stdout + outcome.stderr


def accepted_or_refused(outcome: Outcome) -> None:
    """For requests a bound may or may not cover: a result or a clean refusal, never exit 3."""
    assert outcome.code in (0, 2), f"exit {outcome.code}:\n{outcome.stderr}"
    assert "Traceback" not in outcome.stdout + outcome.stderr
    if outcome.code == 2:
        refused(outcome)


def snapshot(*paths: Path) -> dict[str, tuple[str, str]]:
    """What each path is and holds, recursively, without following links."""
    state: dict[str, tuple[str, str]] = {}
    for root in paths:
        entries = [root] + (sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [])
        for entry in entries:
            if entry.is_symlink():
                state[str(entry)] = ("link", os.readlink(entry))
            elif entry.is_dir():
                state[str(entry)] = ("dir", "")
            elif entry.exists():
                size = entry.stat().st_size
                # A sparse decoy is identified by its size; hashing gigabytes of holes proves nothing.
                digest = hashlib.sha256(entry.read_bytes()).hexdigest() if size < 64 << 20 else f"size={size}"
                state[str(entry)] = ("file", digest)
            else:
                state[str(entry)] = ("absent", "")
    return state


@contextmanager
def unchanged(*paths: Path) -> Iterator[None]:
    before = snapshot(*paths)
    yield
    after = snapshot(*paths)
    changes = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not changes, f"inputs changed: {changes}"


def line_of(error: str, line: int) -> bool:
    """Whether a message names CSV line ``line`` (as 'line 9' or in 'lines 4, 9')."""
    return re.search(rf"\blines? (?:\d+, )*{line}\b", error) is not None


# -- the workspace: one table and a few tiny bundles per module ------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    synthetic_table(200).to_csv(root / "data.csv", index=False)
    for name, hidden, seed in (("model", "8", "0"), ("other-seed", "8", "1"), ("wider", "16", "0")):
        succeeded(sqnn("train", root / "data.csv", "-s", "group", "--out", root / name, *tiny(hidden=hidden), "--seed", seed))
    return root




def weights_of(bundle: Path) -> dict[str, torch.Tensor]:
    return torch.load(bundle / "weights.pt", weights_only=True)


def sparse_file(path: Path, size: int) -> Path:
    """A file that claims ``size`` bytes and occupies none on disk."""
    path.touch()
    os.truncate(path, size)
    return path


def evaluate_refused(bundle: Path, data: Path, *fragments: str, seconds: float = SECONDS) -> str:
    with unchanged(bundle, data):
        return refused(sqnn("evaluate", bundle, data, seconds=seconds), *fragments)


# -- bundles: judged before they are read ------------------------------------------------------
LOADING_COMMANDS = {
    "evaluate": lambda bundle, data, tmp: ["evaluate", bundle, data],
    "predict": lambda bundle, data, tmp: ["predict", bundle, data, "--out", tmp / "scores.csv"],
    "audit": lambda bundle, data, tmp: ["audit-representation", bundle, data, "--trees", "5"],
    "prune": lambda bundle, data, tmp: ["prune", bundle, data, "--k", "1", "--out", tmp / "pruned"],
}


@pytest.mark.parametrize("command", sorted(LOADING_COMMANDS))
@pytest.mark.parametrize("name", ["weights.pt", "preprocess.json"])
def test_bundle_file_symlinked_to_a_huge_sparse_file_is_refused_unread(damaged, data, tmp_path, name, command):
    decoy = sparse_file(tmp_path / "decoy.bin", 6 * GIB)
    (damaged / name).unlink()
    (damaged / name).symlink_to(decoy)
    with unchanged(damaged, data):
        refused(sqnn(*LOADING_COMMANDS[command](damaged, data, tmp_path), seconds=10), name)
    assert not (tmp_path / "scores.csv").exists() and not (tmp_path / "pruned").exists()


@pytest.mark.parametrize("name", ["weights.pt", "preprocess.json", "meta.json"])
def test_bundle_file_symlinked_to_an_identical_copy_is_refused(damaged, tmp_path, data, name):
    """Regular files only: a link could point anywhere at any moment."""
    shutil.move(damaged / name, tmp_path / name)
    (damaged / name).symlink_to(tmp_path / name)
    evaluate_refused(damaged, data, name)


@pytest.mark.parametrize("name", ["weights.pt", "preprocess.json", "meta.json"])
def test_oversized_bundle_file_is_refused_before_it_is_read(damaged, data, name):
    (damaged / name).unlink()
    sparse_file(damaged / name, 64 * GIB)
    evaluate_refused(damaged, data, name, seconds=10)


@pytest.mark.parametrize(
    "edit",
    [
        {"hidden": [100_000_000, 64]},
        {"hidden": [8, 100_000_000]},
        {"code_size": ABSURD},
        {"n_samples": ABSURD},
        {"joint_samples": ABSURD, "method": "joint"},
    ],
    ids=["first-layer", "second-layer", "code-size", "samples", "joint-samples"],
)
def test_meta_json_describing_an_absurd_model_is_refused_before_allocating(damaged, data, edit):
    meta = read_meta(damaged)
    meta["model"]["params"].update(edit)
    write_meta(damaged, meta)
    evaluate_refused(damaged, data, seconds=10)


def test_meta_json_with_an_absurd_input_width_is_refused(damaged, data):
    meta = read_meta(damaged)
    meta["model"]["n_features_in"] = ABSURD
    write_meta(damaged, meta)
    evaluate_refused(damaged, data, seconds=10)


def test_meta_json_with_many_samples_is_bounded_or_refused(damaged, data):
    """20000 draws per score cost 15.8 GB on a large table; on this one either answer is
    fine, an internal error or a runaway allocation is not."""
    meta = read_meta(damaged)
    meta["model"]["params"]["n_samples"] = 20_000
    write_meta(damaged, meta)
    with unchanged(damaged, data):
        accepted_or_refused(sqnn("evaluate", damaged, data))


@pytest.mark.parametrize(
    "path, value",
    [
        (("model", "params", "hidden"), "8"),
        (("model", "params", "hidden"), [-8]),
        (("model", "params", "hidden"), [8.5]),
        (("model", "params", "code_size"), 0),
        (("model", "params", "code_size"), True),
        (("model", "params", "n_samples"), "4"),
        (("model", "params", "temperature"), -1.0),
        (("model", "n_features_in"), "5"),
        (("model", "groups"), []),
        (("model", "groups"), "FM"),
        (("model",), []),
        (("roles",), None),
    ],
    ids=lambda v: json.dumps(v) if not isinstance(v, tuple) else ".".join(v),
)
def test_meta_json_of_the_wrong_shape_is_refused(damaged, data, path, value):
    meta = read_meta(damaged)
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    write_meta(damaged, meta)
    evaluate_refused(damaged, data)


@pytest.mark.parametrize("name", ["meta.json", "preprocess.json"])
def test_deeply_nested_json_is_refused(damaged, data, name):
    nested = ("[" * 200_000 + "]" * 200_000).encode()
    if name == "meta.json":
        (damaged / name).write_bytes(nested)
    else:
        replace_file(damaged, name, nested)
    evaluate_refused(damaged, data, name)


def test_deeply_nested_value_inside_meta_json_is_refused(damaged, data):
    """Valid at the top, pathological inside; its checksum cannot even be recomputed."""
    text = (damaged / "meta.json").read_text()
    (damaged / "meta.json").write_text(text.replace('"created":', '"deep": ' + "[" * 100_000 + "]" * 100_000 + ', "created":', 1))
    evaluate_refused(damaged, data, "meta.json")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_number_literal_in_meta_json_is_refused(damaged, data, literal):
    text = (damaged / "meta.json").read_text()
    edited = re.sub(r'"gamma": [0-9.]+', f'"gamma": {literal}', text)
    assert edited != text
    (damaged / "meta.json").write_text(edited)
    evaluate_refused(damaged, data, "meta.json")


@pytest.mark.parametrize("change", [+1, -1], ids=["wider", "narrower"])
def test_encoder_of_another_width_than_the_network_is_refused(damaged, data, change):
    encoder = json.loads((damaged / "preprocess.json").read_text())
    colour = next(c for c in encoder["columns"] if c["name"] == "colour")
    if change > 0:
        colour["categories"].append("purple")
    else:
        colour["categories"].pop()
    replace_file(damaged, "preprocess.json", json.dumps(encoder).encode())
    evaluate_refused(damaged, data)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("everywhere", [False, True], ids=["one-weight-of-the-last-tensor", "every-weight"])
def test_non_finite_weights_are_refused(damaged, data, value, everywhere):
    weights = weights_of(damaged)
    if everywhere:
        for tensor in weights.values():
            tensor.fill_(value)
    else:
        list(weights.values())[-1].view(-1)[-1] = value
    replace_file(damaged, "weights.pt", torch_bytes(weights))
    evaluate_refused(damaged, data, "weights.pt")


def test_weights_of_another_bundle_fail_the_checksum(damaged, data, workspace):
    shutil.copyfile(workspace / "other-seed" / "weights.pt", damaged / "weights.pt")
    evaluate_refused(damaged, data, "weights.pt")


def test_weights_of_another_architecture_with_recomputed_checksums_are_refused(damaged, data, workspace):
    replace_file(damaged, "weights.pt", (workspace / "wider" / "weights.pt").read_bytes())
    evaluate_refused(damaged, data)


def test_weights_and_encoder_swapped_with_recomputed_checksums_are_refused(damaged, data):
    weights, encoder = (damaged / "weights.pt").read_bytes(), (damaged / "preprocess.json").read_bytes()
    replace_file(damaged, "weights.pt", encoder)
    replace_file(damaged, "preprocess.json", weights)
    evaluate_refused(damaged, data)


@pytest.mark.parametrize("edit", ["missing", "extra"])
def test_weights_with_other_tensors_are_refused(damaged, data, edit):
    weights = weights_of(damaged)
    first = next(iter(weights))
    if edit == "missing":
        del weights[first]
    else:
        weights["smuggled"] = torch.zeros(3)
    replace_file(damaged, "weights.pt", torch_bytes(weights))
    evaluate_refused(damaged, data)


# -- absurd options: refused before any allocation ------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        ["--code-size", ABSURD],
        ["--hidden", ABSURD],
        ["--hidden", f"8,{ABSURD}"],
        ["--samples", ABSURD],
        ["--method", "joint", "--code-size", "8", "--joint-samples", ABSURD],
        ["--seed", SEED_OVER_64_BITS],
        ["--epochs", ABSURD],
        ["--batch-size", 10**30],
        ["--threads", ABSURD],
    ],
    ids=lambda o: " ".join(map(str, o)),
)
def test_train_refuses_an_absurd_option(data, tmp_path, options):
    untouched = tiny(**{flag.lstrip("-").replace("-", "_"): None for flag in map(str, options) if flag.startswith("--")})
    with unchanged(data):
        refused(sqnn("train", data, "-s", "group", "--out", tmp_path / "m", *untouched, *map(str, options), seconds=10))
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("option", [["--seed", "-1"], ["--seed", str(2**63)], ["--batch-size", "100000"]], ids=" ".join)
def test_train_with_an_unusual_value_trains_or_is_refused_cleanly(data, tmp_path, option):
    with unchanged(data):
        accepted_or_refused(sqnn("train", data, "-s", "group", "--out", tmp_path / "m", *TINY, *option))


@pytest.mark.parametrize(
    "command, options",
    [
        ("evaluate", ["--samples", ABSURD]),
        ("evaluate", ["--threads", ABSURD]),
        ("predict", ["--samples", ABSURD]),
        ("audit-representation", ["--samples", ABSURD]),
        ("audit-representation", ["--draws", ABSURD]),
        ("audit-representation", ["--trees", ABSURD]),
        ("audit-representation", ["--n-jobs", "0"]),
        ("audit-representation", ["--n-jobs", "-1000"]),
        ("audit-representation", ["--seed", SEED_OVER_64_BITS]),
        ("audit-representation", ["--interventions", "--random-repeats", ABSURD]),
        ("prune", ["--k", ABSURD]),
        ("prune", ["--by", "conditional", "--seed", SEED_OVER_64_BITS]),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(map(str, v)),
)
def test_commands_on_a_bundle_refuse_an_absurd_option(model, data, tmp_path, command, options):
    argv = [command, model, data, *map(str, options)]
    if command == "predict":
        argv += ["--out", tmp_path / "scores.csv"]
    if command == "prune":
        argv += ["--out", tmp_path / "pruned"] + ([] if "--k" in map(str, options) else ["--k", "1"])
    if command == "audit-representation" and "--trees" not in map(str, options):
        argv += ["--trees", "5"]
    with unchanged(model, data):
        refused(sqnn(*argv, seconds=10))
    assert not (tmp_path / "scores.csv").exists() and not (tmp_path / "pruned").exists()


@pytest.mark.parametrize(
    "options",
    [
        ["--steps", ABSURD],
        ["--folds", ABSURD],
        ["--seed", SEED_OVER_64_BITS],
        ["--audit", "--trees", ABSURD],
        ["--samples", ABSURD],
    ],
    ids=lambda o: " ".join(map(str, o)),
)
def test_sweep_refuses_an_absurd_option(data, tmp_path, options):
    argv = ["sweep-gamma", data, "-s", "group", "--out", tmp_path / "sweep", "--epochs", "2", "--hidden", "8", "--code-size", "4"]
    if "--steps" not in map(str, options):
        argv += ["--gammas", "0,1"]
    if "--folds" not in map(str, options):
        argv += ["--folds", "2"]
    with unchanged(data):
        refused(sqnn(*argv, *map(str, options), seconds=10))
    assert not (tmp_path / "sweep").exists() or not any((tmp_path / "sweep").iterdir())


def _children_of(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return children


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts child processes through /proc")
def test_sweep_caps_its_workers_at_the_pending_runs(data, tmp_path):
    """--n-jobs 1000 for a few runs once forked 1000 workers (4.2 GB); 64 shows the cap as
    well without costing a shared machine much when it is missing."""
    most, running = 0, True

    def watch() -> None:
        nonlocal most
        while running:
            most = max(most, len(_children_of(os.getpid())))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # A fixed --test table: one fold per gamma, two runs.
        with unchanged(data):
            outcome = sqnn("sweep-gamma", data, "-s", "group", "--gammas", "0,1", "--test", data, *TINY,
                           "--out", tmp_path / "sweep", "--n-jobs", "64")  # fmt: skip
    finally:
        running = False
        watcher.join()
    succeeded(outcome)
    assert most <= 3, f"{most} child processes for 2 runs"


# -- output paths: checked before any work starts -------------------------------------------------
SLOW_TRAINING = ["--epochs", "3000", "--hidden", "8", "--code-size", "4", "--samples", "4"]


def _under_a_file(tmp_path: Path, name: str) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    return blocker / name


def _too_long(tmp_path: Path, suffix: str = "") -> Path:
    return tmp_path / ("n" * 300 + suffix)


@pytest.mark.parametrize("where", ["under-a-file", "name-too-long"])
def test_train_checks_its_output_before_training(data, tmp_path, where):
    """Training for thousands of epochs would overrun the limit: the refusal must come first."""
    out = _under_a_file(tmp_path, "m") if where == "under-a-file" else _too_long(tmp_path)
    with unchanged(data, tmp_path / "blocker"):
        refused(sqnn("train", data, "-s", "group", "--out", out, *SLOW_TRAINING, seconds=8))


@pytest.mark.parametrize("where", ["under-a-file", "name-too-long"])
def test_predict_checks_its_output(model, data, tmp_path, where):
    out = _under_a_file(tmp_path, "s.csv") if where == "under-a-file" else _too_long(tmp_path, ".csv")
    with unchanged(model, data, tmp_path / "blocker"):
        refused(sqnn("predict", model, data, "--out", out))


@pytest.mark.parametrize("where", ["under-a-file", "name-too-long"])
def test_prune_checks_its_output(model, data, tmp_path, where):
    out = _under_a_file(tmp_path, "p") if where == "under-a-file" else _too_long(tmp_path)
    with unchanged(model, data, tmp_path / "blocker"):
        refused(sqnn("prune", model, data, "--k", "1", "--out", out))


@pytest.mark.parametrize("where", ["under-a-file", "name-too-long"])
def test_sweep_checks_its_output_before_training(data, tmp_path, where):
    out = _under_a_file(tmp_path, "sweep") if where == "under-a-file" else _too_long(tmp_path)
    with unchanged(data, tmp_path / "blocker"):
        refused(sqnn("sweep-gamma", data, "-s", "group", "--gammas", "0,1", "--folds", "2", "--out", out, *SLOW_TRAINING, seconds=8))


@pytest.mark.parametrize("where", ["under-a-file", "name-too-long"])
def test_split_checks_its_outputs(data, tmp_path, where):
    train = _under_a_file(tmp_path, "train.csv") if where == "under-a-file" else _too_long(tmp_path, ".csv")
    with unchanged(data, tmp_path / "blocker"):
        refused(sqnn("split", data, "--train", train, "--test", tmp_path / "test.csv"))
    assert not (tmp_path / "test.csv").exists()


def test_audit_checks_its_plot_path_before_the_forests(model, data, tmp_path):
    with unchanged(model, data):
        refused(sqnn("audit-representation", model, data, "--interventions", "--trees", "20000",
                     "--plot", _under_a_file(tmp_path, "plot.png"), seconds=8))  # fmt: skip


@pytest.mark.parametrize("spelling", ["same", "dotted", "relative"])
def test_predict_never_writes_over_its_input(model, data, tmp_path, monkeypatch, spelling):
    copy = Path(shutil.copy(data, tmp_path / "data.csv"))
    out = {"same": copy, "dotted": tmp_path / "." / ".." / tmp_path.name / "data.csv", "relative": Path("data.csv")}[spelling]
    monkeypatch.chdir(tmp_path)
    with unchanged(copy, model):
        refused(sqnn("predict", model, copy, "--out", out, "--overwrite"))


def test_split_never_writes_over_its_input(data, tmp_path):
    copy = Path(shutil.copy(data, tmp_path / "data.csv"))
    with unchanged(copy):
        refused(sqnn("split", copy, "--train", copy, "--test", tmp_path / "test.csv", "--overwrite"))
    with unchanged(copy):
        refused(sqnn("split", copy, "--train", tmp_path / "t.csv", "--test", tmp_path / "t.csv", "--overwrite"))


def test_prune_never_writes_over_its_model(damaged, data):
    with unchanged(damaged, data):
        refused(sqnn("prune", damaged, data, "--k", "1", "--out", damaged, "--overwrite"))
    with unchanged(damaged, data):
        refused(sqnn("prune", damaged, data, "--k", "1", "--out", damaged / ".." / damaged.name, "--overwrite"))


# Saves that die (os._exit, as under kill -9) at their k-th rename: the moments at which a
# save moves directories into place, whatever its own naming. One interpreter imports sqnn
# once and forks a child per case before torch has started any thread.
DIE_AT_RENAME = """
import json, os, sys
from sqnn_cli.cli import main
import sqnn_cli.bundle, sqnn_cli.data, sqnn_cli.pipeline  # imported once, not in every child
statuses = []
for die_at, argv in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        calls = 0
        def dying(real):
            def rename(*args, **kwargs):
                global calls
                calls += 1
                if calls == die_at:
                    os._exit(137)
                return real(*args, **kwargs)
            return rename
        os.replace, os.rename = dying(os.replace), dying(os.rename)
        sys.argv = ["sqnn", *argv]
        code = 3
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        finally:
            os._exit(code)
    statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(json.dumps(statuses))
"""


def test_a_save_killed_at_any_rename_leaves_a_bundle_and_the_next_save_cleans_up(workspace, data, tmp_path):
    cases = {(existing, k): tmp_path / f"{'existing' if existing else 'fresh'}-{k}" for existing in (True, False) for k in (1, 2, 3)}
    jobs = []
    for (existing, k), parent in cases.items():
        parent.mkdir()
        if existing:
            shutil.copytree(workspace / "model", parent / "m")
        argv = ["train", data, "-s", "group", "--out", parent / "m", "--overwrite", *TINY, "--seed", "5"]
        jobs.append([k, [str(a) for a in argv]])
    child = subprocess.run([sys.executable, "-c", DIE_AT_RENAME, json.dumps(jobs)], capture_output=True, timeout=120)
    assert child.returncode == 0, child.stderr.decode()
    statuses = json.loads(child.stdout)
    assert set(statuses) <= {0, 137}, statuses
    assert 137 in statuses, "no save renamed anything through os.replace or os.rename; the attack proved nothing"
    for (existing, k), parent in cases.items():
        if existing or (parent / "m").exists():
            # The old bundle or the new one, complete either way.
            succeeded(sqnn("evaluate", parent / "m", data))
        succeeded(sqnn("train", data, "-s", "group", "--out", parent / "m", "--overwrite", *TINY))
        assert sorted(p.name for p in parent.iterdir()) == ["m"], f"killed at rename {k}: left {sorted(os.listdir(parent))}"


# -- bad files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), 1e308])
def test_train_refuses_a_non_finite_or_overflowing_number(workspace, tmp_path, value):
    """1e308 is finite, but standardising it overflows: the column's scale becomes ~7e306
    and every other value in it ~0, a silent loss of the feature."""
    frame = synthetic_table(200)
    frame.loc[7, "signal"] = value
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with unchanged(path):
        error = refused(sqnn("train", path, "-s", "group", "--out", tmp_path / "m", *TINY))
    assert "signal" in error and line_of(error, 9), error
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_scoring_refuses_a_non_finite_number(model, tmp_path, value, command):
    frame = synthetic_table(60, seed=3)
    frame.loc[30, "proxy"] = value
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    argv = [command, model, path] + (["--out", tmp_path / "s.csv"] if command == "predict" else [])
    with unchanged(path, model):
        error = refused(sqnn(*argv))
    assert "proxy" in error and line_of(error, 32), error
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_scoring_an_overflowing_number_is_refused_or_announced(model, tmp_path, command):
    """A finite 1e308 against a normally trained encoder: refused with its column and
    line, or scored with a warning that names the column; never silently."""
    frame = synthetic_table(60, seed=3)
    frame.loc[30, "proxy"] = 1e308
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    argv = [command, model, path] + (["--out", tmp_path / "s.csv"] if command == "predict" else [])
    with unchanged(path, model):
        outcome = sqnn(*argv)
    accepted_or_refused(outcome)
    if outcome.code == 2:
        assert "proxy" in outcome.error_lines[0] and line_of(outcome.error_lines[0], 32), outcome.error_lines[0]
    else:
        assert any(line.startswith("warning:") and "proxy" in line for line in outcome.stderr.splitlines()), outcome.stderr


@pytest.fixture
def finished_sweep(data, tmp_path) -> Path:
    out = tmp_path / "sweep"
    succeeded(sqnn("sweep-gamma", data, *TINY_SWEEP, "--out", out))
    assert len((out / "runs.jsonl").read_text().splitlines()) == 4
    return out


@pytest.mark.parametrize(
    "line",
    [
        '{"gamma": 0.0, "fold": 0}',
        '{"gamma": 0.0, "fold": 0, "metrics": "none"}',
        '{"gamma": 0.0, "fold": 0, "metrics": {"auc": "high"}}',
        '{"gamma": 0.5, "fold": 0, "rows_train": 1}',
        '{"gamma": "NaN", "fold": 0, "metrics": {}}',
        '{"gamma": 0.0, "fold": 0, "metrics": {}}',
        "[0.0, 0]",
        "null",
        "7",
    ],
)
def test_malformed_runs_jsonl_line_is_reported_and_skipped(data, finished_sweep, line):
    runs = finished_sweep / "runs.jsonl"
    valid = runs.read_text()
    # First in the file, so that a reader keeping the first record of a key meets it.
    runs.write_text(line + "\n" + valid)
    outcome = sqnn("sweep-gamma", data, *TINY_SWEEP, "--out", finished_sweep, "--json")
    succeeded(outcome)
    assert any(w.startswith("warning:") and "runs.jsonl" in w for w in outcome.stderr.splitlines()), outcome.stderr
    summary = json.loads(outcome.stdout)
    assert summary["runs_finished"] == 4
    assert [row["gamma"] for row in summary["gammas"]] == [0.0, 1.0]


@pytest.mark.parametrize(
    "contents",
    [
        {"summary.csv": "my,own\n1,2\n"},
        {"summary.csv": "my,own\n1,2\n", "sweep.json": "{not a sweep"},
        {"runs.jsonl": "my notes\n", "notes.txt": "keep me"},
        {"sweep.json": '{"mine": true}', "thesis.tex": "keep me"},
    ],
    ids=["summary", "summary-and-garbage-plan", "runs-notes", "foreign-plan"],
)
def test_sweep_overwrite_never_replaces_a_directory_that_is_not_a_sweep(data, tmp_path, contents):
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in contents.items():
        (out / name).write_text(text)
    with unchanged(out, data):
        refused(sqnn("sweep-gamma", data, *TINY_SWEEP, "--out", out, "--overwrite"))


def test_sweep_overwrite_still_replaces_a_sweep(data, finished_sweep):
    """The other side of the previous test: a real sweep with other options is replaced."""
    outcome = sqnn("sweep-gamma", data, *TINY_SWEEP, "--seed", "1", "--out", finished_sweep, "--overwrite")
    succeeded(outcome)
    assert len((finished_sweep / "runs.jsonl").read_text().splitlines()) == 4


def test_second_sweep_on_a_running_sweeps_directory_is_refused(data, tmp_path):
    """A process boundary matters here: the first sweep runs in a child process."""
    out = tmp_path / "sweep"
    slow = ["--epochs", "400", "--hidden", "8", "--code-size", "4", "--samples", "4"]
    args = ["sweep-gamma", str(data), "-s", "group", "--gammas", "0,1", "--folds", "2", "--out", str(out), *slow]
    first = subprocess.Popen([sys.executable, "-m", "sqnn_cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Once a run is recorded, the first sweep is surely in its loop, holding whatever it
        # holds; it is stopped there while the second tries.
        wait_until(lambda: recorded_runs(out) > 0, first, timeout=60, what="the first sweep recorded a run")
        with paused(first):
            mid_sweep = recorded_runs(out) < 4
            second = sqnn(*args)
        _, first_err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert mid_sweep, "the first sweep had finished its runs before it was stopped; make it slower"
    refused(second)
    assert first.returncode == 0, first_err.decode()
    keys = [(r["gamma"], r["fold"]) for r in map(json.loads, (out / "runs.jsonl").read_text().splitlines())]
    assert sorted(keys) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]
