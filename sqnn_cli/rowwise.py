"""Scoring in which every number belongs to its own row.

A score must depend only on the row, the model, the number of draws and the seed: the
same whether the row is scored alone, in another order or inside another file. Two
things break that in a plain batched implementation, and this module avoids both:

- Random draws streamed from one generator across the rows give a row the draws of its
  position. Here each row's uniforms come from a counter-based hash (splitmix64) keyed by
  the seed and the bytes of the row's encoded features, so they are the row's own.
- Floating-point kernels chosen by batch shape. A matrix product's BLAS path (gemv for
  one row, blocked gemm with edge tiles for many) and torch's vectorised sigmoid (a
  scalar tail for the last elements) round differently depending on where a row sits in
  the batch. Here every layer is a batch of one-row products (``baddbmm``), whose
  per-row arithmetic does not depend on the batch, and the head and the mean over draws
  are elementwise loops in a fixed order; the sigmoid is ``1 / (1 + exp(-x))``, whose
  operations round the same in vector and scalar code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["row_keys", "uniform_draws", "firing_probabilities", "mean_probability", "rows_per_chunk"]

# splitmix64's constants (Steele, Lea and Flood 2014): a full-period counter hash.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# 24 random bits make a float32 uniform on [0, 1) exactly, as torch.rand's own do.
_UNIFORM_BITS = 24
# Elements of the (draws x rows x code) uniform block per chunk: 4M keeps a chunk's
# arrays near 100 MB however many draws or neurons a model asks for.
_DRAW_BUDGET = 1 << 22
_MAX_CHUNK_ROWS = 8192
_HASH_BLOCK = 1 << 17


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place; uint64 arithmetic wraps as the hash needs."""
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def rows_per_chunk(draws: int, code_size: int) -> int:
    """Rows scored at once, so that a chunk's draws stay within a fixed memory budget."""
    return max(1, min(_MAX_CHUNK_ROWS, _DRAW_BUDGET // max(1, draws * code_size)))


def row_keys(features: np.ndarray, seed: int) -> np.ndarray:
    """One 64-bit key per row of a float32 matrix: a hash of the seed and the row's bytes."""
    # + 0.0 turns -0.0 into 0.0: equal values must hash alike, whatever their sign bit.
    words = (np.ascontiguousarray(features, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    with np.errstate(over="ignore"):
        keys = np.full(words.shape[0], np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        _mix(keys)
        for column in range(words.shape[1]):
            keys ^= words[:, column].astype(np.uint64)
            keys += _GOLDEN
            _mix(keys)
    return keys


def uniform_draws(keys: np.ndarray, draws: int, width: int) -> torch.Tensor:
    """(draws, rows, width) float32 uniforms on [0, 1); entry (d, r, i) is a function of
    the row's key and (d, i) alone."""
    out = np.empty((draws, keys.size, width), dtype=np.float32)
    counters = (np.arange(1, draws * width + 1, dtype=np.uint64) * _GOLDEN).reshape(draws, 1, width)
    # Hashed a few hundred thousand entries at a time: the hash's passes then stay in
    # cache, about three times faster than one pass over the whole chunk.
    step = max(1, _HASH_BLOCK // max(1, draws * width))
    for start in range(0, keys.size, step):
        with np.errstate(over="ignore"):
            z = keys[start : start + step].reshape(1, -1, 1) + counters
            _mix(z)
        z >>= np.uint64(64 - _UNIFORM_BITS)
        np.multiply(z, np.float32(2.0**-_UNIFORM_BITS), out=out[:, start : start + step], casting="unsafe")
    return torch.from_numpy(out)


def _rowwise_linear(layer: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """``layer(h)`` for (rows, 1, in) inputs as one small product per row."""
    rows = h.shape[0]
    return torch.baddbmm(layer.bias.expand(rows, 1, -1), h, layer.weight.t().expand(rows, -1, -1))


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


@torch.no_grad()
def firing_probabilities(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """theta of the binary layer for (rows, features) inputs, row by row."""
    h = x.unsqueeze(1)
    for layer in network.features:
        h = _rowwise_linear(layer, h) if isinstance(layer, nn.Linear) else layer(h)
    pre_activation = _rowwise_linear(network.binary.linear, h).squeeze(1)
    if network.binary.temperature != 1.0:
        pre_activation = network.binary.temperature * pre_activation
    return _sigmoid(pre_activation)


@torch.no_grad()
def mean_probability(bits: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Mean over draws of sigmoid(head(bits)) per row, in float64, for (draws, rows, m)
    bits and a linear head (weight (1, m), bias (1,))."""
    weight64 = weight.reshape(-1).double()
    logits = torch.full(bits.shape[:2], float(bias.reshape(-1)[0]), dtype=torch.float64, device=bits.device)
    for neuron in range(bits.shape[2]):
        logits += bits[:, :, neuron].double() * weight64[neuron]
    probabilities = _sigmoid(logits)
    total = probabilities[0].clone()
    for draw in range(1, probabilities.shape[0]):
        total += probabilities[draw]
    return total / probabilities.shape[0]
