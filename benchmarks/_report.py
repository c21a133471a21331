"""What every benchmark report states about where it ran, and how its scripts start a run.

The machine, the library versions, the command that produced a report, and the thread limits a
grid of fits runs under.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
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


def invocation(script: str, argv: list[str] | None, render_only: bool) -> list[str]:
    """The command that wrote a report, for its header; ``[]`` for a report rendered alone.

    ``script`` is the calling script's ``__file__``; ``argv`` its arguments (``None``: the
    process's).
    """
    if render_only:
        return []
    return [" ".join(["python", f"benchmarks/{Path(script).name}", *(argv or sys.argv[1:])])]


def run_with_threads(run, threads: int) -> None:
    """Call ``run()`` with ``threads`` torch threads and at most ``threads`` BLAS/OpenMP threads."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        run()
