"""Gradient proxies: closed forms against torch.autograd, batching, hook checks."""

import numpy as np
import pytest
import torch
from torch import nn

from sk_crust._gradients import (
    capture_layer,
    gradient_features,
    last_linear,
    logit_residual,
    penultimate_gradient,
    proba_residual,
)
from sk_crust.modules import MLP, SmallCNN


def _autograd_wrt(module, layer, X, y):
    """Per-example d CE(f(x_i), y_i) / d (input of `layer`), by autograd."""
    captured_inputs = []

    def keep(_module, inputs):
        inputs[0].retain_grad()
        captured_inputs.append(inputs[0])

    handle = layer.register_forward_pre_hook(keep)
    try:
        logits = module(X)
    finally:
        handle.remove()
    loss = nn.functional.cross_entropy(logits, y, reduction="sum")  # sum: per-example grads
    loss.backward()
    return captured_inputs[0].grad, logits.detach()


def test_proba_residual():
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_allclose(proba_residual(proba, np.array([1, 0])),
                               [[0.2, -0.2], [-0.4, 0.4]])
    assert proba[0, 1] == 0.8  # input untouched


def test_logit_residual_is_the_logit_gradient():
    torch.manual_seed(0)
    logits = torch.randn(7, 4, requires_grad=True)
    y = torch.randint(0, 4, (7,))
    nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    torch.testing.assert_close(logit_residual(logits.detach(), y), logits.grad)


@pytest.mark.parametrize("module, shape", [
    (MLP(n_features=10, n_classes=3, hidden=(16, 8)), (6, 10)),
    (SmallCNN(n_classes=3), (6, 1, 8, 8)),
])
def test_penultimate_gradient_matches_autograd(module, shape):
    torch.manual_seed(0)
    module.eval()
    X, y = torch.randn(shape), torch.randint(0, 3, (shape[0],))
    layer = last_linear(module)
    expected, logits = _autograd_wrt(module, layer, X, y)
    torch.testing.assert_close(penultimate_gradient(logits, y, layer.weight), expected)


def test_gradient_features_penultimate_matches_autograd_over_batches():
    torch.manual_seed(0)
    module = MLP(n_features=5, n_classes=3, hidden=(12,)).eval()
    X, y = torch.randn(10, 5), torch.randint(0, 3, (10,))
    batches = [(X[:4], y[:4]), (X[4:8], y[4:8]), (X[8:], y[8:])]
    G, y_out, pred = gradient_features(module, batches, 10, kind="penultimate", module=module)
    expected, logits = _autograd_wrt(module, module.output, X, y)
    assert G.dtype == np.float32 and G.shape == (10, 12)
    np.testing.assert_allclose(G, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(y_out, y.numpy())
    np.testing.assert_array_equal(pred, logits.argmax(1).numpy())
    # No hook is left behind.
    assert not module.output._forward_hooks


def test_gradient_features_logits():
    torch.manual_seed(0)
    module = nn.Linear(3, 4)
    X, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    G, _, _ = gradient_features(module, [(X, y)], 5)
    torch.testing.assert_close(torch.from_numpy(G), logit_residual(module(X).detach(), y))


def test_gradient_features_takes_first_of_tuple_outputs():
    module = nn.Linear(3, 2)
    G, _, _ = gradient_features(lambda X: (module(X), "extra"), [(torch.zeros(2, 3),
                                                                  torch.tensor([0, 1]))], 2)
    assert G.shape == (2, 2)


class _Scaled(nn.Module):
    """Something is applied after the last Linear: the closed form would be wrong."""

    def __init__(self):
        super().__init__()
        self.output = nn.Linear(3, 2)

    def forward(self, X):
        return 2 * self.output(X)


def test_penultimate_refuses_modules_whose_last_linear_is_not_the_output():
    module = _Scaled()
    with pytest.raises(ValueError, match="last nn.Linear to produce the logits"):
        gradient_features(module, [(torch.zeros(2, 3), torch.tensor([0, 1]))], 2,
                          kind="penultimate", module=module)


def test_penultimate_needs_a_linear_layer():
    module = nn.Sequential(nn.Flatten())
    with pytest.raises(ValueError, match="has none: use gradient='logits'"):
        last_linear(module)


@pytest.mark.parametrize("n_samples, message", [(3, "more than n_samples=3"),
                                                (5, "hold 4 examples, expected n_samples=5")])
def test_gradient_features_checks_n_samples(n_samples, message):
    module = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=message):
        gradient_features(module, [(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))],
                          n_samples)


def test_gradient_features_invalid_kind():
    with pytest.raises(ValueError, match="gradient='hessian' is not valid"):
        gradient_features(nn.Linear(2, 2), [], 0, kind="hessian")


def test_capture_layer_removes_its_hook_on_error():
    layer = nn.Linear(2, 2)
    with pytest.raises(RuntimeError):
        with capture_layer(layer):
            raise RuntimeError
    assert not layer._forward_hooks


@pytest.mark.parametrize("n_classes", [2, 10, 15, 16, 26])
@pytest.mark.parametrize("n_rows", [1, 29, 128])
def test_softmax_rows_is_torchs_softmax(n_classes, n_rows):
    from sk_crust._softmax import softmax_rows

    logits = torch.randn(n_rows, n_classes, generator=torch.Generator().manual_seed(0)) * 5
    got = softmax_rows(logits)
    assert got.is_contiguous() and got.shape == logits.shape
    torch.testing.assert_close(got, torch.softmax(logits, dim=-1), rtol=1e-6, atol=1e-7)
