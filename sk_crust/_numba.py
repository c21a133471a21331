"""The one switch for sk_crust's optional compiled (numba) kernels.

numba is optional (``pip install sk-crust[fast]``): the selection engines' greedy loops and the
mixed-label loss of mixup batches have compiled forms, each with a NumPy or torch equivalent.
``SK_CRUST_NUMBA=0`` in the environment forces the uncompiled code everywhere.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def compiled_module(name: str) -> ModuleType | None:
    """Import the kernel module ``name`` (absolute), or None without numba or when switched off.

    ImportError covers numba missing and a numba build incompatible with this NumPy.
    """
    if os.environ.get("SK_CRUST_NUMBA", "1") == "0":
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
