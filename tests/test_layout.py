"""The package's layers import downward only: base -> data -> models -> experiment -> train | eval -> report -> verbs
-> cli."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "imfn"
# what every layer may use
BASE = {"__init__", "atomic", "store", "job", "progress", "devices", "provenance", "doctor", "registry", "flags"}
RANK = {"base": 0, "data": 1, "models": 2, "experiment": 3, "train": 4, "eval": 4, "report": 5, "verbs": 6, "cli": 7}


def layer(module: str) -> str:
    """``imfn.train.sweeper`` -> ``train``; the top-level helpers are the base layer."""
    part = module.split(".")[1] if "." in module else ""
    return "base" if part in BASE or part == "" else part


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("imfn"):
            names.add(node.module if node.module != "imfn" else f"imfn.{node.names[0].name}")
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("imfn")}
    return names


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("imfn", *path.relative_to(PACKAGE).with_suffix("").parts))
        assert layer(module) in RANK, f"{module} is in no layer"


def test_imports_run_downward_only():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("imfn", *path.relative_to(PACKAGE).with_suffix("").parts))
        mine = layer(module)
        for target in imports(path):
            theirs = layer(target)
            # train and eval sit side by side: neither may import the other
            if RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] and theirs != mine and mine != "base"):
                upward.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not upward, "\n".join(upward)
