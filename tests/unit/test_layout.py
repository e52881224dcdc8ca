"""DESIGN.md §3: libs are imported and never run; services are never imported by libs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / "libs" / "streamscore" / "libs"
FORBIDDEN_IN_LIBS = ("streamscore.services", "confluent_kafka", "redis", "fastapi", "uvicorn")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, under TYPE_CHECKING) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in guarded) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, id(node) in guarded))
    return out


def test_libs_do_not_import_services_or_clients() -> None:
    offenders = []
    for path in LIBS.rglob("*.py"):
        for module, typing_only in _imports(path):
            if typing_only:
                continue
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN_IN_LIBS):
                offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == []


def test_no_namespace_init_shadows_the_split_package() -> None:
    # `streamscore` is a namespace package spread over libs/ and services/.
    assert not (ROOT / "libs" / "streamscore" / "__init__.py").exists()
    assert not (ROOT / "services" / "streamscore" / "__init__.py").exists()
