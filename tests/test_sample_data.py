"""Sanity checks on the datasets shipped in sample_data/.

These read only the shipped files (never the raw originals), so they run
anywhere the repository is checked out. The expected numbers are the ones
documented in sample_data/README.md; if scripts/make_sample_data.py changes
its output, both should be updated together.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

SAMPLE_DIR = Path(__file__).parent.parent / "sample_data"

COMPAS_COLUMNS = [
    "sex", "age", "age_cat", "race", "c_charge_degree", "priors_count",
    "juv_fel_count", "juv_misd_count", "juv_other_count", "two_year_recid",
]
ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num",
    "marital-status", "occupation", "relationship", "race", "sex",
    "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
]
BANK_COLUMNS = [
    "age", "job", "marital", "education", "default", "balance", "housing",
    "loan", "contact", "day", "month", "duration", "campaign", "pdays",
    "previous", "poutcome", "age_group", "y",
]


@pytest.fixture(scope="module")
def compas() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DIR / "compas.csv")


@pytest.fixture(scope="module")
def adult_raw() -> pd.DataFrame:
    # Everything as text, nothing turned into NaN, so a stray '?' would show.
    return pd.read_csv(SAMPLE_DIR / "adult.csv.gz", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def bank() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DIR / "bank.csv.gz", keep_default_na=False)


# --- COMPAS -----------------------------------------------------------------

def test_compas_columns_and_target_last(compas):
    assert list(compas.columns) == COMPAS_COLUMNS
    assert compas.columns[-1] == "two_year_recid"


def test_compas_row_counts(compas):
    assert len(compas) == 6172
    assert compas["race"].isin(["African-American", "Caucasian"]).sum() == 5278
    # All races are kept, not just the two used in the paper.
    assert compas["race"].nunique() == 6


def test_compas_labels_and_filter(compas):
    assert set(compas["two_year_recid"]) == {0, 1}
    assert compas["two_year_recid"].sum() == 2809
    assert set(compas["c_charge_degree"]) == {"F", "M"}
    assert not compas.isna().any().any()


def test_compas_has_lf_line_endings():
    assert b"\r" not in (SAMPLE_DIR / "compas.csv").read_bytes()


# --- Adult ------------------------------------------------------------------

def test_adult_columns_and_target_last(adult_raw):
    assert list(adult_raw.columns) == ADULT_COLUMNS
    assert adult_raw.columns[-1] == "income"


def test_adult_rows_and_labels(adult_raw):
    assert len(adult_raw) == 32561 + 16281
    counts = adult_raw["income"].value_counts().to_dict()
    assert counts == {"<=50K": 37155, ">50K": 11687}


def test_adult_missing_is_empty_not_question_mark(adult_raw):
    assert not (adult_raw == "?").any().any()
    assert not adult_raw.apply(lambda col: col.str.startswith(" ")).any().any()
    missing = (adult_raw == "").sum()
    assert missing[missing > 0].to_dict() == {
        "workclass": 2799, "occupation": 2809, "native-country": 857,
    }


# --- Bank -------------------------------------------------------------------

def test_bank_columns_and_target_last(bank):
    assert list(bank.columns) == BANK_COLUMNS
    assert bank.columns[-1] == "y"


def test_bank_rows_and_labels(bank):
    assert len(bank) == 45211
    assert bank["y"].value_counts().to_dict() == {"no": 39922, "yes": 5289}


def test_bank_age_group_rule(bank):
    expected = ((bank["age"] < 25) | (bank["age"] > 65)).map(
        {True: "young_or_old", False: "middle"}
    )
    assert (bank["age_group"] == expected).all()
    assert (bank["age_group"] == "young_or_old").sum() == 809 + 751


# --- Reproducibility --------------------------------------------------------

@pytest.mark.parametrize("name", ["adult.csv.gz", "bank.csv.gz"])
def test_gzip_header_has_no_timestamp_or_name(name):
    header = (SAMPLE_DIR / name).read_bytes()[:10]
    assert header[:2] == b"\x1f\x8b"
    flags, mtime = header[3], header[4:8]
    assert mtime == b"\x00\x00\x00\x00"
    assert not flags & 0x08  # FNAME: no embedded file name


@pytest.mark.parametrize("name", ["adult.csv.gz", "bank.csv.gz"])
def test_gzip_payload_has_lf_line_endings(name):
    assert b"\r" not in gzip.decompress((SAMPLE_DIR / name).read_bytes())
