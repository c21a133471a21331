"""Per-example gradient proxies that CRUST clusters.

CRUST selects medoids of per-example gradients. Full gradients are far too large, so it uses the
gradient of the cross-entropy with respect to a layer near the output:

* ``"logits"`` (the paper, Eq. 9): ``softmax(z) - onehot(y)``, the gradient with respect to the
  logits ``z``. It needs a forward pass only.
* ``"penultimate"`` (the official code): the gradient with respect to the *input* ``h`` of the last
  linear layer ``z = h W^T + b``, which is ``(softmax(z) - onehot(y)) W``. The official code gets it
  with autograd; because ``z`` is linear in ``h`` it is computed here in closed form from the
  weight matrix, with no backward pass.
* :func:`proba_residual`: the same ``p - onehot(y)`` for any scikit-learn model's ``predict_proba``.

Torch is imported lazily, inside the functions that need it, so that this module can be used
without torch (scikit-learn estimators only need :func:`proba_residual`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

def proba_residual(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """``proba - onehot(y)``: the cross-entropy gradient with respect to the logits.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        Predicted class probabilities.
    y_index : ndarray of shape (n_samples,)
        Class *positions* (``0 .. n_classes - 1``) of the labels.

    Returns
    -------
    residual : ndarray of shape (n_samples, n_classes)

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust._gradients import proba_residual
    >>> proba_residual(np.array([[0.75, 0.25]]), np.array([1])).tolist()
    [[0.75, -0.75]]
    """
    residual = np.array(proba, dtype=np.result_type(proba, np.float32), copy=True)
    residual[np.arange(len(residual)), np.asarray(y_index)] -= 1
    return residual


def logit_residual(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``softmax(logits) - onehot(y)``, computed in float32.

    Parameters
    ----------
    logits : Tensor of shape (n, n_classes)
    y : Tensor of shape (n,)
        Integer class positions.

    Returns
    -------
    residual : Tensor of shape (n, n_classes)

    Examples
    --------
    >>> import torch
    >>> from sk_crust._gradients import logit_residual
    >>> logit_residual(torch.zeros(1, 2), torch.tensor([0])).tolist()
    [[-0.5, 0.5]]
    """
    import torch

    from ._softmax import softmax_rows

    residual = softmax_rows(logits.float())
    residual[torch.arange(len(residual), device=residual.device), y.long()] -= 1
    return residual


def penultimate_gradient(logits: torch.Tensor, y: torch.Tensor,
                         weight: torch.Tensor) -> torch.Tensor:
    """Gradient of the cross-entropy with respect to the input ``h`` of the output layer.

    For ``z = h W^T + b`` and ``L = CE(z, y)``: ``dL/dh = (softmax(z) - onehot(y)) W``.

    Parameters
    ----------
    logits : Tensor of shape (n, n_classes)
    y : Tensor of shape (n,)
    weight : Tensor of shape (n_classes, n_hidden)
        The output layer's ``weight``.

    Returns
    -------
    gradient : Tensor of shape (n, n_hidden)
    """
    return logit_residual(logits, y) @ weight.detach().float()


def last_linear(module: torch.nn.Module) -> torch.nn.Linear:
    """The last ``nn.Linear`` registered in ``module`` (its output layer, for usual networks).

    Raises
    ------
    ValueError
        If ``module`` has no ``nn.Linear``.
    """
    from torch import nn

    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"gradient='penultimate' needs a module whose output layer is an nn.Linear, but "
            f"{type(module).__name__} has none: use gradient='logits'")
    return linears[-1]


class _Captured:
    """What the forward hook saw at the last call: the layer's input and output."""

    inputs: torch.Tensor | None = None
    output: torch.Tensor | None = None


@contextmanager
def capture_layer(layer: torch.nn.Module):
    """Record the input and output of ``layer`` at every forward call, inside the block.

    Yields
    ------
    captured : object with ``inputs`` and ``output`` attributes (updated by each forward).
    """
    captured = _Captured()

    def hook(_module, inputs, output):
        captured.inputs, captured.output = inputs[0], output

    handle = layer.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


class GradientFeatures(NamedTuple):
    """Per-example gradient features of a dataset, in iteration order.

    Attributes
    ----------
    features : ndarray of shape (n_samples, n_features), float32
    y : ndarray of shape (n_samples,), int64
        The (noisy) label of each example, as the batches gave it.
    prediction : ndarray of shape (n_samples,), int64
        ``argmax`` of the logits.
    """

    features: np.ndarray
    y: np.ndarray
    prediction: np.ndarray


