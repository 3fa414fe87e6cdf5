"""Model bundles: a directory of plain data that loading never executes.

A bundle holds ``weights.pt`` (tensors only, read with ``torch.load(weights_only=True)``),
``preprocess.json`` (the fitted encoder) and ``meta.json`` (versions, options, column
roles, data checksum, history, and the sha256 of the other two files so that a swapped
or edited file is refused before it is read).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .data import ColumnRoles
from .errors import BundleError, InputError
from .estimator import SQNNClassifier
from .preprocess import TabularEncoder

__all__ = ["ModelBundle", "save_bundle", "load_bundle", "fresh_bundle_path", "SCHEMA_VERSION", "WEIGHTS_FILE", "PREPROCESS_FILE", "META_FILE"]

SCHEMA_VERSION = 1
WEIGHTS_FILE = "weights.pt"
PREPROCESS_FILE = "preprocess.json"
META_FILE = "meta.json"

MSG_NOT_A_DIRECTORY = "model directory '{path}' does not exist"
MSG_NOT_A_BUNDLE = "'{path}' is not an sqnn model bundle: {reason}"
MSG_TAMPERED = "model bundle '{path}' was modified after training: {file} does not match the checksum in meta.json"
MSG_UNSAFE_WEIGHTS = "model bundle '{path}': {file} holds more than plain tensors, refusing to load it ({reason})"
MSG_NEWER_SCHEMA = "model bundle '{path}' has schema version {version}; this sqnn reads version {supported}"
MSG_EXISTS = "output directory '{path}' already exists; pass --overwrite to replace it"


@dataclass
class ModelBundle:
    """A trained model with everything needed to apply it to a new table."""

    estimator: SQNNClassifier
    encoder: TabularEncoder
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def roles(self) -> ColumnRoles:
        return ColumnRoles.from_dict(self.meta["roles"])


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n").encode()


def save_bundle(
    path: str | Path,
    *,
    estimator: SQNNClassifier,
    encoder: TabularEncoder,
    meta: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write the bundle into a temporary sibling directory, then rename it into place.

    A crash or Ctrl-C at any point leaves either the old directory or the complete new
    one, never a half-written bundle.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise InputError(MSG_EXISTS.format(path=target))
    target.parent.mkdir(parents=True, exist_ok=True)

    model_description, weights = estimator.fitted_state()
    weights_bytes = _serialise_weights(weights)
    preprocess_bytes = _json_bytes(encoder.to_dict())
    full_meta = {
        "schema_version": SCHEMA_VERSION,
        "sqnn_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        **meta,
        "model": model_description,
        "files": {
            WEIGHTS_FILE: _sha256_bytes(weights_bytes),
            PREPROCESS_FILE: _sha256_bytes(preprocess_bytes),
        },
    }

    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        # mkdtemp makes the directory private; a bundle is as shareable as any output.
        staging.chmod(0o755)
        (staging / WEIGHTS_FILE).write_bytes(weights_bytes)
        (staging / PREPROCESS_FILE).write_bytes(preprocess_bytes)
        (staging / META_FILE).write_bytes(_json_bytes(full_meta))
        _fsync_directory_files(staging)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, retired / "bundle")
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _serialise_weights(weights: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    return buffer.getvalue()


def _fsync_directory_files(directory: Path) -> None:
    for child in directory.iterdir():
        with open(child, "rb") as handle:
            os.fsync(handle.fileno())


def load_bundle(path: str | Path, *, device: str = "cpu") -> ModelBundle:
    """Load and verify a bundle; any deviation from what training wrote is refused."""
    root = Path(path)
    if not root.exists():
        raise BundleError(MSG_NOT_A_DIRECTORY.format(path=root))
    if not root.is_dir():
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason="not a directory"))
    for name in (META_FILE, PREPROCESS_FILE, WEIGHTS_FILE):
        if not (root / name).is_file():
            raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=f"{name} is missing"))

    try:
        meta = json.loads((root / META_FILE).read_text())
        version = meta["schema_version"]
        checksums = meta["files"]
        meta["model"]["params"], meta["roles"]["target"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=f"meta.json is unreadable ({exc})")) from None
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BundleError(MSG_NEWER_SCHEMA.format(path=root, version=version, supported=SCHEMA_VERSION))

    contents = {}
    for name in (WEIGHTS_FILE, PREPROCESS_FILE):
        data = (root / name).read_bytes()
        if checksums.get(name) != _sha256_bytes(data):
            raise BundleError(MSG_TAMPERED.format(path=root, file=name))
        contents[name] = data

    try:
        encoder = TabularEncoder.from_dict(json.loads(contents[PREPROCESS_FILE]))
    except ValueError as exc:
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=str(exc))) from None
    weights = _load_weights(root, contents[WEIGHTS_FILE])
    try:
        estimator = SQNNClassifier.from_fitted_state(meta["model"], weights, device=device)
        ColumnRoles.from_dict(meta["roles"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=reason)) from None
    return ModelBundle(estimator=estimator, encoder=encoder, meta=meta, path=root)


def _load_weights(root: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        weights = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    # The bytes are untrusted: whatever the restricted unpickler or the zip reader
    # objects to, the answer is the same refusal.
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(MSG_UNSAFE_WEIGHTS.format(path=root, file=WEIGHTS_FILE, reason=reason[:200])) from None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise BundleError(MSG_UNSAFE_WEIGHTS.format(path=root, file=WEIGHTS_FILE, reason="not a mapping of tensors"))
    return weights


def fresh_bundle_path(data_path: str | Path, parent: str | Path = ".") -> Path:
    """``<data name>-model`` in ``parent``, numbered so that it never names an existing path."""
    name = Path(data_path).name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    base = Path(parent) / f"{name or 'data'}-model"
    candidate, number = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{number}")
        number += 1
    return candidate
