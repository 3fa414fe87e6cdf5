"""Model bundles: plain data, verified on load, written atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sqnn_cli import bundle as bundle_module
from sqnn_cli.bundle import fresh_bundle_path, load_bundle, save_bundle
from sqnn_cli.data import ColumnRoles
from sqnn_cli.errors import BundleError, InputError
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.preprocess import TabularEncoder


@pytest.fixture(scope="module")
def trained(make_table):
    table = make_table(300)
    features = table[["proxy", "signal", "colour"]]
    encoder = TabularEncoder().fit(features)
    x, _ = encoder.transform(features)
    model = SQNNClassifier(epochs=2, hidden=(8,), code_size=4, device="cpu").fit(
        x, table["y"].to_numpy(), sensitive_features=table["group"].to_numpy()
    )
    roles = ColumnRoles(target="y", positive_label="1", sensitive=("group",), features=("proxy", "signal", "colour"))
    return model, encoder, {"roles": roles.to_dict()}, x


def test_round_trip_gives_identical_scores(tmp_path, trained):
    model, encoder, meta, x = trained
    path = save_bundle(tmp_path / "m", estimator=model, encoder=encoder, meta=meta)
    loaded = load_bundle(path)
    assert np.array_equal(loaded.estimator.predict_proba(x), model.predict_proba(x))
    assert loaded.roles.sensitive == ("group",)
    stored = json.loads((path / "meta.json").read_text())
    assert stored["schema_version"] == bundle_module.SCHEMA_VERSION
    assert set(stored["files"]) == {"weights.pt", "preprocess.json"}


def test_existing_directory_needs_overwrite(tmp_path, trained):
    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", estimator=model, encoder=encoder, meta=meta)
    with pytest.raises(InputError, match="--overwrite"):
        save_bundle(path, estimator=model, encoder=encoder, meta=meta)
    save_bundle(path, estimator=model, encoder=encoder, meta=meta, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_interrupted_save_leaves_nothing_behind(tmp_path, trained, monkeypatch):
    model, encoder, meta, _ = trained

    def interrupted(_directory):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_module, "_fsync_directory_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_bundle(tmp_path / "m", estimator=model, encoder=encoder, meta=meta)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_bundle(tmp_path, trained, monkeypatch):
    model, encoder, meta, x = trained
    path = save_bundle(tmp_path / "m", estimator=model, encoder=encoder, meta=meta)
    before = (path / "weights.pt").read_bytes()
    monkeypatch.setattr(bundle_module, "_fsync_directory_files", lambda _d: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        save_bundle(path, estimator=model, encoder=encoder, meta=meta, overwrite=True)
    assert (path / "weights.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_weights_holding_code_are_refused_even_with_a_matching_checksum(tmp_path, trained):
    import collections
    import hashlib

    import torch

    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", estimator=model, encoder=encoder, meta=meta)
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
    path = save_bundle(tmp_path / "m", estimator=model, encoder=encoder, meta=meta)
    (path / "preprocess.json").write_text((path / "preprocess.json").read_text().replace("red", "RED"))
    with pytest.raises(BundleError, match="modified after training"):
        load_bundle(path)


def test_fresh_bundle_path_never_names_an_existing_path(tmp_path):
    (tmp_path / "adult-model").mkdir()
    (tmp_path / "adult-model-2").mkdir()
    assert fresh_bundle_path("data/adult.csv.gz", tmp_path) == tmp_path / "adult-model-3"
    assert fresh_bundle_path("compas.csv", tmp_path) == tmp_path / "compas-model"


def test_edited_meta_is_refused(tmp_path, trained):
    model, encoder, meta, _ = trained
    path = save_bundle(tmp_path / "m", estimator=model, encoder=encoder, meta=meta)
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
        save_bundle(precious, estimator=model, encoder=encoder, meta=meta, overwrite=True)
    assert (precious / "thesis.txt").exists()
