"""The suite's own layout: conftest loaded once, no test module importing another, and each
shared helper defined in one place under tests/helpers/."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SOURCES = sorted(TESTS.rglob("*.py"))
# Modules that live directly in tests/: importing one by name would load it a second time
# (as `conftest` and `tests.conftest`) or couple one test file to another.
TOP_LEVEL = {path.stem for path in TESTS.glob("*.py")} | {"tests"}
# Each shared helper, and the one module allowed to define it.
SHARED = {
    "free_port": "helpers/net.py",
    "busy_port": "helpers/net.py",
    "ref_v2": "helpers/signing.py",
    "ref_v3": "helpers/signing.py",
    "post_signed": "helpers/signing.py",
    "cli_env": "helpers/env.py",
    "make_event": "helpers/events.py",
    "ThreadedListener": "helpers/listeners.py",
    "Receiver": "helpers/receiver.py",
}

DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_scan_sees_every_test_module() -> None:
    """The scan below reads the whole suite, helpers included (a scan of nothing proves nothing)."""
    names = {path.relative_to(TESTS).as_posix() for path in SOURCES}
    assert {"conftest.py", "test_suite_layout.py", "helpers/net.py"} <= names
    assert len([n for n in names if n.startswith("test_")]) > 30


def test_conftest_is_loaded_once() -> None:
    """Only pytest loads conftest.py: no second copy under another module name."""
    conftest = TESTS / "conftest.py"
    copies = [
        name
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == conftest
    ]
    assert len(copies) == 1, copies
    assert "tests.conftest" not in sys.modules


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(TESTS).as_posix())
def test_no_module_imports_a_test_module_or_conftest(path: Path) -> None:
    """Shared code is imported from `helpers.<module>`, never from conftest or a test file."""
    bad = {
        module
        for module in imported_modules(path)
        if module.split(".")[0] in TOP_LEVEL or module.split(".")[-1].startswith("test_")
    }
    assert not bad, f"{path.name} imports {sorted(bad)}: move what it needs into tests/helpers/"


def test_each_shared_helper_is_defined_once() -> None:
    """One free-port helper, one receiver, one signed-callback builder: no local copies."""
    where: dict[str, list[str]] = {name: [] for name in SHARED}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, DEFINITIONS) and node.name in SHARED:
                where[node.name].append(path.relative_to(TESTS).as_posix())
    assert where == {name: [home] for name, home in SHARED.items()}


def test_ci_runs_the_slow_benchmark_smoke_tests() -> None:
    """The benchmark smoke tests are marked slow, and neither .ci/run's pytest nor the pytest
    config leaves slow tests out."""
    tree = ast.parse((TESTS / "test_benchmarks.py").read_text(encoding="utf-8"))
    [smoke] = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_benchmark_runs")
    ]
    assert "pytest.mark.slow" in [ast.unparse(d) for d in smoke.decorator_list]
    root = TESTS.parent
    runs = [line for line in (root / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert runs and runs[-1].strip() == "pytest -q", runs
    [addopts] = re.findall(r'^addopts = "(.*)"$', (root / "pyproject.toml").read_text(), re.M)
    assert "-m" not in addopts.split()
