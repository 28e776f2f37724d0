"""Every kind of run checks the session (ui/guard.py), read off the code: a dialog, fragment or callback that
skipped the check would write as a person whose session ended (a logout elsewhere, a demotion, the idle limit).

The rules, over every module in pages/ and ui/:
- `st.dialog` and `st.fragment` appear only in ui/guard.py (everything else uses `guard.dialog`/`guard.fragment`);
- every `on_click`, `on_change` and `on_dismiss` is "rerun"/"ignore", `guard.callback(...)`, or a function
  decorated with `@guard.callback` or `@before_sign_in` (signing in and out);
- no function or lambda reads an `actor` it was not handed: an Actor captured in a closure is exactly what a
  dialog or fragment rerun would reuse after the session ended.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CALLBACK_KEYWORDS = {"on_click", "on_change", "on_dismiss", "on_select", "on_submit"}
RUN_KINDS = {"dialog", "fragment", "experimental_dialog", "experimental_fragment"}
GUARDED_DECORATORS = {"guard.callback", "callback", "before_sign_in", "guard.before_sign_in"}


@dataclass(frozen=True)
class Module:
    path: str
    tree: ast.Module


def _modules(root: Path = ROOT) -> list[Module]:
    files = sorted([*(root / "pages").glob("*.py"), *(root / "ui").glob("*.py")])
    return [Module(str(path.relative_to(root)), ast.parse(path.read_text(encoding="utf-8"))) for path in files]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    return ""


def _functions(modules: list[Module]) -> dict[str, list[ast.FunctionDef]]:
    """Every function defined in pages/ and ui/, by name (a name may be defined in more than one module)."""
    found: dict[str, list[ast.FunctionDef]] = {}
    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef):
                found.setdefault(node.name, []).append(node)
    return found


def raw_dialogs_and_fragments(modules: list[Module]) -> list[str]:
    found = []
    for module in modules:
        if module.path == "ui/guard.py":
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and node.attr in RUN_KINDS and _dotted(node.value) in {"st", "streamlit"}:
                found.append(f"{module.path}:{node.lineno} uses {_dotted(node.value)}.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("streamlit") and \
                    RUN_KINDS & {alias.name for alias in node.names}:
                found.append(f"{module.path}:{node.lineno} imports a dialog or fragment from {node.module}")
    return found


def actors_handed_to_callbacks(modules: list[Module]) -> list[str]:
    """A widget's `args=`/`kwargs=` (or a functools.partial) carrying an actor: the callback would act as the
    person the widget was drawn for, not as the session checked when it runs."""
    problems = []
    for module in modules:
        for node in ast.walk(module.tree):
            carried = None
            if isinstance(node, ast.keyword) and node.arg in {"args", "kwargs"}:
                carried = node.value
            elif isinstance(node, ast.Call) and _dotted(node.func) in {"partial", "functools.partial"}:
                carried = node
            if carried is not None and any(isinstance(child, ast.Name) and child.id == "actor"
                                           for child in ast.walk(carried)):
                problems.append(f"{module.path}:{node.lineno} hands an actor to a callback")
    return problems


def unchecked_callbacks(modules: list[Module]) -> list[str]:
    functions = _functions(modules)
    problems = []
    for module in modules:
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.keyword) or node.arg not in CALLBACK_KEYWORDS:
                continue
            value, where = node.value, f"{module.path}:{node.value.lineno} {node.arg}"
            if isinstance(value, ast.Constant) and value.value in ("rerun", "ignore"):
                continue
            if isinstance(value, ast.Call) and _dotted(value.func) == "guard.callback":
                continue
            if isinstance(value, (ast.Name, ast.Attribute)):
                definitions = functions.get(_dotted(value).rpartition(".")[2], [])
                if definitions and all(GUARDED_DECORATORS & {_dotted(d) for d in definition.decorator_list}
                                       for definition in definitions):
                    continue
            problems.append(f"{where}={ast.unparse(value)} does not check the session")
    return problems


class _CapturedActor(ast.NodeVisitor):
    """Names every function or lambda that reads `actor` without having it as a parameter or a local."""

    def __init__(self, path: str) -> None:
        self.path, self.problems = path, []

    def _check(self, node: ast.FunctionDef | ast.Lambda, name: str) -> None:
        arguments = node.args
        parameters = {argument.arg for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
        body = node.body if isinstance(node.body, list) else [node.body]
        local = {target.id for statement in body for child in ast.walk(statement)
                 if isinstance(child, (ast.Assign, ast.AnnAssign, ast.NamedExpr, ast.For))
                 for target in ast.walk(child.target if not isinstance(child, ast.Assign) else child.targets[0])
                 if isinstance(target, ast.Name)}
        reads = any(isinstance(child, ast.Name) and child.id == "actor" and isinstance(child.ctx, ast.Load)
                    for statement in body for child in ast.walk(statement))
        if reads and "actor" not in parameters | local:
            self.problems.append(f"{self.path}:{node.lineno} {name} reads an actor it was not handed")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check(node, node.name)
        self.generic_visit(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._check(node, "a lambda")
        self.generic_visit(node)


def captured_actors(modules: list[Module]) -> list[str]:
    problems = []
    for module in modules:
        visitor = _CapturedActor(module.path)
        visitor.visit(module.tree)
        problems += visitor.problems
    return problems


def test_no_dialog_or_fragment_skips_the_session_check() -> None:
    assert raw_dialogs_and_fragments(_modules()) == []


def test_every_callback_checks_the_session() -> None:
    assert unchecked_callbacks(_modules()) == []


def test_no_function_reuses_an_actor_it_was_not_handed() -> None:
    assert captured_actors(_modules()) == []


def test_no_callback_is_handed_an_actor() -> None:
    assert actors_handed_to_callbacks(_modules()) == []


def test_the_guards_are_there_to_find() -> None:
    """The walk reads real code: the console's dialogs, fragments and callbacks are all found through guard."""
    text = "\n".join(ast.unparse(module.tree) for module in _modules() if module.path != "ui/guard.py")
    assert text.count("@guard.dialog(") == 5
    assert text.count("guard.fragment(") >= 4
    assert text.count("@guard.callback") >= 8


