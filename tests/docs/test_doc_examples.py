"""Every code example in the docs runs: the pages' Python blocks, the tutorial (whose
committed outputs must match a fresh run), and the docstring examples of every
module the reference documents. The benchmarks page matches its results file."""
import doctest
import importlib
import os
import pkgutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import bench_page  # noqa: E402
import doc_examples as dx  # noqa: E402
import run_tutorial  # noqa: E402

import fastnet  # noqa: E402

TUTORIAL = os.path.join(dx.DOCS, "tutorial.rst")
PAGES = [p for p in dx.pages() if p != TUTORIAL]


@pytest.fixture
def restore_threads():
    old = fastnet.config.get_num_threads()
    yield
    fastnet.config.set_num_threads(old)


def test_pages_are_found():
    names = {os.path.relpath(p, dx.DOCS) for p in dx.pages()}
    assert {"index.rst", "tutorial.rst", "coming_from_keras.rst", "coming_from_pytorch.rst",
            "kernels.rst", "benchmarks.rst", os.path.join("reference", "layers.rst")} <= names


@pytest.mark.parametrize("page", PAGES, ids=[os.path.relpath(p, dx.DOCS) for p in PAGES])
def test_page_examples_run(page, tmp_path, restore_threads):
    blocks = dx.python_blocks(page)
    outputs = dx.run_blocks(blocks, str(tmp_path))
    for k, block in enumerate(blocks):
        if block.runnable():
            assert k in outputs, block.where()


def test_guides_have_examples():
    for name in ("index", "coming_from_keras", "coming_from_pytorch", "kernels"):
        blocks = dx.python_blocks(os.path.join(dx.DOCS, name + ".rst"))
        assert any(not b.needs for b in blocks), f"{name}.rst has no example that always runs"


def test_tutorial_runs_and_its_committed_outputs_are_current(restore_threads):
    named, figures = run_tutorial.run_page(TUTORIAL)
    assert {"tutorial-data", "tutorial-model", "tutorial-fit", "tutorial-evaluate", "tutorial-core",
            "tutorial-conv", "tutorial-pool", "tutorial-rnn"} <= set(named)
    assert "training_curves.png" in figures and figures["training_curves.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert "Total params: 41" in named["tutorial-model"]
    assert "Epoch 10/10" in named["tutorial-fit"]
    problems = run_tutorial.check(TUTORIAL, named, figures)
    assert not problems, ("the tutorial's committed outputs are stale; run "
                          "python tools/run_tutorial.py\n" + "\n".join(problems))


def test_output_comparison_ignores_timings_and_rounding_only():
    old = "25/25 [====] - 0s 55us/step - loss: 0.6112 - accuracy: 0.7925\n"
    assert run_tutorial.differences(old, "25/25 [====] - 1s 3ms/step - loss: 0.6113 - accuracy: 0.7925\n") == []
    assert run_tutorial.differences(old, "25/25 [====] - 0s 55us/step - loss: 0.7112 - accuracy: 0.7925\n")
    assert run_tutorial.differences("(32, 26, 26, 16)\n", "(32, 24, 24, 16)\n")
    assert run_tutorial.differences("Total params: 41\n", "Total params: 45\n")
    assert run_tutorial.differences("dense (Dense)\n", "dense_1 (Dense)\n")


def test_block_parser_reads_names_classes_and_indented_bodies(tmp_path):
    page = tmp_path / "p.rst"
    page.write_text(
        "Title\n=====\n\n.. code-block:: python\n   :name: first\n\n   x = 1\n   if x:\n"
        "       print(x)\n\n   print(2)\n\nText.\n\n.. code-block:: bash\n\n   echo no\n\n"
        "* item\n\n  .. code-block:: python\n     :class: torch\n\n     import torch\n",
        encoding="utf-8")
    blocks = dx.python_blocks(str(page))
    assert [b.name for b in blocks] == ["first", None]
    assert blocks[0].code == "x = 1\nif x:\n    print(x)\n\nprint(2)\n"
    assert blocks[1].needs == ("torch",) and blocks[1].code == "import torch\n"
    assert dx.run_blocks(blocks[:1], str(tmp_path)) == {0: "1\n2\n"}


def _documented_modules():
    names = []
    for mod in pkgutil.walk_packages(fastnet.__path__, "fastnet."):
        if not any(part in mod.name for part in ("._kernels", "._reference", ".examples")):
            names.append(mod.name)
    return sorted(names)


@pytest.mark.parametrize("name", _documented_modules())
def test_docstring_examples_run(name, tmp_path, monkeypatch, restore_threads):
    monkeypatch.chdir(tmp_path)  # examples may write files
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_benchmarks_page_matches_its_results(capsys):
    assert bench_page.main(["--check"]) == 0, capsys.readouterr().out
    results = os.path.join(bench_page.DEFAULT_DIR, "results.json")
    import json

    with open(results, encoding="utf-8") as f:
        data = json.load(f)
    assert data["rows"] and all(r["fastnet_ms"] > 0 for r in data["rows"])
    assert "torch" in data["libraries"], "the committed benchmark should compare with PyTorch"
