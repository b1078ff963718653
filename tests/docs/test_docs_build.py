"""The documentation builds with Sphinx, warnings treated as errors (needs the docs extra;
skipped without it, except in CI)."""
import html as html_lib
import os
import re
import subprocess
import sys

from helpers import optional_import

optional_import("sphinx", "docs")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sphinx_build_has_no_warnings(tmp_path):
    # A separate process: Sphinx imports fastnet and every documented module afresh.
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
           "-d", str(tmp_path / "doctrees"), os.path.join(ROOT, "docs"), str(tmp_path / "html")]
    env = dict(os.environ, MPLBACKEND="Agg")
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert out.returncode == 0, f"sphinx-build failed:\n{out.stdout[-4000:]}\n{out.stderr[-8000:]}"
    html = tmp_path / "html"
    for page in ("index", "tutorial", "coming_from_keras", "coming_from_pytorch", "kernels",
                 "benchmarks", "reference/layers", "reference/models", "reference/optimizers",
                 "reference/losses", "reference/metrics", "reference/callbacks", "reference/saving"):
        assert (html / f"{page}.html").is_file(), page
    layers = (html / "reference" / "layers.html").read_text(encoding="utf-8")
    # The page's text without markup (inline literals come one <span> a word).
    text = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", layers)).split())
    # The shapes table is computed by running the layers during the build.
    assert 'Conv2D(32, 3, activation="relu")' in text
    assert "(32, 26, 26, 32)" in text
    # Docstrings made it into the reference (arguments and an example).
    assert "units" in text and "Example" in text
    tutorial = (html / "tutorial.html").read_text(encoding="utf-8")
    assert "Total params: 41" in tutorial and "training_curves.png" in tutorial
    assert (html / "_images" / "training_curves.png").is_file()
    assert (html / "_images" / "benchmarks.png").is_file()
