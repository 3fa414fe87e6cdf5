"""A trained model ready to apply to a table: what every workflow in pipeline.py takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .data import ColumnRoles
    from .estimator import SQNNClassifier
    from .preprocess import TabularEncoder

__all__ = ["FittedModel"]


@dataclass(frozen=True)
class FittedModel:
    """The classifier, the encoder that turns a table's feature columns into its inputs, and
    which column plays which role. A model bundle is this value plus how it was made
    (bundle.py writes and reads both)."""

    estimator: "SQNNClassifier"
    encoder: "TabularEncoder"
    roles: "ColumnRoles"
