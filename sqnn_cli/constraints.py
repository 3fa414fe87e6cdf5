"""A constraint instead of a gamma: the gamma whose validated model meets every bound.

"I need DP <= 0.05" is what a practitioner knows; gamma is how sqnn gets there. The
search trains every gamma of a grid on inner folds of the training rows (the sweep's
machinery, sweep.validation_records), judges each gamma's mean validation metrics
against the bounds (gates.Gate, the same bounds evaluate checks), and picks the most
accurate gamma that meets them all: the largest mean AUC, the smaller gamma on a tie.
When no gamma of the grid meets them, the grid is refined between the closest gamma and its
neighbour towards the bounds, a few times (refined_gammas). A gamma with a degenerate fold (every row in one class) is never chosen: its DP and EO
are trivially met; nor is one whose model ranks no better than chance (mean AUC not
above 0.5 by two standard errors over the folds), or keeps less than half the skill (AUC
above 0.5) of the grid's smallest gamma: a coin meets every fairness bound.
Only the training rows are seen, so a held-out split stays honest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .gates import Gate
from .sweep import SweepSummary

__all__ = ["GammaChoice", "choose_gamma", "refined_gammas", "why_none", "refusal", "skill", "better_than_chance", "CONSTRAINABLE", "MIN_SKILL"]

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
        """Its mean validation metrics meet every bound (whether or not it may be chosen)."""
        return _violation(row, self.constraints) == 0.0

    def refusal(self, row: dict[str, Any]) -> str | None:
        """Why this gamma may not be chosen whatever the bounds (module ``refusal``)."""
        return refusal(row, self.summary.rows[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen_gamma": self.gamma,
            "closest_gamma": self.closest,
            "rule": "largest mean inner-fold AUC among the gammas whose mean inner-fold metrics meet every bound, "
            "with no degenerate fold, an AUC above chance by two standard errors, and at least half the skill "
            "(AUC - 0.5) of the smallest gamma",
            "constraints": [
                {"option": gate.option, "metric": gate.metric, "kind": gate.kind, "bound": gate.bound}
                for gate in self.constraints
            ],
            "folds": self.summary.folds,
            "validation": [
                {
                    "gamma": row["gamma"],
                    "meets": self.meets(row) and self.refusal(row) is None,
                    "refused_because": self.refusal(row),
                    "degenerate_folds": row["degenerate_folds"],
                    "skill": skill(row, self.summary.rows[0]),
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


# A model must keep at least this share of the unconstrained model's skill, its AUC above
# chance (0.5), to be chosen: past that, a bound is met by giving up the prediction, which
# a constant score does as well (an AUC of 0.51 meets every fairness bound and helps nobody).
MIN_SKILL = 0.5


def better_than_chance(row: dict[str, Any]) -> bool:
    """Mean inner-fold AUC above 0.5 by more than two standard errors of that mean."""
    auc, spread = row.get("auc_mean"), row.get("auc_std") or 0.0
    return auc is not None and math.isfinite(auc) and auc - 2 * spread / math.sqrt(max(row["folds"], 1)) > 0.5


def skill(row: dict[str, Any], baseline: dict[str, Any]) -> float:
    """The share of ``baseline``'s AUC above chance that ``row`` keeps (1 when the baseline
    has none to keep)."""
    auc, reference = row.get("auc_mean"), baseline.get("auc_mean")
    if auc is None or reference is None or not math.isfinite(reference) or reference <= 0.5:
        return 1.0
    return (auc - 0.5) / (reference - 0.5)


def refusal(row: dict[str, Any], baseline: dict[str, Any]) -> str | None:
    """Why the search may not choose this gamma whatever the bounds, or None: a fold put
    every row in one class, its model ranks no better than chance, or it kept less than
    MIN_SKILL of the smallest gamma's skill."""
    if row["degenerate_folds"]:
        return "one class"
    if not better_than_chance(row):
        return "AUC ~ chance"
    if skill(row, baseline) < MIN_SKILL:
        return f"AUC < {MIN_SKILL:.0%} of gamma {baseline['gamma']:g}'s skill"
    return None


REFINED_POINTS = 4


def refined_gammas(choice: GammaChoice) -> tuple[float, ...]:
    """Where to look next when no gamma met the bounds: REFINED_POINTS gammas evenly between
    the closest gamma and whichever neighbour of it in the grid is nearer to meeting them
    (its metrics alone, even if it is no candidate: gamma 1 meets a DP bound by ranking at
    chance, and the gamma that meets it with some accuracy lies between). Empty when there
    is nothing to refine: a gamma was chosen, or none came close."""
    if choice.gamma is not None or choice.closest is None:
        return ()
    rows = choice.summary.rows
    at = next(i for i, row in enumerate(rows) if row["gamma"] == choice.closest)
    neighbours = [rows[i] for i in (at - 1, at + 1) if 0 <= i < len(rows)]
    closest_violation = _violation(rows[at], choice.constraints)
    # Only towards a neighbour nearer the bounds: past the grid's end, or where the bounded
    # metrics cannot be estimated, there is nothing between two gammas to find.
    nearer = [row for row in neighbours if _violation(row, choice.constraints) < closest_violation]
    if not nearer or not math.isfinite(closest_violation):
        return ()
    towards = min(nearer, key=lambda row: _violation(row, choice.constraints))
    low, high = sorted((choice.closest, towards["gamma"]))
    step = (high - low) / (REFINED_POINTS + 1)
    known = {row["gamma"] for row in rows}
    return tuple(g for g in (round(low + step * i, 10) for i in range(1, REFINED_POINTS + 1)) if g not in known)


def choose_gamma(summary: SweepSummary, constraints: Sequence[Gate]) -> GammaChoice:
    """The most accurate gamma of ``summary`` whose mean validation metrics meet every
    constraint, or None with the closest gamma (smallest total violation) when none does."""
    unknown = sorted({gate.metric for gate in constraints} - CONSTRAINABLE)
    if unknown:
        raise ValueError(f"no bound can be put on {', '.join(unknown)}; constrainable: {', '.join(sorted(CONSTRAINABLE))}")
    candidates = [row for row in summary.rows if summary.rows and refusal(row, summary.rows[0]) is None]
    meeting = [row for row in candidates if _violation(row, constraints) == 0.0]
    chosen = min(meeting, key=lambda row: (-row["auc_mean"], row["gamma"]))["gamma"] if meeting else None
    closest = None
    if chosen is None and candidates:
        closest = min(candidates, key=lambda row: (_violation(row, constraints), -row["auc_mean"]))["gamma"]
    return GammaChoice(gamma=chosen, closest=closest, constraints=tuple(constraints), summary=summary)


def why_none(choice: GammaChoice) -> str:
    """Why no gamma was chosen, with the way out, for the refusal's message."""
    if choice.closest is not None:
        row = choice.summary.row(choice.closest) or {}
        if math.isinf(_violation(row, choice.constraints)):
            return (
                "the bounded metrics cannot be estimated on the inner folds: each fold's groups are under "
                "{min_group_size} rows, or a fold lacks a class; lower {min_group_size}, give more rows, or fewer {search_folds}"
            )
        return f"the closest is gamma {choice.closest:g} (see the table)"
    return "no gamma's model ranked better than chance without a fold in one class (train longer: {epochs})"
