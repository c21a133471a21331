"""Noise-robust classification losses on logits: Generalized and Symmetric Cross Entropy.

Both are drop-in replacements for :class:`torch.nn.CrossEntropyLoss` as a skorch ``criterion``:
they take raw logits of shape ``(n_samples, n_classes)`` and integer class targets of shape
``(n_samples,)``, and honour ``reduction`` in ``{"none", "mean", "sum"}``, read at every call, so
that :class:`~sk_crust.CrustClassifier` can set ``reduction="none"`` on the instance and weight the
per-example losses itself::

    CrustClassifier(module, criterion=GCELoss)                      # q = 0.7
    CrustClassifier(module, criterion=SCELoss, criterion__alpha=0.1)

They are the robust-loss baselines practitioners reach for on noisy labels, and a robust criterion
under CRUST's coresets makes selection mistakes cost less.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._numba import compiled_module

__all__ = ["GCELoss", "SCELoss"]

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction) -> None:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not valid: pass one of {_REDUCTIONS}")


def _check_real(value, name: str, low: float, high: float, *, low_open: bool,
                high_open: bool, accepted: str) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{name}={value!r} is not valid: pass {accepted}")
    return value


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    _check_reduction(reduction)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


def _target_log_proba(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[i, target[i]]`` for every example, inputs checked."""
    _check_inputs(logits, target)
    return F.log_softmax(logits, dim=1).gather(1, target.long().unsqueeze(1)).squeeze(1)


def _cross_entropy_of(log_p: torch.Tensor) -> torch.Tensor:
    return -log_p


def _cross_entropy_slope(log_p: torch.Tensor) -> torch.Tensor:
    return torch.full_like(log_p, -1.0)


def _per_target_loss(criterion):
    """``(f, f')`` with ``criterion(z, t) == f(log softmax(z)[t])`` per example, or None.

    Known for this module's losses and for a plain ``torch.nn.CrossEntropyLoss`` (no class
    weights, no label smoothing: those would not be a function of the target's probability).
    ``f'`` is the derivative of ``f`` with respect to the log-probability.
    """
    if isinstance(criterion, (GCELoss, SCELoss)):
        return criterion._from_log_proba, criterion._slope
    if (type(criterion) is nn.CrossEntropyLoss and criterion.weight is None
            and criterion.label_smoothing == 0):
        return _cross_entropy_of, _cross_entropy_slope
    return None


class _MixedTargets(torch.autograd.Function):
    """Per example ``sum_c w_c f(log p[t_c])``, with the gradient in closed form.

    ``d/dz f(log p_t) = f'(log p_t) (onehot(t) - p)``: the backward pass is a handful of
    kernels instead of the autograd graph of the log-softmax, the gathers and ``f`` (the loss
    of every mixup batch; this halves its cost for a small network). With ``example_weights``
    (summing to 1) it returns their weighted sum of the per-example losses, a scalar: the
    weighted mean of a coreset batch then adds no kernels of its own to either pass.
    """

    @staticmethod
    def forward(ctx, logits, targets, weights, example_weights, loss_of, slope_of):
        log_p = F.log_softmax(logits, dim=1)
        log_p_t = log_p.gather(1, targets)
        ctx.save_for_backward(log_p, log_p_t, targets, weights, example_weights)
        ctx.slope_of = slope_of
        losses = torch.mv(loss_of(log_p_t), weights)
        return losses if example_weights is None else losses.dot(example_weights)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        log_p, log_p_t, targets, weights, example_weights = ctx.saved_tensors
        upstream = grad if example_weights is None else example_weights * grad
        coef = ctx.slope_of(log_p_t).mul_(weights).mul_(upstream.unsqueeze(1))
        grad_logits = torch.exp(log_p).mul_(-coef.sum(dim=1, keepdim=True))
        return grad_logits.scatter_add_(1, targets, coef), None, None, None, None, None


def _kernel_form(criterion) -> tuple[int, float, float]:
    """``(code, a, b)`` of ``criterion`` for :func:`._loss_kernels.mixed_target_mean`.

    For the criteria of :func:`_per_target_loss` (the caller has found it one of them): GCE,
    SCE, else plain cross entropy. Read at every call (parameters may change on the instance).
    """
    if isinstance(criterion, GCELoss):
        return 1, criterion.q, 0.0
    if isinstance(criterion, SCELoss):
        return 2, criterion.alpha, criterion.beta * criterion.A
    return 0, 0.0, 0.0


#: The compiled mixed-label mean, or None (tests set it to None to run the torch path).
_kernels = compiled_module("sk_crust._loss_kernels")
_compiled_mean = None if _kernels is None else _kernels.mixed_target_mean


