"""The tree is the architecture: each domain's plain logic imports only what lies below it, and
only the Dagster layer (with definitions.py and the demo, which drives Dagster) imports dagster."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rai_pipelines"

# What each part of the package may import from the package: the imports point one way.
BELOW = {
    "core": {"core"},
    "costs": {"core", "costs"},
    "monitoring": {"core", "monitoring"},
    "gitops": {"core", "gitops"},
    "governance": {"core", "costs", "monitoring", "gitops", "governance"},
    "defs": {"core", "costs", "monitoring", "gitops", "governance", "defs"},
}
DAGSTER_ALLOWED = {"defs", "definitions", "demo"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        part = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        yield relative.as_posix(), part, ast.parse(path.read_text(), str(path))


def _imported(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_each_domain_imports_only_what_lies_below_it():
    wrong = [
        f"{name} imports {module}"
        for name, part, tree in _modules()
        if part in BELOW
        for module in _imported(tree)
        if module.startswith("rai_pipelines.") and module.split(".")[1] not in BELOW[part]
    ]
    assert wrong == []


def test_only_the_dagster_layer_imports_dagster():
    importing = sorted(
        name for name, _, tree in _modules() if any(m.split(".")[0] == "dagster" for m in _imported(tree))
    )
    assert importing and all(name.split("/")[0].removesuffix(".py") in DAGSTER_ALLOWED for name in importing)


@pytest.mark.parametrize("limit", [650])
def test_no_module_is_past_the_size_one_reads_in_a_sitting(limit):
    sizes = {path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > limit} == {}
