"""scikit-learn's own estimator checks, run on SQNNClassifier.

Every check passes. One check, check_classifiers_train, asserts that ``predict`` equals
``argmax(predict_proba)``, which SQNNClassifier does not promise: ``predict`` cuts the
positive class's probability at ``threshold_``, the cut that maximises balanced accuracy
on the training rows (a fair model's scores are rarely calibrated around 0.5). That check
is run on a copy whose only difference is a cut at 0.5, so it still judges everything
else it checks (accuracy, shapes, classes, decision consistency) and cannot pass for a
reason other than the threshold. The settings are small and fast; a learning rate high
enough for three epochs to fit the checks' 200-row problems keeps the accuracy checks
meaningful.

One check is expected to fail, strictly (it must fail, or the test fails):
check_sample_weight_equivalence_on_dense_data asserts that a weight of 2 trains exactly
what a repeated row trains. For mini-batch training it cannot: the repeated table has
more rows, so the shuffles, the batches and the bits drawn differ, and the fitted
probabilities differ by a few thousandths (scikit-learn marks its own SGDClassifier and
MLPClassifier the same way). What weights do mean is held in
tests/test_training_weights.py: integer weights give the loss and gradient of repeated
rows exactly, equal weights train exactly what no weights train, and weight 0 leaves a
row out.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sqnn_cli.estimator import SQNNClassifier

FAST = SQNNClassifier(epochs=3, hidden=(8,), code_size=4, n_samples=4, lr=0.03, batch_size=32, device="cpu")


class CutAtHalf(SQNNClassifier):
    """SQNNClassifier with predict's cut where argmax cuts: positive above 0.5, a tie at 0.5
    going to classes_[0] (SQNNClassifier counts a score at its threshold as positive)."""

    def _set_threshold(self, X, y, *, rows: str, sample_weight=None) -> "CutAtHalf":
        super()._set_threshold(X, y, rows=rows, sample_weight=sample_weight)
        self.threshold_ = float(np.nextafter(0.5, 1.0))
        return self


def _name(check) -> str:
    return getattr(check, "func", check).__name__


# The checks know nothing of groups: each fit is a plain classifier's, and says so.
@pytest.mark.filterwarnings("ignore:sensitive_features is None:UserWarning")
@parametrize_with_checks(
    [FAST],
    expected_failed_checks=lambda estimator: {
        "check_sample_weight_equivalence_on_dense_data": "mini-batch training: repeated rows change the "
        "shuffles, batches and draws (module docstring)"
    },
    xfail_strict=True,
)
def test_scikit_learns_checks(estimator, check):
    if _name(check) == "check_classifiers_train":
        estimator = CutAtHalf(**estimator.get_params())
    check(estimator)


def test_the_cut_is_the_only_difference_the_train_check_sees():
    """Without the copy, check_classifiers_train fails on predict against argmax alone."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=300, centers=2, random_state=0)
    sensitive = np.zeros(len(y))
    model = SQNNClassifier(**FAST.get_params()).fit(X, y, sensitive_features=sensitive)
    halved = CutAtHalf(**FAST.get_params()).fit(X, y, sensitive_features=sensitive)
    np.testing.assert_array_equal(halved.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(halved.predict(X), halved.classes_[model.predict_proba(X).argmax(axis=1)])
    assert model.threshold_ != 0.5
