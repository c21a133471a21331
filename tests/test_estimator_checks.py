"""scikit-learn's estimator checks on CrustClassifier (the selector and sampler: test_selector.py).

Every expected failure is listed with its reason.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_crust import CrustClassifier

CLASSIFIER_EXPECTED_FAILURES = {
    "check_no_attributes_set_in_init": "skorch's NeuralNet.__init__ sets history_, initialized_ "
                                       "and virtual_params_ (plain NeuralNetClassifier fails too)",
    "check_set_params": "skorch's get_params exposes its private _params_to_validate set, which "
                        "the check overwrites with floats (plain NeuralNetClassifier fails too)",
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@parametrize_with_checks(
    [CrustClassifier(max_epochs=3, warmup_epochs=1, lr=0.01, verbose=0, train_split=None,
                     random_state=0)],
    expected_failed_checks=lambda estimator: CLASSIFIER_EXPECTED_FAILURES)
def test_classifier_sklearn_compatible(estimator, check):
    check(estimator)
