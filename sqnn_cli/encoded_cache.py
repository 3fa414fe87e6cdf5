"""Encoded training rows kept in a file, for training on tables larger than memory: the
float32 feature matrix written a chunk at a time, read back a block of rows at a time into
one reused buffer (readinto, not np.memmap: mapped pages would count in the process's
resident memory). It is what SQNNClassifier.fit_blocks reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EncodedCache", "DEFAULT_BLOCK_ROWS"]

DEFAULT_BLOCK_ROWS = 65_536
"""Rows a training block holds (rounded up to whole batches): 26 MB of Adult's 100
encoded columns. Batches are drawn within a block, so a block is also the span rows are
shuffled over; larger blocks shuffle more widely and hold more in memory."""


class EncodedCache:
    """Rows of ``n_features`` float32 features in the file ``path``: :meth:`append` chunks
    of them, then read :meth:`block` by block. A context manager: the file is closed (and
    left to its directory's owner to delete) on leaving."""

    def __init__(self, path: Path, n_features: int, block_rows: int):
        self.path = Path(path)
        self.n_features = int(n_features)
        self.block_rows = int(block_rows)
        self.rows = 0
        self._file = open(self.path, "w+b")
        self._buffer: np.ndarray | None = None

    def __enter__(self) -> "EncodedCache":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._file.close()

    def append(self, features: np.ndarray) -> None:
        if features.shape[1:] != (self.n_features,):
            raise ValueError(f"rows of {features.shape[1:]} features appended to a cache of {self.n_features}")
        self._file.write(np.ascontiguousarray(features, dtype=np.float32).tobytes())
        self.rows += len(features)

    @property
    def n_blocks(self) -> int:
        return -(-self.rows // self.block_rows)

    def block(self, index: int) -> np.ndarray:
        """The rows of block ``index`` (rows ``index * block_rows`` onwards), as a view of one
        buffer that the next call overwrites."""
        if not 0 <= index < self.n_blocks:
            raise IndexError(f"block {index} of a cache of {self.n_blocks} blocks")
        if self._buffer is None:
            self._file.flush()
            self._buffer = np.empty((min(self.block_rows, self.rows), self.n_features), dtype=np.float32)
        rows = min(self.block_rows, self.rows - index * self.block_rows)
        view = self._buffer[:rows]
        self._file.seek(index * self.block_rows * self.n_features * 4)
        wanted = view.nbytes
        if self._file.readinto(memoryview(view).cast("B")) != wanted:
            raise OSError(f"the training cache {self.path} is shorter than the rows written to it")
        return view