class _KnownGradient(torch.autograd.Function):
    """A scalar whose gradient with respect to ``logits`` is already computed (``grad``)."""

    @staticmethod
    def forward(ctx, logits, value, grad):
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, upstream):
        (grad,) = ctx.saved_tensors
        return grad * upstream, None, None


def _compiled_mixed_mean(criterion, logits, target, partner_target, lam,
                         sample_weight) -> torch.Tensor | None:
    """:func:`_mixed_losses`' weighted mean from one compiled pass, or None where it does not
    apply (no numba, not the CPU, not float32/float64 logits, a target outside the logits'
    columns: the torch path then runs, and raises torch's error). The caller has checked the
    shapes (:func:`_check_inputs`) and that ``criterion`` is one of :func:`_per_target_loss`'s.

    The pass computes the gradient too (the same loop has every term of it); the backward pass
    only scales it: two torch calls per batch instead of about 25 (see :mod:`._loss_kernels`).
    """
    if (_compiled_mean is None or logits.dtype not in (torch.float32, torch.float64)
            or not logits.is_contiguous()
            or any(t.device.type != "cpu" for t in (logits, target, partner_target,
                                                    sample_weight))):
        return None
    z = logits.detach().numpy()
    grad = np.empty_like(z)
    value, ok = _compiled_mean(z, target.long().numpy(), partner_target.long().numpy(),
                               float(lam), sample_weight.detach().numpy(),
                               *_kernel_form(criterion), grad)
    if not ok:
        return None
    return _KnownGradient.apply(logits, torch.from_numpy(np.asarray(value, dtype=z.dtype)),
                                torch.from_numpy(grad))


def _mixed_losses(criterion, logits: torch.Tensor, target: torch.Tensor,
                 partner_target: torch.Tensor, lam: float,
                 sample_weight: torch.Tensor | None = None) -> torch.Tensor | None:
    """``lam * criterion(logits, target) + (1 - lam) * criterion(logits, partner_target)``.

    Per example, in one pass (one log-softmax, one gather of both targets' columns, the
    gradient in closed form) for the criteria whose loss is a function of the target's
    log-probability; ``None`` for others, which the caller then evaluates twice. Mixup with
    mixed labels pays this every batch: the second pass of the criterion and its autograd graph
    cost about as much as the rest of mixup together. With ``sample_weight`` (one per example,
    not all 0) the result is the weighted mean of those losses, a scalar.
    """
    forms = _per_target_loss(criterion)
    if forms is None:
        return None
    _check_inputs(logits, target)
    _check_inputs(logits, partner_target)
    if sample_weight is not None:
        compiled = _compiled_mixed_mean(criterion, logits, target, partner_target, lam,
                                        sample_weight)
        if compiled is not None:
            return compiled
    targets = torch.stack([target.long(), partner_target.long()], dim=1)
    weights = torch.tensor([lam, 1.0 - lam], dtype=logits.dtype, device=logits.device)
    if sample_weight is not None:
        sample_weight = sample_weight.to(device=logits.device, dtype=logits.dtype)
        sample_weight = sample_weight / sample_weight.sum().clamp_min(
            torch.finfo(logits.dtype).tiny)
    return _MixedTargets.apply(logits, targets, weights, sample_weight, *forms)


def _check_inputs(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits of shape {tuple(logits.shape)} are not valid: pass logits of "
                         "shape (n_samples, n_classes)")
    if target.dim() != 1 or len(target) != len(logits) or target.is_floating_point():
        raise ValueError(f"target of shape {tuple(target.shape)} and dtype {target.dtype} is not "
                         f"valid: pass integer class indices of shape ({len(logits)},)")