class LogitGradient:
    """``softmax(z) - onehot(y)``: the gradient with respect to the logits (the paper, Eq. 9)."""

    name = "logits"

    def layer(self, module: torch.nn.Module | None) -> torch.nn.Module | None:
        """The layer whose input and output the forward hook must capture (None: no hook)."""
        return None

    def features(self, logits: torch.Tensor, y: torch.Tensor, layer,
                 captured: _Captured | None) -> torch.Tensor:
        return logit_residual(logits, y)


class PenultimateGradient(LogitGradient):
    """``(softmax(z) - onehot(y)) W``: the gradient with respect to the last layer's input."""

    name = "penultimate"

    def layer(self, module):
        if module is None:
            raise ValueError("gradient='penultimate' needs the module")
        return last_linear(module)

    def features(self, logits, y, layer, captured):
        _check_hook(captured, logits)
        return penultimate_gradient(logits, y, layer.weight)


#: ``gradient`` values of :class:`~sk_crust.CrustClassifier` and their strategies: a new proxy is
#: one class with ``layer`` and ``features`` and one entry here.
GRADIENTS: dict[str, LogitGradient] = {g.name: g for g in (LogitGradient(),
                                                            PenultimateGradient())}


def gradient_features(infer: Callable, batches: Iterable, n_samples: int, *,
                      kind: str = "logits", module: torch.nn.Module | None = None,
                      ) -> GradientFeatures:
    """Compute gradient features of every example, batch by batch, without a backward pass.

    The caller puts the module in evaluation mode; gradients are disabled here. Only the
    features are kept (one preallocated ``(n_samples, d)`` float32 array), not activations.

    Parameters
    ----------
    infer : callable
        ``infer(X_batch) -> logits`` (a tuple output is allowed; its first item is used).
    batches : iterable of (X_batch, y_batch)
        E.g. a non-shuffling ``DataLoader``.
    n_samples : int
        Total number of examples the batches hold.
    kind : {"logits", "penultimate"}, default="logits"
        Which gradient (see the module docstring and :data:`GRADIENTS`).
    module : torch.nn.Module, default=None
        The network, required for ``kind="penultimate"`` (its last ``nn.Linear`` is hooked).

    Returns
    -------
    GradientFeatures
        ``(features, y, prediction)``.

    Examples
    --------
    >>> import torch
    >>> from sk_crust._gradients import gradient_features
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> batches = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))] * 2
    >>> G, y, pred = gradient_features(net, batches, 8, kind="penultimate", module=net)
    >>> G.shape, y.tolist()
    ((8, 8), [0, 1, 0, 1, 0, 1, 0, 1])
    """
    import torch

    if kind not in GRADIENTS:
        raise ValueError(f"gradient={kind!r} is not valid: pass one of {list(GRADIENTS)}")
    gradient = GRADIENTS[kind]
    layer = gradient.layer(module)
    features = y_all = pred_all = None
    start = 0
    # inference_mode, not no_grad: no autograd bookkeeping at all (the features leave as NumPy).
    with torch.inference_mode(), (capture_layer(layer) if layer is not None
                                  else _null()) as captured:
        for Xb, yb in batches:
            logits = infer(Xb)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            yb = torch.as_tensor(yb, device=logits.device).long()
            G = gradient.features(logits, yb, layer, captured)
            stop = start + len(G)
            if features is None:
                features = np.empty((n_samples, G.shape[1]), dtype=np.float32)
                y_all = np.empty(n_samples, dtype=np.int64)
                pred_all = np.empty(n_samples, dtype=np.int64)
            if stop > n_samples:
                raise ValueError(f"the batches hold more than n_samples={n_samples} examples")
            features[start:stop] = G.cpu().numpy()
            y_all[start:stop] = yb.cpu().numpy()
            pred_all[start:stop] = logits.argmax(dim=-1).cpu().numpy()
            start = stop
    if features is None or start != n_samples:
        raise ValueError(f"the batches hold {start} examples, expected n_samples={n_samples}")
    return GradientFeatures(features, y_all, pred_all)


def _check_hook(captured: _Captured, logits: torch.Tensor) -> None:
    """The closed form ``(p - y) W`` is only right if the hooked layer produced the logits."""
    out = captured.output
    if out is None or captured.inputs is None or out.shape != logits.shape \
            or captured.inputs.dim() != 2 or not (out is logits or bool((out == logits).all())):
        raise ValueError(
            "gradient='penultimate' needs the module's last nn.Linear to produce the logits the "
            "module returns (2-D input, nothing applied after it): use gradient='logits' for "
            "this module")


@contextmanager
def _null():
    yield None
