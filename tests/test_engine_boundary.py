"""Frameworks live only in ``src/boxtune/engines/`` (DESIGN.md), and the cheap entry points
(``import boxtune``, the CLI's parser, the server app, the trainer's modules) import none."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import boxtune

FRAMEWORKS = {"torch", "torchvision", "onnx", "onnxruntime", "safetensors", "tensorflow", "keras"}
PACKAGE = Path(boxtune.__file__).parent


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):  # every import, at module level or inside functions
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_no_module_outside_engines_imports_a_framework():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "engines" in path.relative_to(PACKAGE).parts:
            continue
        for line, module in _imported_modules(ast.parse(path.read_text())):
            if module.split(".")[0] in FRAMEWORKS:
                offenders.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_sees_imports_inside_functions():
    tree = ast.parse("def f():\n    import torch.nn\n    from onnxruntime import X\n")
    assert [m for _, m in _imported_modules(tree)] == ["torch.nn", "onnxruntime"]


def test_cheap_entry_points_import_no_framework():
    code = (
        "import sys, boxtune, boxtune.cli, boxtune.serve.app, boxtune.train, boxtune.data, "
        "boxtune.model_ref, boxtune.engines, boxtune.engines.torch\n"
        "boxtune.cli.build_parser()\n"
        "from boxtune.engines import available_backends; available_backends()\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FRAMEWORKS)!r})\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
