"""Fixtures shared by the test modules."""

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture
def one_thread():
    """Tiny models: one thread is fastest, and avoids torch/BLAS workers fighting for cores.

    Modules that train networks use it for every test: ``pytestmark =
    pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1, user_api="blas"):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def noisy_digits_split():
    """``split(rate, seed)``: digits, 70/30 stratified split, standardised (fitted on the training
    part), symmetric label noise on the training labels. Returns ``X_train, X_test, y_train,
    y_test, y_noisy`` (the noisy training labels)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from sk_crust import add_label_noise

    def split(rate: float, seed: int):
        X, y = load_digits(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=seed)
        scaler = StandardScaler().fit(X_train)
        X_train = scaler.transform(X_train).astype(np.float32)
        X_test = scaler.transform(X_test).astype(np.float32)
        y_noisy = (np.asarray(add_label_noise(y_train, rate, random_state=seed)[0]) if rate > 0
                   else y_train.copy())
        return X_train, X_test, y_train, y_test, y_noisy

    return split


@pytest.fixture(scope="session")
def digits():
    """All of sklearn's digits, standardised, float32 (modules may define their own)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


@pytest.fixture(scope="session")
def digits_gradients(digits):
    """Out-of-fold gradient features of digits with 30% symmetric noise: ``G, y_noisy, y``."""
    import numpy as np

    from sk_crust import CrustSampler, add_label_noise

    X, y = digits
    y_noisy = np.asarray(add_label_noise(y, 0.3, random_state=0)[0])
    sampler = CrustSampler(k=0.5, random_state=0).fit(X, y_noisy)
    return sampler.gradients_, y_noisy, y
