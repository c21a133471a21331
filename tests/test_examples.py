"""The scripts of docs/examples run, and print what the documentation says they print.

Each runs in a fresh interpreter (as a user would run it), in well under a minute on 2 cores.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def _run(name: str, timeout: float = 240) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], check=False,
                            capture_output=True, text=True, timeout=timeout,
                            cwd=EXAMPLES, env=env)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_every_example_is_tested_and_documented():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(["tabular_gridsearch.py", "images_cnn.py", "find_label_issues.py",
                              "dask_selection.py"])
    page = (EXAMPLES.parent / "examples.rst").read_text()
    for script in scripts:
        assert f"examples/{script}" in page


def test_find_label_issues():
    pytest.importorskip("pandas")
    out = _run("find_label_issues.py")
    assert "top  50:" in out and "really mislabelled" in out
    assert "last coreset:" in out


def test_images_cnn():
    out = _run("images_cnn.py")
    assert "clean test accuracy" in out
    accuracy = float(out.strip().splitlines()[-1].split()[-1])
    assert accuracy > 0.8  # printed 0.963


def test_tabular_gridsearch():
    out = _run("tabular_gridsearch.py")
    assert "best: {'crustclassifier__coreset_size'" in out
    assert "'auto' estimated noise rate" in out


def test_dask_selection():
    pytest.importorskip("dask.distributed")
    out = _run("dask_selection.py")
    assert "same coreset" in out
