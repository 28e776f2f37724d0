"""The code's import graph has no circles and no upward imports, function-level imports included.

Read with `ast` (nothing is imported): every `import` and `from … import` anywhere in a module, at its top or
inside a function, is an edge from that module to the one it names. Four rules hold outside the tests (whose
support helpers, which the benchmarks import, are walked too):

1. No circle of modules (app.py, pages/, ui/, services/, sandbox/, deploy/, bench/, migrations/, tests/support/);
   an import that names a project folder the walk doesn't read fails too, so no edge goes unseen.
2. No circle of services' parts: the top-level packages and modules of services/ (store, audit, auth, desk, …)
   form layers. A part may use the parts below it, never one that uses it, even through other modules
   (services/store/ knows no table module; the full schema is gathered above it, in services/schema.py). A
   package's `__main__` (its command) is an entry point that nothing imports: it composes what it needs from any
   layer, so it is left out of the parts' layers (and checked to be imported by nothing).
3. services/ never imports Streamlit, ui/ or pages/; services/payments/ (the API client) knows nothing of the
   console: it imports nothing else from services/.
4. No module in services/ is over ~400 lines: split it by concern.

The store runs the migrations by path (Alembic loads migrations/versions/), not by import: a migration may use a
part above the store (0004 hashes with services/audit/chain.py) without making the store depend on it.

Each rule has a case below proving it can fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WALKED = ("app.py", "pages", "ui", "services", "sandbox", "deploy", "bench", "migrations", "tests/support")
PROJECT_FOLDERS = ("app", "pages", "ui", "services", "sandbox", "deploy", "bench", "migrations", "tests")
SERVICES_LIMIT_LINES = 400


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every Python module of the walked parts, by dotted name (a package by its __init__)."""
    found: dict[str, Path] = {}
    for part in WALKED:
        path = root / part
        if not path.exists():
            continue
        files = [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
        for file in files:
            if "__pycache__" in file.parts:
                continue
            names = list(file.relative_to(root).with_suffix("").parts)
            if names[-1] == "__init__":
                names.pop()
            found[".".join(names)] = file
    return found


def imports_of(name: str, file: Path) -> set[tuple[str, ...]]:
    """What a module imports, anywhere in it, relative imports resolved: ("a.b",) for `import a.b`, and
    ("pkg", "name") for `from pkg import name` (a submodule of pkg, or a name its __init__ defines)."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    named: set[tuple[str, ...]] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            named.update((alias.name,) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            named.update((base, alias.name) if base else (alias.name,) for alias in node.names)
    return named


def dotted(imported: tuple[str, ...]) -> str:
    return ".".join(imported)


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the project's modules it imports. `from pkg import name` is an edge to the submodule pkg.name when
    there is one, else to pkg itself, even from inside pkg (a part taking a name from its own package's face
    while the face imports that part is a circle Python refuses). `import a.b` is an edge to a.b: the packages
    above it are run first, but a module inside them doesn't name them."""
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, file in modules.items():
        targets = set()
        for imported in imports_of(name, file):
            target = resolve(dotted(imported))
            if target is None:
                continue
            ancestor = name.startswith(target + ".")
            if ancestor and len(imported) == 1:  # `import pkg.part` from inside pkg: the part, not the face
                continue
            targets.add(target)
        graph[name] = targets - {name}
    return graph


def unseen(modules: Mapping[str, Path]) -> list[str]:
    """Imports naming a project folder that resolve to no walked module: edges the walk would miss."""
    missing = []
    for name, file in modules.items():
        for imported in imports_of(name, file):
            if imported[0].split(".")[0] in PROJECT_FOLDERS and not any(
                    candidate in modules for candidate in (dotted(imported), imported[0])):
                missing.append(f"{name} imports {dotted(imported)}")
    return missing


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def part_of(module: str) -> str | None:
    """A services module's part: services.audit.chain -> services.audit; None outside services/."""
    names = module.split(".")
    return ".".join(names[:2]) if names[0] == "services" and len(names) > 1 else None


def part_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = part_of(module)
        if source is None or module.endswith(".__main__"):
            continue
        edges = parts.setdefault(source, set())
        edges.update(target for target in map(part_of, targets) if target and target != source)
    return parts


def described(found: list[list[str]], graph: Mapping[str, Iterable[str]]) -> str:
    """Each circle with the imports that close it, so the message says what to move."""
    lines = []
    for component in found:
        members = set(component)
        edges = [f"{source} -> {target}" for source in component for target in sorted(graph[source])
                 if target in members]
        lines.append(f"circle of {len(component)}: " + "; ".join(edges))
    return "\n".join(lines)


def console_leaks(graph: Mapping[str, Iterable[str]], modules: Mapping[str, Path]) -> list[str]:
    """Imports that break rule 3."""
    leaks = []
    for name, file in modules.items():
        if not name.startswith("services"):
            continue
        for imported in imports_of(name, file):
            if imported[0].split(".")[0] in ("streamlit", "ui", "pages"):
                leaks.append(f"{name} imports {dotted(imported)}")
        if name.startswith("services.payments"):
            leaks += [f"{name} imports {target}" for target in sorted(graph[name])
                      if not target.startswith("services.payments")]
    return leaks


# --- the project -------------------------------------------------------------------------------------------
MODULES = module_files()
GRAPH = import_graph(MODULES)


def test_no_circle_of_modules() -> None:
    found = circles(GRAPH)
    assert not found, described(found, GRAPH)


def test_no_module_imports_an_entry_point() -> None:
    assert sorted(f"{source} -> {target}" for source, targets in GRAPH.items() for target in targets
                  if target.endswith(".__main__")) == []


def test_every_project_import_is_walked() -> None:
    assert unseen(MODULES) == []


def test_services_parts_form_layers() -> None:
    parts = part_graph(GRAPH)
    found = circles(parts)
    assert not found, described(found, parts)


def test_services_know_nothing_of_the_pages_and_the_client_nothing_of_the_console() -> None:
    assert console_leaks(GRAPH, MODULES) == []


def test_no_services_module_is_long() -> None:
    long = {name: lines for name, file in MODULES.items() if name.startswith("services")
            and (lines := len(file.read_text(encoding="utf-8").splitlines())) > SERVICES_LIMIT_LINES}
    assert long == {}, "split these by concern"


def test_the_walk_sees_the_whole_project() -> None:
    """The check reads what it should: the parts named in the README exist, function-level imports count."""
    for module in ("app", "services.store", "services.audit", "services.desk", "services.schema", "bench.run",
                   "migrations.env", "tests.support.browser"):
        assert module in MODULES, module
    parts = part_graph(GRAPH)
    assert parts["services.store"] <= {"services.errors"}  # the bottom layer: it knows no table module
    assert {"services.store", "services.audit", "services.jobs"} <= parts["services.schema"]


# --- each rule can fail ------------------------------------------------------------------------------------
def _project(tmp_path: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for relative, source in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return module_files(tmp_path)


def test_a_function_level_import_closes_a_circle(tmp_path: Path) -> None:
    modules = _project(tmp_path, {
        "services/__init__.py": "",
        "services/store/__init__.py": "from .engine import metadata\n",
        "services/store/engine.py": "def gather():\n    from ..audit import rows\n",
        "services/audit/__init__.py": "",
        "services/audit/rows.py": "from ..store import metadata\n"})
    graph = import_graph(modules)
    found = circles(graph)
    assert found and "services.store.engine" in found[0] and "services.audit.rows" in found[0]
    assert "services.audit.rows -> services.store" in described(found, graph)


def test_an_upward_import_between_parts_is_a_circle_of_parts(tmp_path: Path) -> None:
    """No module circle (each module imports a different one), yet store and audit use each other."""
    modules = _project(tmp_path, {
        "services/__init__.py": "",
        "services/store/__init__.py": "",
        "services/store/clock.py": "import datetime\n",
        "services/store/schema.py": "from services.audit.rows import table\n",
        "services/audit/__init__.py": "",
        "services/audit/rows.py": "from ..store.clock import now\ntable = None\n"})
    graph = import_graph(modules)
    assert circles(graph) == []
    assert circles(part_graph(graph)) == [["services.audit", "services.store"]]


def test_a_package_face_importing_its_parts_is_no_circle(tmp_path: Path) -> None:
    modules = _project(tmp_path, {
        "services/__init__.py": "",
        "services/desk/__init__.py": "from .core import Core\nfrom .writes import Writes\n",
        "services/desk/core.py": "class Core: ...\n",
        "services/desk/writes.py": "from .core import Core\nfrom . import core\nimport services.desk.core\n"})
    assert circles(import_graph(modules)) == []


def test_a_part_taking_a_name_from_its_own_face_is_a_circle(tmp_path: Path) -> None:
    """Python refuses this one (a partially initialised module): the face imports the part, the part the face."""
    modules = _project(tmp_path, {
        "services/__init__.py": "",
        "services/desk/__init__.py": "LIMIT = 3\nfrom .writes import Writes\n",
        "services/desk/writes.py": "from . import LIMIT\n"})
    assert circles(import_graph(modules)) == [["services.desk", "services.desk.writes"]]


def test_an_import_the_walk_cannot_see_is_caught(tmp_path: Path) -> None:
    modules = _project(tmp_path, {"bench/__init__.py": "", "bench/run.py": "from tests.helpers import start\n"})
    assert unseen(modules) == ["bench.run imports tests.helpers.start"]


def test_the_client_importing_the_console_is_caught(tmp_path: Path) -> None:
    modules = _project(tmp_path, {
        "services/__init__.py": "",
        "services/payments/__init__.py": "",
        "services/payments/client.py": "def f():\n    from services.audit import log\n",
        "services/audit/__init__.py": "",
        "services/audit/log.py": "import streamlit as st\n"})
    graph = import_graph(modules)
    leaks = console_leaks(graph, modules)
    assert "services.audit.log imports streamlit" in leaks
    assert "services.payments.client imports services.audit.log" in leaks


@pytest.mark.parametrize("source, expected", [
    ("from . import sibling\n", {("pkg", "sibling")}),
    ("from .. import top\n", {("top",)}),
    ("import a.b as c\n", {("a.b",)}),
    ("def f():\n    from .x import y\n", {("pkg.x", "y")}),
])
def test_imports_are_resolved(tmp_path: Path, source: str, expected: set[tuple[str, ...]]) -> None:
    file = tmp_path / "mod.py"
    file.write_text(source, encoding="utf-8")
    assert imports_of("pkg.mod", file) == expected
