"""Sphinx configuration for fastnet's documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors;
``tests/docs/test_docs_build.py`` runs the same build). Only Sphinx itself and its
bundled extensions are used, so ``pip install ".[docs]"`` is all a build needs.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
if os.environ.get("FASTNET_DOCS_SOURCE_TREE", "1") != "0":
    # Document the fastnet next to these docs (built in place), not another installed copy.
    sys.path.insert(0, os.path.dirname(HERE))

import fastnet  # noqa: E402

project = "fastnet"
author = "fastnet developers"
copyright = "fastnet developers"
release = fastnet.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "fastnet_docs",
]

root_doc = "index"
exclude_patterns = ["_build", "generated"]
templates_path = []
html_theme = "alabaster"
html_static_path = []
html_title = f"fastnet {release}"
html_theme_options = {
    "description": "Keras-compatible neural networks on the CPU",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
pygments_style = "sphinx"
highlight_language = "python3"

# Docstrings are written in the Google style, with Keras's extra sections.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = ["Input shape", "Output shape", ("Call arguments", "params_style")]

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autoclass_content = "class"
autodoc_inherit_docstrings = False
add_module_names = False
