"""The train package's import graph has no cycles (issue 8: train/models.py <-> train/lite0_weights.py).

Imports inside functions count too: a lazy import only hides a cycle until someone moves it.
"""

import ast
from pathlib import Path

import pytest

TRAIN = Path(__file__).resolve().parents[2] / "train"


def train_imports(path: Path) -> set[str]:
    """Every ``train.*`` module a file imports, at any depth (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("train."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("train."))
    return found


def module_name(path: Path) -> str:
    """``train/data/loading.py`` -> ``train.data.loading``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(TRAIN.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module of train/ (sub-packages too: train.data, train.synthesis) -> the train modules it imports."""
    return {module_name(p): train_imports(p) for p in TRAIN.rglob("*.py") if p != TRAIN / "__init__.py"}


def test_lite0_weights_does_not_import_models():
    graph = import_graph()
    assert "train.models" not in graph["train.lite0_weights"]
    assert graph["train.lite0"] == set(), "the Lite0 architecture depends on no other train module"
    assert {"train.lite0", "train.lite0_weights"} <= graph["train.models"]


def test_train_package_has_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(mod, path):
        state[mod] = 1
        for dep in graph.get(mod, ()):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])


def test_old_names_still_importable_from_models():
    pytest.importorskip("tensorflow")
    from train import lite0, models

    for name in ("efficientnet_lite0", "LITE0_STAGES", "LITE0_NUM_BLOCKS", "LITE0_DEFAULT_BLOCKS",
                 "BN_EPSILON", "BN_MOMENTUM"):
        assert getattr(models, name) is getattr(lite0, name)
    assert models.imagenet_weights_path.__module__ == "train.lite0_weights"
