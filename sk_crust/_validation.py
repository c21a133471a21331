"""Small parameter checks shared by the estimators: each says what was wrong and what is accepted.

A leaf module: it imports nothing from sk_crust, so every estimator can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np


def is_int(value, low: int) -> bool:
    """``value`` is an int (not a bool) ``>= low``."""
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= low


def is_fraction(value) -> bool:
    """``value`` is a float (not an int or bool) in ``(0, 1]``."""
    return (isinstance(value, Real) and not isinstance(value, (Integral, bool))
            and 0 < value <= 1)


def check_choice(name: str, value, accepted) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of the ``accepted`` strings."""
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"{name}={value!r} is not valid: pass one of {list(accepted)}")


def beta_parameters(alpha) -> tuple[float, float]:
    """``a`` -> ``(a, a)``; ``(a, b)`` -> ``(a, b)``; both must be positive."""
    if isinstance(alpha, Real) and not isinstance(alpha, bool) and alpha > 0:
        return float(alpha), float(alpha)
    if (isinstance(alpha, Sequence) and not isinstance(alpha, str) and len(alpha) == 2
            and all(isinstance(a, Real) and not isinstance(a, bool) and a > 0 for a in alpha)):
        return float(alpha[0]), float(alpha[1])
    raise ValueError(f"mixup_alpha={alpha!r} is not valid: pass a float > 0 (lambda ~ Beta(a, a))"
                     " or a pair of floats > 0 (lambda ~ Beta(a, b))")


def encode_labels(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Positions of the labels ``y`` in ``classes`` (int64), or a ValueError for unknown ones."""
    lookup = {label: i for i, label in enumerate(classes.tolist())}
    unknown = {label for label in np.unique(y).tolist() if label not in lookup}
    if unknown:
        raise ValueError(f"y contains labels {sorted(unknown, key=str)[:5]} that are not in "
                         f"classes_ {classes.tolist()[:10]}")
    uniques, inverse = np.unique(y, return_inverse=True)
    return np.array([lookup[u] for u in uniques.tolist()], dtype=np.int64)[inverse.ravel()]
