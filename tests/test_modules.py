"""The default torch modules: shapes, input layouts, validation."""

import numpy as np
import pytest
import torch
from torch import nn

from sk_crust.modules import MLP, SmallCNN


@pytest.mark.parametrize("hidden", [(), (16,), (32, 16)])
def test_mlp_shapes_and_layers(hidden):
    net = MLP(n_features=12, n_classes=3, hidden=hidden)
    assert net(torch.zeros(5, 12)).shape == (5, 3)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == len(hidden) + 1
    # The output layer is the last Linear: what gradient="penultimate" hooks.
    assert linears[-1] is net.output


def test_mlp_flattens_images():
    net = MLP(n_features=64, n_classes=10)
    assert net(torch.zeros(4, 1, 8, 8)).shape == (4, 10)


def test_mlp_dropout_only_in_training():
    torch.manual_seed(0)
    net = MLP(n_features=8, n_classes=2, hidden=(64,), dropout=0.5)
    X = torch.randn(16, 8)
    net.eval()
    assert torch.equal(net(X), net(X))
    net.train()
    assert not torch.equal(net(X), net(X))


def test_mlp_accepts_numpy_ints():
    assert MLP(np.int64(4), np.int64(2), hidden=(np.int64(3),))(torch.zeros(1, 4)).shape == (1, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_features=0, n_classes=2), "n_features=0 is not valid"),
    (dict(n_features=3, n_classes=2.5), "n_classes=2.5 is not valid"),
    (dict(n_features=3, n_classes=2, hidden=(0,)), "hidden widths=0 is not valid"),
    (dict(n_features=3, n_classes=2, dropout=1.0),
     r"dropout=1.0 is not valid: pass a float in \[0, 1\)"),
])
def test_mlp_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


@pytest.mark.parametrize("shape", [(3, 64), (3, 1, 8, 8), (3, 8, 8), (3, 784), (3, 1, 28, 28)])
def test_small_cnn_input_layouts(shape):
    net = SmallCNN(n_classes=10)
    assert net(torch.zeros(shape)).shape == (3, 10)


def test_small_cnn_flat_input_equals_image_input():
    torch.manual_seed(0)
    net = SmallCNN(n_classes=4).eval()
    images = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(net(images.flatten(1)), net(images))


def test_small_cnn_channels():
    net = SmallCNN(n_classes=5, in_channels=3)
    assert net(torch.zeros(2, 3 * 64)).shape == (2, 5)
    assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 5)


def test_small_cnn_rejects_non_square_rows():
    with pytest.raises(ValueError, match="not 1 square image"):
        SmallCNN(n_classes=2)(torch.zeros(2, 10))


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_classes=0), "n_classes=0 is not valid"),
    (dict(n_classes=2, in_channels=0), "in_channels=0 is not valid"),
    (dict(n_classes=2, dropout=-0.1), "dropout=-0.1 is not valid"),
])
def test_small_cnn_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SmallCNN(**kwargs)
