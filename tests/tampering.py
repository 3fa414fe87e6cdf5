"""Editing a bundle the way a deliberate editor would: content changed, checksums recomputed."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from sqnn_cli import bundle as bundle_module

__all__ = ["read_meta", "write_meta", "replace_file", "torch_bytes"]


def read_meta(bundle: Path) -> dict:
    return json.loads((bundle / "meta.json").read_text())


def write_meta(bundle: Path, meta: dict) -> None:
    """meta.json with its own checksum recomputed."""
    meta["meta_sha256"] = bundle_module._meta_checksum(meta)
    (bundle / "meta.json").write_text(json.dumps(meta))


def replace_file(bundle: Path, name: str, content: bytes) -> None:
    """New content for a bundle file with every checksum that covers it recomputed."""
    (bundle / name).write_bytes(content)
    meta = read_meta(bundle)
    meta["files"][name] = hashlib.sha256(content).hexdigest()
    write_meta(bundle, meta)


def torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
