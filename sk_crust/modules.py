"""Small default torch modules for :class:`~sk_crust.CrustClassifier`.

Both return **logits** (no softmax) and end with an ``nn.Linear`` layer, which is what
``CrustClassifier(gradient="penultimate")`` hooks to get the gradient with respect to the
penultimate features. ``CrustClassifier`` fills in ``n_features``/``n_classes``/``in_channels``
from the data at fit time, so ``CrustClassifier("mlp")`` needs no ``module__`` arguments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import torch
from torch import nn

__all__ = ["MLP", "SmallCNN"]


class MLP(nn.Module):
    """Multi-layer perceptron for tabular data: ``Linear -> ReLU -> Dropout`` blocks, then logits.

    Inputs with more than two dimensions (e.g. images) are flattened.

    Parameters
    ----------
    n_features : int
        Number of input features (``CrustClassifier`` infers it from ``X``).
    n_classes : int
        Number of outputs (logits).
    hidden : sequence of int, default=(256,)
        Width of each hidden layer; ``()`` gives a linear model (multinomial logistic regression).
    dropout : float, default=0.0
        Dropout probability after each hidden layer.

    Examples
    --------
    >>> import torch
    >>> from sk_crust import MLP
    >>> MLP(n_features=64, n_classes=10)(torch.zeros(5, 64)).shape
    torch.Size([5, 10])
    """

    def __init__(self, n_features: int, n_classes: int, hidden: Sequence[int] = (256,),
                 dropout: float = 0.0):
        super().__init__()
        _check_positive_int(n_features, "n_features")
        _check_positive_int(n_classes, "n_classes")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} is not valid: pass a float in [0, 1)")
        layers: list[nn.Module] = []
        width = int(n_features)
        for h in hidden:
            _check_positive_int(h, "hidden widths")
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        self.features = nn.Sequential(*layers)
        self.output = nn.Linear(width, int(n_classes))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(X.flatten(1)))


class SmallCNN(nn.Module):
    """Two-convolution network for small single-channel images such as 8x8 digits or 28x28 MNIST.

    ``conv3x3(32) -> ReLU -> conv3x3(64) -> ReLU -> maxpool2 -> adaptive avgpool 4x4 ->
    Linear(hidden) -> ReLU -> Dropout -> Linear(n_classes)``. The adaptive pooling makes the same
    network work for any image side >= 2.

    Parameters
    ----------
    n_classes : int
        Number of outputs (logits).
    in_channels : int, default=1
        Image channels.
    hidden : int, default=128
        Width of the fully connected layer.
    dropout : float, default=0.25
        Dropout probability before the output layer.

    Notes
    -----
    Accepts ``(n, in_channels, H, W)`` tensors, or flat ``(n, in_channels * side**2)`` rows
    (e.g. ``(n, 64)`` for scikit-learn's digits, ``(n, 784)`` for MNIST) that are reshaped to
    square images, so it works with 2-D tabular-style ``X`` as scikit-learn passes it.

    Examples
    --------
    >>> import torch
    >>> from sk_crust import SmallCNN
    >>> net = SmallCNN(n_classes=10)
    >>> net(torch.zeros(2, 64)).shape, net(torch.zeros(2, 1, 28, 28)).shape
    (torch.Size([2, 10]), torch.Size([2, 10]))
    """

    def __init__(self, n_classes: int, in_channels: int = 1, hidden: int = 128,
                 dropout: float = 0.25):
        super().__init__()
        _check_positive_int(n_classes, "n_classes")
        _check_positive_int(in_channels, "in_channels")
        _check_positive_int(hidden, "hidden")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} is not valid: pass a float in [0, 1)")
        self.in_channels = in_channels = int(in_channels)
        hidden, n_classes = int(hidden), int(n_classes)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            # Upsamples 2x2 maps (8x8 input) and pools 14x14 maps (28x28 input) to one size.
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(64 * 16, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.output = nn.Linear(hidden, n_classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.dim() == 2:
            side = math.isqrt(X.shape[1] // self.in_channels)
            if self.in_channels * side * side != X.shape[1]:
                raise ValueError(
                    f"SmallCNN got flat rows of {X.shape[1]} features, which are not "
                    f"{self.in_channels} square image(s): pass (n, channels, H, W) input")
            X = X.reshape(-1, self.in_channels, side, side)
        elif X.dim() == 3:  # (n, H, W): a single channel without its axis
            X = X.unsqueeze(1)
        return self.output(self.head(self.features(X)))


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid: pass an int >= 1")
