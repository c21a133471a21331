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
