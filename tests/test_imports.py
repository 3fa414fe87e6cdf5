"""What a command imports (issue 17: import only what the command needs)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import REPO, synthetic_table

# Each check runs in a fresh interpreter: pytest's own process has imported everything.
DEFERRED_THEN_USED = """
import sys
from sqnn_cli import imports
imports.defer("scipy.stats")
import torch, sklearn.base, sqnn_cli.estimator, sqnn_cli.pipeline
assert type(sys.modules["scipy.stats"]).__name__ == "_Deferred", "scipy.stats was imported"
from scipy.stats import rankdata
import scipy.stats
assert type(sys.modules["scipy.stats"]).__name__ == "module"
assert rankdata([3, 1, 2]).tolist() == [3.0, 1.0, 2.0] and rankdata is scipy.stats.rankdata
assert abs(scipy.stats.norm.cdf(0.0) - 0.5) < 1e-12
print("ok")
"""

SUBMODULE_FIRST = """
import sys
from sqnn_cli import imports
imports.defer("scipy.stats")
from scipy.stats._stats_py import rankdata
import scipy.stats
assert rankdata([2, 1]).tolist() == [2.0, 1.0] and scipy.stats.t.ppf(0.5, 3) == 0.0
print("ok")
"""

TRAIN_IN_THE_CONSOLE_SCRIPT = """
import sys
from sqnn_cli.cli import main
sys.argv = ["sqnn", "train", sys.argv[1], "-s", "group", "--epochs", "1", "--out", sys.argv[2]]
try:
    main()
except SystemExit as exit:
    assert exit.code == 0, exit.code
loaded = [name for name in ("sklearn.metrics", "sklearn.model_selection", "sklearn.ensemble") if name in sys.modules]
print(type(sys.modules.get("scipy.stats")).__name__, loaded)
"""


def _python(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_deferred_module_is_imported_when_first_used_and_works_as_itself():
    assert _python(DEFERRED_THEN_USED) == "ok"


def test_a_submodule_of_a_deferred_module_can_be_imported_first():
    assert _python(SUBMODULE_FIRST) == "ok"


def test_train_never_imports_scipy_stats_nor_the_sklearn_modules_only_other_commands_use(tmp_path):
    table = tmp_path / "table.csv"
    synthetic_table(200).to_csv(table, index=False)
    assert _python(TRAIN_IN_THE_CONSOLE_SCRIPT, str(table), str(tmp_path / "model")) == "_Deferred []"
