"""fastnet's imports point one way: _kernels <- layers <- models <- saving, distribution,
callbacks (the contract, and the upward imports still tolerated, are in pyproject.toml's
[tool.importlinter]; import-linter comes with the test extra)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")


def _lint(root):
    try:
        import importlinter  # noqa: F401
    except ImportError:
        pytest.fail("import-linter is not installed; it comes with the test extra: pip install -e '.[test]'")
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_layering_contract_is_kept():
    proc = _lint(ROOT)
    assert proc.returncode == 0, "import-linter found imports against the layering:\n" + proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout, proc.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    # The check has teeth: the same sources plus one import of models from a layer.
    shutil.copytree(os.path.join(ROOT, "fastnet"), tmp_path / "fastnet",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__", "_avx2"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path / "pyproject.toml")
    core = tmp_path / "fastnet" / "layers" / "core.py"
    core.write_text(core.read_text(encoding="utf-8") + "\nfrom fastnet.models import Model  # noqa\n",
                    encoding="utf-8")
    proc = _lint(str(tmp_path))
    assert proc.returncode != 0, proc.stdout
    assert "fastnet.layers is not allowed to import fastnet.models" in proc.stdout, proc.stdout
    assert "fastnet.layers.core -> fastnet.models" in proc.stdout, proc.stdout
