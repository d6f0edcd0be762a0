"""The directions of dependence the architecture promises, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTER_LAYERS = ("registry", "pipelines", "strategy_engine")
# Data loading reads the shipped files into model types; what runs on them (strategies,
# backtests, the engine) builds on it, never the other way round.
DATA_MAY_IMPORT = ("core.data", "core.errors", "core.model")


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
    return modules


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _sources("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_outer_layer(path):
    outer = {m for m in _imported_modules(path) if m.split(".")[0] in OUTER_LAYERS}
    assert outer == set()


@pytest.mark.parametrize("path", _sources("core/data"), ids=lambda p: str(p.relative_to(ROOT)))
def test_data_loading_imports_only_model_types(path):
    project = {m for m in _imported_modules(path) if m.split(".")[0] == "core"}
    wrong = {m for m in project if not any(_within(m, allowed) for allowed in DATA_MAY_IMPORT)}
    assert wrong == set()


def _part(module: str) -> str:
    """The part of the project a module belongs to: ``core.engine``, ``core.model``, ..."""
    return ".".join(module.split(".")[:2])


def test_no_two_parts_of_the_project_import_each_other():
    # The house reads top to bottom: between any two parts, imports go one way only.
    edges: set[tuple[str, str]] = set()
    for package in ("core", *OUTER_LAYERS):
        for path in _sources(package):
            here = _part(".".join(path.relative_to(ROOT).with_suffix("").parts))
            for module in _imported_modules(path):
                if module.split(".")[0] in ("core", *OUTER_LAYERS) and _part(module) != here:
                    edges.add((here, _part(module)))
    both_ways = sorted({tuple(sorted(edge)) for edge in edges if edge[::-1] in edges})
    assert both_ways == []
