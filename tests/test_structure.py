"""The code's shape, checked from its source: imports point one way (TYPE_CHECKING imports included),
functions take at most 6 parameters that are not keyword-only with defaults, and modules stay under 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("jaxadl", "experiments", "benchmarks")
MAX_POSITIONAL, MAX_LINES = 6, 400


def _modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports anywhere in its source (also inside functions and TYPE_CHECKING)."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `from pkg import name` names a module or an attribute
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, a package's __init__ left out as a target (it re-exports)."""
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    packages = {n for n, p in modules.items() if p.name == "__init__.py"}
    return {n: {t for t in targets if t not in packages} for n, targets in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_import_cycle():
    assert _cycle(_graph()) is None, f"import cycle: {' -> '.join(_cycle(_graph()) or [])}"


def test_the_cycle_finder_finds_a_type_checking_cycle(tmp_path):
    """The check itself: a cycle made only by a TYPE_CHECKING import is found."""
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import X\n"
    )
    known = {"a", "b"}
    graph = {n: _imports(n, tmp_path / f"{n}.py", known) for n in known}
    assert _cycle(graph) in (["a", "b", "a"], ["b", "a", "b"])


def test_the_layers_point_down():
    """The core layers import only layers below them (source -> arrays -> device -> epoch -> history -> report)."""
    graph = _graph()
    assert "jaxadl.train" not in graph["jaxadl.tasks"] and "jaxadl.step" not in graph["jaxadl.tasks"]
    assert not {"jaxadl.train", "jaxadl.trainer", "jaxadl.experiment", "jaxadl.report"} & graph["jaxadl.step"]
    assert not {"jaxadl.train", "jaxadl.together", "jaxadl.experiment"} & graph["jaxadl.trainer"]
    assert not {"jaxadl.together", "jaxadl.experiment"} & graph["jaxadl.train"]
    assert not {"jaxadl.train", "jaxadl.experiment"} & graph["jaxadl.predict"]
    assert not {"jaxadl.train", "jaxadl.step", "jaxadl.experiment"} & graph["jaxadl.report"]


def _functions():
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{name}.{node.name}:{node.lineno}", node


def _positional(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters that are not keyword-only with a default (self and cls not counted)."""
    args = [*fn.args.posonlyargs, *fn.args.args]
    required_keywords = [a for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True) if d is None]
    return len([a for a in args if a.arg not in ("self", "cls")]) + len(required_keywords)


def test_no_function_takes_more_than_six_positional_parameters():
    wide = [f"{where} ({_positional(fn)})" for where, fn in _functions() if _positional(fn) > MAX_POSITIONAL]
    assert not wide, f"more than {MAX_POSITIONAL} positional parameters: {wide}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_400_lines(package):
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_package_loads_its_names_on_first_use():
    """`import jaxadl.run_folder` and the docs tool load no JAX; every public name still resolves."""
    import subprocess
    import sys

    code = (
        "import sys, jaxadl.run_folder, tools.docs\n"
        "assert 'jax' not in sys.modules, 'jax was loaded'\n"
        "import jaxadl\n"
        "missing = [n for n in jaxadl.__all__ if getattr(jaxadl, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert jaxadl.fit.__module__ == 'jaxadl.train'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import jaxadl

        jaxadl.nothing  # noqa: B018


def test_the_packages_type_checking_imports_name_what_it_loads():
    """jaxadl's TYPE_CHECKING imports, its table of names loaded on first use (`_HOME`) and `__all__` agree."""
    import jaxadl

    tree = ast.parse((ROOT / "jaxadl" / "__init__.py").read_text())
    guard = next(
        n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"
    )
    typed = {(i.module, a.name) for i in guard.body if isinstance(i, ast.ImportFrom) for a in i.names}
    lazy = {(module, name) for module, names in jaxadl._HOME.items() for name in names}
    assert typed == lazy, f"only typed: {sorted(typed - lazy)}; only lazy: {sorted(lazy - typed)}"
    assert jaxadl.__all__ == sorted(name for _, name in lazy)
