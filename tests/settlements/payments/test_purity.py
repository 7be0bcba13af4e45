"""The payment calculator must stay importable without Django (and without pandas)."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import settlements.payments

PACKAGE_DIR = pathlib.Path(settlements.payments.__file__).parent
REPO_ROOT = PACKAGE_DIR.parent.parent


def imported_modules(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_it_imports_only_the_standard_library_and_itself() -> None:
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(modules) > 3
    offenders = []
    for path in modules:
        for name in imported_modules(ast.parse(path.read_text(), filename=str(path))):
            top = name.split(".")[0]
            own = name == "settlements.payments" or name.startswith("settlements.payments.")
            if not (top in sys.stdlib_module_names or own):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_importing_it_does_not_load_django() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import settlements.payments, sys; assert 'django' not in sys.modules, 'django'; "
            "assert 'pandas' not in sys.modules, 'pandas'",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
