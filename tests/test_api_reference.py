"""The public API's docstrings are complete, and the README's API reference is printed from them.

Covered (``scripts/api_reference.py``): ``LLMOrchestrator``, ``ModelRegistry``, ``CostTracker`` and
``ConfigManager`` (constructor + public methods, properties, class- and staticmethods) and the
producer functions of ``worker.producer``.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
import textwrap
from types import ModuleType

import pytest

import llm_orchestrator
from tests.conftest import ROOT

FIRST_PARAMS = ("self", "cls")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_reference", ROOT / "scripts" / "api_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


api = _load_script()
ENTRIES = api.documented()


def test_readme_api_reference_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    problem = api.difference(api.render(), api.readme_section(readme))
    assert problem is None, problem


def test_check_names_the_entry_that_differs():
    expected = api.render()
    stale = expected.replace("Read, resolve and validate a YAML file.", "Read a file.")
    problem = api.difference(expected, stale)
    assert problem is not None and "ConfigManager.load" in problem and "--write" in problem
    assert api.difference(expected, None) is not None  # markers missing


def test_covers_the_public_api():
    names = {e.qualname for e in ENTRIES}
    assert {
        "LLMOrchestrator",
        "LLMOrchestrator.send_request",
        "LLMOrchestrator.from_yaml",
        "ModelRegistry.refresh_models",
        "CostTracker.get_session_cost",
        "ConfigManager.load",
        "worker.producer.submit_completion",
        "worker.producer.stream_job",
    } <= names
    assert not any(name.rsplit(".", 1)[-1].startswith("_") for name in names if "." in name)


def _raised_names(func) -> set[str]:
    """Exception classes the function's own source raises by name: ``raise X(...)``, ``raise X``,
    ``raise mod.X(...)`` (the last dotted part, starting with a capital). A bare ``raise`` and
    ``raise err`` (a variable) re-raise something else's exception and are not counted."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
            if name[:1].isupper():
                names.add(name)
    return names


def _documented_names(doc: str, section: str) -> set[str]:
    return {name.lstrip("*") for names, _ in api.entries(api.sections(doc).get(section, [])) for name in names}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.qualname)
def test_google_style_docstring(entry):
    """The rules, kept simple:

    * a summary: the docstring's first line is not empty;
    * ``Args:`` when there are parameters besides self/cls, naming each of them (``a, b: ...``
      groups several; ``*args``/``**kwargs`` by name, stars optional) and nothing else;
    * ``Yields:`` for a generator (sync or async), else ``Returns:`` when the return annotation is
      not None (a constructor returns nothing: its docs are the class docstring's);
    * ``Raises:`` naming each exception class the body raises by name (see :func:`_raised_names`);
      exceptions that only pass through from callees are documented by judgement, not checked.
    """
    doc = entry.doc
    assert doc and doc.splitlines()[0].strip(), f"{entry.qualname}: no summary line"
    found = api.sections(doc)

    sig = inspect.signature(entry.func)
    params = [p for i, p in enumerate(sig.parameters) if not (i == 0 and p in FIRST_PARAMS)]
    if params:
        assert "Args" in found, f"{entry.qualname}: no Args: section"
        documented = _documented_names(doc, "Args")
        assert set(params) <= documented, f"{entry.qualname}: Args lacks {sorted(set(params) - documented)}"
        assert documented <= set(params), f"{entry.qualname}: Args names unknown {sorted(documented - set(params))}"

    if inspect.isgeneratorfunction(entry.func) or inspect.isasyncgenfunction(entry.func):
        assert "Yields" in found, f"{entry.qualname}: a generator needs Yields:"
    elif entry.kind != "constructor" and sig.return_annotation not in (None, "None"):
        assert "Returns" in found, f"{entry.qualname}: returns {sig.return_annotation}, no Returns:"

    raised = _raised_names(entry.func)
    if raised:
        assert "Raises" in found, f"{entry.qualname}: raises {sorted(raised)}, no Raises:"
        documented = {name.rsplit(".", 1)[-1] for name in _documented_names(doc, "Raises")}
        assert raised <= documented, f"{entry.qualname}: Raises lacks {sorted(raised - documented)}"


@pytest.mark.parametrize("name", api.CLASSES)
def test_instance_attributes_are_annotated(name):
    """Every ``self.x = ...`` in ``__init__`` has a type: ``self.x: T = ...`` there, or ``x: T`` in
    the class body. Private attributes included."""
    cls = getattr(llm_orchestrator, name)
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    annotated = {s.target.id for s in body.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    init = next(s for s in body.body if isinstance(s, ast.FunctionDef) and s.name == "__init__")

    def self_attrs(target: ast.expr) -> list[str]:
        if isinstance(target, (ast.Tuple, ast.List)):
            return [a for t in target.elts for a in self_attrs(t)]
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
            return [target.attr]
        return []

    assigned: set[str] = set()
    for node in ast.walk(init):
        if isinstance(node, ast.AnnAssign):
            annotated.update(self_attrs(node.target))
            assigned.update(self_attrs(node.target))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                assigned.update(self_attrs(target))
        elif isinstance(node, ast.AugAssign):
            assigned.update(self_attrs(node.target))
    assert assigned, f"{name}.__init__ assigns no attributes?"
    assert assigned <= annotated, f"{name}: unannotated attributes {sorted(assigned - annotated)}"


def test_script_leaves_the_library_free_of_celery():
    """The script imports ``worker.producer`` (and so Celery) only when rendering."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('a', {str(ROOT / 'scripts' / 'api_reference.py')!r})\n"
        "m = sys.modules['a'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "import llm_orchestrator\n"
        "assert 'celery' not in sys.modules, 'celery imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
