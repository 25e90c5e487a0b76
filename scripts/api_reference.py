#!/usr/bin/env python3
"""Render the README's API reference from the live docstrings and signatures.

    python scripts/api_reference.py           # print the section
    python scripts/api_reference.py --write   # rewrite it in README.md, between the markers
    python scripts/api_reference.py --check   # exit 1 naming the first entry that differs

Covered: the public methods (no leading underscore; classmethods, staticmethods and properties
included) of ``LLMOrchestrator``, ``ModelRegistry``, ``CostTracker`` and ``ConfigManager``, and the
producer functions of ``worker.producer``. Each entry is the signature (annotations as written in
the source), the docstring's summary paragraph and the exception names of its ``Raises:`` section.
``tests/test_api_reference.py`` fails when README.md holds anything else.

``worker.producer`` (which imports Celery) is imported only when rendering, never by the library.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file: make the project importable without installing it
    sys.path.insert(0, str(ROOT))

README = ROOT / "README.md"
START = "<!-- api-reference:start -->"
END = "<!-- api-reference:end -->"
CLASSES = ("LLMOrchestrator", "ModelRegistry", "CostTracker", "ConfigManager")  # from llm_orchestrator
PRODUCER_MODULE = "worker.producer"
PRODUCER_FUNCTIONS = ("submit_completion", "submit_classification", "submit_classification_batch", "stream_job")
SECTIONS = (
    "Args",
    "Arguments",
    "Attributes",
    "Example",
    "Examples",
    "Note",
    "Notes",
    "Raises",
    "Returns",
    "Yields",
    "See Also",
    "Warning",
)
WIDTH = 100  # wrap the prose of an entry at this column
SAME_PARAMS_MIN = 4  # a parameter list this long, repeated under one heading, is shown once
INTRO = (
    "Generated from the docstrings by `python scripts/api_reference.py --write`; `--check` and "
    "`tests/test_api_reference.py` fail when this section and the code differ. Each entry gives the "
    "signature, the docstring's summary and the exceptions it documents; `help()` shows the full "
    "docstring (every argument, the return value)."
)
ANNOTATION_PREFIXES = re.compile(r"\b(?:typing|collections\.abc|abc)\.")
STARS: dict[object, str] = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
MARKDOWN_BLOCK_START = re.compile(r"([-*+>#|=]|\d+[.)])(\s|$)")


@dataclass(frozen=True)
class Entry:
    """One documented callable.

    Attributes:
        qualname: ``Class.method`` or ``module.function``; ``Class`` for a constructor.
        func: the plain function (a classmethod's, staticmethod's or property's underlying function).
        kind: ``method``, ``classmethod``, ``staticmethod``, ``property``, ``constructor`` or ``function``.
        doc: the docstring that documents it (the class docstring for a constructor).
    """

    qualname: str
    func: Callable[..., Any]
    kind: str
    doc: str

    @property
    def drops_first(self) -> bool:
        """Whether the first parameter (self or cls) is left out of the signature."""
        return self.kind in ("method", "classmethod", "property", "constructor")


# -- docstrings ------------------------------------------------------------------------------------


def sections(doc: str) -> dict[str, list[str]]:
    """Split a cleaned (``inspect.cleandoc``) Google-style docstring into its sections.

    Returns:
        ``""`` → the lines before the first section header, then header name → its body lines.
    """
    found: dict[str, list[str]] = {"": []}
    current = ""
    for line in doc.splitlines():
        header = line.rstrip()
        if header.endswith(":") and header[:-1] in SECTIONS:
            current = header[:-1]
            found[current] = []
        else:
            found[current].append(line)
    return found


def entries(lines: list[str]) -> list[tuple[list[str], str]]:
    """The entries of an Args/Raises/Attributes section: (names before the first colon, description).

    An entry starts at the section's smallest indentation; deeper lines continue it. ``a, b: text``
    documents ``a`` and ``b`` together; ``*args``/``**kwargs`` keep their stars.
    """
    body = [line for line in lines if line.strip()]
    if not body:
        return []
    indent = min(len(line) - len(line.lstrip()) for line in body)
    grouped: list[list[str]] = []
    for line in body:
        if len(line) - len(line.lstrip()) == indent or not grouped:
            grouped.append([line.strip()])
        else:
            grouped[-1].append(line.strip())
    out = []
    for parts in grouped:
        head, _, text = " ".join(parts).partition(":")
        out.append(([name.strip() for name in head.split(",") if name.strip()], text.strip()))
    return out


def summary(doc: str) -> str:
    """The docstring's first paragraph on one line, with reST markup turned into markdown."""
    first = []
    for line in doc.splitlines():
        if not line.strip():
            break
        first.append(line.strip())
    return _markdown(" ".join(first))


def raises(doc: str) -> list[str]:
    """Exception names of the ``Raises:`` section, in order, each once."""
    names: list[str] = []
    for group, _ in entries(sections(doc).get("Raises", [])):
        names += [n for n in group if n not in names]
    return names


def _markdown(text: str) -> str:
    return RST_ROLE.sub(r"`\1`", text).replace("``", "`")


# -- what is covered -------------------------------------------------------------------------------


def documented() -> list[Entry]:
    """Every covered callable, in README order: each class's constructor and public members, then the producer."""
    import importlib

    import llm_orchestrator

    found: list[Entry] = []
    for name in CLASSES:
        cls = getattr(llm_orchestrator, name)
        found.append(Entry(name, cls.__init__, "constructor", inspect.getdoc(cls) or ""))
        found += list(_members(cls))
    producer = importlib.import_module(PRODUCER_MODULE)
    for name in PRODUCER_FUNCTIONS:
        func = getattr(producer, name)
        found.append(Entry(f"{PRODUCER_MODULE}.{name}", func, "function", inspect.getdoc(func) or ""))
    return found


def _members(cls: type) -> Iterator[Entry]:
    """Public members defined by ``cls`` itself, in source order."""
    for name, raw in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(raw, classmethod):
            func, kind = raw.__func__, "classmethod"
        elif isinstance(raw, staticmethod):
            func, kind = raw.__func__, "staticmethod"
        elif isinstance(raw, property) and raw.fget is not None:
            func, kind = raw.fget, "property"
        elif inspect.isfunction(raw):
            func, kind = raw, "method"
        else:
            continue
        yield Entry(f"{cls.__name__}.{name}", func, kind, inspect.getdoc(func) or "")


# -- rendering -------------------------------------------------------------------------------------


def signature(entry: Entry, params: str | None = None) -> str:
    """``name(params) -> return`` (``params`` replaces the parameter list, e.g. with ``…``)."""
    sig = inspect.signature(entry.func)
    name = entry.qualname.rsplit(".", 1)[-1]
    if entry.kind == "property":
        return name if sig.return_annotation is sig.empty else f"{name}: {_annotation(sig.return_annotation)}"
    text = f"{name}({parameters(entry) if params is None else params})"
    if entry.kind != "constructor" and sig.return_annotation is not sig.empty:
        text += f" -> {_annotation(sig.return_annotation)}"
    if inspect.iscoroutinefunction(entry.func) or inspect.isasyncgenfunction(entry.func):
        text = "async " + text
    return text


def parameters(entry: Entry) -> str:
    """The parameter list without self/cls: annotations as written in the source, ``*`` and ``/`` kept."""
    sig = inspect.signature(entry.func)
    params = list(sig.parameters.values())[1 if entry.drops_first else 0 :]
    parts: list[str] = []
    star = False
    for i, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = STARS.get(p.kind, "") + p.name
        star = star or p.kind is p.VAR_POSITIONAL
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}" if p.annotation is not p.empty else f"={p.default!r}"
        parts.append(text)
        if p.kind is p.POSITIONAL_ONLY and (i + 1 == len(params) or params[i + 1].kind is not p.POSITIONAL_ONLY):
            parts.append("/")
    return ", ".join(parts)


