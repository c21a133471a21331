"""Packaging: one source for the version, one pin for ruff."""

import importlib.metadata
import re
from pathlib import Path

import sk_crust

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_installed_metadata():
    # pyproject.toml reads the version from sk_crust/__init__.py (dynamic = ["version"]): the
    # installed metadata and the module must agree. A stale install (version bumped in
    # __init__.py, not reinstalled) fails here.
    assert sk_crust.__version__ == importlib.metadata.version("sk_crust")


def test_version_is_written_once():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.MULTILINE)
    assert not re.search(r'^version = "', pyproject, re.MULTILINE)  # no literal version
    # setuptools reads it without importing sk_crust only if it is a plain string literal.
    init = (ROOT / "sk_crust" / "__init__.py").read_text()
    assert re.search(r'^__version__ = "[^"]+"$', init, re.MULTILINE)


def test_ruff_pin_is_the_same_everywhere():
    pins = {
        "pyproject.toml": re.findall(r'"ruff==([^"]+)"', (ROOT / "pyproject.toml").read_text()),
        "Makefile": re.findall(r"^RUFF_PIN \?= ruff==(\S+)$", (ROOT / "Makefile").read_text(),
                               re.MULTILINE),
        ".pre-commit-config.yaml": re.findall(
            r'"ruff==([^"]+)"', (ROOT / ".pre-commit-config.yaml").read_text()),
    }
    assert all(len(found) == 1 for found in pins.values()), pins
    assert len({found[0] for found in pins.values()}) == 1, pins
