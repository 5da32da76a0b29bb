"""The shape of the code: no import cycle among clinicbot's modules, and no project import made inside a
function unless it is a commented lazy load (`# lazy: <why>`, e.g. a heavy optional SDK's package).

Cycles kept alive by imports hidden in functions made the import order fragile and the layers
unreadable (issue 13); import-linter checks the layers, this checks what it does not.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sync", "adapters", "bot")

def _cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    work: list[tuple[str, Iterator[str]]] = []

    def enter(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        work.append((module, iter(sorted(graph.find_modules_directly_imported_by(module)))))

    for start in sorted(graph.modules):
        if start in index:
            continue
        enter(start)
        while work:
            module, targets = work[-1]
            for target in targets:
                if target not in index:
                    enter(target)
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        found.append(tuple(sorted(group)))
    return sorted(found)


def test_no_import_cycles() -> None:
    """Type-only imports (under TYPE_CHECKING) run nothing, so they are left out."""
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    assert _cycles(graph) == []


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line."""
    return {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT}


def _local_imports(path: Path, root: Path = ROOT) -> list[str]:
    """`path:line: statement` for each project import inside a function without a `# lazy: why` comment
    on its line (or, for a parenthesised import, any of its lines)."""
    source = path.read_text(encoding="utf-8")
    comments = _comments(source)
    found: list[str] = []

    def project(node: ast.Import | ast.ImportFrom) -> bool:
        if isinstance(node, ast.ImportFrom):
            return node.level > 0 or (node.module or "").split(".")[0] in PACKAGES
        return any(alias.name.split(".")[0] in PACKAGES for alias in node.names)

    def lazy(node: ast.stmt) -> bool:
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
            why = comments.get(line, "").lstrip("#").strip()
            if why.startswith("lazy:") and why.removeprefix("lazy:").strip():
                return True
        return False

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if in_function and isinstance(child, ast.Import | ast.ImportFrom) and project(child) and not lazy(child):
                found.append(f"{path.relative_to(root)}:{child.lineno}: {ast.unparse(child)}")
            walk(child, inside)

    walk(ast.parse(source, filename=str(path)), False)
    return found


def test_no_project_imports_inside_functions() -> None:
    found = [line for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
             for line in _local_imports(path)]
    assert found == [], "import these at the top of the module (or mark a heavy optional SDK `# lazy: why`)"


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The AST walk finds nested and method imports and accepts only a commented lazy load."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "def f():\n"
        "    from sync.store import model\n"
        "    import json\n"
        "    class C:\n"
        "        def m(self):\n"
        "            import bot.app\n"
        "    from adapters import kit  # lazy: a heavy optional SDK\n"
        "    from . import x  # lazy:\n",
        encoding="utf-8",
    )
    found = [line.split(": ", 1)[1] for line in _local_imports(sample, tmp_path)]
    assert found == ["from sync.store import model", "import bot.app", "from . import x"]
    graph = grimp.ImportGraph()
    for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d"), ("p.d", "p.e"), ("p.e", "p.d")]:
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [("p.a", "p.b", "p.c"), ("p.d", "p.e")]


#: The chat front ends, which call services and never hold a database session (issue 13).
FRONT_ENDS = ("bot/commands", "bot/slack", "bot/teams", "bot/views", "bot/notify.py")


def _sessions_opened(path: Path, root: Path = ROOT) -> list[str]:
    """Calls of `<anything>.store.session(...)` in a module: a transaction opened by its code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "session":
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and owner.attr == "store":
                found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_front_ends_open_no_database_session() -> None:
    """import-linter keeps sqlalchemy and the store out of the front ends; a session could still be
    opened through the Core (`core.store.session()`) and handed to a service: the services own that."""
    paths = [p for f in FRONT_ENDS for p in ([ROOT / f] if f.endswith(".py") else sorted((ROOT / f).rglob("*.py")))]
    found = [line for path in paths for line in _sessions_opened(path)]
    assert found == [], "call a service that opens its own transaction (sync/services/)"


def test_the_session_check_sees_a_session(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("async def f(core):\n    async with core.store.session() as s:\n        pass\n"
                      "    self.session.get('x')\n", encoding="utf-8")
    assert [line.split(": ", 1)[1] for line in _sessions_opened(sample, tmp_path)] == ["core.store.session()"]
