"""Vendor the part of OpenAI's official OpenAPI spec that the simulator's OpenAI wire bodies must match.

Usage::

    python scripts/vendor_openai_schemas.py SPEC [--commit SHA] [--spec-path openapi.yaml]
                                            [--out tests/conformance/openai_openapi_subset.json]

``SPEC`` is ``openapi.yaml`` (or ``openapi.json``) from https://github.com/openai/openai-openapi.
The output keeps, verbatim, every schema named in ``ROOT_SCHEMAS``, the responses of the operations
in ``OPERATIONS`` (responses and ``x-oaiMeta`` with the documented example responses; no request
bodies) and every component they reference,
transitively, under their original ``#/components/...`` paths, so each ``$ref`` still resolves
inside the output document. Nothing is rewritten: OpenAPI quirks (such as the 3.0-style
``nullable`` keyword that the 3.1 spec still carries) are interpreted by the tests, not here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

SOURCE_REPO = "openai/openai-openapi"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "conformance" / "openai_openapi_subset.json"
ROOT_SCHEMAS = (
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ErrorResponse",
    "Error",
    "ListModelsResponse",
    "Model",
    "OpenAIFile",
    "ListFilesResponse",
    "Batch",
    "ListBatchesResponse",
)
# (path, method): the operations whose documented responses the simulator implements (or should).
OPERATIONS = (
    ("/chat/completions", "post"),
    ("/models", "get"),
    ("/models/{model}", "get"),
    ("/files", "get"),
    ("/files", "post"),
    ("/files/{file_id}", "get"),
    ("/batches", "get"),
    ("/batches", "post"),
    ("/batches/{batch_id}", "get"),
    ("/batches/{batch_id}/cancel", "post"),
)
COMPONENT_PREFIX = "#/components/"


class _NoTimestampLoader(yaml.SafeLoader):
    """SafeLoader that keeps dates as strings, so the result is plain JSON (as openapi.json is)."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_spec(path: Path) -> dict[str, Any]:
    """The spec document, from YAML or JSON (chosen by the file name)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=_NoTimestampLoader)  # noqa: S506 - a SafeLoader subclass


def _refs(node: Any) -> list[str]:
    """Every ``$ref`` value anywhere under ``node``."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for key, value in node.items() if key != "$ref" for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _component(spec: dict[str, Any], ref: str) -> tuple[str, str]:
    """``#/components/schemas/Foo`` → ``("schemas", "Foo")``, checking that it exists in ``spec``."""
    if not ref.startswith(COMPONENT_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}: only local #/components/... refs are vendored")
    kind, _, name = ref[len(COMPONENT_PREFIX) :].partition("/")
    if "/" in name or name not in spec.get("components", {}).get(kind, {}):
        raise ValueError(f"$ref {ref!r} does not name a component of the spec")
    return kind, name


def subset(spec: dict[str, Any], source: str) -> dict[str, Any]:
    """The vendored document: chosen operations' responses plus the components they need."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method in OPERATIONS:
        operation = spec["paths"][path][method]
        paths.setdefault(path, {})[method] = {
            "operationId": operation.get("operationId"),
            "responses": operation["responses"],
            "x-oaiMeta": operation.get("x-oaiMeta", {}),
        }
    components: dict[str, dict[str, Any]] = {}
    todo = [f"{COMPONENT_PREFIX}schemas/{name}" for name in ROOT_SCHEMAS] + _refs(paths)
    while todo:
        kind, name = _component(spec, todo.pop())
        if name in components.get(kind, {}):
            continue
        node = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = node
        todo.extend(_refs(node))
    return {
        "$comment": source,
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="openapi.yaml or openapi.json from openai/openai-openapi")
    parser.add_argument("--commit", default="unknown", help="commit of openai/openai-openapi the file is from")
    parser.add_argument("--spec-path", default=None, help="the file's path in that repo (default: its name)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    source = (
        f"Subset of the official OpenAI OpenAPI spec: repo {SOURCE_REPO}, file "
        f"{args.spec_path or args.spec.name}, commit {args.commit} (openapi {spec['openapi']}, "
        f"info.version {spec['info']['version']}). Generated by scripts/vendor_openai_schemas.py; "
        "do not edit by hand. Schemas are verbatim, $ref paths unchanged."
    )
    document = subset(spec, source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = ", ".join(f"{len(items)} {kind}" for kind, items in document["components"].items())
    print(f"wrote {args.out}: {len(document['paths'])} paths, {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
