"""mypy finds no type errors in fastnet (settings in pyproject.toml's [tool.mypy]; mypy
comes with the test extra)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mypy(*args, cwd=ROOT):
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed; it comes with the test extra: pip install -e '.[test]'")
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_mypy_passes_on_fastnet():
    proc = _mypy()
    assert proc.returncode == 0, "mypy found type errors:\n" + proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


def test_mypy_catches_a_wrong_return_annotation(tmp_path):
    # The check has teeth with this configuration: a context manager's __enter__
    # annotated as returning itself but returning None is reported.
    (tmp_path / "pyproject.toml").write_text(open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
                                             .replace('files = ["fastnet"]', 'files = ["probe.py"]'),
                                             encoding="utf-8")
    (tmp_path / "probe.py").write_text(
        "class Guard:\n"
        "    def __enter__(self) -> 'Guard':\n"
        "        return None\n", encoding="utf-8")
    proc = _mypy("--cache-dir", str(tmp_path / ".cache"), cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stdout
    assert 'probe.py:3: error: Incompatible return value type (got "None", expected "Guard")' in proc.stdout
