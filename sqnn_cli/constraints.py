"""A constraint instead of a gamma: the gamma whose validated model meets every bound.

"I need DP <= 0.05" is what a practitioner knows; gamma is how sqnn gets there. The
search trains every gamma of a grid on inner folds of the training rows (the sweep's
machinery, sweep.validation_summary), judges each gamma's mean validation metrics
against the bounds (gates.Gate, the same bounds evaluate checks), and picks the most
accurate gamma that meets them all: the largest mean AUC, the smaller gamma on a tie.
A gamma with a degenerate fold (every row in one class) is never chosen: its DP and EO
are trivially met; nor is one whose model ranks no better than chance (mean AUC not
above 0.5 by two standard errors over the folds): a coin meets every fairness bound.
Only the training rows are seen, so a held-out split stays honest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .gates import Gate
from .sweep import SweepSummary

__all__ = ["GammaChoice", "choose_gamma", "is_candidate", "better_than_chance", "CONSTRAINABLE"]

# The figures a bound may be put on: every per-gamma mean of the validation summary that
# evaluate also gates.
CONSTRAINABLE = frozenset(
    {"gpa", "audc", "dp_difference", "eo_difference", "dp_ratio", "eo_ratio", "auc", "balanced_accuracy"}
)


@dataclass(frozen=True)
class GammaChoice:
    """The outcome of a search: the chosen gamma (None when no gamma meets every bound),
    the gamma that came closest when none did, and the validation summary behind both."""

    gamma: float | None
    closest: float | None
    constraints: tuple[Gate, ...]
    summary: SweepSummary

    def meets(self, row: dict[str, Any]) -> bool:
        return _violation(row, self.constraints) == 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen_gamma": self.gamma,
            "closest_gamma": self.closest,
            "rule": "largest mean inner-fold AUC among the gammas whose mean inner-fold metrics meet every bound, "
            "with no degenerate fold and an AUC above chance by two standard errors",
            "constraints": [
                {"option": gate.option, "metric": gate.metric, "kind": gate.kind, "bound": gate.bound}
                for gate in self.constraints
            ],
            "folds": self.summary.folds,
            "validation": [
                {
                    "gamma": row["gamma"],
                    "meets": self.meets(row) and is_candidate(row),
                    "degenerate_folds": row["degenerate_folds"],
                    "better_than_chance": better_than_chance(row),
                    **{f"{m}_mean": row.get(f"{m}_mean") for m in sorted(CONSTRAINABLE | {"d_gpa", "d_audc"})},
                }
                for row in self.summary.rows
            ],
        }


def _violation(row: dict[str, Any], constraints: Sequence[Gate]) -> float:
    """How far a gamma's mean validation metrics are from meeting every bound: the sum of
    the amounts by which each is on the wrong side; infinite where a metric is undefined."""
    total = 0.0
    for gate in constraints:
        value = row.get(f"{gate.metric}_mean")
        if value is None or not math.isfinite(value):
            return math.inf
        total += max(0.0, value - gate.bound) if gate.kind == "max" else max(0.0, gate.bound - value)
    return total


def better_than_chance(row: dict[str, Any]) -> bool:
    """Mean inner-fold AUC above 0.5 by more than two standard errors of that mean."""
    auc, spread = row.get("auc_mean"), row.get("auc_std") or 0.0
    return auc is not None and math.isfinite(auc) and auc - 2 * spread / math.sqrt(max(row["folds"], 1)) > 0.5


def is_candidate(row: dict[str, Any]) -> bool:
    """A gamma the search may choose: no fold put every row in one class, and its model
    ranks better than chance."""
    return not row["degenerate_folds"] and better_than_chance(row)


def choose_gamma(summary: SweepSummary, constraints: Sequence[Gate]) -> GammaChoice:
    """The most accurate gamma of ``summary`` whose mean validation metrics meet every
    constraint, or None with the closest gamma (smallest total violation) when none does."""
    unknown = sorted({gate.metric for gate in constraints} - CONSTRAINABLE)
    if unknown:
        raise ValueError(f"no bound can be put on {', '.join(unknown)}; constrainable: {', '.join(sorted(CONSTRAINABLE))}")
    candidates = [row for row in summary.rows if is_candidate(row)]
    meeting = [row for row in candidates if _violation(row, constraints) == 0.0]
    chosen = min(meeting, key=lambda row: (-row["auc_mean"], row["gamma"]))["gamma"] if meeting else None
    closest = None
    if chosen is None and candidates:
        closest = min(candidates, key=lambda row: (_violation(row, constraints), -row["auc_mean"]))["gamma"]
    return GammaChoice(gamma=chosen, closest=closest, constraints=tuple(constraints), summary=summary)
