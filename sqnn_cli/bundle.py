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
import re
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

__all__ = ["ModelBundle", "save_bundle", "load_bundle", "fresh_bundle_path", "check_writable", "SCHEMA_VERSION", "WEIGHTS_FILE", "PREPROCESS_FILE", "META_FILE"]

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
MSG_META_TAMPERED = "model bundle '{path}' was modified after training: meta.json does not match its own checksum"
MSG_NOT_REPLACEABLE = "'{path}' exists and is not an sqnn model bundle; --overwrite only replaces bundles"
META_CHECKSUM = "meta_sha256"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


def _meta_checksum(meta: dict[str, Any]) -> str:
    """sha256 of meta.json's content in canonical form, so that any edit is detected."""
    content = {k: v for k, v in meta.items() if k != META_CHECKSUM}
    return _sha256_bytes(json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())


def _first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def check_writable(path: Path, *, overwrite: bool) -> None:
    """Refuse, before any work is done, a destination that saving would have to refuse.

    An empty directory is as good as none; anything else needs ``overwrite``, and even
    then only a previous bundle is replaced.
    """
    if path.is_dir() and not any(path.iterdir()):
        return
    if path.exists() and not overwrite:
        raise InputError(MSG_EXISTS.format(path=path))
    if path.exists() and not _is_replaceable(path):
        raise InputError(MSG_NOT_REPLACEABLE.format(path=path))


def _is_replaceable(path: Path) -> bool:
    """Only a previous bundle (or an empty directory) may be replaced by --overwrite."""
    if not path.is_dir():
        return False
    names = {child.name for child in path.iterdir()}
    return not names or (META_FILE in names and names <= {META_FILE, WEIGHTS_FILE, PREPROCESS_FILE})


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
    check_writable(target, overwrite=overwrite)
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
    full_meta[META_CHECKSUM] = _meta_checksum(full_meta)

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
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=f"meta.json is not JSON ({_first_line(exc)})")) from None
    if not isinstance(meta, dict) or META_CHECKSUM not in meta:
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason="meta.json carries no checksum"))
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason="meta.json has no integer schema_version"))
    if version > SCHEMA_VERSION:
        raise BundleError(MSG_NEWER_SCHEMA.format(path=root, version=version, supported=SCHEMA_VERSION))
    if meta[META_CHECKSUM] != _meta_checksum(meta):
        raise BundleError(MSG_META_TAMPERED.format(path=root))
    checksums = meta.get("files")
    if not isinstance(checksums, dict):
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason="meta.json lists no file checksums"))

    contents = {}
    for name in (WEIGHTS_FILE, PREPROCESS_FILE):
        data = (root / name).read_bytes()
        if checksums.get(name) != _sha256_bytes(data):
            raise BundleError(MSG_TAMPERED.format(path=root, file=name))
        contents[name] = data

    try:
        encoder = TabularEncoder.from_dict(json.loads(contents[PREPROCESS_FILE]))
    except ValueError as exc:
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=_first_line(exc))) from None
    weights = _load_weights(root, contents[WEIGHTS_FILE])
    try:
        roles = ColumnRoles.from_dict(meta["roles"])
        if list(roles.features) != encoder.input_columns:
            raise ValueError("the feature columns in meta.json and preprocess.json differ")
        if not roles.sensitive:
            raise ValueError("meta.json names no sensitive column")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=f"bad column roles ({_first_line(exc)})")) from None
    try:
        estimator = SQNNClassifier.from_fitted_state(meta["model"], weights, device=device)
    except RuntimeError:
        raise BundleError(
            MSG_NOT_A_BUNDLE.format(path=root, reason="weights.pt does not fit the architecture described in meta.json")
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=f"bad model description ({_first_line(exc)})")) from None
    return ModelBundle(estimator=estimator, encoder=encoder, meta=meta, path=root)


def _load_weights(root: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        weights = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    # The bytes are untrusted: whatever the restricted unpickler or the zip reader
    # objects to, the answer is the same refusal.
    except Exception as exc:  # noqa: BLE001
        raise BundleError(MSG_UNSAFE_WEIGHTS.format(path=root, file=WEIGHTS_FILE, reason=_first_line(exc))) from None
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
