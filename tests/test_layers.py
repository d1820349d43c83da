"""The packages are layers whose imports run one way (ARCHITECTURE.md): the HTTP API on top, then
the worker, then webhooks, then the bottom (`core`, `config`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A package may import its own layer and the ones below it (a higher number), never one above.
LAYERS = {"gateway": 0, "scheduler": 1, "webhooks": 2, "core": 3, "config": 4}
# Only the command line may reach the worker's runtime: it is what starts a worker.
RUNTIME = "scheduler.worker"
CLI = "gateway.cli"


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def violations() -> list[str]:
    wrong = []
    for package, level in LAYERS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            module = module_of(path)
            for line, target in imports_of(path):
                top = target.split(".")[0]
                if top in LAYERS and LAYERS[top] < level:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} from a layer above")
                if (target == RUNTIME or target.startswith(RUNTIME + ".")) and module != CLI and top != package:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports the worker runtime {target}")
    return wrong


def test_no_module_imports_a_layer_above_it() -> None:
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from gateway.routes import admin\nimport scheduler.pump\nfrom core import keys\n")
    assert [target for _, target in imports_of(bad)] == ["gateway.routes", "gateway.routes.admin", "scheduler.pump",
                                                         "core", "core.keys"]  # fmt: skip
