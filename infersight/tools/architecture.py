"""The import graph between infersight's parts, read from the code, and the rule it must follow.

    python -m infersight.tools.architecture          # rewrite the graph in docs/architecture.md
    python -m infersight.tools.architecture --check  # exit 1 if the committed graph is stale

Each module belongs to one part (the folder it lives in, with the exporter's schema and the
comparison engine set apart); an arrow A -> B means some module of A imports one of B, at module
level or inside a function. ``ALLOWED`` is the one-way rule: tools -> UI/compare -> exporter ->
schema. tests/test_architecture.py fails on any other arrow.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

# repository folder -> the import package it is (pyproject.toml's package-dir says the same)
FOLDERS = {
    "infersight": "infersight",
    "exporter": "infersight.exporter",
    "alerts": "infersight.alerts",
    "grafana": "infersight.grafana",
    "dashboard": "infersight.dashboard",
    "simulator": "infersight.simulator",
}

# part -> the parts it may import (besides itself). The root package holds only __version__.
ALLOWED: dict[str, frozenset[str]] = {
    "schema": frozenset({"root"}),
    "exporter": frozenset({"schema", "root"}),
    "compare": frozenset({"exporter", "schema", "root"}),
    "alerts": frozenset({"exporter", "schema"}),
    "grafana": frozenset({"alerts", "exporter", "schema"}),
    "simulator": frozenset({"compare", "schema"}),
    "ui": frozenset({"compare", "alerts", "exporter", "schema"}),
    "tools": frozenset({"ui", "compare", "alerts", "grafana", "simulator", "exporter", "schema", "root"}),
    "cli": frozenset({"tools", "ui", "compare", "alerts", "grafana", "simulator", "exporter", "schema", "root"}),
    "root": frozenset(),
}

MARK_START = "<!-- import-graph:start -->"
MARK_END = "<!-- import-graph:end -->"


def part_of(module: str) -> str | None:
    """The part a module of the ``infersight`` namespace belongs to (None outside it)."""
    if module == "infersight":
        return "root"
    if not module.startswith("infersight."):
        return None
    name = module.split(".")[1]
    if module.startswith("infersight.exporter.schema"):
        return "schema"
    return {"exporter": "exporter", "alerts": "alerts", "grafana": "grafana", "dashboard": "ui",
            "simulator": "simulator", "tools": "tools", "cli": "cli", "__main__": "cli",
            "compare": "compare", "quantile": "compare", "promapi": "compare", "plan": "compare"}.get(name)


def modules(repo: Path) -> Iterator[tuple[str, Path]]:
    """Every Python module of the distribution, with its dotted name."""
    for folder, package in FOLDERS.items():
        for path in sorted((repo / folder).rglob("*.py")):
            rel = path.relative_to(repo / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def imports(module: str, path: Path) -> Iterator[str]:
    """The modules ``path`` imports anywhere in its body, resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:  # `from infersight import alerts` imports a module
                yield f"{base}.{alias.name}"


def edges(repo: Path) -> dict[tuple[str, str], list[str]]:
    """(from part, to part) -> the modules that make the arrow, for arrows between different parts."""
    known = {name for name, _ in modules(repo)}
    found: dict[tuple[str, str], list[str]] = {}
    for module, path in modules(repo):
        source = part_of(module)
        for target in set(imports(module, path)):
            if target not in known:
                continue
            dest = part_of(target)
            if source and dest and dest != source:
                found.setdefault((source, dest), []).append(f"{module} -> {target}")
    return {key: sorted(value) for key, value in sorted(found.items())}


def violations(found: dict[tuple[str, str], list[str]]) -> list[str]:
    return [line for (source, dest), lines in found.items() if dest not in ALLOWED[source] for line in lines]


def graph_text(found: dict[tuple[str, str], list[str]]) -> str:
    lines = [MARK_START, "```mermaid", "flowchart TD"]
    lines += [f"    {source} --> {dest}" for source, dest in found]
    lines += ["```", "", "| from | to | imports (module -> module) |", "|---|---|---|"]
    for (source, dest), mods in found.items():
        lines.append(f"| {source} | {dest} | {'<br>'.join(f'`{m}`' for m in mods)} |")
    lines.append(MARK_END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=Path("."))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    found = edges(args.repo)
    bad = violations(found)
    for line in bad:
        print(f"error: import against the layering: {line}", file=sys.stderr)
    doc = args.repo / "docs" / "architecture.md"
    text = doc.read_text(encoding="utf-8")
    head, rest = text.split(MARK_START, 1)
    fresh = head + graph_text(found) + rest.split(MARK_END, 1)[1]
    if args.check:
        if fresh != text:
            print(f"error: {doc} is stale; run: python -m infersight.tools.architecture", file=sys.stderr)
            return 1
        return 1 if bad else 0
    doc.write_text(fresh, encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
