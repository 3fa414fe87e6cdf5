"""metrics.balanced_accuracy_threshold of millions of rows in little memory.

The whole-table function converts the scores to float64 and takes np.unique with its
inverse: some 90 bytes a row at its peak, 870 MB for the 10M rows that streamed training
(SQNNClassifier.fit_blocks) chooses its threshold on. Here the rows are ranked once (an
index per row, 8 bytes) and walked in score order a block at a time, each cut's balanced
accuracy computed from the counts below it; the cut rule itself is metrics' (halfway_cuts,
best_cut). Unweighted, the counts are whole numbers and the result is the whole-table
function's exactly; weighted, the sums are taken in another order (float64 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .metrics import best_cut, halfway_cuts

__all__ = ["ranked_balanced_accuracy_threshold"]

_BLOCK_ROWS = 1 << 20


@dataclass
class _Walk:
    """The walk up the distinct scores: the counts below the next cut, and the cuts kept
    (those within 1e-12 of the best so far: only they can be the best of all)."""

    positives: float
    negatives: float
    below_positive: float = 0.0
    below_negative: float = 0.0
    previous: float | None = None
    best: float = -np.inf
    kept_balanced: list[np.ndarray] = field(default_factory=list)
    kept_cuts: list[np.ndarray] = field(default_factory=list)

    def visit(self, values: np.ndarray, positive_at: np.ndarray, negative_at: np.ndarray) -> None:
        """The cuts below each of ``values`` (the next distinct scores, ascending)."""
        if self.previous is None:
            cuts = np.concatenate([values[:1], halfway_cuts(values)])
        else:
            cuts = halfway_cuts(np.concatenate([[self.previous], values]))
        positive_below = self.below_positive + np.concatenate([[0.0], np.cumsum(positive_at)[:-1]])
        negative_below = self.below_negative + np.concatenate([[0.0], np.cumsum(negative_at)[:-1]])
        self._keep(((self.positives - positive_below) / self.positives + negative_below / self.negatives) / 2, cuts)
        self.below_positive = float(positive_below[-1] + positive_at[-1])
        self.below_negative = float(negative_below[-1] + negative_at[-1])
        self.previous = float(values[-1])

    def finish(self) -> float:
        """The best cut, the one above every score included."""
        top = np.array([(0.0 + self.below_negative / self.negatives) / 2])
        self._keep(top, np.array([np.nextafter(self.previous, np.inf)]))
        return best_cut(np.concatenate(self.kept_balanced), np.concatenate(self.kept_cuts))

    def _keep(self, balanced: np.ndarray, cuts: np.ndarray) -> None:
        self.best = max(self.best, float(balanced.max()))
        near = balanced >= self.best - 1e-12
        self.kept_balanced.append(balanced[near])
        self.kept_cuts.append(cuts[near])
        if len(self.kept_balanced) > 64:  # prune what a later, better cut has outdone
            joined = np.concatenate(self.kept_balanced)
            keep = joined >= self.best - 1e-12
            self.kept_balanced, self.kept_cuts = [joined[keep]], [np.concatenate(self.kept_cuts)[keep]]


def ranked_balanced_accuracy_threshold(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """metrics.balanced_accuracy_threshold(positive, scores, sample_weight=weights) for
    ``positive`` (1 for the positive class, else 0), ``scores`` in [0, 1] and positive
    ``weights`` (or None), in memory of 8 bytes a row beyond the arrays given."""
    positive = positive.astype(bool, copy=False)
    if weights is None:
        positives = float(np.count_nonzero(positive))
        negatives = float(len(positive)) - positives
    else:
        positives = float(weights[positive].sum())
        negatives = float(weights.sum()) - positives
    if positives == 0 or negatives == 0:
        return 0.5
    order = np.argsort(scores, kind="stable")
    walk = _Walk(positives, negatives)
    pending: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for start in range(0, len(order), _BLOCK_ROWS):
        rows = order[start : start + _BLOCK_ROWS]
        values, inverse = np.unique(scores[rows].astype(np.float64), return_inverse=True)
        row_weights = None if weights is None else weights[rows]
        positive_rows = positive[rows] if row_weights is None else np.where(positive[rows], row_weights, 0.0)
        positive_at = np.bincount(inverse, weights=positive_rows.astype(np.float64), minlength=len(values))
        negative_at = np.bincount(inverse, weights=row_weights, minlength=len(values)) - positive_at
        if pending is not None:
            values, positive_at, negative_at = _joined_runs(pending, (values, positive_at, negative_at))
        # The last score of a block may go on in the next one: it waits for it.
        if len(values) > 1:
            walk.visit(values[:-1], positive_at[:-1], negative_at[:-1])
        pending = (values[-1:], positive_at[-1:], negative_at[-1:])
    walk.visit(*pending)
    return walk.finish()


def _joined_runs(
    pending: tuple[np.ndarray, np.ndarray, np.ndarray], block: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-back last score of the previous block before this block's scores, merged
    with the first where they are the same score."""
    values, positive_at, negative_at = block
    if pending[0][0] == values[0]:
        positive_at, negative_at = positive_at.copy(), negative_at.copy()
        positive_at[0] += pending[1][0]
        negative_at[0] += pending[2][0]
        return values, positive_at, negative_at
    return tuple(np.concatenate([held, new]) for held, new in zip(pending, block))  # type: ignore[return-value]
