"""The baseline library must stay importable without Django (analysts' notebooks)."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import settlements.baselines

PACKAGE_DIR = pathlib.Path(settlements.baselines.__file__).parent
REPO_ROOT = PACKAGE_DIR.parent.parent
ALLOWED_THIRD_PARTY = {"numpy", "pandas"}


def imported_modules(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_it_imports_only_stdlib_numpy_pandas_and_itself() -> None:
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(modules) > 3
    offenders = []
    for path in modules:
        for name in imported_modules(ast.parse(path.read_text(), filename=str(path))):
            top = name.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top in ALLOWED_THIRD_PARTY
                or name == "settlements.baselines"
                or name.startswith("settlements.baselines.")
            )
            if not allowed:
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_importing_it_does_not_load_django() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import settlements.baselines, sys; assert 'django' not in sys.modules",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