class GCELoss(nn.Module):
    r"""Generalized Cross Entropy (Zhang & Sabuncu, NeurIPS 2018) on logits.

    For the softmax probability :math:`p_y` of the given label,
    :math:`\ell = (1 - p_y^q) / q`. As ``q -> 0`` it tends to the cross entropy
    :math:`-\log p_y`; at ``q = 1`` it is the mean absolute error :math:`1 - p_y` (up to a factor
    of 2), which is robust to label noise but slow to train. The paper's ``q = 0.7`` trades
    the two. The gradient is the cross entropy's scaled by :math:`p_y^q`, so examples the network
    finds unlikely (often mislabelled ones) pull less.

    Parameters
    ----------
    q : float, default=0.7
        Exponent in (0, 1].
    reduction : {"none", "mean", "sum"}, default="mean"
        ``"none"``: one loss per example; ``"mean"`` / ``"sum"``: their mean / sum. Read at every
        call, so it may be changed on the instance after construction.

    Raises
    ------
    ValueError
        If ``q`` or ``reduction`` is not valid, or the logits or targets have the wrong shape.

    See Also
    --------
    SCELoss : Symmetric Cross Entropy, the other common robust loss.

    Examples
    --------
    >>> import torch
    >>> from sk_crust import GCELoss
    >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> target = torch.tensor([0, 2])
    >>> GCELoss(q=0.7, reduction="none")(logits, target)
    tensor([0.2205, 0.7665])
    >>> round(float(GCELoss()(logits, target)), 4)  # the mean
    0.4935

    As a criterion of :class:`~sk_crust.CrustClassifier` (which sets ``reduction="none"``)::

        CrustClassifier("mlp", criterion=GCELoss, criterion__q=0.7)
    """

    def __init__(self, q: float = 0.7, reduction: str = "mean"):
        super().__init__()
        self.q = _check_real(q, "q", 0.0, 1.0, low_open=True, high_open=False,
                             accepted="a float in (0, 1]")
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _reduce(self._from_log_proba(_target_log_proba(logits, target)), self.reduction)

    def _from_log_proba(self, log_p: torch.Tensor) -> torch.Tensor:
        # p_y^q = exp(q log p_y): stable for very negative log-probabilities.
        return -torch.expm1(self.q * log_p) / self.q

    def _slope(self, log_p: torch.Tensor) -> torch.Tensor:
        return -torch.exp(self.q * log_p)  # d/d(log p) of _from_log_proba

    def extra_repr(self) -> str:
        return f"q={self.q}, reduction={self.reduction!r}"


class SCELoss(nn.Module):
    r"""Symmetric Cross Entropy (Wang et al., ICCV 2019) on logits.

    :math:`\ell = \alpha\,\mathrm{CE} + \beta\,\mathrm{RCE}`, where the reverse cross entropy
    :math:`\mathrm{RCE} = -\sum_k p_k \log \tilde y_k` swaps the roles of the prediction
    :math:`p` (softmax of the logits) and the one-hot label :math:`\tilde y`, with
    :math:`\log 0` replaced by the constant ``A``, so :math:`\mathrm{RCE} = -A\,(1 - p_y)`.

    Parameters
    ----------
    alpha : float, default=0.1
        Weight (>= 0) of the cross entropy, which fits the clean examples quickly.
    beta : float, default=1.0
        Weight (>= 0) of the reverse cross entropy, which is robust to label noise.
        ``alpha`` and ``beta`` must not both be 0.
    A : float, default=-4
        The value (< 0) that stands for :math:`\log 0` in the reverse cross entropy, as in the
        paper (the authors' code clamps the one-hot labels at 1e-4 instead, i.e. ``A ~ -9.21``).
    reduction : {"none", "mean", "sum"}, default="mean"
        ``"none"``: one loss per example; ``"mean"`` / ``"sum"``: their mean / sum. Read at every
        call, so it may be changed on the instance after construction.

    Raises
    ------
    ValueError
        If a parameter is not valid, or the logits or targets have the wrong shape.

    See Also
    --------
    GCELoss : Generalized Cross Entropy.

    Examples
    --------
    >>> import torch
    >>> from sk_crust import SCELoss
    >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> target = torch.tensor([0, 2])
    >>> SCELoss(reduction="none")(logits, target)
    tensor([0.8760, 2.7765])
    >>> SCELoss(alpha=1.0, beta=0.0)(logits, target)  # plain cross entropy
    tensor(0.6691)
    """

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, A: float = -4,
                 reduction: str = "mean"):
        super().__init__()
        self.alpha = _check_real(alpha, "alpha", 0.0, float("inf"), low_open=False,
                                 high_open=True, accepted="a finite float >= 0")
        self.beta = _check_real(beta, "beta", 0.0, float("inf"), low_open=False,
                                high_open=True, accepted="a finite float >= 0")
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("alpha=0 and beta=0 are not valid together: pass a positive weight "
                             "for at least one of the two terms")
        self.A = _check_real(A, "A", float("-inf"), 0.0, low_open=True, high_open=True,
                             accepted="a finite float < 0 (it stands for log 0)")
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _reduce(self._from_log_proba(_target_log_proba(logits, target)), self.reduction)

    def _from_log_proba(self, log_p: torch.Tensor) -> torch.Tensor:
        # RCE = -sum_k p_k log(onehot_k) with log 0 := A: only the other classes count.
        # beta * -A * (1 - p_y) = beta * A * expm1(log p_y); three kernels, not six (every batch).
        return torch.add(log_p * -self.alpha, torch.expm1(log_p), alpha=self.beta * self.A)

    def _slope(self, log_p: torch.Tensor) -> torch.Tensor:
        return torch.exp(log_p).mul_(self.beta * self.A).sub_(self.alpha)  # d/d(log p)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, A={self.A}, "
                f"reduction={self.reduction!r}")
