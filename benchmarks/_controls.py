"""Controls of the noise panel that are not in the package: forward correction and co-teaching.

Both train through :class:`~sk_crust.CrustClassifier` with ``warmup_epochs = max_epochs`` (plain
training: every example every epoch), so they share the module, optimizer, batch, epochs and data
path of every other method of ``noise_panel.py``; what they change is the loss.

- **Forward correction** (Patrini et al., CVPR 2017): the loss is the cross entropy of the
  *noisy* label under ``softmax(z) @ T``, with ``T[i, j] = P(noisy label j | true class i)``
  estimated from the model after the first ``start`` epochs (plain cross entropy until then): per
  class ``i``, the anchor is the training example at the 97th percentile of ``p_i`` (the paper's
  robust choice over the maximum) and row ``i`` of ``T`` is its predicted distribution.
- **Co-teaching** (Han et al., NeurIPS 2018): two networks of the same architecture (one module
  holding both); in every batch each keeps the examples with the smallest loss under *its own*
  loss and the *other* network trains on them. The kept fraction is ``1 - forget_rate``, with the
  forget rate 0 for the first ``start`` epochs, then the noise rate estimated on the first
  network's training predictions (``estimate_noise_rate(..., method="spread")``, the estimate
  CRUST's default uses: no method is given the true rate), reached linearly over ``start`` more
  epochs (the paper ramps over 10 of 200 epochs). Predictions come from the first network.
"""

from __future__ import annotations

import numpy as np
import torch
from skorch.callbacks import Callback
from torch import nn
from torch.nn import functional as F

from sk_crust import MLP, estimate_noise_rate
from sk_crust.losses import _reduce


class ForwardLoss(nn.Module):
    """Cross entropy of the noisy label under ``softmax(logits) @ T`` (identity until set)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction
        self.T: torch.Tensor | None = None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.T is None:
            losses = F.cross_entropy(logits, target, reduction="none")
        else:
            noisy = F.softmax(logits, dim=1) @ self.T.to(logits.device, logits.dtype)
            losses = F.nll_loss(torch.log(noisy.clamp_min(1e-12)), target, reduction="none")
        return _reduce(losses, self.reduction)


def estimate_transition(proba: np.ndarray, percentile: float = 97.0) -> np.ndarray:
    """``T[i] = proba[anchor_i]``, the anchor at the ``percentile`` of ``proba[:, i]``."""
    T = np.empty((proba.shape[1], proba.shape[1]))
    for i in range(proba.shape[1]):
        threshold = np.percentile(proba[:, i], percentile)
        candidates = np.flatnonzero(proba[:, i] >= threshold)
        anchor = candidates[np.argmin(proba[candidates, i])]
        T[i] = proba[anchor]
    return T


class SetTransition(Callback):
    """At the start of epoch ``start + 1``, estimate ``T`` from the training predictions."""

    def __init__(self, start: int = 5):
        self.start = start

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.X_ = X
        net.criterion_.T = None

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.start + 1:
            T = estimate_transition(net.predict_proba(self.X_))
            net.criterion_.T = torch.as_tensor(T, dtype=torch.float32)


class TwoMLPs(nn.Module):
    """Two :class:`~sk_crust.MLP` networks: both logits side by side in training, the first's
    in evaluation (the net's predictions)."""

    def __init__(self, n_features: int, n_classes: int, hidden=(256,)):
        super().__init__()
        self.first = MLP(n_features, n_classes, hidden)
        self.second = MLP(n_features, n_classes, hidden)

    def forward(self, X):
        if self.training:
            return torch.cat([self.first(X), self.second(X)], dim=1)
        return self.first(X)


class CoTeachingLoss(nn.Module):
    """Per-example co-teaching loss on ``[logits_1, logits_2]``; ``forget_rate`` set per epoch.

    Example ``i`` contributes ``loss_1[i]`` if the second network keeps it and ``loss_2[i]`` if
    the first keeps it, scaled so that the batch mean is the mean over the kept examples.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction
        self.forget_rate = 0.0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.training:  # evaluation (skorch sets the mode): the first network's logits
            losses = F.cross_entropy(logits, target, reduction="none")
        else:
            k = logits.shape[1] // 2
            loss_1 = F.cross_entropy(logits[:, :k], target, reduction="none")
            loss_2 = F.cross_entropy(logits[:, k:], target, reduction="none")
            n_keep = max(1, int(round((1.0 - self.forget_rate) * len(target))))
            keep_1 = torch.zeros_like(loss_1)
            keep_1[torch.argsort(loss_1.detach())[:n_keep]] = 1.0  # the first network's pick
            keep_2 = torch.zeros_like(loss_2)
            keep_2[torch.argsort(loss_2.detach())[:n_keep]] = 1.0
            losses = (loss_1 * keep_2 + loss_2 * keep_1) * (len(target) / n_keep)
        return _reduce(losses, self.reduction)


class ForgetRate(Callback):
    """Co-teaching's schedule: 0 for ``start`` epochs, then up to the estimated noise rate."""

    def __init__(self, start: int = 5):
        self.start = start

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.X_, self.y_ = X, y
        self.rate_ = None
        net.criterion_.forget_rate = 0.0

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history)
        if epoch == self.start + 1:
            proba = net.predict_proba(self.X_)
            self.rate_ = estimate_noise_rate(np.asarray(self.y_), proba,
                                             classes=np.arange(proba.shape[1]),
                                             method="spread")
        if self.rate_ is not None:
            ramp = min(1.0, (epoch - self.start) / self.start)
            net.criterion_.forget_rate = ramp * self.rate_

