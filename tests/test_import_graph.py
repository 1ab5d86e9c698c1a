"""Imports point one way: every evalkit module imports, no import cycle (lazy imports inside functions included),
and no module imports from a later layer (foundations -> mteb and tasks -> encoding -> identity -> results ->
runner -> report, check and the command line)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import evalkit

ROOT = Path(evalkit.__file__).parent

# in order; a module imports only from its own layer or earlier ones (the package root, `evalkit`, holds
# EvalkitError and the lazy `load_encoder` facade, and is left out)
LAYERS = (
    ("evalkit.errors", "evalkit.files", "evalkit.versions", "evalkit.conf_path", "evalkit.config", "evalkit.hub",
     "evalkit.distributed"),
    ("evalkit.mteb_hooks", "evalkit.tasks", "evalkit.instructions", "evalkit.beir_folder", "evalkit.mteb_folder",
     "evalkit.textsets", "evalkit.itemscores"),
    ("evalkit.encoding",),
    ("evalkit.identity",),
    ("evalkit.results",),
    ("evalkit.search", "evalkit.runner", "evalkit.plan"),
    ("evalkit.report", "evalkit.check", "evalkit.__main__"),
)


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The evalkit modules `name` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            out.update(f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names)
    return {m for m in out if m in known and m not in (name, "evalkit")}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items() if name != "evalkit"}


def layer(name: str) -> int:
    for rank, members in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return rank
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    state, found = {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


@pytest.mark.unit
def test_every_module_imports():
    for name in modules():
        importlib.import_module(name)


@pytest.mark.unit
def test_no_import_cycle():
    assert cycles(graph()) == []


@pytest.mark.unit
def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b", "a"]]


@pytest.mark.unit
def test_imports_follow_the_layers():
    backwards = [f"{name} ({layer(name)}) imports {dep} ({layer(dep)})" for name, deps in sorted(graph().items())
                 for dep in sorted(deps) if layer(dep) > layer(name)]
    assert backwards == []
