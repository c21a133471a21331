"""sk_crust: CRUST coresets for training neural networks on noisy labels, the scikit-learn way.

``import sk_crust`` and the selection estimators do not import torch; the skorch classifier and the
torch modules are loaded on first access.
"""

from ._noise_estimation import estimate_noise_rate
from ._reporting import CoresetReport, coreset_report
from ._selector import Coreset, CrustSampler, CrustSelector
from .noise import add_label_noise

__version__ = "0.1.0.dev0"

# Public names that need torch/skorch, resolved lazily (PEP 562) so that selection-only users never
# pay torch's import time.
_TORCH_NAMES = {
    "CrustClassifier": "._classifier",
    "CoresetCleanFraction": ".callbacks",
    "GCELoss": ".losses",
    "SCELoss": ".losses",
    "MLP": ".modules",
    "SmallCNN": ".modules",
}

__all__ = ["Coreset", "CoresetReport", "CrustSampler", "CrustSelector", "add_label_noise",
           "coreset_report", "estimate_noise_rate", *_TORCH_NAMES]


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from importlib import import_module

        return getattr(import_module(_TORCH_NAMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
