"""The code passes the project's lint configuration (ruff, settings in pyproject.toml)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ruff():
    exe = shutil.which("ruff")
    if exe:
        return [exe]
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.fail("ruff is not installed; it comes with the test extra: pip install -e '.[test]'")
    return [sys.executable, "-m", "ruff"]


def test_ruff_check_passes():
    proc = subprocess.run(_ruff() + ["check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, "ruff check found problems:\n" + proc.stdout + proc.stderr
