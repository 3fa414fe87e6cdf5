"""Model bundles: a directory of plain data that loading never executes.

A bundle holds ``weights.pt`` (tensors only, read with ``torch.load(weights_only=True)``),
``preprocess.json`` (the fitted encoder) and ``meta.json`` (versions, options, column
roles, data checksum, history, and the sha256 of the other two files).

Loading judges every file before reading it: regular files only, sizes checked against
fixed bounds (the JSON files) or against the architecture meta.json describes (the
weights), meta.json validated against its schema before anything is allocated, and the
tensors' names, shapes and values checked before they reach a network. The checksums
catch accidental corruption and files mixed from different bundles; they are no
signature, so a deliberate edit that recomputes them is not detected (README, "Model
bundles").
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import platform
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from . import __version__, files
from .data import ColumnRoles
from .errors import BundleError, InputError, ParameterError
from .estimator import SQNNClassifier
from .fitted import FittedModel
from .preprocess import TabularEncoder

__all__ = [
    "ModelBundle",
    "save_bundle",
    "load_bundle",
    "default_bundle_path",
    "check_writable",
    "SCHEMA_VERSION",
    "WEIGHTS_FILE",
    "PREPROCESS_FILE",
    "META_FILE",
    "MAX_META_BYTES",
    "MAX_PREPROCESS_BYTES",
    "MAX_WEIGHTS_BYTES",
]

# 2 added the sample-weight role (roles.weight), the objective, and the adversarial and
# vfae methods, whose networks carry more tensors. A version-1 bundle reads as version 2
# with no weight column and the independence objective.
SCHEMA_VERSION = 2
WEIGHTS_FILE = "weights.pt"
PREPROCESS_FILE = "preprocess.json"
META_FILE = "meta.json"

# Bounds checked with stat before a file is read. A bundle trained on Adult (106 encoded
# features, 30 epochs) has a 7 KiB meta.json and a 4 KiB preprocess.json; meta.json grows
# by about 200 bytes an epoch and preprocess.json by a line per category, so these leave
# room for some 300,000 epochs of history and millions of categories.
MAX_META_BYTES = 64 * 2**20
MAX_PREPROCESS_BYTES = 256 * 2**20
# The largest network a bundle may hold: 1 G float32 parameters. weights.pt must moreover
# be exactly as large as meta.json's architecture implies, give or take torch.save's zip
# framing (about 2.5 KiB plus 0.4 KiB a tensor in torch 2.x; bounded generously below).
MAX_WEIGHTS_BYTES = 4 * 2**30
_WEIGHTS_FRAMING_BYTES = 64 * 2**10
_WEIGHTS_FRAMING_PER_TENSOR = 4 * 2**10
_READ_CHUNK = 2**20

MSG_NOT_A_DIRECTORY = "model directory '{path}' does not exist"
MSG_NOT_A_BUNDLE = "'{path}' is not an sqnn model bundle: {reason}"
MSG_TAMPERED = "model bundle '{path}' was modified after training: {file} does not match the checksum in meta.json"
MSG_UNSAFE_WEIGHTS = "model bundle '{path}': {file} holds more than plain tensors, refusing to load it ({reason})"
MSG_NEWER_SCHEMA = "model bundle '{path}' has schema version {version}; this sqnn reads version {supported}"
MSG_EXISTS = "output directory '{path}' already exists; pass {overwrite} to replace it, or name another {output}"
MSG_META_TAMPERED = "model bundle '{path}' was modified after training: meta.json does not match its own checksum"
MSG_NOT_REPLACEABLE = "'{path}' exists and is not an sqnn model bundle; {overwrite} only replaces bundles"
META_CHECKSUM = "meta_sha256"
# What save_bundle writes into meta.json itself; the caller's meta provides the rest.
SAVED_KEYS = frozenset(
    {"schema_version", "sqnn_version", "torch_version", "python_version", "roles", "model", "files", META_CHECKSUM}
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class ModelBundle:
    """A trained model and how it was made: the content of a bundle directory.

    ``meta`` is meta.json as written: what the caller of :func:`save_bundle` recorded
    (options, data, lineage) plus what saving adds (:data:`SAVED_KEYS`)."""

    model: FittedModel
    meta: dict[str, Any]

    def inherited_meta(self) -> dict[str, Any]:
        """What a bundle derived from this one (a pruned copy) carries over: the recorded
        history, without the keys the next save writes afresh."""
        return {key: value for key, value in self.meta.items() if key not in SAVED_KEYS}


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n").encode()


def _meta_checksum(meta: dict[str, Any]) -> str:
    """sha256 of meta.json's content in canonical form, so that any accidental edit is detected."""
    content = {k: v for k, v in meta.items() if k != META_CHECKSUM}
    return _sha256_bytes(json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())


