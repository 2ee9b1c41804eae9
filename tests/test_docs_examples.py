"""
Every piece of Python in the docs runs in CI: it is included from ``examples/``.

The pages may show shell sessions, configuration files and program output in code blocks
of those languages; Python comes only through ``.. literalinclude:: ../examples/NAME.py``,
and every script there is run by a test (``tests/test_examples.py``) that checks its output.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
PAGES = sorted(DOCS.glob("*.rst"))
SCRIPTS = sorted(path for path in EXAMPLES.rglob("*.py") if path.name != "__init__.py")

#: Languages a code block may have: anything but Python.
ALLOWED_LANGUAGES = {
    "console",
    "shell-session",
    "bash",
    "sh",
    "ini",
    "cfg",
    "toml",
    "text",
    "none",
    "yaml",
    "json",
    "docker",
    "dockerfile",
}
#: Directives that show code in the language they name.
CODE_DIRECTIVE = re.compile(r"^\s*\.\. (code-block|code|sourcecode)::\s*(\S*)\s*$")
#: Directives that are Python whatever they say (doctest's and friends).
PYTHON_DIRECTIVES = re.compile(r"^\s*\.\. (testcode|doctest|testsetup|ipython|jupyter-execute)::")
INCLUDE = re.compile(r"^(\s*)\.\. literalinclude::\s*(\S+)\s*$")
OPTION = re.compile(r"^\s+:(\w+):\s*(.*)$")


def literal_blocks(text: str) -> list[tuple[int, str]]:
    """
    Return the ``::`` literal blocks of a page: (line number, dedented text).
    """
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        stripped = line.rstrip()
        if not stripped.endswith("::") or stripped.lstrip().startswith(".."):
            continue
        indent = len(line) - len(line.lstrip())
        body: list[str] = []
        for following in lines[number + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        content = "\n".join(body).strip("\n")
        if content:
            width = min(len(x) - len(x.lstrip()) for x in content.splitlines() if x.strip())
            blocks.append((number + 1, "\n".join(x[width:] for x in content.splitlines())))
    return blocks


def looks_like_python(code: str) -> bool:
    """
    Whether a block is Python: it parses, and does more than name a thing.
    """
    if code.lstrip().startswith(">>>"):
        return True
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    pythonic = (
        ast.Import,
        ast.ImportFrom,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Assign,
        ast.AnnAssign,
        ast.AugAssign,
        ast.With,
        ast.AsyncWith,
        ast.For,
        ast.AsyncFor,
        ast.Await,
        ast.Call,
    )
    return any(isinstance(node, pythonic) for node in ast.walk(tree))


def includes(page: Path) -> list[tuple[int, Path, dict[str, str]]]:
    """
    Return the literalinclude directives of a page: (line number, target, options).
    """
    lines = page.read_text().splitlines()
    found = []
    for number, line in enumerate(lines):
        match = INCLUDE.match(line)
        if match is None:
            continue
        options = {}
        for following in lines[number + 1 :]:
            option = OPTION.match(following)
            if option is None:
                break
            options[option[1]] = option[2]
        found.append((number + 1, (page.parent / match[2]).resolve(), options))
    return found


class TestDocsHaveNoPythonOfTheirOwn:
    """
    No page shows Python that is not included from examples/.
    """

    def test_pages_found(self) -> None:
        assert {page.name for page in PAGES} >= {"index.rst", "concepts.rst", "api.rst"}

    @pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
    def test_code_blocks_are_not_python(self, page: Path) -> None:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            assert not PYTHON_DIRECTIVES.match(line), f"{page.name}:{number}: {line.strip()}"
            match = CODE_DIRECTIVE.match(line)
            if match is not None:
                assert match[2] in ALLOWED_LANGUAGES, (
                    f"{page.name}:{number}: a {match[2] or 'default (Python)'} code block: "
                    "put Python in examples/ and literalinclude it"
                )

    @pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
    def test_literal_blocks_are_not_python(self, page: Path) -> None:
        for number, block in literal_blocks(page.read_text()):
            assert not looks_like_python(block), (
                f"{page.name}:{number}: a literal block of Python: put it in examples/ and "
                f"literalinclude it\n{block}"
            )

    def test_the_checks_see_python(self) -> None:
        page = "Text::\n\n    import trio\n    trio.run(main)\n\nMore::\n\n    pip install x\n"
        assert [looks_like_python(block) for _, block in literal_blocks(page)] == [True, False]
        assert looks_like_python(">>> 1 + 1")
        assert not looks_like_python("event-collector gateway --producers tcp://0.0.0.0:5555")
        assert CODE_DIRECTIVE.match(".. code-block:: python")
        assert PYTHON_DIRECTIVES.match(".. testcode::")


class TestIncludes:
    """
    Every literalinclude finds its file (and object), and Python comes from examples/.
    """

    @pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
    def test_targets_exist(self, page: Path) -> None:
        for number, target, options in includes(page):
            where = f"{page.name}:{number}"
            assert target.is_file(), f"{where}: {target} does not exist"
            if target.suffix == ".py":
                assert target.is_relative_to(EXAMPLES), f"{where}: Python from outside examples/"
            if "pyobject" in options:
                assert defines(target, options["pyobject"]), (
                    f"{where}: {target.name} defines no {options['pyobject']}"
                )

    def test_every_example_is_in_the_docs(self) -> None:
        included = {target for page in PAGES for _, target, _ in includes(page)}
        assert [script.name for script in SCRIPTS if script not in included] == []


class TestExamplesRun:
    """
    Every script in examples/ is run by some test.
    """

    def test_every_example_is_run_by_a_test(self) -> None:
        tests = "\n".join(
            path.read_text()
            for path in (ROOT / "tests").glob("*.py")
            if path.name != Path(__file__).name
        )
        assert SCRIPTS
        assert [script.name for script in SCRIPTS if script.name not in tests] == []


def defines(path: Path, dotted: str) -> bool:
    """
    Whether the module at ``path`` defines ``dotted`` (``name`` or ``Class.method``).
    """
    body: list[ast.stmt] = ast.parse(path.read_text()).body
    for part in dotted.split("."):
        found = [
            node
            for node in body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == part
        ]
        if not found:
            return False
        body = found[0].body
    return True