@pytest.mark.parametrize("source, finder", [
    ("import streamlit as st\n@st.dialog('x')\ndef f(actor):\n    pass\n", raw_dialogs_and_fragments),
    ("import streamlit as st\n@st.fragment(run_every=2)\ndef f(actor):\n    pass\n", raw_dialogs_and_fragments),
    ("def cb():\n    pass\nst.button('x', on_click=cb)\n", unchecked_callbacks),
    ("st.button('x', on_click=lambda: None)\n", unchecked_callbacks),
    ("st.pills('x', [], on_change=session.save)\n", unchecked_callbacks),
    ("actor = 1\ndef panel():\n    return actor.role\n", captured_actors),
    ("def page(actor):\n    def inner():\n        desk.write(actor)\n    inner()\n", captured_actors),
    ("def page(actor):\n    st.download_button('x', lambda: desk.export(actor))\n", captured_actors),
    ("import streamlit\n@streamlit.fragment\ndef f(actor):\n    pass\n", raw_dialogs_and_fragments),
    ("from streamlit import dialog\n", raw_dialogs_and_fragments),
    ("def page(actor):\n    st.button('x', on_click=cb, args=(desk, actor))\n", actors_handed_to_callbacks),
    ("def page(actor):\n    st.button('x', on_click=guard.callback(partial(cb, actor)))\n",
     actors_handed_to_callbacks),
    ("st.dataframe(frame, on_select=save_choice)\n", unchecked_callbacks),
])
def test_each_rule_catches_what_it_names(source: str, finder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "pages").mkdir()
    (tmp_path / "ui").mkdir()
    (tmp_path / "pages" / "bad.py").write_text(source)
    assert finder(_modules(tmp_path)) != []


def test_a_guarded_callback_and_a_handed_actor_pass(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "ui").mkdir()
    (tmp_path / "pages" / "good.py").write_text(
        "@guard.callback\ndef cb(actor):\n    desk.write(actor)\n"
        "st.button('x', on_click=cb)\nst.button('y', on_click=guard.callback(reads.forget))\n"
        "st.button('z', on_click='ignore')\n@guard.fragment(page=1)\ndef f(desk, actor):\n    desk.read(actor)\n")
    modules = _modules(tmp_path)
    assert (raw_dialogs_and_fragments(modules), unchecked_callbacks(modules), captured_actors(modules)) == ([], [], [])
