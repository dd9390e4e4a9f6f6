"""Imports go one way: `contracts` imports nothing of the project, the client kit
(`session_client`) only `contracts`, so that it installs without the worker, and the `worker`
package nothing of the checkout-only folders, so that its wheel and image work without them."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "contracts": ("session_client", "worker", "devenv", "bench", "tests"),
    "session_client": ("worker", "devenv", "bench", "tests"),  # installable without the worker
    "worker": ("devenv", "bench", "tests"),
}


def imported_packages(source: str) -> set[str]:
    """The top-level packages `source` imports (absolute imports only; the project has no
    relative ones)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", FORBIDDEN)
def test_imports_go_one_way(package: str) -> None:
    upward = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path.read_text()) & set(banned))
        for path in sorted((ROOT / package).rglob("*.py"))
        for banned in [FORBIDDEN[package]]
    }
    assert {path: found for path, found in upward.items() if found} == {}


def test_the_check_sees_an_upward_import() -> None:
    assert imported_packages("from devenv.services import open_services\nimport bench") == {
        "devenv",
        "bench",
    }
