"""torch's fused optimizer kernels, on by default where they are known to compute the same rule.

``torch.optim.Adam`` and ``AdamW`` update every parameter tensor with a handful of small kernels
per step unless ``fused=True``; on the CPU the fused kernel does one pass. For the small networks
this project's users train, the optimizer step is a large share of a training step: one step
of the 64-256-10 MLP took 182 us unfused and 91 us fused (batch 128, one torch thread), out of
about 600 us for the whole step. Fused is the same update rule; only the rounding differs (the
kernel computes in another order). A user who passes any of ``optimizer__fused``,
``optimizer__foreach`` or ``optimizer__differentiable`` keeps exactly what they asked for.
"""

from __future__ import annotations

import torch

#: Optimizers whose ``fused=True`` is the same rule and worth it on the CPU (SGD's was not
#: faster; other classes have no fused kernel).
FUSED_BY_DEFAULT = (torch.optim.Adam, torch.optim.AdamW)

#: Parameters that select a kernel or exclude the fused one: the user's choice then stands.
_KERNEL_PARAMS = frozenset({"fused", "foreach", "differentiable"})

#: Device types whose fused kernels are established for the classes above.
_DEVICES = ("cpu", "cuda")


def use_fused(optimizer, param_groups, kwargs: dict) -> bool:
    """Whether ``optimizer(*param_groups, **kwargs)`` should get ``fused=True``.

    Only for the exact classes of :data:`FUSED_BY_DEFAULT` (a subclass may override ``step``),
    no kernel parameter given, and every parameter a floating-point tensor on a device whose
    fused kernels this torch build has (torch 2.4 added the CPU ones; an older build lists only
    CUDA, so the CPU keeps the unfused step).
    """
    groups = [g for g in param_groups if isinstance(g, dict)]
    if (optimizer not in FUSED_BY_DEFAULT or _KERNEL_PARAMS & set(kwargs)
            or any(_KERNEL_PARAMS & set(g) for g in groups)):
        return False
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # a torch without the fused kernels' registry
        return False
    devices = set(_get_fused_kernels_supported_devices()) & set(_DEVICES)
    params = [p for group in param_groups
              for p in (group["params"] if isinstance(group, dict) else [group])]
    return bool(params) and all(
        isinstance(p, torch.Tensor) and p.is_floating_point() and p.device.type in devices
        for p in params)
