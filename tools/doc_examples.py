"""Finds the Python code blocks of the docs' reST pages and runs them.

Each page's ``.. code-block:: python`` blocks run in order, in one namespace per
page (as a reader would paste them into one session), inside a scratch folder
that becomes the working directory. A block's standard output is captured.

Block options read here:

* ``:name: NAME``: the block's output is shown on the page, from
  ``docs/generated/<page>/NAME.txt`` (written by ``tools/run_tutorial.py``).
* ``:class: torch`` / ``:class: keras``: the block needs that library; where it is
  not installed the block is only compiled (checked for syntax), not run.

Used by ``tools/run_tutorial.py`` and ``tests/docs/test_examples.py``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import re
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
GENERATED = os.path.join(DOCS, "generated")

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. (?:code-block|code|sourcecode)::\s*(?P<lang>\S*)\s*$")
_OPTION = re.compile(r"^\s*:(?P<key>[\w-]+):\s*(?P<value>.*)$")
_NEEDS = ("torch", "keras")  # libraries a block may declare through :class:


@dataclasses.dataclass
class Block:
    """One Python code block of a page."""

    page: str
    line: int  # 1-based line of the directive
    code: str
    name: str | None = None
    classes: tuple[str, ...] = ()

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(c for c in self.classes if c in _NEEDS)

    def runnable(self) -> bool:
        """False when the block needs a library that is not installed."""
        return all(importlib.util.find_spec(mod) is not None for mod in self.needs)

    def where(self) -> str:
        return f"{os.path.relpath(self.page, ROOT)}:{self.line}" + (f" ({self.name})" if self.name else "")


def pages() -> list[str]:
    """Every reST page of the docs (generated includes excluded)."""
    out = []
    for folder, dirs, files in os.walk(DOCS):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")) and d != "generated")
        out += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".rst")]
    return out


def python_blocks(page: str) -> list[Block]:
    """The ``python`` code blocks of ``page``, in order."""
    with open(page, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m or m.group("lang") not in ("python", "python3", "py"):
            i += 1
            continue
        start, indent = i, len(m.group("indent"))
        i += 1
        opts = {}
        while i < len(lines) and lines[i].strip() and _OPTION.match(lines[i]):
            om = _OPTION.match(lines[i])
            opts[om.group("key")] = om.group("value").strip()
            i += 1
        body = []
        while i < len(lines):
            line = lines[i]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body.append(line)
            i += 1
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(Block(page=page, line=start + 1, code=code, name=opts.get("name"),
                            classes=tuple(opts.get("class", "").split())))
    return blocks


def run_blocks(blocks: list[Block], workdir: str, compile_only_missing: bool = True) -> dict[int, str]:
    """Runs ``blocks`` in order in one namespace, with ``workdir`` as the working
    directory; returns each run block's captured standard output by index.

    A block that needs a missing library is compiled only (when
    ``compile_only_missing``). An exception is re-raised with the block's location.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:  # automatic layer names (dense_1, ...) count from the page's start
        from fastnet.backend import clear_session
    except ImportError:
        pass
    else:
        clear_session()
    namespace: dict = {"__name__": "__docs__"}
    outputs: dict[int, str] = {}
    here = os.getcwd()
    os.chdir(workdir)
    try:
        for k, block in enumerate(blocks):
            code = compile(block.code, block.where(), "exec")
            if not block.runnable():
                if compile_only_missing:
                    continue
                raise RuntimeError(f"{block.where()} needs {block.needs}, which is not installed")
            buf = io.StringIO()
            try:
                with contextlib.redirect_stdout(buf):
                    exec(code, namespace)  # noqa: S102 - the docs' own examples
            except Exception as e:
                raise RuntimeError(f"the example at {block.where()} failed: {type(e).__name__}: {e}\n"
                                   f"--- output so far ---\n{buf.getvalue()}") from e
            outputs[k] = buf.getvalue()
    finally:
        os.chdir(here)
    return outputs


def clean_output(text: str) -> str:
    """Output as written to the docs: trailing spaces stripped, one final newline."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n"


_TIME = re.compile(r"\b\d+(?:\.\d+)?(?:s|ms|us|ns)(?:/step)?\b")
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def comparable(text: str) -> tuple[list[str], list[float]]:
    """The text with timings removed, split into its words and its numbers, so two
    runs can be compared with a tolerance on the numbers (float rounding differs
    with the thread count and the CPU's kernel variant)."""
    text = _TIME.sub("<time>", clean_output(text))
    numbers = [float(m) for m in _NUMBER.findall(text)]
    return _NUMBER.split(text), numbers