def _first_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# -- writing -----------------------------------------------------------------------------
def check_writable(path: Path, *, overwrite: bool, inputs: Iterable[str | Path] = ()) -> None:
    """Refuse, before any work is done, a destination that saving would have to refuse.

    ``inputs`` are the command's own inputs, which the bundle must not replace. An empty
    directory is as good as none; anything else needs ``overwrite``, and even then only a
    previous bundle is replaced. The directory that will hold the bundle is probed for
    writing (files.check_output_location).
    """
    files.check_not_an_input(path, inputs)
    files.check_output_location(path)
    if path.is_dir() and not any(path.iterdir()):
        return
    if os.path.lexists(path) and not overwrite:
        raise ParameterError(MSG_EXISTS, path=path)
    if os.path.lexists(path) and not _is_replaceable(path):
        raise ParameterError(MSG_NOT_REPLACEABLE, path=path)


def _is_replaceable(path: Path) -> bool:
    """Only a previous bundle (or an empty directory) may be replaced by --overwrite."""
    if not path.is_dir():
        return False
    names = {child.name for child in path.iterdir()}
    return not names or (META_FILE in names and names <= {META_FILE, WEIGHTS_FILE, PREPROCESS_FILE})


def save_bundle(
    path: str | Path,
    model: FittedModel,
    *,
    meta: dict[str, Any],
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Write the bundle into a temporary sibling directory, then swap it into place.

    At every instant ``path`` holds the old bundle or the complete new one
    (files.replace_directory); a crash or Ctrl-C leaves at most a hidden temporary, which
    the next save to the same path removes.
    """
    target = Path(path)
    check_writable(target, overwrite=overwrite, inputs=inputs)
    clash = sorted(SAVED_KEYS & set(meta))
    if clash:
        raise ValueError(f"meta may not set {', '.join(clash)}: save_bundle writes them")

    model_description, weights = model.estimator.fitted_state()
    weights_bytes = _serialise_weights(weights)
    preprocess_bytes = _json_bytes(model.encoder.to_dict())
    full_meta = {
        "schema_version": SCHEMA_VERSION,
        "sqnn_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        **meta,
        "roles": model.roles.to_dict(),
        "model": model_description,
        "files": {
            WEIGHTS_FILE: _sha256_bytes(weights_bytes),
            PREPROCESS_FILE: _sha256_bytes(preprocess_bytes),
        },
    }
    full_meta[META_CHECKSUM] = _meta_checksum(full_meta)

    staging = files.staging_directory(target)
    try:
        (staging / WEIGHTS_FILE).write_bytes(weights_bytes)
        (staging / PREPROCESS_FILE).write_bytes(preprocess_bytes)
        (staging / META_FILE).write_bytes(_json_bytes(full_meta))
        _fsync_directory_files(staging)
        files.replace_directory(staging, target)
    except BaseException:
        files.remove_tree(staging)
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


# -- loading -----------------------------------------------------------------------------
def load_bundle(path: str | Path, *, device: str = "cpu") -> ModelBundle:
    """Load and verify a bundle; anything that training could not have written is
    refused with a BundleError before it is read or allocated."""
    root = Path(path)
    if not root.exists():
        raise BundleError(MSG_NOT_A_DIRECTORY.format(path=root))
    if not root.is_dir():
        raise BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason="not a directory"))
    sizes = {name: _member_size(root, name) for name in (META_FILE, PREPROCESS_FILE, WEIGHTS_FILE)}
    for name, limit in ((META_FILE, MAX_META_BYTES), (PREPROCESS_FILE, MAX_PREPROCESS_BYTES), (WEIGHTS_FILE, MAX_WEIGHTS_BYTES)):
        if sizes[name] > limit:
            raise _refusal(root, f"{name} is {sizes[name]} bytes, more than a bundle's {name} may be ({limit})")

    meta = _read_meta(root)
    shapes = _checked_shapes(root, meta, device)
    low, high = _weights_size_range(shapes)
    if not low <= sizes[WEIGHTS_FILE] <= high:
        raise _refusal(
            root,
            f"{WEIGHTS_FILE} does not fit the architecture described in meta.json: it is {sizes[WEIGHTS_FILE]} bytes, "
            f"that network takes {low} to {high}",
        )

    encoder = _read_encoder(root, meta, limit=MAX_PREPROCESS_BYTES)
    width = len(encoder.feature_names)
    if width != meta["model"]["n_features_in"]:
        raise _refusal(
            root,
            f"preprocess.json encodes {width} features but the network in meta.json takes {meta['model']['n_features_in']}",
        )
    if list(meta["roles"]["features"]) != encoder.input_columns:
        raise _refusal(root, "bad column roles (the feature columns in meta.json and preprocess.json differ)")

    weights = _read_weights(root, meta["files"][WEIGHTS_FILE], shapes)
    estimator = SQNNClassifier.from_fitted_state(meta["model"], weights, device=device)
    return ModelBundle(FittedModel(estimator, encoder, ColumnRoles.from_dict(meta["roles"])), meta)


def _refusal(root: Path, reason: str) -> BundleError:
    return BundleError(MSG_NOT_A_BUNDLE.format(path=root, reason=reason))


def _member_size(root: Path, name: str) -> int:
    """The size of a bundle file, which must be a regular file (not a link, FIFO, device
    or directory); judged with lstat, without opening it."""
    try:
        status = os.lstat(root / name)
    except FileNotFoundError:
        raise _refusal(root, f"{name} is missing") from None
    except OSError as exc:
        raise _refusal(root, f"{name} cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(status.st_mode):
        raise _refusal(root, f"{name} is a symbolic link; a bundle holds regular files only")
    if not stat.S_ISREG(status.st_mode):
        raise _refusal(root, f"{name} is not a regular file")
    return status.st_size


def _open_member(root: Path, name: str, limit: int) -> tuple[io.BufferedReader, int]:
    """Open a bundle file that was judged by :func:`_member_size`, making sure it is still
    a regular file within ``limit`` bytes (it may have been swapped since); returns the
    open file and its size."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(root / name, flags)
    except OSError as exc:
        raise _refusal(root, f"{name} cannot be opened ({exc.strerror})") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_size > limit:
        os.close(fd)
        raise _refusal(root, f"{name} changed while it was being read")
    return os.fdopen(fd, "rb"), status.st_size


def _read_member(root: Path, name: str, limit: int) -> bytes:
    handle, size = _open_member(root, name, limit)
    with handle:
        # read(n) reserves n bytes up front: ask for the size stat gave, one more to see growth.
        data = handle.read(size + 1)
    if len(data) > size:
        raise _refusal(root, f"{name} changed while it was being read")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(root: Path, name: str, data: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN or Infinity literals, nesting within Python's limits."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise _refusal(root, f"{name} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refusal(root, f"{name} is not valid JSON ({_first_line(exc)})") from None


def _read_meta(root: Path) -> dict[str, Any]:
    meta = _parse_json(root, META_FILE, _read_member(root, META_FILE, MAX_META_BYTES))
    if not isinstance(meta, dict) or META_CHECKSUM not in meta:
        raise _refusal(root, "meta.json carries no checksum")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _refusal(root, "meta.json has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise BundleError(MSG_NEWER_SCHEMA.format(path=root, version=version, supported=SCHEMA_VERSION))
    try:
        checksum = _meta_checksum(meta)
    except RecursionError:  # parsed just within the limit, yet too deep to serialise
        raise _refusal(root, "meta.json is nested too deeply") from None
    if meta[META_CHECKSUM] != checksum:
        raise BundleError(MSG_META_TAMPERED.format(path=root))
    try:
        _check_meta_schema(meta)
    except _SchemaError as exc:
        raise _refusal(root, f"meta.json: {exc}") from None
    return meta


def _read_encoder(root: Path, meta: dict[str, Any], *, limit: int) -> TabularEncoder:
    data = _read_member(root, PREPROCESS_FILE, limit)
    if meta["files"][PREPROCESS_FILE] != _sha256_bytes(data):
        raise BundleError(MSG_TAMPERED.format(path=root, file=PREPROCESS_FILE))
    state = _parse_json(root, PREPROCESS_FILE, data)
    try:
        return TabularEncoder.from_dict(state)
    except ValueError as exc:
        raise _refusal(root, _first_line(exc)) from None


# -- meta.json's schema ------------------------------------------------------------------
class _SchemaError(Exception):
    """One line saying which field of meta.json is wrong and how."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _SchemaError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_meta_schema(meta: dict[str, Any]) -> None:
    """The fields loading relies on, with their types; unknown extra keys are kept."""
    checksums = meta.get("files")
    _require(isinstance(checksums, dict), "'files' (the checksums of the other files) is not an object")
    for name in (WEIGHTS_FILE, PREPROCESS_FILE):
        digest = checksums.get(name)
        _require(isinstance(digest, str) and _SHA256.fullmatch(digest) is not None, f"files.{name} is not a sha256")
    _check_roles(meta.get("roles"))
    model = meta.get("model")
    _require(isinstance(model, dict), "'model' is not an object")
    _require(isinstance(model.get("params"), dict), "model.params is not an object")
    features = model.get("n_features_in")
    _require(
        _is_int(features) and 0 < features <= MAX_WEIGHTS_BYTES // 4,
        "model.n_features_in is not a positive integer within bounds",
    )
    groups = model.get("groups")
    _require(
        _is_string_list(groups) and len(groups) > 0 and len(set(groups)) == len(groups),
        "model.groups is not a non-empty list of distinct strings",
    )
    # y's two labels; absent from bundles written before they were kept, which trained on 0/1.
    classes = model.get("classes", [0, 1])
    _require(
        isinstance(classes, list) and len(classes) == 2 and all(isinstance(c, (str, int, float)) for c in classes)
        and classes[0] != classes[1],
        "model.classes is not a list of two distinct labels",
    )  # fmt: skip
    history = model.get("history", [])
    _require(isinstance(history, list) and all(isinstance(r, dict) for r in history), "model.history is not a list of objects")
    # The threshold training chose; absent from bundles written before thresholds were chosen.
    if "decision_threshold" in model:
        threshold = model["decision_threshold"]
        _require(isinstance(threshold, dict), "model.decision_threshold is not an object")
        value = threshold.get("value")
        _require(_is_number(value) and 0.0 <= value <= 1.0, "model.decision_threshold.value is not a number in [0, 1]")
        _require(isinstance(threshold.get("rule"), str), "model.decision_threshold.rule is not a string")
    pruned = meta.get("pruned", [])
    _require(isinstance(pruned, list), "pruned is not a list")
    for step in pruned:
        neurons = step.get("neurons") if isinstance(step, dict) else None
        _require(
            isinstance(neurons, list) and all(_is_int(i) and i >= 0 for i in neurons),
            "pruned holds a step without its list of neurons",
        )


def _check_roles(roles: Any) -> None:
    _require(isinstance(roles, dict), "'roles' is not an object")
    for key in ("target", "positive_label"):
        _require(isinstance(roles.get(key), str), f"roles.{key} is not a string")
    if "negative_label" in roles:
        _require(isinstance(roles["negative_label"], str), "roles.negative_label is not a string")
    sensitive = roles.get("sensitive")
    _require(_is_string_list(sensitive) and len(sensitive) > 0, "roles.sensitive is not a non-empty list of column names")
    _require(_is_string_list(roles.get("features")), "roles.features is not a list of column names")
    _require(_is_string_list(roles.get("dropped", [])), "roles.dropped is not a list of column names")
    _require(_is_string_list(roles.get("labels", [])), "roles.labels is not a list of target values")
    bins = roles.get("sensitive_bins", {})
    numeric_lists = isinstance(bins, dict) and all(
        isinstance(edges, list) and all(_is_number(e) for e in edges) for edges in bins.values()
    )
    _require(numeric_lists, "roles.sensitive_bins is not an object of numeric cut points")
    _require(isinstance(roles.get("sensitive_as_feature", False), bool), "roles.sensitive_as_feature is not true/false")
    weight = roles.get("weight")
    _require(weight is None or isinstance(weight, str), "roles.weight is not a column name")
    _require(weight not in roles["features"], "roles.weight is also a feature")


def _checked_shapes(root: Path, meta: dict[str, Any], device: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of the network meta.json describes, once the estimator itself has
    validated its options; nothing is allocated."""
    params = meta["model"]["params"]
    unknown = sorted(set(params) - set(SQNNClassifier._get_param_names()))
    if unknown:
        raise _refusal(root, f"meta.json: model.params has unknown option(s) {', '.join(unknown)}")
    try:
        model = SQNNClassifier(**{**params, "device": device})
        model.check_params()  # types and bounds (limits.py), before any size is computed from them
    except InputError as exc:
        raise _refusal(root, f"meta.json: {_first_line(exc)}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise _refusal(root, f"meta.json: bad model options ({_first_line(exc)})") from None
    shapes = model.network_shapes(meta["model"]["n_features_in"], len(meta["model"]["groups"]))
    for step in meta.get("pruned", []):
        if any(i >= model._code_size() for i in step["neurons"]):
            raise _refusal(root, f"meta.json: pruned names a neuron beyond the code size {model._code_size()}")
    return shapes


def _weights_size_range(shapes: dict[str, tuple[int, ...]]) -> tuple[int, int]:
    """The sizes torch.save can give a float32 state_dict of these shapes."""
    data = 4 * sum(math.prod(shape) for shape in shapes.values())
    return data, data + _WEIGHTS_FRAMING_BYTES + _WEIGHTS_FRAMING_PER_TENSOR * len(shapes)


# -- weights.pt --------------------------------------------------------------------------
def _read_weights(root: Path, checksum: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Check weights.pt's checksum and zip framing, then read it with the restricted
    unpickler and compare every tensor with the architecture, before any network sees it."""
    handle, _ = _open_member(root, WEIGHTS_FILE, MAX_WEIGHTS_BYTES)
    with handle:
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(_READ_CHUNK), b""):
            digest.update(block)
        if digest.hexdigest() != checksum:
            raise BundleError(MSG_TAMPERED.format(path=root, file=WEIGHTS_FILE))
        handle.seek(0)
        _check_zip_framing(root, handle)
        handle.seek(0)
        weights = _load_weights(root, handle)
    if set(weights) != set(shapes):
        missing, extra = _listed(set(shapes) - set(weights)), _listed(set(weights) - set(shapes))
        raise _refusal(
            root, f"weights.pt does not fit the architecture described in meta.json (missing {missing}, unexpected {extra})"
        )
    for name, expected in shapes.items():
        tensor = weights[name]
        if tuple(tensor.shape) != expected or tensor.dtype != torch.float32:
            raise _refusal(
                root,
                f"weights.pt does not fit the architecture described in meta.json ({name} is {tensor.dtype} "
                f"{list(tensor.shape)}, the network needs float32 {list(expected)})",
            )
        if not bool(torch.isfinite(tensor).all()):
            raise _refusal(root, f"weights.pt holds NaN or infinite values in {name}")
    return weights


def _listed(names: set[str], shown: int = 3) -> str:
    ordered = sorted(names)
    if not ordered:
        return "none"
    more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
    return ", ".join(repr(name[:40]) for name in ordered[:shown]) + more


def _check_zip_framing(root: Path, handle: io.BufferedReader) -> None:
    """torch.save writes an uncompressed zip; a compressed member could inflate to any
    size when torch reads it, so only stored members within the file's size pass."""
    try:
        with zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        reason = f"not a torch.save archive: {_first_line(exc)}"
        raise BundleError(MSG_UNSAFE_WEIGHTS.format(path=root, file=WEIGHTS_FILE, reason=reason)) from None
    size = os.fstat(handle.fileno()).st_size
    if any(m.compress_type != zipfile.ZIP_STORED for m in members) or sum(m.file_size for m in members) > size:
        reason = "compressed or oversized archive members"
        raise BundleError(MSG_UNSAFE_WEIGHTS.format(path=root, file=WEIGHTS_FILE, reason=reason))


def _load_weights(root: Path, handle: io.BufferedReader) -> dict[str, torch.Tensor]:
    try:
        weights = torch.load(handle, map_location="cpu", weights_only=True)
    # The bytes are untrusted: whatever the restricted unpickler or the zip reader
    # objects to, the answer is the same refusal.
    except Exception as exc:  # noqa: BLE001
        raise BundleError(MSG_UNSAFE_WEIGHTS.format(path=root, file=WEIGHTS_FILE, reason=_first_line(exc))) from None
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise BundleError(MSG_UNSAFE_WEIGHTS.format(path=root, file=WEIGHTS_FILE, reason="not a mapping of tensors"))
    return weights


def default_bundle_path(data_path: str | Path) -> Path:
    """``<data name>-model`` in the working directory: the same path every time, so the
    command a README or a script runs next finds the model just trained. Like any output,
    an existing one is replaced only with ``overwrite`` (check_writable)."""
    name = Path(data_path).name
    for suffix in (".gz", ".csv", ".tsv", ".txt"):
        name = name.removesuffix(suffix)
    return Path(f"{name or 'data'}-model")
