"""The layout the packages' docstrings draw is the layout on disk, and docs/architecture.md
shows exactly that drawing (``python scripts/layout.py``)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.support.paths import REPO_ROOT


def _layout():
    spec = importlib.util.spec_from_file_location("layout", REPO_ROOT / "scripts" / "layout.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["layout"] = module
    spec.loader.exec_module(module)
    return module


layout = _layout()


@pytest.mark.parametrize("package", layout.PACKAGES)
def test_each_package_s_docstring_draws_every_module_and_subpackage(package):
    folder = REPO_ROOT / package
    on_disk = {p.name for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    on_disk |= {f"{d.name}/" for d in folder.iterdir() if (d / "__init__.py").is_file()}
    on_disk |= {p.name for p in folder.glob("*.json")}
    drawn = layout.entries(package)
    assert drawn == on_disk, f"{package}: drawn but absent {sorted(drawn - on_disk)}, " \
                             f"present but not drawn {sorted(on_disk - drawn)}"  # fmt: skip


def test_every_package_with_modules_is_drawn():
    packages = {
        str(init.parent.relative_to(REPO_ROOT))
        for top in ("ttma_relay", "handlers", "devstack", "bench")
        for init in (REPO_ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert packages == set(layout.PACKAGES)


def test_architecture_page_shows_the_drawing():
    page = (REPO_ROOT / "docs" / "architecture.md").read_text()
    assert layout.render() in page, "run: python scripts/layout.py, paste into docs/architecture.md"


CLIENT_LIBRARIES = ("google", "grpc", "httpx", "requests")


def _imported_roots(path) -> set[str]:
    import ast

    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_adapters_and_the_wiring_import_a_client_library():
    """In the functions' code, what talks to Google or to the vendor is in one folder
    (``ttma_relay/adapters/``) plus the one module that builds the clients."""
    allowed = ("ttma_relay/adapters/", "ttma_relay/cli/", "handlers/wiring.py")
    offenders = {}
    for top in ("ttma_relay", "handlers", "verify"):
        for path in (REPO_ROOT / top).rglob("*.py"):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if relative.startswith(allowed):
                continue
            found = _imported_roots(path) & set(CLIENT_LIBRARIES)
            if found:
                offenders[relative] = sorted(found)
    assert offenders == {}


def test_the_library_never_imports_its_callers():
    offenders = {
        path.relative_to(REPO_ROOT).as_posix(): sorted(roots)
        for path in (REPO_ROOT / "ttma_relay").rglob("*.py")
        if (roots := _imported_roots(path) & {"handlers", "main", "devstack", "ttma_sandbox"})
    }
    assert offenders == {}
