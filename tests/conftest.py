from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "sample_data"
# Architecture small enough that a CLI round trip costs about a second.
TINY_MODEL = ["--epochs", "3", "--hidden", "16", "--code-size", "8", "--samples", "4"]


@pytest.fixture(autouse=True)
def _seed_everything():
    """Tests must not depend on each other's use of the global generators."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def synthetic_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A table where y depends on the features and S leaks through one of them."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], size=n, p=[0.6, 0.4])
    proxy = rng.normal(size=n) + (group == "b") * 1.5
    signal = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    logit = 1.5 * signal + 0.8 * proxy + (colour == "red")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"proxy": proxy, "signal": signal, "colour": colour, "group": group, "y": y})


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    synthetic_table().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def make_table():
    return synthetic_table


# A module that trains a bundle defines ``workspace`` (a directory holding ``data.csv`` and
# the bundle ``model``); these name its parts, and give each test a copy to damage.
@pytest.fixture
def data(workspace: Path) -> Path:
    return workspace / "data.csv"


@pytest.fixture
def model(workspace: Path) -> Path:
    return workspace / "model"


@pytest.fixture
def damaged(model: Path, tmp_path: Path) -> Path:
    """A private copy of the module's bundle to tamper with."""
    return Path(shutil.copytree(model, tmp_path / "model"))
