#!/usr/bin/env python
"""Build the small, cleaned datasets shipped in sample_data/ from the raw originals.

Produces (in --out):
  compas.csv     ProPublica-filtered COMPAS two-year recidivism, all races
  adult.csv.gz   UCI Adult, train + test pooled, labels normalised
  bank.csv.gz    UCI Bank Marketing (bank-full), plus an age_group column

Example:
  python scripts/make_sample_data.py \\
      --compas ../shared/datasets/compas/compas-scores-two-years.csv \\
      --adult-data ../shared/datasets/adult/adult.data \\
      --adult-test ../shared/datasets/adult/adult.test \\
      --bank ../shared/datasets/bank/bank-full.csv \\
      --out sample_data/

The outputs are byte-reproducible: same inputs (checked by sha256) give the
same bytes out, so regenerating and diffing is a valid review step.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
from pathlib import Path

import pandas as pd

# Pinned from /work/shared/datasets/SOURCES.md. Pinned here rather than parsed
# at run time so the script needs nothing but the four raw files, and so a
# silently different "adult.data" (there are many variants online) is refused
# instead of producing plausible-looking but different sample data.
EXPECTED_SHA256 = {
    "compas": "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d",
    "adult_data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult_test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    "bank": "d1513ec63b385506f7cfce9f2c5caa9fe99e7ba4e8c3fa264b3aaf0f849ed32d",
}

COMPAS_COLUMNS = [
    "sex", "age", "age_cat", "race", "c_charge_degree", "priors_count",
    "juv_fel_count", "juv_misd_count", "juv_other_count", "two_year_recid",
]

# Order as listed in adult.names; the raw files have no header.
ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num",
    "marital-status", "occupation", "relationship", "race", "sex",
    "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
]


class InputError(Exception):
    """A problem with the raw inputs; reported as one line, exit status 2."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_inputs(inputs: dict[str, Path]) -> None:
    # Check every input before writing anything, so a bad run never leaves a
    # half-updated sample_data/ behind.
    for key, path in inputs.items():
        flag = "--" + key.replace("_", "-")
        if not path.is_file():
            raise InputError(f"{flag}: no such file: {path}")
        actual = sha256_of(path)
        if actual != EXPECTED_SHA256[key]:
            raise InputError(
                f"{flag}: sha256 mismatch for {path}: "
                f"expected {EXPECTED_SHA256[key]}, got {actual}"
            )


def build_compas(path: Path) -> pd.DataFrame:
    # The header repeats decile_score and priors_count; pandas suffixes the
    # second copies with ".1", so the plain names pick the first copies (the
    # two copies are identical in this file anyway).
    raw = pd.read_csv(path)
    # ProPublica's R filter. Rows with no days_b_screening_arrest compare as
    # False in pandas, and are dropped, just as dplyr::filter drops NA. pandas
    # reads the literal 'N/A' as NaN, so score_text is checked for both forms.
    # On this file only the days_b_screening_arrest condition removes rows; the
    # other three are kept so the derivation matches the published one.
    keep = (
        raw["days_b_screening_arrest"].between(-30, 30)
        & (raw["is_recid"] != -1)
        & (raw["c_charge_degree"] != "O")
        & raw["score_text"].notna()
        & (raw["score_text"] != "N/A")
    )
    return raw.loc[keep, COMPAS_COLUMNS].reset_index(drop=True)


def read_adult(path: Path, skiprows: int) -> pd.DataFrame:
    # Fields are separated by ", "; skipinitialspace strips the space so values
    # (and the '?' marker) compare exactly. Only '?' means missing: default NA
    # parsing is switched off so no real category can be mistaken for NaN.
    return pd.read_csv(
        path,
        header=None,
        names=ADULT_COLUMNS,
        skiprows=skiprows,
        skipinitialspace=True,
        keep_default_na=False,
        na_values=["?"],
        skip_blank_lines=True,
    )


def build_adult(data_path: Path, test_path: Path) -> pd.DataFrame:
    train = read_adult(data_path, skiprows=0)
    # adult.test opens with the junk line "|1x3 Cross validator".
    test = read_adult(test_path, skiprows=1)
    adult = pd.concat([train, test], ignore_index=True)
    # adult.test writes labels as ">50K." / "<=50K."; unify with adult.data.
    adult["income"] = adult["income"].str.rstrip(".")
    labels = set(adult["income"].unique())
    if labels != {">50K", "<=50K"}:
        raise InputError(f"adult: unexpected income labels after cleaning: {sorted(labels)}")
    return adult


def build_bank(path: Path) -> pd.DataFrame:
    # bank-full has no missing values (unknowns are the string "unknown"), so
    # default NA parsing is off to keep every value as written.
    bank = pd.read_csv(path, sep=";", keep_default_na=False)
    # Binary age attribute commonly used as the sensitive group for this
    # dataset in the fairness literature. It goes just before y because the
    # CLI's convention is that the target is the last column.
    age_group = ((bank["age"] < 25) | (bank["age"] > 65)).map(
        {True: "young_or_old", False: "middle"}
    )
    bank.insert(bank.columns.get_loc("y"), "age_group", age_group)
    return bank


def csv_bytes(df: pd.DataFrame) -> bytes:
    # Fixed LF endings and no index regardless of platform, so output bytes
    # depend only on the data.
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def write_csv(df: pd.DataFrame, path: Path) -> None:
    path.write_bytes(csv_bytes(df))


def write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    # gzip normally embeds the current time and the file name in its header;
    # zeroing both makes the archive byte-identical across runs and machines
    # (given the same zlib).
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=9) as gz:
        gz.write(csv_bytes(df))
    path.write_bytes(buf.getvalue())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Build sample_data/{compas.csv, adult.csv.gz, bank.csv.gz} from the raw "
            "COMPAS, UCI Adult and UCI Bank Marketing files. Each input's sha256 is "
            "checked first; on mismatch nothing is written and the exit status is 2."
        )
    )
    parser.add_argument("--compas", type=Path, required=True,
                        help="ProPublica compas-scores-two-years.csv")
    parser.add_argument("--adult-data", type=Path, required=True,
                        help="UCI adult.data")
    parser.add_argument("--adult-test", type=Path, required=True,
                        help="UCI adult.test")
    parser.add_argument("--bank", type=Path, required=True,
                        help="UCI bank-full.csv")
    parser.add_argument("--out", type=Path, required=True,
                        help="output directory (created if missing)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inputs = {
        "compas": args.compas,
        "adult_data": args.adult_data,
        "adult_test": args.adult_test,
        "bank": args.bank,
    }
    try:
        verify_inputs(inputs)
        compas = build_compas(args.compas)
        adult = build_adult(args.adult_data, args.adult_test)
        bank = build_bank(args.bank)
    except InputError as exc:
        print(f"make_sample_data: error: {exc}", file=sys.stderr)
        return 2

    args.out.mkdir(parents=True, exist_ok=True)
    outputs = [
        (compas, args.out / "compas.csv", write_csv),
        (adult, args.out / "adult.csv.gz", write_csv_gz),
        (bank, args.out / "bank.csv.gz", write_csv_gz),
    ]
    for df, path, writer in outputs:
        writer(df, path)
        print(f"wrote {path} ({len(df)} rows, {df.shape[1]} columns, "
              f"target {df.columns[-1]!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
