"""What every benchmark report states about where it ran: the machine and the library versions."""

from __future__ import annotations

import importlib
import os
import platform
from pathlib import Path


def machine() -> str:
    """OS, architecture, CPU model (from /proc/cpuinfo where there is one) and logical CPUs."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs"


def versions(names) -> str:
    """"Python x.y.z, name version, ..." for the importable ``names``."""
    parts = [f"Python {platform.python_version()}"]
    for name in names:
        try:
            module = importlib.import_module(name)
            parts.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)
