"""A row-wise softmax for inference that avoids torch's slow CPU path for few classes.

On the CPU, torch's softmax over the last dimension of an ``(n, c)`` tensor takes a slow path
when ``c`` is below the SIMD width: with torch 2.13 on an AVX-512 machine, 1,024 x 10 logits took
188 us against 26 us for the same softmax over the first dimension of the transposed view (equal
to the last float bit or two; ``benchmarks/results/training_speed.md``). With 16 classes or more
the last dimension is the fast one again. ``CrustClassifier``'s feature pass (the logit
residuals of every training row, every epoch) and ``predict_proba`` take a softmax over a few
classes, so they go through here: the feature pass of 24,000 rows and 10 classes went from 20.5
to 16.9 ms.

Not used in training: there the gradient of the transposed view comes back with transposed
strides, and the layers' backward products got slower (a training step of an MLP on 128 rows:
+50 us), more than the softmax saved.

A leaf: torch only.
"""

from __future__ import annotations

import torch

#: Classes below which the transposed view is used (the float32 lanes of AVX-512; with narrower
#: SIMD the transposed view is not slower for so few classes).
FEW_CLASSES = 16


def softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(logits, dim=-1)``, through the transposed view for few classes on the CPU.

    The result is contiguous either way (callers write into it or hand it to NumPy).

    Examples
    --------
    >>> import torch
    >>> from sk_crust._softmax import softmax_rows
    >>> softmax_rows(torch.tensor([[0.0, 0.0], [0.0, 1e9]])).tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    if logits.dim() == 2 and logits.shape[1] < FEW_CLASSES and logits.device.type == "cpu":
        return torch.softmax(logits.t(), dim=0).t().contiguous()
    return torch.softmax(logits, dim=-1)
