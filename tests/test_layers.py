"""The import rule of docs/ARCHITECTURE.md: no module imports a layer above its own.

Every ``import`` of the package counts, at module level or inside a function or an ``if``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "grammar_ae"

LAYERS = (
    ("errors", "utils", "chemistry"),
    ("grammar",),
    ("decoding", "data"),
    ("objectives",),
    ("training",),
    ("models",),
    ("evaluation",),
    ("bo",),
    ("pipelines",),
    ("cli", "__main__"),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
EXPORTS = {"load_run": "models"}  # what `from grammar_ae import NAME` reaches
FORBIDDEN = {
    "bo": ("grammar_ae.models",),  # the BO loop sees models only through its LatentModel protocol
    "models.sequence": ("grammar_ae.models.image",),  # the families do not know each other
    "models.image": ("grammar_ae.models.sequence",),
}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every grammar_ae import in the file, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names if node.module == "grammar_ae"]
    return [(line, name) for line, name in found if name.split(".")[0] == "grammar_ae"]


def layer_of(module: str) -> str | None:
    """The layer name of a grammar_ae module (its first part below the package), None for the package itself."""
    parts = module.split(".")
    return EXPORTS.get(parts[1], parts[1]) if len(parts) > 1 else None


def test_every_module_belongs_to_a_layer():
    unplaced = {layer_of(dotted(path)) for path in modules()} - set(RANK) - {None}
    assert not unplaced, f"add {sorted(unplaced)} to LAYERS (and to docs/ARCHITECTURE.md)"


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path):
    module = dotted(path)
    own = layer_of(module)
    if own is None:  # the package: the version, and load_run on first use
        return
    upward = [
        f"line {line}: {name}"
        for line, name in imported(path)
        if (layer := layer_of(name)) is not None and layer in RANK and RANK[layer] > RANK[own]
    ]
    forbidden = [
        f"line {line}: {name}"
        for line, name in imported(path)
        for prefix, banned in FORBIDDEN.items()
        if module.removeprefix("grammar_ae.").startswith(prefix) and name.startswith(banned)
    ]
    assert not upward, f"{module} ({own}) imports a layer above its own: {upward}"
    assert not forbidden, f"{module} imports what its layer must not see: {forbidden}"


def test_the_package_itself_imports_nothing_at_import_time():
    """``import grammar_ae`` (done by utils.provenance for the version) must not pull any layer
    in, nor any third-party package: the standard library only."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    eager = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    eager += [node.module or "." for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert all(name.split(".")[0] in sys.stdlib_module_names for name in eager), eager


def test_the_rule_catches_an_upward_import_inside_a_function(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    if True:\n        from grammar_ae.pipelines.train_images import train_image_model\n")
    assert imported(sample) == [(3, "grammar_ae.pipelines.train_images")]