def _annotation(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return ANNOTATION_PREFIXES.sub("", text)


def _prose(entry: Entry, same_as: str | None = None) -> str:
    text = summary(entry.doc)
    if same_as:
        text = f"Parameters as `{same_as}`. {text}"
    names = raises(entry.doc)
    if names:
        text += " Raises " + ", ".join(f"`{n}`" for n in names) + "."
    return text


def _wrap(text: str, indent: str) -> list[str]:
    """Wrap prose; a line that markdown would read as a list item, heading, quote or table row gets
    its first word moved to the line before."""
    lines = textwrap.wrap(
        text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )
    for i in range(1, len(lines)):
        while MARKDOWN_BLOCK_START.match(lines[i].lstrip()) and " " in lines[i].strip():
            word, rest = lines[i].strip().split(" ", 1)
            lines[i - 1] += " " + word
            lines[i] = indent + rest
    return lines


def _with_prose(first: str, entry: Entry, indent: str, same_as: str | None = None) -> list[str]:
    prose = _wrap(_prose(entry, same_as), indent)
    return [first + "\\", *prose] if prose else [first]  # a trailing backslash is a line break


def _bullet(entry: Entry, seen: dict[str, str]) -> list[str]:
    """One list item; a parameter list of ``SAME_PARAMS_MIN`` or more that an earlier entry of the same
    heading has is shown as ``…`` (the async and streaming twins)."""
    tag = "" if entry.kind in ("method", "function") else f" *({entry.kind})*"
    params = parameters(entry) if entry.kind != "property" else ""
    same_as = seen.get(params) if params.count(",") + 1 >= SAME_PARAMS_MIN else None
    seen.setdefault(params, entry.qualname.rsplit(".", 1)[-1])
    sig = signature(entry, "…" if same_as else None)
    return _with_prose(f"- `{sig}`{tag}", entry, "  ", same_as)


def render() -> str:
    """The README section between the markers (without them), ending in a newline."""
    import importlib

    lines = ["## API reference", "", *_wrap(INTRO, "")]
    module = ""
    seen: dict[str, str] = {}  # parameter list → the first entry under this heading that has it
    for entry in documented():
        if entry.kind == "constructor":
            seen = {}
            lines += ["", f"### `{entry.qualname}`", "", *_with_prose(f"`{signature(entry)}`", entry, ""), ""]
        elif entry.kind == "function" and not entry.qualname.startswith(f"{module}."):
            seen = {}
            module = entry.qualname.rsplit(".", 1)[0]
            module_doc = inspect.getdoc(importlib.import_module(module)) or ""
            lines += ["", f"### `{module}`", "", *_wrap(summary(module_doc), ""), "", *_bullet(entry, seen)]
        else:
            lines += _bullet(entry, seen)
    return "\n".join(lines) + "\n"


# -- README ----------------------------------------------------------------------------------------


def readme_section(text: str) -> str | None:
    """What README text holds between the markers, or None when a marker is missing."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(START) : end].removeprefix("\n")


def difference(expected: str, found: str | None) -> str | None:
    """One line naming the first entry where ``found`` differs from ``expected``; None when equal."""
    if found is None:
        return f"README.md has no {START} ... {END} section"
    if found == expected:
        return None
    want, got = expected.splitlines(), found.splitlines()
    line = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), min(len(want), len(got)))
    names = [_entry_name(text) for text in want[: line + 1] if text.startswith(("- `", "### `"))]
    if line >= len(want):
        where = "the end of the section"
    elif not names:
        where = "the introduction"
    elif names[-1].startswith("#"):
        where = names[-1][1:]
    else:
        heading = next((n for n in reversed(names) if n.startswith("#")), "#")
        where = f"{heading[1:]}.{names[-1]}"
    return (
        f"README API reference differs from the docstrings at {where!r} (line {line + 1} of the section); "
        "run: python scripts/api_reference.py --write"
    )


def _entry_name(line: str) -> str:
    """``#LLMOrchestrator`` for a heading, ``send_request`` for a list item."""
    code = line.split("`")[1]
    if line.startswith("###"):
        return "#" + code
    return code.removeprefix("async ").split("(")[0].split(":")[0]


def write(readme: Path = README) -> bool:
    """Rewrite the section in ``readme``. Returns whether anything changed."""
    text = readme.read_text(encoding="utf-8")
    if readme_section(text) is None:
        raise SystemExit(f"{readme.name}: add the {START} and {END} lines where the section goes")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render()}{END}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the section in README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when README.md differs")
    args = parser.parse_args(argv)
    if args.write:
        print("README.md updated" if write() else "README.md already up to date")
        return 0
    if args.check:
        problem = difference(render(), readme_section(README.read_text(encoding="utf-8")))
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
